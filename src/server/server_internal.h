// Internal to src/server: the state every route shares (Server::Impl) and the
// route handlers, split by file — routes_generate.cc (chat and completions),
// routes_messages.cc (/v1/messages), routes_responses.cc (/v1/responses),
// routes_info.cc (models, health, metrics, cache, tokenize), admission.cc
// (what every request must pass before its route runs: shutdown, Host,
// Origin, API key, body framing and type; reading the body within the byte
// limit). server.cc wires them into cpp-httplib. Not a public header.
#pragma once

#include <httplib.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "engine/engine.h"
#include "server/api_error.h"
#include "server/chat_renderer.h"
#include "server/metrics.h"
#include "server/server.h"
#include "server/structured_output.h"
#include "tokenizer/tokenizer.h"

namespace reprise::server {

struct Server::Impl {
  Impl(engine::Engine& e, const tokenizer::Tokenizer& t, std::unique_ptr<ChatRenderer> r,
       ServerConfig c)
      : engine(e),
        tok(t),
        renderer(std::move(r)),
        config(std::move(c)),
        structured(std::make_unique<StructuredOutput>(t)) {}

  engine::Engine& engine;
  const tokenizer::Tokenizer& tok;
  std::unique_ptr<ChatRenderer> renderer;  // null: no chat template
  ServerConfig config;
  std::unique_ptr<StructuredOutput> structured;  // response_format, forced tool calls
  ServerMetrics metrics;
  httplib::Server http;
  int bound_port = -1;
  int64_t started_unix_s = 0;
  // Stop() was called: new requests get 503; in-flight ones run until
  // abort_at_ms (steady clock), then Aborting() turns true.
  std::atomic<bool> draining{false};
  std::atomic<int64_t> abort_at_ms{0};
  std::atomic<uint64_t> next_id{0};
  uint64_t id_salt = 0;  // random per process, so ids differ across restarts

  // Open connections per client address (those that have sent a request).
  std::mutex clients_mu;
  std::unordered_map<std::string, int> clients;
  // Peers ("ip|port") of connections that have sent a request (for the
  // header deadline, header_watchdog.h).
  std::mutex spoken_mu;
  std::unordered_set<std::string> spoken;

  std::string NewId(const char* prefix);
  // True once in-flight requests must end (shutdown timeout passed).
  bool Aborting() const;
};

// admission.cc
// The pre-routing check (see above); Handled when it has answered.
httplib::Server::HandlerResponse Admit(Server::Impl& s, const httplib::Request& req,
                                       httplib::Response& res);
// Reads a POST body through `reader`, failing with 413 as soon as it passes
// max_body_bytes (chunked or not) and 400 when it is cut short; on success
// stores it in req.body (httplib's Request is ours for the request's life).
bool ReadBody(Server::Impl& s, const httplib::Request& req, httplib::Response& res,
              const httplib::ContentReader& reader);
// Writes `error` and closes the connection after it (lingering: what the
// client still sends is read and dropped for a bounded time first), for
// requests whose body was not read or not read whole.
void RespondAndClose(const httplib::Request& req, httplib::Response& res, const ApiError& error);
// Called on the connection's thread when the connection has ended: frees
// its place in the per-address count.
void ReleaseConnection(Server::Impl& s);
// Index in config.api_keys of the request's key; -1 when keys are not used.
int ApiKeyIndex(const Server::Impl& s, const httplib::Request& req);

// Writes `error` as the JSON response.
void RespondError(httplib::Response& res, const ApiError& error);
void RespondJson(httplib::Response& res, const nlohmann::ordered_json& body, int status = 200);
// Parses the body as JSON (json_body.h: bounded depth, linear time); on
// failure writes the 400 and returns nullopt.
std::optional<nlohmann::ordered_json> ParseJsonBody(const httplib::Request& req,
                                                    httplib::Response& res);

// routes_generate.cc
void HandleChatCompletions(Server::Impl& s, const httplib::Request& req, httplib::Response& res);
void HandleCompletions(Server::Impl& s, const httplib::Request& req, httplib::Response& res);

// routes_messages.cc (Anthropic Messages API)
void HandleMessages(Server::Impl& s, const httplib::Request& req, httplib::Response& res);
void HandleCountTokens(Server::Impl& s, const httplib::Request& req, httplib::Response& res);

// routes_responses.cc (OpenAI Responses API)
void HandleResponses(Server::Impl& s, const httplib::Request& req, httplib::Response& res);

// routes_info.cc
void HandleModel(Server::Impl& s, const httplib::Request& req, httplib::Response& res);
void HandleModels(Server::Impl& s, const httplib::Request& req, httplib::Response& res);
void HandleHealth(Server::Impl& s, const httplib::Request& req, httplib::Response& res);
void HandleMetrics(Server::Impl& s, const httplib::Request& req, httplib::Response& res);
void HandleCache(Server::Impl& s, const httplib::Request& req, httplib::Response& res);
void HandleTokenize(Server::Impl& s, const httplib::Request& req, httplib::Response& res);
void HandleDetokenize(Server::Impl& s, const httplib::Request& req, httplib::Response& res);

}  // namespace reprise::server
