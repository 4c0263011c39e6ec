// `reprise bench`: prompt processing and generation speed of one model, like
// llama-bench: pp = prefill of --pp tokens; tg = --tg single-token steps
// after a prompt of --pp tokens (llama-bench's -d depth semantics). Medians
// of --reps runs after a warm-up run (--no-warmup: none, so a profiler's
// first launches are the measured run's).
// --batch B > 1: B sequences, each prefilled with its own --pp tokens, then
// --tg steps that decode one token of every sequence in one forward (what
// the server does with B streams): total and per-stream tok/s, and the bytes
// a step streams (the weights once, plus every sequence's KV) as GB/s.
#include <algorithm>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "commands.h"
#include "core/cpu_features.h"
#include "core/timer.h"
#include "engine/session.h"
#include "kernels/ops.h"
#include "kv/block_pool.h"
#include "model/model.h"
#include "loader.h"

namespace reprise::tools {
namespace {

struct BenchOptions {
  std::string model;
  int threads = 0;
  std::string device = "auto";
  int pp = 512;
  int tg = 128;
  int reps = 3;
  std::string kv_type = "auto";
  int batch = 1;
  bool json = false;
  bool warmup = true;
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

// One run: the prefill of `pp` tokens per sequence, then `tg` steps; their
// times in ms.
using RunOnce = std::function<Status(int pp, int tg, double* pp_ms, double* tg_ms)>;

// A warm-up run, then --reps runs of `streams` sequences: tok/s per run (over
// all sequences) into pp_tps and tg_tps, one line each on stderr.
Status MeasureReps(const BenchOptions& o, int streams, const RunOnce& run_once,
                   std::vector<double>* pp_tps, std::vector<double>* tg_tps) {
  double pp_ms = 0, tg_ms = 0;
  if (o.warmup) {
    RETURN_IF_ERROR(run_once(std::min(o.pp, 64), std::min(o.tg, 8), &pp_ms, &tg_ms));
    std::fprintf(stderr, "warm-up: pp%d, tg%d\n", std::min(o.pp, 64), std::min(o.tg, 8));
  }
  const std::string x = streams > 1 ? " x" + std::to_string(streams) : "";
  for (int r = 0; r < o.reps; ++r) {
    RETURN_IF_ERROR(run_once(o.pp, o.tg, &pp_ms, &tg_ms));
    pp_tps->push_back(static_cast<double>(streams) * o.pp * 1000.0 / pp_ms);
    if (o.tg > 0) tg_tps->push_back(static_cast<double>(streams) * o.tg * 1000.0 / tg_ms);
    std::fprintf(stderr, "rep %d: pp%d%s %.2f tok/s, tg%d%s %.2f tok/s%s\n", r + 1, o.pp,
                 x.c_str(), pp_tps->back(), o.tg, x.c_str(), o.tg > 0 ? tg_tps->back() : 0.0,
                 streams > 1 ? " in total" : "");
  }
  return Status::Ok();
}

// The --json fields every bench run reports.
nlohmann::json CommonJson(const BenchOptions& o, model::Model& m, DType kv_type,
                          const std::vector<double>& pp_tps, const std::vector<double>& tg_tps) {
  return {{"model", o.model},
          {"threads", m.backend().threads()},
          {"device", m.backend().Describe()},
          {"pp", o.pp},
          {"tg", o.tg},
          {"reps", o.reps},
          {"pp_tok_per_s", Median(pp_tps)},
          {"tg_tok_per_s", Median(tg_tps)},
          {"pp_samples", pp_tps},
          {"tg_samples", tg_tps},
          {"weight_bytes", m.WeightBytes()},
          {"kv_type", DTypeName(kv_type)},
          {"cpu", GetCpuFeatures().ToString()}};
}

int RunBatchBench(const BenchOptions& o, model::Model& m, DType kv_type);

int RunBench(const BenchOptions& o) {
  if (o.pp < 1 || o.tg < 0 || o.reps < 1 || o.batch < 1 || o.batch > 1024) {
    return ReportError(Errorf("--pp must be >= 1, --tg >= 0, --reps >= 1, --batch 1..1024"));
  }
  auto loaded = LoadModel(o.model, o.threads, false, o.device);
  if (!loaded.ok()) return ReportError(loaded.status());
  model::Model& m = *loaded->model;
  const model::ModelConfig& c = m.config();
  auto kv_type = ParseKvType(o.kv_type, m);
  if (!kv_type.ok()) return ReportError(kv_type.status());
  if (o.batch > 1) return RunBatchBench(o, m, *kv_type);
  engine::SessionConfig sc;
  sc.kv_type = *kv_type;
  sc.ctx_size = o.pp + o.tg + 1;
  auto session = engine::Session::Create(m, sc);
  if (!session.ok()) return ReportError(session.status());
  engine::Session& s = **session;

  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(c.n_vocab - 1));
  std::vector<int32_t> prompt(o.pp);
  for (auto& t : prompt) t = dist(rng);
  kernels::HostFloats logits(&m.backend(), c.n_vocab, "the logits");  // pinned on a GPU, as serve's

