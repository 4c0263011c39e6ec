// Helpers for black-box server tests (see server_test_util.h).
#include "server/server_test_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "gguf/gguf.h"
#include "model/synthetic.h"
#include "testing/fixtures.h"

namespace reprise::server::testing {
namespace {

using reprise::testing::BinaryPath;
using reprise::testing::FileExists;
using reprise::testing::ReadFile;
using reprise::testing::TempDir;

}  // namespace

std::string TinyChatModel() { return ChatModel("tiny_chat", 64, 2, 1024); }

std::string SlowChatModel() { return ChatModel("slow_chat", 256, 4, 4096); }

std::string ChatModel(const std::string& name, int64_t n_embd, int64_t n_layers, int64_t n_ctx,
                      const std::string& chat_template) {
  const std::string path = TempDir() + "/" + name + ".gguf";
  if (FileExists(path)) return path;
  model::SyntheticModelSpec spec;
  spec.name = "reprise-test (random weights: its output is noise)";
  spec.n_embd = n_embd;
  spec.n_layers = n_layers;
  spec.n_heads = 4;
  spec.n_kv_heads = 2;
  spec.n_ff = 2 * n_embd;
  spec.n_ctx = n_ctx;
  spec.byte_level_vocab = true;
  spec.chat_template = chat_template;
  spec.seed = 7;
  const std::string raw = path + ".raw";
  Status st = model::WriteSyntheticModel(spec, raw);
  if (!st.ok()) return "";
  // The byte-level vocabulary has no merges, which the tokenizer refuses
  // today; add one inert merge (its result is no token) until that is fixed.
  auto file = gguf::File::Open(raw);
  if (!file.ok()) return "";
  gguf::Writer w;
  w.CopyMetadata(**file);
  auto merges = (*file)->GetStringArray("tokenizer.ggml.merges");
  if (merges.ok() && merges->empty()) {
    w.Set("tokenizer.ggml.merges", gguf::Value::StringArray({"a b"}));
  }
  for (const gguf::TensorInfo& t : (*file)->tensors()) {
    w.AddTensor(t.name, t.type, t.ne, std::vector<uint8_t>(t.data, t.data + t.n_bytes));
  }
  if (!w.WriteFile(path).ok()) return "";
  ::unlink(raw.c_str());
  return path;
}

std::string ScriptedChatModel(const std::string& name, const std::vector<std::string>& script,
                              const std::string& chat_template, int64_t n_ctx,
                              const std::vector<int64_t>& reply_ends) {
  const std::string path = TempDir() + "/" + name + ".gguf";
  model::SyntheticModelSpec spec;
  spec.name = "reprise-test (scripted: it replays a fixed reply)";
  const int64_t n_vocab = 259 + static_cast<int64_t>(script.size());
  spec.n_embd = (n_vocab + 63) / 64 * 64;  // one-hot embeddings need dim >= vocab
  spec.n_layers = 1;
  spec.n_heads = 4;
  spec.n_kv_heads = 2;
  spec.n_ff = 64;
  spec.n_ctx = n_ctx;
  spec.script = script;
  spec.reply_ends = reply_ends;
  spec.chat_template = chat_template;
  return model::WriteSyntheticModel(spec, path).ok() ? path : "";
}

std::string Qwen3TemplatePath() {
  return reprise::testing::FixturePath("templates/llamacpp_vocab/Qwen-Qwen3-0.6B.jinja");
}

std::unique_ptr<ServerProcess> ServerProcess::Start(const std::string& model,
                                                    const std::vector<std::string>& args,
                                                    std::string* error) {
  std::unique_ptr<ServerProcess> p(new ServerProcess());
  std::string tmpl = TempDir() + "/serve_XXXXXX.log";
  const int fd = mkstemps(tmpl.data(), 4);
  if (fd < 0) {
    *error = "cannot create a log file";
    return nullptr;
  }
  p->log_path_ = tmpl;
  std::vector<std::string> argv_s = {
      BinaryPath("reprise"), "serve", "--model", model, "--port", "0"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  // One compute thread unless a test asks otherwise: the test models are
  // tiny, and on a loaded machine a second thread only adds waiting.
  if (std::find(args.begin(), args.end(), "--threads") == args.end()) {
    argv_s.push_back("--threads");
    argv_s.push_back("1");
  }
  std::vector<char*> argv;
  for (std::string& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fd, STDERR_FILENO);
    dup2(fd, STDOUT_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fd);
  p->pid_ = pid;
  const std::string marker = "listening on http://127.0.0.1:";
  for (int i = 0; i < 3000; ++i) {
    const std::string log = ReadFile(p->log_path_);
    const size_t at = log.find(marker);
    if (at != std::string::npos) {
      p->port_ = std::atoi(log.c_str() + at + marker.size());
      if (p->port_ > 0) return p;
    }
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      p->pid_ = -1;
      *error = "the server exited during start-up:\n" + log;
      return nullptr;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  *error = "the server did not start listening within 30 s:\n" + p->Log();
  return nullptr;
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

std::string ServerProcess::Log() const { return ReadFile(log_path_); }

std::unique_ptr<httplib::Client> ServerProcess::Client() const {
  auto c = std::make_unique<httplib::Client>("127.0.0.1", port_);
  c->set_read_timeout(120, 0);
  c->set_write_timeout(60, 0);
  c->set_connection_timeout(5, 0);
  return c;
}

namespace {

HttpResult FromResult(const httplib::Result& r) {
  HttpResult out;
  if (!r) return out;
  out.status = r->status;
  out.body = r->body;
  out.headers = r->headers;
  out.json = Json::parse(r->body, nullptr, /*allow_exceptions=*/false);
  if (out.json.is_discarded()) out.json = nullptr;
  return out;
}

}  // namespace

HttpResult ServerProcess::Get(const std::string& path, const httplib::Headers& headers) const {
  return FromResult(Client()->Get(path.c_str(), headers));
}

HttpResult ServerProcess::Post(const std::string& path, const Json& body,
                               const httplib::Headers& headers) const {
  return PostRaw(path, body.dump(), "application/json", headers);
}

HttpResult ServerProcess::PostRaw(const std::string& path, const std::string& body,
                                  const std::string& content_type,
                                  const httplib::Headers& headers) const {
  return FromResult(Client()->Post(path.c_str(), headers, body, content_type.c_str()));
}

double ServerProcess::Metric(const std::string& name) const {
  return MetricValue(Get("/metrics").body, name);
}

bool ServerProcess::WaitIdle(int timeout_ms) const {
  for (int waited = 0; waited < timeout_ms; waited += 20) {
    const std::string m = Get("/metrics").body;
    // The engine publishes stats after the step that ended a request, which
    // may be after the response: wait until it has counted every request
    // the HTTP layer saw finish.
    if (MetricValue(m, "reprise_requests_active") == 0 &&
        MetricValue(m, "reprise_requests_queued") == 0 &&
        MetricValue(m, "reprise_requests_total") >=
            MetricValue(m, "reprise_http_generations_finished_total")) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

int ServerProcess::Stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  for (int i = 0; i < 1500; ++i) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;  // the destructor kills it
}

void ServerProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void ServerProcess::Signal(int sig) const {
  if (pid_ > 0) kill(pid_, sig);
}

int ServerProcess::WaitExit(int timeout_ms) {
  if (pid_ <= 0) return -1;
  for (int waited = 0; waited <= timeout_ms; waited += 10) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

RawConnection::RawConnection(int port) {
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  if (fd_ < 0) return;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd_);
    fd_ = -1;
  }
}

RawConnection::~RawConnection() {
  if (fd_ >= 0) close(fd_);
}

bool RawConnection::Send(const std::string& bytes) {
  size_t sent = 0;
  while (fd_ >= 0 && sent < bytes.size()) {
    const ssize_t n = send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return fd_ >= 0;
}

void RawConnection::ShutdownWrite() {
  if (fd_ >= 0) shutdown(fd_, SHUT_WR);
}

std::string RawConnection::ReadResponse(int timeout_ms) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buf[65536];
  while (fd_ >= 0) {
    const size_t header_end = out.find("\r\n\r\n");
    if (header_end != std::string::npos) {
      const std::string lower = [&] {
        std::string h = out.substr(0, header_end);
        for (char& c : h) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return h;
      }();
      const size_t cl = lower.find("content-length:");
      if (cl != std::string::npos) {
        const size_t len = std::strtoull(lower.c_str() + cl + 15, nullptr, 10);
        if (out.size() >= header_end + 4 + len) break;
      }
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(std::max<int64_t>(0, left))) <= 0) break;
    const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

RawResponse ParseRawResponse(const std::string& bytes) {
  RawResponse r;
  if (bytes.rfind("HTTP/1.", 0) != 0 || bytes.size() < 12) return r;
  r.status = std::atoi(bytes.c_str() + 9);
  const size_t header_end = bytes.find("\r\n\r\n");
  if (header_end == std::string::npos) return r;
  r.headers = bytes.substr(0, header_end);
  r.body = bytes.substr(header_end + 4);
  r.json = Json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (r.json.is_discarded()) r.json = nullptr;
  return r;
}

int64_t PeakRssBytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtoll(line.c_str() + 6, nullptr, 10) * 1024;
  }
  return -1;
}

std::vector<Json> ParseSse(const std::string& body, bool* done) {
  std::vector<Json> out;
  *done = false;
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("data: ", 0) != 0) continue;
    const std::string data = line.substr(6);
    if (data == "[DONE]") {
      *done = true;
      continue;
    }
    *done = false;  // [DONE] must be last
    Json j = Json::parse(data, nullptr, false);
    out.push_back(j.is_discarded() ? Json("<<invalid json: " + data + ">>") : j);
  }
  return out;
}

std::string StreamedText(const std::vector<Json>& chunks) {
  std::string text;
  for (const Json& c : chunks) {
    if (!c.is_object() || !c.contains("choices") || c["choices"].empty()) continue;
    const Json& choice = c["choices"][0];
    if (choice.contains("delta") && choice["delta"].contains("content") &&
        choice["delta"]["content"].is_string()) {
      text += choice["delta"]["content"].get<std::string>();
    }
    if (choice.contains("text") && choice["text"].is_string())
      text += choice["text"].get<std::string>();
  }
  return text;
}

double MetricValue(const std::string& metrics_text, const std::string& name) {
  std::istringstream in(metrics_text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > name.size() && line.compare(0, name.size(), name) == 0 &&
        line[name.size()] == ' ') {
      return std::strtod(line.c_str() + name.size() + 1, nullptr);
    }
  }
  return std::nan("");
}

}  // namespace reprise::server::testing
