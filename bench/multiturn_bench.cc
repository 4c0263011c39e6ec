// Multi-turn serving benchmark for the prompt cache, modelled on vLLM's
// multi-turn serving benchmark: conversations that share a system prompt,
// each with a long first turn and several short follow-ups, driven by
// several concurrent clients (each sends its next turn once the previous
// reply has arrived, replaying the whole history like an OpenAI client).
//
// It starts `reprise serve` twice on the same model — cache on (defaults)
// and cache off (--prompt-cache-size 0) — runs the same workload against
// each, and reports client-side TTFT p50/p90 (first turns and follow-ups),
// total time, cache hit rate (cached / prompt tokens) and the server's peak
// RSS (VmHWM), plus the follow-up TTFT ratio off/on.
//
//   build/bin/multiturn_bench --reprise build/bin/reprise --model models/demo.gguf
//     [--clients 2] [--conversations 2] [--turns 4] [--system-tokens 1024]
//     [--first-tokens 3000] [--followup-tokens 64] [--max-tokens 32]
//     [--threads N] [--modes on,off] [--json]
//     [--interleave] [--ram-entries 2] [--disk-dir DIR] [--disk-bytes SIZE]
// With the demo model's byte-level vocabulary one character is one token,
// so the sizes above are token counts.
//
// The disk tier (issue 14): --interleave runs one client through the turns
// round robin (turn 0 of every conversation, then turn 1, ...), so with more
// conversations than --ram-entries a follow-up's history has left RAM. Modes:
//   ram      --prompt-cache-size RAM_ENTRIES, no disk tier: evicted histories
//            are recomputed;
//   disk     the same plus --prompt-cache-dir (a fresh DISK_DIR/<mode>):
//            evicted histories are read back from disk;
//   restart  as disk, but the server is restarted (SIGTERM, same dir) before
//            the last turn: those follow-ups are served after a restart.
// Disk reads are cold: the tier drops its files from the page cache after
// writing them (POSIX_FADV_DONTNEED).
#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using Json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string reprise = "build/bin/reprise";
  std::string model = "models/demo.gguf";
  int clients = 2;
  int conversations = 2;
  int turns = 4;
  int system_tokens = 1024;
  int first_tokens = 3000;
  int followup_tokens = 64;
  int max_tokens = 32;
  int threads = 0;
  std::string modes = "on,off";
  bool json = false;
  bool interleave = false;
  int ram_entries = 2;
  std::string disk_dir = "/tmp/multiturn_bench_disk";
  std::string disk_bytes = "8G";
};

struct TurnResult {
  int conversation = 0;
  int turn = 0;
  int prompt_tokens = 0;
  int cached_tokens = 0;
  int from_disk_tokens = 0;
  int completion_tokens = 0;
  double ttft_ms = 0;
  double total_ms = 0;
  bool ok = false;
};

struct ModeResult {
  std::string mode;
  std::vector<TurnResult> turns;
  double wall_s = 0;
  int64_t peak_rss_bytes = 0;
  double disk_bytes_written = 0;
  double disk_bytes_read = 0;
  int restart_turn = -1;  // turns from this one on ran after a restart
};

double MetricOf(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + " ", 0) == 0) return std::atof(line.c_str() + name.size() + 1);
  }
  return 0;
}

// Deterministic lowercase "words" of exactly n characters.
std::string Words(uint64_t seed, int n) {
  std::mt19937_64 rng(seed);
  std::string s;
  while (static_cast<int>(s.size()) < n) {
    const int len = 2 + static_cast<int>(rng() % 8);
    for (int i = 0; i < len; ++i) s += static_cast<char>('a' + rng() % 26);
    s += ' ';
  }
  s.resize(n);
  return s;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double idx = p * (v.size() - 1);
  const size_t lo = static_cast<size_t>(idx);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (idx - lo);
}

