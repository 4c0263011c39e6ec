// `reprise serve`: loads a GGUF model, starts the engine (scheduler thread,
// KV pool, prompt cache) and the OpenAI-compatible HTTP server, and runs
// until SIGINT/SIGTERM (graceful: stop accepting, let in-flight requests
// finish for up to --shutdown-timeout, end the rest with an error, stop the
// engine, exit code 0).
//
// Default KV budget (--prompt-cache-bytes unset): enough for every parallel
// sequence and every cached conversation at full context,
//   kv_bytes_per_token * ctx_size * (parallel + prompt_cache_size),
// capped at half of MemAvailable; the rule and the result are logged.
//
// Host tier (--prompt-cache-host-bytes): KV blocks evicted from GPU memory
// are demoted to pinned host memory and copied back on a hit; default on a
// GPU 25% of MemAvailable at start, off on the CPU (logged).
// Disk tier (--prompt-cache-dir DIR): evicted cached KV blocks are written to
// DIR and read back on a later hit; its bound (--prompt-cache-disk-bytes)
// defaults to 10% of the free space in DIR at start (logged).
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "chat/template_source.h"
#include "commands.h"
#include "core/log.h"
#include "engine/engine.h"
#include "kv/disk_block_store.h"
#include "loader.h"
#include "server/byte_size.h"
#include "server/chat_renderer.h"
#include "server/server.h"

namespace reprise::tools {
namespace {

// Bytes of activations the forward pass needs for a batch of `n` tokens
// (model.cc's ForwardState), for sizing the GPU KV budget.
int64_t ScratchBytesEstimate(const model::ModelConfig& c, int64_t n) {
  const int64_t ff = std::max(c.n_ff, c.n_ff_expert);
  const int64_t per_token = 3 * c.n_embd + c.n_heads * c.head_dim_k + c.k_dim() + c.v_dim() +
                            c.n_heads * c.head_dim_v + 2 * ff + c.rope_dims + c.n_vocab;
  return n * per_token * static_cast<int64_t>(sizeof(float)) * 2;  // grows by doubling
}

constexpr const char* kLog = "serve";

struct ServeOptions {
  std::string model;
  std::string host = "127.0.0.1";
  int port = 8080;
  int prompt_cache_size = 10;
  std::string prompt_cache_bytes;
  std::string prompt_cache_dir;
  std::string prompt_cache_disk_bytes;
  std::string prompt_cache_host_bytes;
  std::string kv_type = "auto";
  int ctx_size = 0;
  int max_tokens = 0;
  int parallel = 4;
  int prefill_chunk = 512;
  std::string prefill_order = "arrival";
  int threads = 0;
  std::string device = "auto";
  std::vector<std::string> api_keys;
  std::string api_key_file;
  double shutdown_timeout = 30;
  std::vector<std::string> allowed_hosts;
  std::vector<std::string> cors_origins;
  bool special_tokens_in_content = false;
  int read_timeout = 30;
  std::string max_body_bytes = "32MiB";
  int http_threads = 0;
  int max_connections = 4096;
  int max_connections_per_client = 128;
  int idle_timeout = 5;
  double header_timeout = 10;
  std::string log_format = "text";
  float temp = 0.8f;
  float top_p = 0.95f;
  int top_k = 40;
  float min_p = 0.05f;
  std::string chat_template_file;
  bool keep_billing_header = false;
};

// MemAvailable from /proc/meminfo in bytes; 0 when unknown.
int64_t MemAvailableBytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit) {
    if (key == "MemAvailable:") return kb * 1024;
  }
  return 0;
}

std::string Basename(const std::string& path) {
  std::string name = path.substr(path.find_last_of('/') + 1);
  if (name.size() > 5 && name.compare(name.size() - 5, 5, ".gguf") == 0)
    name.resize(name.size() - 5);
  return name;
}

