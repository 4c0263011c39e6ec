// Internal to src/server: the state every route shares (Server::Impl) and the
// route handlers, split by file — routes_generate.cc (chat and completions),
// routes_messages.cc (/v1/messages), routes_responses.cc (/v1/responses),
// routes_info.cc (models, health, metrics, cache, tokenize). server.cc wires
// them into cpp-httplib. Not a public header.
#pragma once

#include <httplib.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "engine/engine.h"
#include "server/api_error.h"
#include "server/chat_renderer.h"
#include "server/metrics.h"
#include "server/server.h"
#include "tokenizer/tokenizer.h"

namespace reprise::server {

struct Server::Impl {
  Impl(engine::Engine& e, const tokenizer::Tokenizer& t, std::unique_ptr<ChatRenderer> r,
       ServerConfig c)
      : engine(e), tok(t), renderer(std::move(r)), config(std::move(c)) {}

  engine::Engine& engine;
  const tokenizer::Tokenizer& tok;
  std::unique_ptr<ChatRenderer> renderer;  // null: no chat template
  ServerConfig config;
  ServerMetrics metrics;
  httplib::Server http;
  int bound_port = -1;
  int64_t started_unix_s = 0;
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> next_id{0};
  uint64_t id_salt = 0;  // random per process, so ids differ across restarts

  std::string NewId(const char* prefix);
};

// Writes `error` as the JSON response.
void RespondError(httplib::Response& res, const ApiError& error);
void RespondJson(httplib::Response& res, const nlohmann::ordered_json& body, int status = 200);
// Parses the body as JSON; on failure writes the 400 and returns nullopt.
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