class Server {
 public:
  bool Start(const Options& o, const std::vector<std::string>& extra) {
    log_path_ =
        "/tmp/multiturn_bench_" + std::to_string(getpid()) + "_" + std::to_string(n_++) + ".log";
    std::vector<std::string> args = {o.reprise, "serve", "--model", o.model, "--port", "0"};
    if (o.threads > 0) {
      args.push_back("--threads");
      args.push_back(std::to_string(o.threads));
    }
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(fd);
    const std::string marker = "listening on http://127.0.0.1:";
    for (int i = 0; i < 6000; ++i) {
      std::ifstream in(log_path_);
      std::stringstream ss;
      ss << in.rdbuf();
      const std::string log = ss.str();
      const size_t at = log.find(marker);
      if (at != std::string::npos) {
        port_ = std::atoi(log.c_str() + at + marker.size());
        return port_ > 0;
      }
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        std::fprintf(stderr, "server failed to start:\n%s\n", log.c_str());
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  int64_t PeakRssBytes() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    std::string key;
    while (in >> key) {
      if (key == "VmHWM:") {
        int64_t kb = 0;
        in >> kb;
        return kb * 1024;
      }
    }
    return 0;
  }
  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  ~Server() { Stop(); }
  int port() const { return port_; }

 private:
  static inline int n_ = 0;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_path_;
};

// One streamed chat turn; fills the reply text and the result.
TurnResult RunTurn(httplib::Client& cli, const Options& o, const Json& messages,
                   std::string* reply) {
  TurnResult r;
  Json bias = Json::object();
  for (int c = 'a'; c <= 'z'; ++c) bias[std::to_string(c)] = 100;
  bias["32"] = 100;
  Json body = {{"messages", messages},
               {"max_tokens", o.max_tokens},
               {"temperature", 0},
               {"ignore_eos", true},
               {"logit_bias", bias},
               {"stream", true},
               {"stream_options", {{"include_usage", true}}}};
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  std::string buffer;
  const auto start = Clock::now();
  bool first = true;
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    buffer.append(data, n);
    size_t end;
    while ((end = buffer.find("\n\n")) != std::string::npos) {
      const std::string event = buffer.substr(0, end);
      buffer.erase(0, end + 2);
      if (event.rfind("data: ", 0) != 0 || event == "data: [DONE]") continue;
      Json j = Json::parse(event.substr(6), nullptr, false);
      if (j.is_discarded()) continue;
      if (j.contains("usage") && j["usage"].is_object()) {
        r.prompt_tokens = j["usage"]["prompt_tokens"];
        r.cached_tokens = j["usage"]["prompt_tokens_details"]["cached_tokens"];
        r.from_disk_tokens =
            j["usage"]["prompt_tokens_details"].value("cached_tokens_from_disk", 0);
        r.completion_tokens = j["usage"]["completion_tokens"];
      }
      if (!j.contains("choices") || j["choices"].empty()) continue;
      const Json& c = j["choices"][0];
      const bool has_content = c["delta"].contains("content") &&
                               c["delta"]["content"].is_string() &&
                               !c["delta"]["content"].get<std::string>().empty();
      if (has_content) *reply += c["delta"]["content"].get<std::string>();
      if (first && (has_content || !c["finish_reason"].is_null())) {
        r.ttft_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
        first = false;
      }
    }
    return true;
  };
  auto res = cli.send(req);
  r.total_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  r.ok = res && res->status == 200 && r.prompt_tokens > 0;
  if (!r.ok) std::fprintf(stderr, "request failed: %s\n", res ? res->body.c_str() : "no response");
  return r;
}

