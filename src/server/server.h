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

#include "core/status.h"
#include "engine/engine.h"
#include "server/chat_renderer.h"
#include "server/openai_types.h"
#include "tokenizer/tokenizer.h"

namespace reprise::server {

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 8080;                             // 0 = any free port (see Server::port())
  std::string api_key;                         // empty = no authentication
  int64_t max_body_bytes = int64_t{32} << 20;  // larger bodies get 413
  int http_threads = 0;                        // 0 = max(16, 4 * engine parallel)
  // What /v1/models says about the model.
  std::string model_id;
  std::string model_description;
  bool model_output_is_noise = false;  // random-weight (demo) models
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
  // Serves until Stop(); in-flight streams are cancelled by Stop.
  void Run();
  // Thread-safe; returns at once (Run returns once the threads are done).
  void Stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace reprise::server