Result<std::unique_ptr<server::ChatRenderer>> MakeRenderer(const ServeOptions& o,
                                                           const LoadedModel& lm) {
  std::string source;
  std::string tool_use;
  std::string origin;
  if (!o.chat_template_file.empty()) {
    std::ifstream in(o.chat_template_file, std::ios::binary);
    if (!in) return Errorf("cannot read --chat-template-file %s", o.chat_template_file.c_str());
    source.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    origin = o.chat_template_file;
  } else if (lm.file->Has("tokenizer.chat_template")) {
    ASSIGN_OR_RETURN(source, chat::TemplateFromGguf(*lm.file));
    origin = "tokenizer.chat_template";
    if (lm.file->Has("tokenizer.chat_template.tool_use")) {
      ASSIGN_OR_RETURN(tool_use, chat::TemplateFromGguf(*lm.file, "tool_use"));
    }
  } else {
    return std::unique_ptr<server::ChatRenderer>();  // no template: chat requests get a 400
  }
  ASSIGN_OR_RETURN(chat::SpecialTokenStrings special, chat::SpecialTokensFromGguf(*lm.file));
  auto renderer =
      server::MakeTemplateRenderer(source, tool_use, special.bos_token, special.eos_token);
  if (!renderer.ok()) return renderer.status().WithContext(origin);
  return renderer;
}

