// Black-box server tests: start the real `reprise serve` binary on a free
// port (--port 0; the bound port is read from its log), speak HTTP with
// cpp-httplib's client, and read SSE streams and Prometheus metrics.
#pragma once

#include <httplib.h>
#include <sys/types.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace reprise::server::testing {

using Json = nlohmann::ordered_json;

// Writes a tiny random-weight Llama with the byte-level vocabulary and the
// ChatML template into TempDir() (once per name) and returns its path.
// Byte-level: every byte of text is one token, so token counts are exact.
std::string TinyChatModel();  // dim 64, 2 layers, ctx 1024: microseconds per token
// A slower one (dim 256, 4 layers, ctx 4096), for tests that need a
// generation to still be running when the client acts.
std::string SlowChatModel();
// `chat_template`: tokenizer.chat_template (empty: ChatML).
std::string ChatModel(const std::string& name, int64_t n_embd, int64_t n_layers, int64_t n_ctx,
                      const std::string& chat_template = "");
// A scripted model (model/synthetic.h: whatever the prompt, greedy decoding
// replays `script`, one token per piece, then EOS) with `chat_template` as
// tokenizer.chat_template, written into TempDir() as NAME.gguf; "" on error.
// `reply_ends`: SyntheticModelSpec::reply_ends (several replies in one script).
std::string ScriptedChatModel(const std::string& name, const std::vector<std::string>& script,
                              const std::string& chat_template, int64_t n_ctx = 4096,
                              const std::vector<int64_t>& reply_ends = {});
// Qwen 3's chat template (renders tools, Hermes <tool_call>, <think>), read in
// place from ../shared/fixtures; "" when the fixture is missing.
std::string Qwen3TemplatePath();

struct HttpResult {
  int status = -1;  // -1: no response (connection failed)
  std::string body;
  Json json;  // parsed body (null if not JSON)
  httplib::Headers headers;
};

class ServerProcess {
 public:
  // Starts `reprise serve --model MODEL --port 0 ARGS...` and waits until it
  // listens. On failure returns null and sets *error (with the log).
  static std::unique_ptr<ServerProcess> Start(const std::string& model,
                                              const std::vector<std::string>& args,
                                              std::string* error);
  ~ServerProcess();  // kills the process if still running

  int port() const { return port_; }
  std::string Log() const;
  std::unique_ptr<httplib::Client> Client() const;

  HttpResult Get(const std::string& path, const httplib::Headers& headers = {}) const;
  HttpResult Post(const std::string& path, const Json& body,
                  const httplib::Headers& headers = {}) const;
  HttpResult PostRaw(const std::string& path, const std::string& body,
                     const std::string& content_type = "application/json",
                     const httplib::Headers& headers = {}) const;
  // Prometheus sample value of `name` (exact name, no labels); NaN if absent.
  double Metric(const std::string& name) const;
  // Waits until no request is active or queued and the engine's stats count
  // every request answered so far (true), or `timeout_ms` passes.
  bool WaitIdle(int timeout_ms = 20000) const;

  // SIGTERM, then waits; returns the exit status (or -1 if killed/timeout).
  int Stop();
  // SIGKILL (a crash: no shutdown code runs), then waits.
  void Kill();
  // Sends `sig` without waiting; WaitExit then waits up to `timeout_ms`
  // and returns the exit status (-1 if killed or still running).
  void Signal(int sig) const;
  int WaitExit(int timeout_ms);
  pid_t pid() const { return pid_; }

 private:
  ServerProcess() = default;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_path_;
};

// A raw HTTP exchange over one TCP connection, for what cpp-httplib's client
// will not send (bad framing, slow or partial requests).
class RawConnection {
 public:
  explicit RawConnection(int port);  // connects to 127.0.0.1:port
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;
  bool ok() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  bool Send(const std::string& bytes);  // false when the write fails
  void ShutdownWrite();
  // Reads until the peer closes or a whole response (headers + its
  // Content-Length) is in, at most `timeout_ms`; returns what was read.
  std::string ReadResponse(int timeout_ms);

 private:
  int fd_ = -1;
};

struct RawResponse {
  int status = -1;  // -1: no status line
  std::string headers;
  std::string body;
  Json json;  // parsed body (null if not JSON)
};
RawResponse ParseRawResponse(const std::string& bytes);

// Peak resident memory (VmHWM) of a process in bytes; -1 if unknown.
int64_t PeakRssBytes(pid_t pid);

// Parses an SSE body into its data payloads (JSON); *done is set when the
// stream ended with "data: [DONE]" as its last event.
std::vector<Json> ParseSse(const std::string& body, bool* done);
// Concatenated delta.content (chat) or text (completions) of the chunks.
std::string StreamedText(const std::vector<Json>& chunks);
double MetricValue(const std::string& metrics_text, const std::string& name);

}  // namespace reprise::server::testing