ModeResult RunMode(const Options& o, const std::string& mode) {
  ModeResult out;
  out.mode = mode;
  Server server;
  std::vector<std::string> extra;
  if (mode == "off") extra = {"--prompt-cache-size", "0"};
  if (mode == "ram" || mode == "disk" || mode == "restart")
    extra = {"--prompt-cache-size", std::to_string(o.ram_entries)};
  if (mode == "disk" || mode == "restart") {
    const std::string dir = o.disk_dir + "/" + mode;
    std::system(("rm -rf '" + dir + "' && mkdir -p '" + dir + "'").c_str());
    extra.insert(extra.end(),
                 {"--prompt-cache-dir", dir, "--prompt-cache-disk-bytes", o.disk_bytes});
  }
  if (!server.Start(o, extra)) return out;
  const std::string system = "You are a helpful assistant. " + Words(1, o.system_tokens);
  std::mutex mu;
  const auto start = Clock::now();
  auto finish = [&] {
    out.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
    out.peak_rss_bytes = server.PeakRssBytes();
    httplib::Client cli("127.0.0.1", server.port());
    if (auto m = cli.Get("/metrics")) {
      out.disk_bytes_written += MetricOf(m->body, "reprise_kv_disk_bytes_written_total");
      out.disk_bytes_read += MetricOf(m->body, "reprise_kv_disk_bytes_read_total");
    }
    server.Stop();
  };
  if (o.interleave) {  // one client, round robin over the conversations
    std::vector<Json> histories;
    for (int conv = 0; conv < o.conversations; ++conv) {
      histories.push_back({{{"role", "system"}, {"content", system}},
                           {{"role", "user"}, {"content", Words(1000 + conv, o.first_tokens)}}});
    }
    for (int turn = 0; turn < o.turns; ++turn) {
      if (mode == "restart" && turn == o.turns - 1 && turn > 0) {
        finish();  // graceful: the RAM cache is written to the dir
        if (!server.Start(o, extra)) return out;
        out.restart_turn = turn;
      }
      httplib::Client cli("127.0.0.1", server.port());
      cli.set_read_timeout(3600, 0);
      for (int conv = 0; conv < o.conversations; ++conv) {
        std::string reply;
        TurnResult r = RunTurn(cli, o, histories[conv], &reply);
        r.conversation = conv;
        r.turn = turn;
        out.turns.push_back(r);
        if (!o.json) {
          std::fprintf(stderr, "[%s] conv %d turn %d: prompt %d cached %d (disk %d) ttft %.0f ms\n",
                       mode.c_str(), conv, turn, r.prompt_tokens, r.cached_tokens,
                       r.from_disk_tokens, r.ttft_ms);
        }
        histories[conv].push_back({{"role", "assistant"}, {"content", reply}});
        histories[conv].push_back(
            {{"role", "user"}, {"content", Words(5000 + conv * 100 + turn, o.followup_tokens)}});
      }
    }
    finish();
    return out;
  }
  std::vector<std::thread> clients;
  for (int c = 0; c < o.clients; ++c) {
    clients.emplace_back([&, c] {
      httplib::Client cli("127.0.0.1", server.port());
      cli.set_read_timeout(3600, 0);
      for (int conv = c; conv < o.conversations; conv += o.clients) {
        Json messages = {{{"role", "system"}, {"content", system}},
                         {{"role", "user"}, {"content", Words(1000 + conv, o.first_tokens)}}};
        for (int turn = 0; turn < o.turns; ++turn) {
          std::string reply;
          TurnResult r = RunTurn(cli, o, messages, &reply);
          r.conversation = conv;
          r.turn = turn;
          {
            std::lock_guard<std::mutex> lock(mu);
            out.turns.push_back(r);
            if (!o.json) {
              std::fprintf(stderr, "[%s] conv %d turn %d: prompt %d cached %d ttft %.0f ms\n",
                           mode.c_str(), conv, turn, r.prompt_tokens, r.cached_tokens, r.ttft_ms);
            }
          }
          messages.push_back({{"role", "assistant"}, {"content", reply}});
          messages.push_back(
              {{"role", "user"}, {"content", Words(5000 + conv * 100 + turn, o.followup_tokens)}});
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  finish();
  return out;
}

Json Summary(const ModeResult& m) {
  std::vector<double> first, follow, all, after_restart;
  int64_t prompt = 0, cached = 0, from_disk = 0;
  int failed = 0, follow_history_min = 1 << 30, follow_history_max = 0;
  for (const TurnResult& t : m.turns) {
    if (!t.ok) ++failed;
    all.push_back(t.ttft_ms);
    (t.turn == 0 ? first : follow).push_back(t.ttft_ms);
    if (t.turn > 0) {
      follow_history_min = std::min(follow_history_min, t.prompt_tokens);
      follow_history_max = std::max(follow_history_max, t.prompt_tokens);
    }
    prompt += t.prompt_tokens;
    cached += t.cached_tokens;
    from_disk += t.from_disk_tokens;
    if (m.restart_turn >= 0 && t.turn >= m.restart_turn) after_restart.push_back(t.ttft_ms);
  }
  std::string name = m.mode;
  if (m.mode == "on") name = "cache on";
  if (m.mode == "off") name = "cache off (--prompt-cache-size 0)";
  if (m.mode == "ram") name = "RAM only (evicted history recomputed)";
  if (m.mode == "disk") name = "RAM + disk tier";
  if (m.mode == "restart") name = "RAM + disk tier, restart before the last turn";
  return {{"mode", name},
          {"disk_hit_rate", prompt > 0 ? static_cast<double>(from_disk) / prompt : 0.0},
          {"after_restart_ttft_p50_ms", Percentile(after_restart, 0.5)},
          {"after_restart_ttft_p90_ms", Percentile(after_restart, 0.9)},
          {"disk_mib_written", m.disk_bytes_written / 1048576.0},
          {"disk_mib_read", m.disk_bytes_read / 1048576.0},
          {"requests", m.turns.size()},
          {"failed", failed},
          {"total_s", m.wall_s},
          {"ttft_p50_ms", Percentile(all, 0.5)},
          {"ttft_p90_ms", Percentile(all, 0.9)},
          {"first_turn_ttft_p50_ms", Percentile(first, 0.5)},
          {"followup_ttft_p50_ms", Percentile(follow, 0.5)},
          {"followup_ttft_p90_ms", Percentile(follow, 0.9)},
          {"followup_prompt_tokens", {follow_history_min, follow_history_max}},
          {"cache_hit_rate", prompt > 0 ? static_cast<double>(cached) / prompt : 0.0},
          {"peak_rss_mib", m.peak_rss_bytes / 1048576.0}};
}

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&](auto* out) {
      if (i + 1 >= argc) return false;
      std::istringstream in(argv[++i]);
      in >> *out;
      return !in.fail();
    };
    bool ok = true;
    if (a == "--reprise")
      ok = next(&o->reprise);
    else if (a == "--model")
      ok = next(&o->model);
    else if (a == "--clients")
      ok = next(&o->clients);
    else if (a == "--conversations")
      ok = next(&o->conversations);
    else if (a == "--turns")
      ok = next(&o->turns);
    else if (a == "--system-tokens")
      ok = next(&o->system_tokens);
    else if (a == "--first-tokens")
      ok = next(&o->first_tokens);
    else if (a == "--followup-tokens")
      ok = next(&o->followup_tokens);
    else if (a == "--max-tokens")
      ok = next(&o->max_tokens);
    else if (a == "--threads")
      ok = next(&o->threads);
    else if (a == "--modes")
      ok = next(&o->modes);
    else if (a == "--json")
      o->json = true;
    else if (a == "--interleave")
      o->interleave = true;
    else if (a == "--ram-entries")
      ok = next(&o->ram_entries);
    else if (a == "--disk-dir")
      ok = next(&o->disk_dir);
    else if (a == "--disk-bytes")
      ok = next(&o->disk_bytes);
    else
      ok = false;
    if (!ok) {
      std::fprintf(stderr, "bad argument: %s (see the header of bench/multiturn_bench.cc)\n",
                   a.c_str());
      return false;
    }
  }
  return o->clients > 0 && o->conversations > 0 && o->turns > 0;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  Options o;
  if (!ParseArgs(argc, argv, &o)) return 2;
  Json report = {{"workload",
                  {{"model", o.model},
                   {"clients", o.clients},
                   {"conversations", o.conversations},
                   {"turns", o.turns},
                   {"system_tokens", o.system_tokens},
                   {"first_turn_tokens", o.first_tokens},
                   {"followup_tokens", o.followup_tokens},
                   {"max_tokens", o.max_tokens}}},
                 {"results", Json::array()}};
  double on_follow = 0, off_follow = 0, ram_follow = 0, disk_follow = 0;
  std::stringstream modes(o.modes);
  std::string mode;
  while (std::getline(modes, mode, ',')) {
    ModeResult m = RunMode(o, mode);
    Json s = Summary(m);
    report["results"].push_back(s);
    if (mode == "on") on_follow = s["followup_ttft_p50_ms"];
    if (mode == "off") off_follow = s["followup_ttft_p50_ms"];
    if (mode == "ram") ram_follow = s["followup_ttft_p50_ms"];
    if (mode == "disk") disk_follow = s["followup_ttft_p50_ms"];
  }
  if (on_follow > 0 && off_follow > 0)
    report["followup_ttft_p50_ratio_off_over_on"] = off_follow / on_follow;
  if (ram_follow > 0 && disk_follow > 0)
    report["followup_ttft_p50_ratio_recompute_over_disk"] = ram_follow / disk_follow;
  if (o.json) {
    std::printf("%s\n", report.dump(2).c_str());
    return 0;
  }
  std::printf(
      "| mode | requests | total s | TTFT p50 ms | TTFT p90 ms | first-turn TTFT p50 ms | "
      "follow-up TTFT p50 ms | follow-up TTFT p90 ms | cache hit rate | peak RSS MiB |\n"
      "|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Json& s : report["results"]) {
    std::printf("| %s | %d | %.1f | %.0f | %.0f | %.0f | %.0f | %.0f | %.1f%% | %.0f |\n",
                s["mode"].get<std::string>().c_str(), s["requests"].get<int>(),
                s["total_s"].get<double>(), s["ttft_p50_ms"].get<double>(),
                s["ttft_p90_ms"].get<double>(), s["first_turn_ttft_p50_ms"].get<double>(),
                s["followup_ttft_p50_ms"].get<double>(), s["followup_ttft_p90_ms"].get<double>(),
                100 * s["cache_hit_rate"].get<double>(), s["peak_rss_mib"].get<double>());
  }
  bool disk = false;
  for (const Json& s : report["results"]) disk = disk || s["disk_mib_written"].get<double>() > 0;
  if (disk) {
    std::printf(
        "\n| mode | from disk (of prompt tokens) | after-restart TTFT p50 / p90 ms | disk MiB "
        "written | disk MiB read |\n|---|---|---|---|---|\n");
    for (const Json& s : report["results"]) {
      std::printf("| %s | %.1f%% | %.0f / %.0f | %.1f | %.1f |\n",
                  s["mode"].get<std::string>().c_str(), 100 * s["disk_hit_rate"].get<double>(),
                  s["after_restart_ttft_p50_ms"].get<double>(),
                  s["after_restart_ttft_p90_ms"].get<double>(),
                  s["disk_mib_written"].get<double>(), s["disk_mib_read"].get<double>());
    }
  }
  if (report.contains("followup_ttft_p50_ratio_off_over_on")) {
    std::printf("\nfollow-up TTFT p50, cache off / cache on: %.1fx\n",
                report["followup_ttft_p50_ratio_off_over_on"].get<double>());
  }
  if (report.contains("followup_ttft_p50_ratio_recompute_over_disk")) {
    std::printf("\nfollow-up TTFT p50, history recomputed / read back from disk: %.1fx\n",
                report["followup_ttft_p50_ratio_recompute_over_disk"].get<double>());
  }
  return 0;
}