  auto run_once = [&](int pp, int tg, double* pp_ms, double* tg_ms) -> Status {
    s.Reset();
    Stopwatch sw;
    RETURN_IF_ERROR(s.Append(std::span<const int32_t>(prompt.data(), pp), logits.data()));
    *pp_ms = sw.ElapsedMs();
    sw.Reset();
    for (int i = 0; i < tg; ++i) {
      const int32_t next[1] = {dist(rng)};
      RETURN_IF_ERROR(s.Append(next, logits.data()));
    }
    *tg_ms = sw.ElapsedMs();
    return Status::Ok();
  };

  std::vector<double> pp_tps, tg_tps;
  if (Status st = MeasureReps(o, 1, run_once, &pp_tps, &tg_tps); !st.ok()) return ReportError(st);
  const double pp_med = Median(pp_tps), tg_med = Median(tg_tps);
  const double weight_gb = m.WeightBytes() / 1e9;
  if (o.json) {
    nlohmann::json j = CommonJson(o, m, *kv_type, pp_tps, tg_tps);
    j["tg_weight_gb_per_s"] = tg_med * weight_gb;
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("model: %s (%s, %.2f GB of weights per token)\n", o.model.c_str(),
                c.arch_name.c_str(), weight_gb);
    std::printf("device: %s\n", m.backend().Describe().c_str());
    std::printf("pp%d: %.2f tok/s\n", o.pp, pp_med);
    if (o.tg > 0) {
      std::printf("tg%d (after %d): %.2f tok/s (%.1f GB/s of weights)\n", o.tg, o.pp, tg_med,
                  tg_med * weight_gb);
    }
  }
  return 0;
}

// B sequences through Model::Forward on one KV pool: prefill each (chunks of
// up to 512 tokens of one sequence), then tg steps of B tokens.
int RunBatchBench(const BenchOptions& o, model::Model& m, DType kv_type) {
  const model::ModelConfig& c = m.config();
  const int B = o.batch;
  const int32_t ctx = o.pp + o.tg + 1;
  if (c.n_ctx_train > 0 && ctx > c.n_ctx_train) {
    return ReportError(Errorf("--pp + --tg (%d) is past the model's context (%lld)", ctx - 1,
                              static_cast<long long>(c.n_ctx_train)));
  }
  constexpr int kBlockTokens = 32;
  const int32_t blocks_per_seq = (ctx + kBlockTokens - 1) / kBlockTokens;
  kv::BlockPoolConfig pc = m.KvPoolConfig(kv_type, kBlockTokens, 0);
  pc.max_bytes = static_cast<int64_t>(B) * blocks_per_seq * kv::BlockPool::BlockBytesOf(pc);
  auto pool_or = kv::BlockPool::Create(pc, &m.backend());
  if (!pool_or.ok()) return ReportError(pool_or.status());
  kv::BlockPool& pool = **pool_or;
  std::vector<kv::SeqBlocks> seqs(static_cast<size_t>(B));
  std::vector<kv::SeqBlocks*> ptrs;
  for (auto& sq : seqs) {
    for (int32_t b = 0; b < blocks_per_seq; ++b) sq.blocks.push_back(pool.Allocate());
    ptrs.push_back(&sq);
  }
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(c.n_vocab - 1));
  std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(B), std::vector<int32_t>(o.pp));
  for (auto& p : prompts) {
    for (auto& t : p) t = dist(rng);
  }
  kernels::HostFloats logits(&m.backend(), static_cast<size_t>(B) * c.n_vocab, "the logits");
  std::vector<model::BatchToken> batch;