int RunServe(const ServeOptions& o) {
  // Signals are taken by a dedicated thread (sigtimedwait), so block them
  // before any other thread starts; a closed socket must not kill us.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  if (o.log_format == "json") {
    SetLogFormat(LogFormat::kJson);
  } else if (o.log_format != "text") {
    return ReportError(Errorf("--log-format must be text or json, got '%s'", o.log_format.c_str()));
  }
  if (!(o.shutdown_timeout >= 0)) return ReportError(Errorf("--shutdown-timeout must be >= 0"));
  if (o.read_timeout < 1) return ReportError(Errorf("--read-timeout must be >= 1"));
  if (o.http_threads < 0) return ReportError(Errorf("--http-threads must be >= 0"));
  if (o.max_connections < 1) return ReportError(Errorf("--max-connections must be >= 1"));
  if (o.max_connections_per_client < 0) {
    return ReportError(Errorf("--max-connections-per-client must be >= 0"));
  }
  if (o.idle_timeout < 1) return ReportError(Errorf("--idle-timeout must be >= 1"));
  if (!(o.header_timeout >= 0)) return ReportError(Errorf("--header-timeout must be >= 0"));
  // One thread and one descriptor per connection: allow as many descriptors
  // as the hard limit does (the soft default, 1024, is below --max-connections).
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  auto max_body = server::ParseByteSize(o.max_body_bytes);
  if (!max_body.ok()) return ReportError(max_body.status().WithContext("--max-body-bytes"));
  if (*max_body <= 0) return ReportError(Errorf("--max-body-bytes must be > 0"));
  std::vector<std::string> api_keys = o.api_keys;
  if (!o.api_key_file.empty()) {
    std::ifstream in(o.api_key_file);
    if (!in) return ReportError(Errorf("cannot read --api-key-file %s", o.api_key_file.c_str()));
    std::string line;
    while (std::getline(in, line)) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
        line.pop_back();
      const size_t start = line.find_first_not_of(" \t");
      if (start == std::string::npos || line[start] == '#') continue;  // blank or comment
      api_keys.push_back(line.substr(start));
    }
    if (api_keys.empty()) {
      return ReportError(Errorf("--api-key-file %s holds no key", o.api_key_file.c_str()));
    }
  }
  for (const std::string& key : api_keys) {
    if (key.empty()) return ReportError(Errorf("--api-key must not be empty"));
  }
  if (o.prompt_cache_size < 0) return ReportError(Errorf("--prompt-cache-size must be >= 0"));
  if (o.parallel < 1) return ReportError(Errorf("--parallel must be >= 1"));
  if (o.prefill_chunk < 1 || o.prefill_chunk > 65536) {
    return ReportError(Errorf("--prefill-chunk must be 1..65536, got %d", o.prefill_chunk));
  }
  if (o.prefill_order != "arrival" && o.prefill_order != "shortest") {
    return ReportError(Errorf("--prefill-order must be arrival or shortest, got '%s'",
                              o.prefill_order.c_str()));
  }
  if (o.max_tokens < 0) return ReportError(Errorf("--max-tokens must be >= 0"));
  if (o.ctx_size < 0) return ReportError(Errorf("--ctx-size must be >= 0"));
  int64_t budget_flag = 0;
  if (!o.prompt_cache_bytes.empty()) {
    auto b = server::ParseByteSize(o.prompt_cache_bytes);
    if (!b.ok()) return ReportError(b.status().WithContext("--prompt-cache-bytes"));
    if (*b <= 0) return ReportError(Errorf("--prompt-cache-bytes must be > 0"));
    budget_flag = *b;
  }

  int64_t disk_bytes = 0;
  std::string disk_rule;
  if (!o.prompt_cache_disk_bytes.empty()) {
    if (o.prompt_cache_dir.empty()) {
      return ReportError(Errorf("--prompt-cache-disk-bytes needs --prompt-cache-dir"));
    }
    auto b = server::ParseByteSize(o.prompt_cache_disk_bytes);
    if (!b.ok()) return ReportError(b.status().WithContext("--prompt-cache-disk-bytes"));
    if (*b <= 0) return ReportError(Errorf("--prompt-cache-disk-bytes must be > 0"));
    disk_bytes = *b;
    disk_rule = "--prompt-cache-disk-bytes";
  }

  int64_t host_flag = -1;  // -1: the default
  if (!o.prompt_cache_host_bytes.empty()) {
    auto b = server::ParseByteSize(o.prompt_cache_host_bytes);
    if (!b.ok()) return ReportError(b.status().WithContext("--prompt-cache-host-bytes"));
    if (*b < 0) return ReportError(Errorf("--prompt-cache-host-bytes must be >= 0"));
    host_flag = *b;
  }

  auto loaded = LoadModel(o.model, o.threads, /*need_tokenizer=*/true, o.device);
  if (!loaded.ok()) return ReportError(loaded.status());
  LoadedModel& lm = *loaded;
  const model::ModelConfig& cfg = lm.model->config();
  auto kv_parsed = ParseKvType(o.kv_type, *lm.model);
  if (!kv_parsed.ok()) return ReportError(kv_parsed.status().WithContext("--kv-type"));
  const DType kv_type = *kv_parsed;
  const int64_t bytes_per_token = lm.model->KvBytesPerToken(kv_type);
  const int64_t ctx = o.ctx_size > 0 ? o.ctx_size : cfg.n_ctx_train;
  // Models written by `reprise make-model` carry reprise.synthetic = true;
  // scripted (test) ones also reprise.scripted = true: they replay a script,
  // they are not the random-weight demo.
  auto synthetic = lm.file->GetBoolOr("reprise.synthetic", false);
  auto scripted_key = lm.file->GetBoolOr("reprise.scripted", false);
  const bool scripted = scripted_key.ok() && *scripted_key;
  const bool noise = synthetic.ok() && *synthetic && !scripted;

  engine::EngineConfig ec;
  ec.max_parallel = o.parallel;
  ec.prefill_chunk = o.prefill_chunk;
  ec.prefill_order = o.prefill_order == "shortest" ? engine::PrefillOrder::kShortest
                                                   : engine::PrefillOrder::kArrival;
  ec.max_cache_entries = o.prompt_cache_size;
  ec.ctx_size = static_cast<int32_t>(o.ctx_size);
  ec.kv_type = kv_type;
  ec.default_max_tokens = o.max_tokens;
  ec.disk_dir = o.prompt_cache_dir;
  if (!o.prompt_cache_dir.empty()) {
    if (disk_bytes == 0) {
      // Default: 10% of the free space there (mkdir first, so statvfs sees the
      // filesystem that will hold the files).
      mkdir(o.prompt_cache_dir.c_str(), 0755);
      const int64_t free_bytes = kv::DiskBlockStore::FreeBytes(o.prompt_cache_dir);
      disk_bytes = free_bytes / 10;
      disk_rule = StrFormat("default: 10%% of the %s free in %s", server::FormatBytes(free_bytes).c_str(),
                            o.prompt_cache_dir.c_str());
    }
    ec.disk_bytes = disk_bytes;
    ec.model_identity = ModelIdentity(*lm.file);
    LOG_INFO(kLog, "prompt cache disk tier: %s, bound %s (%s)", o.prompt_cache_dir.c_str(),
             server::FormatBytes(disk_bytes).c_str(), disk_rule.c_str());
  }
  {
    std::string host_rule = "--prompt-cache-host-bytes";
    if (host_flag >= 0) {
      ec.host_bytes = host_flag;
    } else if (!lm.model->backend().host_memory()) {
      ec.host_bytes = MemAvailableBytes() / 4;
      host_rule = "default on a GPU: 25% of MemAvailable";
    } else {
      ec.host_bytes = 0;
      host_rule = "default on the CPU: off, the KV pool is host memory already";
    }
    LOG_INFO(kLog, "prompt cache host tier: %s (%s)",
             ec.host_bytes > 0 ? server::FormatBytes(ec.host_bytes).c_str() : "off",
             host_rule.c_str());
  }
  std::string budget_rule;
  if (budget_flag > 0) {
    ec.cache_bytes = budget_flag;
    budget_rule = "--prompt-cache-bytes";
  } else {
    const int64_t want = bytes_per_token * ctx * (o.parallel + o.prompt_cache_size);
    kernels::Backend& be = lm.model->backend();
    if (!be.host_memory()) {
      // GPU: what is free after the weights, less the forward pass's scratch
      // for a full prefill chunk and a margin for the CUDA context's own use.
      const int64_t scratch = ScratchBytesEstimate(cfg, o.prefill_chunk + o.parallel);
      const int64_t margin = int64_t{512} << 20;
      const int64_t usable = std::max<int64_t>(0, be.FreeMemoryBytes() - scratch - margin);
      ec.cache_bytes = std::min(want, usable);
      budget_rule = StrFormat(
          "default: min(kv bytes/token x ctx x (parallel + cache size) = %s, free GPU memory "
          "after weights %s - scratch %s - margin %s)",
          server::FormatBytes(want).c_str(), server::FormatBytes(be.FreeMemoryBytes()).c_str(),
          server::FormatBytes(scratch).c_str(), server::FormatBytes(margin).c_str());
    } else {
      const int64_t half_available = MemAvailableBytes() / 2;
      ec.cache_bytes = half_available > 0 ? std::min(want, half_available) : want;
      budget_rule = StrFormat(
          "default: min(kv bytes/token x ctx x (parallel + cache size) = %s, "
          "50%% of MemAvailable = %s)",
          server::FormatBytes(want).c_str(), server::FormatBytes(half_available).c_str());
    }
  }
  LOG_INFO(kLog, "device: %s; weights %s", lm.model->backend().Describe().c_str(),
           server::FormatBytes(lm.model->WeightBytes()).c_str());

  LOG_INFO(kLog, "model %s: %s, %s, %lld layers, dim %lld, vocab %lld", o.model.c_str(),
           cfg.name.empty() ? "(unnamed)" : cfg.name.c_str(), cfg.arch_name.c_str(),
           static_cast<long long>(cfg.n_layers), static_cast<long long>(cfg.n_embd),
           static_cast<long long>(cfg.n_vocab));
  if (noise) {
    LOG_WARN(kLog,
             "this is a random-weight demo model: its output is noise. "
             "Serve a real model with `make run MODEL=path.gguf`.");
  } else if (scripted) {
    LOG_WARN(kLog,
             "this is a scripted test model: it replies with a fixed script whatever the "
             "prompt (for end-to-end tests); it is not a real model.");
  }
  auto engine = engine::Engine::Create(*lm.model, *lm.tokenizer, ec);
  if (!engine.ok()) return ReportError(engine.status());
  const engine::EngineConfig& resolved = (*engine)->config();
  const engine::EngineStats stats = (*engine)->Stats();
  LOG_INFO(kLog,
           "context %d tokens, KV %s (%s per token, %d-token blocks), parallel %d, prefill "
           "chunk %d tokens (%s first)",
           resolved.ctx_size, DTypeName(kv_type), server::FormatBytes(bytes_per_token).c_str(),
           resolved.block_tokens, resolved.max_parallel, resolved.prefill_chunk,
           resolved.prefill_order == engine::PrefillOrder::kShortest ? "shortest" : "oldest");
  LOG_INFO(kLog,
           "prompt cache: at most %d entries; KV budget (cache + in flight) %s = %d blocks "
           "(%s); %.0f full contexts",
           resolved.max_cache_entries, server::FormatBytes(stats.kv_bytes_limit).c_str(),
           stats.kv_capacity_blocks, budget_rule.c_str(),
           static_cast<double>(stats.kv_bytes_limit) /
               static_cast<double>(std::max<int64_t>(1, bytes_per_token * resolved.ctx_size)));
  if (resolved.max_cache_entries == 0)
    LOG_INFO(kLog, "prompt caching is disabled (--prompt-cache-size 0)");

  auto renderer = MakeRenderer(o, lm);
  if (!renderer.ok()) return ReportError(renderer.status());
  LOG_INFO(kLog, "chat: %s",
           *renderer ? (*renderer)->name().c_str() : "no chat template (chat requests get a 400)");

  server::ServerConfig sc;
  sc.host = o.host;
  sc.port = o.port;
  sc.api_keys = api_keys;
  sc.shutdown_timeout_s = o.shutdown_timeout;
  sc.allowed_hosts = o.allowed_hosts;
  sc.cors_origins = o.cors_origins;
  sc.special_tokens_in_content = o.special_tokens_in_content;
  sc.read_timeout_s = o.read_timeout;
  sc.max_body_bytes = *max_body;
  sc.http_threads = o.http_threads;
  sc.max_connections = o.max_connections;
  sc.max_connections_per_client = o.max_connections_per_client;
  sc.idle_timeout_s = o.idle_timeout;
  sc.header_timeout_s = o.header_timeout;
  sc.strip_billing_header = !o.keep_billing_header;
  sc.model_id = noise ? Basename(o.model) + "-random-weights-output-is-noise" : Basename(o.model);
  sc.model_description = cfg.name;
  sc.model_output_is_noise = noise;
  sc.model_is_scripted = scripted;
  sc.n_vocab = static_cast<int32_t>(cfg.n_vocab);
  sc.defaults.sampling.temperature = o.temp;
  sc.defaults.sampling.top_p = o.top_p;
  sc.defaults.sampling.top_k = o.top_k;
  sc.defaults.sampling.min_p = o.min_p;
  sc.defaults.max_tokens = o.max_tokens;
  Status valid = engine::ValidateSamplingParams(sc.defaults.sampling, sc.n_vocab);
  if (!valid.ok()) return ReportError(valid.WithContext("sampling defaults"));

  server::Server server(**engine, *lm.tokenizer, std::move(*renderer), sc);
  Status bound = server.Bind();
  if (!bound.ok()) return ReportError(bound);

  std::atomic<bool> done{false};
  std::thread signal_thread([&] {
    const timespec poll = {0, 200 * 1000 * 1000};
    while (!done) {
      const int sig = sigtimedwait(&signals, nullptr, &poll);
      if (sig == SIGINT || sig == SIGTERM) {
        LOG_INFO(kLog, "%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
        server.Stop();
        return;
      }
    }
  });
  server.Run();
  done = true;
  signal_thread.join();
  LOG_INFO(kLog, "stopped");
  return 0;
}

}  // namespace

