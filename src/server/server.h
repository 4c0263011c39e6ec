// The HTTP server: OpenAI-compatible routes over one Engine. HTTP threads
// (cpp-httplib's pool) parse JSON into native structs, render chat templates,
// tokenize and submit token-level requests; they read the engine's events
// back, detokenize and answer (JSON or SSE). Every failure is answered with
// an OpenAI-style JSON error; no connection is dropped without one.
//
// Owns: the HTTP listener and its threads, metrics of the HTTP layer.
// Does not own: the engine, tokenizer or model (they must outlive it).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "engine/engine.h"
#include "server/chat_renderer.h"
#include "server/openai_types.h"
#include "tokenizer/tokenizer.h"

namespace reprise::server {

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 8080;                             // 0 = any free port (see Server::port())
  // Accepted API keys (Authorization: Bearer KEY); empty = no authentication.
  // Each key is its own prompt-cache namespace (a tenant).
  std::vector<std::string> api_keys;
  int64_t max_body_bytes = int64_t{32} << 20;  // larger bodies get 413, while reading
  int http_threads = 0;                        // kept warm; 0 = max(16, 4 * engine parallel)
  // Connections served at once, one thread each (more wait for a thread).
  int max_connections = 4096;
  // Connections one client address may have open once they have sent a
  // request (more get 429 and are closed); 0 = no cap.
  int max_connections_per_client = 128;
  // Seconds a read may wait for the next bytes of a request (headers or body).
  int read_timeout_s = 30;
  // Seconds a connection may wait for its (next) request before it is closed.
  int idle_timeout_s = 5;
  // Seconds a new connection has to send its first request's headers, in
  // total (0 = no deadline beyond read_timeout_s per read).
  double header_timeout_s = 10;
  // After Stop(): how long in-flight requests may run before they are ended
  // with an error (streams: an SSE error event; others: 503).
  double shutdown_timeout_s = 30;
  // Host header values accepted besides the loopback names when bound to a
  // loopback address (with or without a port).
  std::vector<std::string> allowed_hosts;
  // Origins allowed to make cross-origin (browser) requests; "*" allows any.
  std::vector<std::string> cors_origins;
  // Old behaviour: control tokens written in message content are parsed as
  // control tokens (by default only the template's own markers are).
  bool special_tokens_in_content = false;
  // What /v1/models says about the model.
  std::string model_id;
  std::string model_description;
  bool model_output_is_noise = false;  // random-weight (demo) models
  bool model_is_scripted = false;      // scripted test models (model/synthetic.h)
  int32_t n_vocab = 0;                 // the model's (for token ids and logit_bias)
  RequestDefaults defaults;            // --temp, --top-p, --top-k, --min-p, --max-tokens
  // /v1/messages: drop Claude Code's per-request "x-anthropic-billing-header:"
  // system line before rendering, so turns share their prefix
  // (--keep-billing-header turns this off).
  bool strip_billing_header = true;
};

class Server {
 public:
  // `renderer` may be null (the model has no chat template: chat requests get
  // a 400). `engine` and `tok` must outlive the server.
  Server(engine::Engine& engine, const tokenizer::Tokenizer& tok,
         std::unique_ptr<ChatRenderer> renderer, ServerConfig config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listening socket. Errors: address in use, bad host.
  Status Bind();
  int port() const;  // the bound port (after Bind)
  // Serves until Stop() and returns once every in-flight request has ended.
  void Run();
  // Graceful stop; thread-safe, returns at once. Stops accepting; requests
  // that arrive on open connections get 503; in-flight requests may finish
  // for up to shutdown_timeout_s, then are ended with an error (never a fake
  // "stop"): streams get an SSE error event and no [DONE], others a 503.
  void Stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace reprise::server