  auto run_once = [&](int pp, int tg, double* pp_ms, double* tg_ms) -> Status {
    Stopwatch sw;
    for (int q = 0; q < B; ++q) {
      for (int at = 0; at < pp; at += 512) {
        batch.clear();
        const int n = std::min(512, pp - at);
        for (int i = 0; i < n; ++i) batch.push_back({prompts[q][at + i], at + i, q, i == n - 1});
        RETURN_IF_ERROR(m.Forward(batch, ptrs, pool, logits.data()));
      }
    }
    *pp_ms = sw.ElapsedMs();
    sw.Reset();
    for (int step = 0; step < tg; ++step) {
      batch.clear();
      for (int q = 0; q < B; ++q) batch.push_back({dist(rng), pp + step, q, true});
      RETURN_IF_ERROR(m.Forward(batch, ptrs, pool, logits.data()));
    }
    *tg_ms = sw.ElapsedMs();
    return Status::Ok();
  };

  std::vector<double> pp_tps, tg_tps;
  const Status st = MeasureReps(o, B, run_once, &pp_tps, &tg_tps);
  for (auto& sq : seqs) {
    for (int32_t b : sq.blocks) pool.Unref(b);
  }
  if (!st.ok()) return ReportError(st);
  const double pp_med = Median(pp_tps), tg_total = Median(tg_tps);
  const double steps_per_s = tg_total / B;
  // A step streams the weights once and every sequence's KV so far (the
  // mean context over the tg steps).
  const double weight_gb = m.WeightBytes() / 1e9;
  const double kv_gb_per_step =
      static_cast<double>(B) * (o.pp + o.tg / 2.0) * pool.bytes_per_token() / 1e9;
  const double weight_gbps = steps_per_s * weight_gb, kv_gbps = steps_per_s * kv_gb_per_step;
  if (o.json) {
    nlohmann::json j = CommonJson(o, m, kv_type, pp_tps, tg_tps);
    j["batch"] = B;
    j["tg_per_stream_tok_per_s"] = steps_per_s;
    j["tg_weight_gb_per_s"] = weight_gbps;
    j["tg_kv_gb_per_s"] = kv_gbps;
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("model: %s (%s, %.2f GB of weights per step)\n", o.model.c_str(),
                c.arch_name.c_str(), weight_gb);
    std::printf("device: %s\n", m.backend().Describe().c_str());
    std::printf("pp%d x %d sequences: %.2f tok/s\n", o.pp, B, pp_med);
    if (o.tg > 0) {
      std::printf("tg%d x %d streams (after %d): %.2f tok/s in total, %.2f per stream "
                  "(%.1f GB/s of weights + %.1f GB/s of KV)\n",
                  o.tg, B, o.pp, tg_total, steps_per_s, weight_gbps, kv_gbps);
    }
  }
  return 0;
}

}  // namespace

void AddBenchCommand(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<BenchOptions>();
  auto* cmd = app.add_subcommand("bench", "Measure prompt and generation speed (llama-bench style)");
  cmd->add_option("--model,-m", o->model, "GGUF model file")->required();
  cmd->add_option("--threads,-t", o->threads, "Threads (default: physical cores)");
  cmd->add_option("--device", o->device, kDeviceHelp);
  cmd->add_option("--pp", o->pp, "Prompt tokens (default 512)");
  cmd->add_option("--tg", o->tg, "Generated tokens, after a prompt of --pp (default 128)");
  cmd->add_option("--reps,-r", o->reps, "Repetitions; the median is reported (default 3)");
  cmd->add_option("--kv-type", o->kv_type, "KV cache type: auto, f16, f32 or q8_0");
  cmd->add_option("--batch,-b", o->batch,
                  "Decode streams: B sequences of --pp tokens, then --tg steps of B tokens "
                  "(default 1)");
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->add_flag("!--no-warmup", o->warmup,
                "Skip the warm-up run (for profilers: the first launches are then the "
                "measured run's)");
  cmd->callback([o, &exit_code] { exit_code = RunBench(*o); });
}

}  // namespace reprise::tools