void AddServeCommand(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<ServeOptions>();
  auto* cmd =
      app.add_subcommand("serve", "OpenAI-compatible HTTP server with a bounded prompt cache");
  cmd->add_option("--model,-m", o->model, "GGUF model file")->required();
  cmd->add_option("--host", o->host, "Address to listen on (default 127.0.0.1)");
  cmd->add_option("--port", o->port, "Port (default 8080; 0 = any free port, logged)");
  cmd->add_option("--prompt-cache-size", o->prompt_cache_size,
                  "Most cached conversations (default 10; 0 disables caching)");
  cmd->add_option("--prompt-cache-bytes", o->prompt_cache_bytes,
                  "KV byte budget for cache + in-flight requests: 512M, 8G, 8GiB or bytes "
                  "(default: derived from MemAvailable, logged)");
  cmd->add_option("--prompt-cache-dir", o->prompt_cache_dir,
                  "Disk tier: evicted cached KV blocks are written here and read back on a "
                  "later hit; survives restarts (default: none, no disk tier)");
  cmd->add_option("--prompt-cache-disk-bytes", o->prompt_cache_disk_bytes,
                  "Byte bound of the disk tier: 20G, 512M or bytes (default: 10% of the free "
                  "space in --prompt-cache-dir, logged)");
  cmd->add_option("--prompt-cache-host-bytes", o->prompt_cache_host_bytes,
                  "Host-RAM tier under the KV pool: blocks evicted from GPU memory are kept in "
                  "pinned host memory and copied back on a hit: 32G, 512M or bytes; 0 = off "
                  "(default: 25% of MemAvailable with --device cuda, off on the CPU; logged)");
  cmd->add_option("--ctx-size,-c", o->ctx_size, "Context per sequence (default: the model's)");
  cmd->add_option("--kv-type", o->kv_type,
                  "KV cache type: auto (f32 for F32 models, else f16), f16, f32 or q8_0 (half of "
                  "f16's bytes: twice the conversations in the same --prompt-cache-bytes)");
  cmd->add_option("--max-tokens", o->max_tokens,
                  "Tokens to generate when a request sets none (default: to the context end)");
  cmd->add_option("--parallel", o->parallel, "Sequences decoded together (default 4)");
  cmd->add_option("--prefill-chunk", o->prefill_chunk,
                  "Most prompt tokens one step runs besides the decoding streams' tokens "
                  "(default 512): larger prefills long prompts faster on a GPU, smaller keeps "
                  "other streams' tokens flowing while a long prompt is processed");
  cmd->add_option("--prefill-order", o->prefill_order,
                  "Which waiting prompts a step's prefill tokens go to first: arrival (default, "
                  "oldest first) or shortest (fewest prompt tokens left first; one passed over " +
                      std::to_string(engine::kPrefillAging) + " steps in a row goes first)");
  cmd->add_option("--threads,-t", o->threads, "Compute threads (default: physical cores)");
  cmd->add_option("--device", o->device, kDeviceHelp);
  cmd->add_option("--api-key", o->api_keys,
                  "Require Authorization: Bearer KEY; repeat for several keys, each its own "
                  "prompt-cache namespace (tenant)");
  cmd->add_option("--api-key-file", o->api_key_file,
                  "Read API keys from a file, one a line (blank lines and # comments skipped)");
  cmd->add_option("--shutdown-timeout", o->shutdown_timeout,
                  "Seconds in-flight requests may run after SIGTERM/SIGINT before they are "
                  "ended with an error (default 30)");
  cmd->add_option("--allowed-hosts", o->allowed_hosts,
                  "Host header values accepted besides localhost/127.0.0.1/[::1] when bound to "
                  "loopback (comma-separated or repeated; * = any)")
      ->delimiter(',');
  cmd->add_option("--cors-origin", o->cors_origins,
                  "Origins allowed to make browser (cross-origin) requests (repeatable; * = any; "
                  "default none)")
      ->delimiter(',');
  cmd->add_flag("--special-tokens-in-content", o->special_tokens_in_content,
                "Parse control tokens written in chat message content as control tokens (old "
                "behaviour; default: only the template's own markers are)");
  cmd->add_option("--read-timeout", o->read_timeout,
                  "Seconds a read of request headers or body may wait for more bytes (default 30)");
  cmd->add_option("--max-body-bytes", o->max_body_bytes,
                  "Largest request body (e.g. 32MiB, the default); larger ones get 413 as soon "
                  "as the limit is passed, chunked or not");
  cmd->add_option("--http-threads", o->http_threads,
                  "HTTP threads kept ready (default max(16, 4 x --parallel)); more start on "
                  "demand, one per connection, up to --max-connections");
  cmd->add_option("--max-connections", o->max_connections,
                  "Connections served at once (default 4096); more wait for a thread");
  cmd->add_option("--max-connections-per-client", o->max_connections_per_client,
                  "Open connections one client address may use once they have sent a request "
                  "(default 128; more get 429; 0 = no cap)");
  cmd->add_option("--header-timeout", o->header_timeout,
                  "Seconds a new connection has to send its first request's headers, in total "
                  "(default 10; 0 = only --read-timeout per read)");
  cmd->add_option("--idle-timeout", o->idle_timeout,
                  "Seconds a connection may wait for its next request before it is closed "
                  "(default 5)");
  cmd->add_option("--log-format", o->log_format, "text (default) or json");
  cmd->add_option("--temp", o->temp, "Default temperature (default 0.8)");
  cmd->add_option("--top-p", o->top_p, "Default top-p (default 0.95)");
  cmd->add_option("--top-k", o->top_k, "Default top-k (default 40)");
  cmd->add_option("--min-p", o->min_p, "Default min-p (default 0.05)");
  cmd->add_option("--chat-template-file", o->chat_template_file,
                  "Jinja chat template overriding the model's tokenizer.chat_template");
  cmd->add_flag("--keep-billing-header", o->keep_billing_header,
                "/v1/messages: keep Claude Code's per-request x-anthropic-billing-header system "
                "line (by default it is dropped so turns share the prompt cache)");
  cmd->callback([o, &exit_code] { exit_code = RunServe(*o); });
}

}  // namespace reprise::tools
