// GPU tests (the CUDA backend), run by scripts/gpu_check.sh on a GPU machine:
//  - every transformers reference case on the GPU (F32 weights, F32 KV) within
//    1e-4 * max(1, max|ref|), greedy tokens identical; stories260K token for
//    token with F32 and F16 KV;
//  - every weight type against the CPU backend on the same GGUF (a synthetic
//    Llama-shaped model), within the tolerance documented below, and greedy
//    agreement over 64 steps wherever the CPU's top-2 margin exceeds it;
//  - the determinism contract on the GPU: one-pass vs 7 uneven chunks and a
//    decode step alone vs in a batch of other sequences give bit-identical
//    logits; a cache hit at temperature 0 generates what a cache miss does;
//  - the KV pool in device memory (block copies through the backend), and the
//    "does not fit" error.
// Where no GPU is usable (CI: nvcc but no GPU) every test skips with a
// one-line reason.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "../golden/golden_util.h"
#include "quant_rows.h"
#include "require_gpu.h"
#include "core/fp16.h"
#include "core/log.h"
#include "engine/engine.h"
#include "engine/session.h"
#include "kernels/backend.h"
#include "model/synthetic.h"
#include "testing/fixtures.h"
#include "tokenizer/tokenizer.h"
#ifdef REPRISE_HAVE_CUDA
#include "kernels/cuda/cuda_kernels.h"
#endif

namespace reprise::testing {
namespace {

constexpr kernels::DevicePreference kCuda = kernels::DevicePreference::kCuda;
constexpr kernels::DevicePreference kCpu = kernels::DevicePreference::kCpu;

// ---- references ----

class GpuTransformers : public ::testing::TestWithParam<std::string> {};

TEST_P(GpuTransformers, MatchesReferenceWithin1e4) {
  REQUIRE_GPU();
  CheckTransformersCase(GetParam(), kCuda, 1e-4f);
}

INSTANTIATE_TEST_SUITE_P(Cases, GpuTransformers, ::testing::ValuesIn(TransformersCaseNames()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

TEST(GpuStories, EveryGreedyCaseMatchesRunCWithF32Kv) {
  REQUIRE_GPU();
  CheckStoriesCases(kCuda, DType::kF32);
}

TEST(GpuStories, EveryGreedyCaseMatchesRunCWithF16Kv) {
  REQUIRE_GPU();
  CheckStoriesCases(kCuda, DType::kF16);
}

// ---- every weight type against the CPU backend ----

// A small Llama shape (K-quant widths are multiples of 256) with a real
// 32000-token vocabulary, written once per type.
std::string WriteTypeModel(DType type, bool nudged = false) {
  model::SyntheticModelSpec s;
  s.name = "gpu-types";
  s.n_embd = 512;
  s.n_layers = 4;
  s.n_heads = 8;
  s.n_kv_heads = 4;
  s.n_ff = 1536;
  s.n_ctx = 1024;
  s.weight_type = type;
  s.embd_type = type;
  s.vocab_gguf = FixturePath("vocab/ggml-vocab-llama-spm.gguf");
  // The nudged twin: RoPE base one float step up (a 1e-7 relative change of
  // the rotation angles), everything else identical.
  if (nudged) s.rope_freq_base = std::nextafter(s.rope_freq_base, 2 * s.rope_freq_base);
  const std::string path = TempDir() + "/gpu-types-" + DTypeName(type) + (nudged ? "-nudged" : "") +
                           ".gguf";
  Status st = model::WriteSyntheticModel(s, path);
  EXPECT_TRUE(st.ok()) << st.message();
  return path;
}

// GPU vs CPU tolerance, relative to max(1, max|cpu logit|). Float weights
// differ only by summation order (the CPU's SIMD lanes vs the GPU's order).
// Quantized weights get int8 activations on both (the same quantizer, bit for
// bit: GpuMatMul checks one matmul to float rounding), but a rounding-level
// difference in a matmul's input moves some activations across a rounding
// boundary of the quantizer, a whole step (amax / 127), and the next layers
// amplify that: on the CPU alone, a RoPE base one float step higher changes
// this model's logits by ~1e-5 with F16 weights but 0.7% (Q8_0) to 1.4%
// (Q4_K). So for quantized types the check is relative: the GPU may differ
// from the CPU by at most a few times what that one-step nudge does to the
// CPU itself, measured on the same tokens. F16 / BF16 weights run on the
// tensor cores with activations rounded to the weight's type (2^-11 / 2^-8
// relative, cuda_matmul_half.cu): on the CPU alone, rounding every F16 /
// BF16 matmul's input that way moves this model's logits by 7.6e-4 / 5.0e-3
// of the largest (40 prompt positions); the tolerances are ~2.5x that, in
// the ratio of the two rounding units.
float TypeTolerance(DType type) {
  switch (type) {
    case DType::kF32: return 1e-4f;
    case DType::kF16: return 2e-3f;
    case DType::kBF16: return 1.6e-2f;
    default: return 3e-2f;
  }
}

class GpuWeightTypes : public ::testing::TestWithParam<DType> {};

TEST_P(GpuWeightTypes, LogitsAgreeWithCpuAndGreedyAgreesOver64Steps) {
  REQUIRE_GPU();
  REQUIRE_FIXTURE(FixturePath("vocab/ggml-vocab-llama-spm.gguf"));
  const DType type = GetParam();
  const std::string path = WriteTypeModel(type);
  GoldenModel cpu = LoadGoldenModel(path, 8, kCpu);
  GoldenModel gpu = LoadGoldenModel(path, 8, kCuda);
  ASSERT_TRUE(cpu.model != nullptr && gpu.model != nullptr);
  const int64_t V = cpu.model->config().n_vocab;
  engine::SessionConfig sc;
  sc.ctx_size = 256;
  sc.kv_type = DType::kF16;
  auto cs = engine::Session::Create(*cpu.model, sc);
  auto gs = engine::Session::Create(*gpu.model, sc);
  ASSERT_TRUE(cs.ok() && gs.ok());
  // 40 prompt tokens, then 64 greedy tokens chosen by the CPU; the GPU is fed
  // the same tokens (teacher forcing) so one near-tie cannot derail the rest.
  std::vector<int32_t> prompt;
  for (int i = 0; i < 40; ++i) prompt.push_back(100 + (i * 7919) % 30000);
  std::vector<float> lc(V), lg(V), ln(V);
  ASSERT_TRUE((*cs)->Append(prompt, lc.data()).ok());
  ASSERT_TRUE((*gs)->Append(prompt, lg.data()).ok());
  // Quantized types: the CPU on the nudged twin, fed the same tokens.
  const bool quant = type != DType::kF32 && type != DType::kF16 && type != DType::kBF16;
  GoldenModel nudged;
  Result<std::unique_ptr<engine::Session>> ns = Errorf("unused");
  if (quant) {
    nudged = LoadGoldenModel(WriteTypeModel(type, true), 8, kCpu);
    ASSERT_TRUE(nudged.model != nullptr);
    ns = engine::Session::Create(*nudged.model, sc);
    ASSERT_TRUE(ns.ok());
    ASSERT_TRUE((*ns)->Append(prompt, ln.data()).ok());
  }
  const float tol = TypeTolerance(type);
  float worst = 0, worst_nudge = 0;
  int agree = 0, decided = 0;
  for (int step = 0; step < 64; ++step) {
    float scale = 1.0f, diff = 0.0f, nudge = 0.0f;
    for (int64_t i = 0; i < V; ++i) {
      scale = std::max(scale, std::fabs(lc[i]));
      diff = std::max(diff, std::fabs(lc[i] - lg[i]));
      if (quant) nudge = std::max(nudge, std::fabs(lc[i] - ln[i]));
    }
    worst = std::max(worst, diff / scale);
    worst_nudge = std::max(worst_nudge, nudge / scale);
    ASSERT_LE(diff, tol * scale) << DTypeName(type) << " step " << step;
    const int32_t tc = Argmax(lc.data(), V), tg = Argmax(lg.data(), V);
    float second = -1e30f;
    for (int64_t i = 0; i < V; ++i) {
      if (i != tc) second = std::max(second, lc[i]);
    }
    // A step is decided when the CPU's top-2 margin exceeds twice this
    // step's largest difference: then the GPU must pick the same token.
    // Needing most steps decided asserts the differences stay well below
    // the margins that matter, not just below the tolerance.
    if (lc[tc] - second > 2 * diff) {
      ++decided;
      agree += tc == tg;
      EXPECT_EQ(tg, tc) << DTypeName(type) << " step " << step;
    }
    const int32_t next[1] = {tc};
    ASSERT_TRUE((*cs)->Append(next, lc.data()).ok());
    ASSERT_TRUE((*gs)->Append(next, lg.data()).ok());
    if (quant) {
      ASSERT_TRUE((*ns)->Append(next, ln.data()).ok());
    }
  }
  // Float weights: most steps must be decided (differences far below the
  // margins that matter). Quantized: differences of the order of the CPU's
  // own sensitivity, and enough decided steps to judge greedy agreement.
  EXPECT_GE(decided, quant ? 16 : 32) << "too few steps with a clear winner to judge greedy agreement";
  if (quant) {
    EXPECT_LE(worst, 4 * worst_nudge)
        << DTypeName(type) << ": the GPU differs from the CPU by more than 4x what a one-step "
        << "RoPE nudge does to the CPU itself";
  }
  std::printf("[ gpu vs cpu ] %s: max |diff| / max(1,|logit|) = %.3g (tolerance %.1g; the CPU's "
              "own one-step nudge: %.3g), greedy %d/%d\n",
              DTypeName(type), worst, tol, worst_nudge, agree, decided);
}

INSTANTIATE_TEST_SUITE_P(Types, GpuWeightTypes,
                         ::testing::Values(DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0,
                                           DType::kQ4_0, DType::kQ4_K, DType::kQ6_K),
                         [](const ::testing::TestParamInfo<DType>& info) {
                           return std::string(DTypeName(info.param));
                         });

// ---- determinism on the GPU ----

class GpuDeterminism : public ::testing::TestWithParam<DType> {};

TEST_P(GpuDeterminism, ChunkingAndBatchingNeverChangeABit) {
  REQUIRE_GPU();
  REQUIRE_FIXTURE(FixturePath("vocab/ggml-vocab-llama-spm.gguf"));
  const std::string path = WriteTypeModel(GetParam());
  GoldenModel g = LoadGoldenModel(path, 2, kCuda);
  ASSERT_TRUE(g.model != nullptr);
  model::Model& m = *g.model;
  const int64_t V = m.config().n_vocab;
  // 600 tokens: attention spans three 256-position chunks, so one-pass
  // prefill (the serial shape) and small chunks (the split shape) meet.
  std::vector<int32_t> prompt;
  for (int i = 0; i < 600; ++i) prompt.push_back(50 + (i * 4099) % 31000);
  engine::SessionConfig sc;
  sc.ctx_size = 1024;
  sc.prefill_chunk = 1024;  // one Forward for the whole prompt
  // One pass.
  std::vector<float> one(prompt.size() * V), chunked(prompt.size() * V);
  auto s1 = engine::Session::Create(m, sc);
  ASSERT_TRUE(s1.ok());
  ASSERT_TRUE((*s1)->AppendAll(prompt, one.data()).ok());
  // Seven uneven chunks.
  auto s2 = engine::Session::Create(m, sc);
  ASSERT_TRUE(s2.ok());
  const int sizes[] = {1, 13, 2, 300, 7, 30, 247};
  size_t at = 0;
  for (int n : sizes) {
    ASSERT_TRUE((*s2)->AppendAll(std::span<const int32_t>(prompt.data() + at, n),
                                 chunked.data() + at * V)
                    .ok());
    at += n;
  }
  ASSERT_EQ(at, prompt.size());
  EXPECT_EQ(std::memcmp(one.data(), chunked.data(), one.size() * sizeof(float)), 0)
      << "one-pass and chunked prefill differ";

  // A decode step alone vs in one batch with two other sequences.
  kv::BlockPoolConfig pc = m.KvPoolConfig(DType::kF16, 32, int64_t{64} << 20);
  auto pool = kv::BlockPool::Create(pc, &m.backend());
  ASSERT_TRUE(pool.ok()) << pool.status().message();
  kv::SeqBlocks seqs[3];
  for (auto& s : seqs) {
    for (int b = 0; b < 16; ++b) s.blocks.push_back((*pool)->Allocate());
  }
  auto run = [&](std::vector<model::BatchToken> batch, std::vector<float>* out) {
    std::vector<kv::SeqBlocks*> ptrs = {&seqs[0], &seqs[1], &seqs[2]};
    int n_out = 0;
    for (auto& t : batch) n_out += t.want_logits;
    out->assign(static_cast<size_t>(n_out) * V, 0.0f);
    return m.Forward(batch, ptrs, **pool, out->data());
  };
  // Prefill sequence 0 with the prompt's first 400 tokens, the others with 30
  // and 90; then position 400 of sequence 0 alone, and again among others.
  std::vector<float> sink;
  auto prefill = [&](int seq, int n) {
    std::vector<model::BatchToken> b;
    for (int i = 0; i < n; ++i) b.push_back({prompt[i % prompt.size()], i, seq, false});
    return run(b, &sink);
  };
  ASSERT_TRUE(prefill(0, 400).ok());
  std::vector<float> alone, batched;
  ASSERT_TRUE(run({{prompt[400], 400, 0, true}}, &alone).ok());
  ASSERT_TRUE(prefill(1, 30).ok());
  ASSERT_TRUE(prefill(2, 90).ok());
  // Recompute position 400 of sequence 0 among others (the same K/V rewritten).
  ASSERT_TRUE(
      run({{prompt[30], 30, 1, true}, {prompt[400], 400, 0, true}, {prompt[90], 90, 2, true}},
          &batched)
          .ok());
  EXPECT_EQ(std::memcmp(alone.data(), batched.data() + V, V * sizeof(float)), 0)
      << "a decode step's logits depend on its batch";
  for (auto& s : seqs) {
    for (int32_t b : s.blocks) (*pool)->Unref(b);
  }
}

INSTANTIATE_TEST_SUITE_P(Types, GpuDeterminism,
                         ::testing::Values(DType::kF16, DType::kQ8_0, DType::kQ4_K),
                         [](const ::testing::TestParamInfo<DType>& info) {
                           return std::string(DTypeName(info.param));
                         });

std::vector<int32_t> Generate(engine::Engine& e, const std::vector<int32_t>& prompt, int n) {
  engine::Request r;
  r.prompt = prompt;
  r.max_tokens = n;
  r.ignore_eos = true;
  r.sampling.temperature = 0.0f;
  auto sub = e.Submit(r);
  EXPECT_TRUE(sub.ok()) << sub.status.message();
  std::vector<int32_t> out;
  if (!sub.ok()) return out;
  engine::Event ev;
  while (sub.handle->Next(&ev)) {
    if (ev.kind == engine::Event::Kind::kToken) out.push_back(ev.token);
    if (ev.kind == engine::Event::Kind::kError) ADD_FAILURE() << ev.error.message();
  }
  return out;
}

// stories260K on the GPU with its tokenizer, and the engine settings the
// GpuEngine tests share (16-token blocks, F16 KV).
class GpuEngine : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_GPU();
    const std::string path = FixturePath("stories260K/stories260K.gguf");
    REQUIRE_FIXTURE(path);
    g = LoadGoldenModel(path, 2, kCuda);
    ASSERT_TRUE(g.model != nullptr);
    auto t = tokenizer::Tokenizer::FromGguf(*g.file);
    ASSERT_TRUE(t.ok()) << t.status().message();
    tok = std::move(t).value();
    ec.block_tokens = 16;
    ec.kv_type = DType::kF16;
  }
  GoldenModel g;
  std::unique_ptr<tokenizer::Tokenizer> tok;
  engine::EngineConfig ec;
};

TEST_F(GpuEngine, CacheHitAtTemperatureZeroGeneratesWhatAMissDoes) {
  ec.cache_bytes = int64_t{64} << 20;
  ec.max_cache_entries = 4;
  std::vector<int32_t> prompt = tok->Encode("Once upon a time, there was a little girl named Lily. She", true, false);
  std::vector<int32_t> with_cache, cold;
  {
    auto e = engine::Engine::Create(*g.model, *tok, ec);
    ASSERT_TRUE(e.ok()) << e.status().message();
    Generate(**e, prompt, 24);  // fills the cache
    with_cache = Generate(**e, prompt, 24);
    EXPECT_GT((*e)->Stats().cache.hit_tokens, 0);
  }
  {
    ec.max_cache_entries = 0;
    auto e = engine::Engine::Create(*g.model, *tok, ec);
    ASSERT_TRUE(e.ok());
    cold = Generate(**e, prompt, 24);
  }
  EXPECT_EQ(with_cache.size(), 24u);
  EXPECT_EQ(with_cache, cold);
}

// ---- device memory ----

// A conversation pushed out of GPU memory (--prompt-cache-size 1) is demoted
// to the pinned host tier and copied back on its next turn: a hit served from
// host memory, generating exactly what a cold run does; then many sequences
// outgrow the GPU budget together and are preempted (their blocks demoted),
// none fails, and each generates what it generates alone.
TEST_F(GpuEngine, HostTierAndPreemptionKeepEveryTokenExact) {
  ec.max_cache_entries = 1;
  const int64_t bpt = g.model->KvBytesPerToken(DType::kF16);
  ec.cache_bytes = bpt * 16 * 24;  // 24 blocks of GPU KV
  ec.host_bytes = bpt * 16 * 64;   // 64 blocks of pinned host memory
  std::vector<int32_t> a = tok->Encode("Once upon a time, there was a little girl named Lily.", true, false);
  std::vector<int32_t> b = tok->Encode("The dog ran to the park to play with a big red ball.", true, false);
  std::vector<std::vector<int32_t>> solo;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 6; ++i) {
    std::vector<int32_t> p = a;
    p.push_back(100 + 37 * i);
    prompts.push_back(p);
  }
  {
    engine::EngineConfig cold_cfg = ec;
    cold_cfg.max_cache_entries = 0;
    cold_cfg.host_bytes = 0;
    cold_cfg.cache_bytes = bpt * 16 * 64;
    auto e = engine::Engine::Create(*g.model, *tok, cold_cfg);
    ASSERT_TRUE(e.ok()) << e.status().message();
    for (const auto& p : prompts) solo.push_back(Generate(**e, p, 150));
  }
  auto e = engine::Engine::Create(*g.model, *tok, ec);
  ASSERT_TRUE(e.ok()) << e.status().message();
  Generate(**e, prompts[0], 40);
  Generate(**e, b, 8);  // prompts[0]'s conversation leaves GPU memory for the host tier
  const std::vector<int32_t> again = Generate(**e, prompts[0], 150);
  EXPECT_EQ(again, solo[0]);
  const engine::EngineStats st = (*e)->Stats();
  ASSERT_FALSE(st.lower_tiers.empty());
  EXPECT_EQ(st.lower_tiers[0].name, "host");
  EXPECT_GT(st.lower_tiers[0].hit_tokens, 0) << "the follow-up was not served from host memory";
  EXPECT_EQ(st.pool_tier, "device");
  // Six 150-token generations at once need ~60 blocks; the GPU holds 24.
  std::vector<std::thread> threads;
  std::vector<std::vector<int32_t>> got(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    threads.emplace_back([&, i] { got[i] = Generate(**e, prompts[i], 150); });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(got[i], solo[i]) << i;
  EXPECT_GT((*e)->Stats().preemptions_total, 0);
  EXPECT_EQ((*e)->Stats().requests_failed, 0);
}

// Q8_0 KV on the GPU: the same row format as the CPU's (kernels/kv_format.h),
// so prompt logits agree with the CPU's Q8_0-KV logits (differences only from
// float order, and the rare int8 rounding flip they cause), and chunking
// never changes a bit.
TEST(GpuKv, Q8KvAgreesWithTheCpuAndIsChunkingInvariant) {
  REQUIRE_GPU();
  const std::string path = FixturePath("stories260K/stories260K.gguf");
  REQUIRE_FIXTURE(path);
  GoldenModel cpu = LoadGoldenModel(path, 2, kCpu), gpu = LoadGoldenModel(path, 2, kCuda);
  ASSERT_TRUE(cpu.model != nullptr && gpu.model != nullptr);
  const int64_t V = cpu.model->config().n_vocab;
  std::vector<int32_t> prompt;
  for (int i = 0; i < 90; ++i) prompt.push_back(1 + (i * 37 + 5) % (static_cast<int>(V) - 1));
  auto run = [&](model::Model& m, int chunk) {
    engine::SessionConfig sc;
    sc.kv_type = DType::kQ8_0;
    sc.block_tokens = 16;
    sc.prefill_chunk = chunk;
    auto s = engine::Session::Create(m, sc);
    EXPECT_TRUE(s.ok()) << s.status().message();
    std::vector<float> all(prompt.size() * V);
    EXPECT_TRUE((*s)->AppendAll(prompt, all.data()).ok());
    return all;
  };
  const std::vector<float> c = run(*cpu.model, 1000), g = run(*gpu.model, 1000);
  const std::vector<float> g7 = run(*gpu.model, 7);
  EXPECT_EQ(0, std::memcmp(g.data(), g7.data(), g.size() * sizeof(float)));
  const float scale = std::max(1.0f, MaxAbs(c));
  EXPECT_LE(MaxAbsDiff(c, g), 1e-2f * scale);
  int agree = 0;
  for (size_t t = 0; t < prompt.size(); ++t) agree += Argmax(c.data() + t * V, V) == Argmax(g.data() + t * V, V);
  EXPECT_GE(agree, static_cast<int>(prompt.size()) * 9 / 10);
  std::printf("[ gpu vs cpu ] Q8_0 KV: max |diff| / max(1,|logit|) = %.3g, argmax %d/%zu\n",
              MaxAbsDiff(c, g) / scale, agree, prompt.size());
}

// ---- one matmul, GPU against the host emulation and the CPU ----

#ifdef REPRISE_HAVE_CUDA
class GpuMatMul : public ::testing::TestWithParam<DType> {};

// Every weight type, rows not a multiple of any tile, widths with a partial
// last segment and window, n from 1 (the decode GEMV) to 70 (the tensor-core
// tiles, a partial last tile): each output equals the host emulation of the
// canonical order bit for bit (HostDot, the kernels' specification), the same
// token gives the same bits whatever n, and the result agrees with the CPU
// backend on the same inputs to float rounding (it quantizes activations the
// same way, so only the order of float sums differs). F16 / BF16 on the tensor
// cores have no bit-exact host emulation (cuda_matmul_half.cu): each output is
// held to the exact dot product of its rounded operands instead, and to the
// CPU within the activations' rounding bound.
TEST_P(GpuMatMul, EqualsTheHostEmulationAndTheCpuOnEveryPath) {
  REQUIRE_GPU();
  const DType type = GetParam();
  const bool half = kernels::cuda::HalfTensorCores(type);
  auto gpu = kernels::CreateBackend(kCuda, 1);
  auto cpu = kernels::CreateBackend(kCpu, 2);
  ASSERT_TRUE(gpu.ok() && cpu.ok());
  // 1000: a width that is no multiple of 32 (F32 / F16 / BF16 only); 1280:
  // five K-quant units, so the last segment holds one unit.
  for (const int64_t cols : {int64_t{1000}, int64_t{1280}, int64_t{1536}, int64_t{4608}}) {
    if (cols % 32 != 0 && kernels::cuda::IsQuantType(type)) continue;
    const int64_t rows = 200;
    std::mt19937 rng(static_cast<uint32_t>(cols) + static_cast<uint32_t>(type));
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> wf(static_cast<size_t>(rows * cols));
    for (auto& v : wf) v = 0.05f * dist(rng);
    const int64_t rb = RowBytes(type, cols);
    std::vector<uint8_t> wq(static_cast<size_t>(rows * rb));
    for (int64_t r = 0; r < rows; ++r) {
      kernels::QuantizeRow(type, wf.data() + r * cols, wq.data() + r * rb, cols);
    }
    const kernels::MatrixView view{type, rows, cols, wq.data()};
    auto gm = (*gpu)->PrepareMatrix(view);
    auto cm = (*cpu)->PrepareMatrix(view);
    ASSERT_TRUE(gm.ok() && cm.ok());
    const int64_t max_n = 70;
    std::vector<float> x(static_cast<size_t>(max_n * cols));
    for (int64_t i = 0; i < max_n * cols; ++i) {
      x[i] = dist(rng) * (i % 97 == 0 ? 20.0f : 1.0f);  // outliers: blocks of different scale
    }
    auto xd = (*gpu)->Alloc(x.size() * sizeof(float), "test x");
    auto yd = (*gpu)->Alloc(static_cast<size_t>(max_n * rows) * sizeof(float), "test y");
    ASSERT_TRUE(xd.ok() && yd.ok());
    (*gpu)->CopyToDevice(*xd, x.data(), x.size() * sizeof(float));
    std::vector<float> first;  // n = 1's token 0, the reference for every other n
    std::vector<float> wd(static_cast<size_t>(cols));
    for (const int64_t n : {int64_t{1}, int64_t{3}, int64_t{15}, int64_t{16}, int64_t{40},
                            int64_t{70}}) {
      const kernels::Matrix* gw[1] = {&*gm};
      float* gy[1] = {static_cast<float*>(*yd)};
      (*gpu)->MatMul(gw, static_cast<const float*>(*xd), n, gy);
      std::vector<float> yg(static_cast<size_t>(n * rows)), yc(yg.size());
      (*gpu)->CopyToHost(yg.data(), *yd, yg.size() * sizeof(float));
      ASSERT_TRUE((*gpu)->Synchronize().ok());
      const kernels::Matrix* cw[1] = {&*cm};
      float* cy[1] = {yc.data()};
      (*cpu)->MatMul(cw, x.data(), n, cy);
      if (first.empty()) first.assign(yg.begin(), yg.begin() + rows);
      for (int64_t r = 0; r < rows; ++r) {
        ASSERT_EQ(std::memcmp(&yg[r], &first[r], 4), 0)
            << DTypeName(type) << " cols " << cols << " n " << n << " row " << r
            << ": token 0 changed with n (" << yg[r] << " vs " << first[r] << ")";
      }
      double worst = 0;
      if (half) {
        // The tensor-core order: within 1e-5 of sum |w x~| of the exact dot
        // product of the weights and the rounded activations x~, and within
        // the rounding's own bound (u sum |w x|, u = 2^-11 or 2^-8) of the CPU.
        const double u = type == DType::kBF16 ? 1.0 / 256 : 1.0 / 2048;
        double worst_exact = 0;
        for (int64_t t = 0; t < n; ++t) {
          const float* xt = x.data() + t * cols;
          std::vector<double> xr(static_cast<size_t>(cols));
          for (int64_t c = 0; c < cols; ++c) {
            const uint16_t h = kernels::cuda::HostHalfActivation(type, xt[c]);
            xr[c] = type == DType::kBF16 ? Bf16ToFp32(h) : Fp16ToFp32(h);
          }
          for (int64_t r = 0; r < rows; ++r) {
            kernels::DequantizeRow(type, wq.data() + r * rb, wd.data(), cols);
            double exact = 0, mag_r = 0, mag = 0;
            for (int64_t c = 0; c < cols; ++c) {
              exact += wd[c] * xr[c];
              mag_r += std::fabs(wd[c] * xr[c]);
              mag += std::fabs(static_cast<double>(wd[c]) * xt[c]);
            }
            const float got = yg[t * rows + r];
            const double e = std::fabs(got - exact) / mag_r;
            worst_exact = std::max(worst_exact, e);
            ASSERT_LE(e, 1e-5) << DTypeName(type) << " cols " << cols << " n " << n << " token "
                               << t << " row " << r << ": GPU " << got << " vs exact " << exact;
            const double rel = std::fabs(static_cast<double>(got) - yc[t * rows + r]) / mag;
            worst = std::max(worst, rel);
            ASSERT_LE(rel, u + 1e-5) << DTypeName(type) << " cols " << cols << " n " << n
                                     << " token " << t << " row " << r << ": GPU " << got
                                     << " vs CPU " << yc[t * rows + r];
          }
        }
        std::printf("[ matmul ] %s cols %lld n %lld (tensor cores): |GPU - exact| / sum|w x~| <= "
                    "%.2g, |GPU - CPU| / sum|w x| <= %.2g (bound %.2g)\n",
                    DTypeName(type), static_cast<long long>(cols), static_cast<long long>(n),
                    worst_exact, worst, u + 1e-5);
        continue;
      }
      for (int64_t t = 0; t < n; ++t) {
        for (int64_t r = 0; r < rows; ++r) {
          const float* xt = x.data() + t * cols;
          const float want = kernels::cuda::HostDot(type, wq.data() + r * rb, cols, xt);
          const float got = yg[t * rows + r];
          if (t < 4 || r % 17 == 0) {  // the emulation is slow: a sample of every n
            ASSERT_EQ(std::memcmp(&want, &got, 4), 0)
                << DTypeName(type) << " cols " << cols << " n " << n << " token " << t << " row "
                << r << ": GPU " << got << " vs host emulation " << want;
          }
          if (r % 29 == 0) {
            kernels::DequantizeRow(type, wq.data() + r * rb, wd.data(), cols);
            double mag = 0;
            for (int64_t c = 0; c < cols; ++c) mag += std::fabs(static_cast<double>(wd[c]) * xt[c]);
            const double rel = std::fabs(static_cast<double>(got) - yc[t * rows + r]) / mag;
            worst = std::max(worst, rel);
            ASSERT_LE(rel, 2e-6) << DTypeName(type) << " cols " << cols << " n " << n << " token "
                                 << t << " row " << r << ": GPU " << got << " vs CPU "
                                 << yc[t * rows + r];
          }
        }
      }
      std::printf("[ matmul ] %s cols %lld n %lld: bit-exact with the emulation, |GPU - CPU| / "
                  "sum|w x| <= %.2g\n",
                  DTypeName(type), static_cast<long long>(cols), static_cast<long long>(n), worst);
    }
    (*gpu)->Free(*xd);
    (*gpu)->Free(*yd);
  }
}

// Several matrices in one MatMul call (the forward pass's Q/K/V and
// gate/up): the staged GEMV serves consecutive quantized matrices of one type
// in one launch, blocks mapped to matrices by their row groups. Each output
// must be the bits of the same matrix multiplied alone, whatever its
// neighbours' shapes, for decode and prefill widths alike.
TEST_P(GpuMatMul, SeveralMatricesInOneCallEqualEachAlone) {
  REQUIRE_GPU();
  const DType type = GetParam();
  auto gpu = kernels::CreateBackend(kCuda, 1);
  ASSERT_TRUE(gpu.ok());
  const int64_t cols = 4608;  // 9 segments: a partial round of the staged GEMV
  const int64_t rows_of[5] = {200, 33, 1024, 64, 7};  // 5: more than one launch holds
  std::mt19937 rng(1234u + static_cast<uint32_t>(type));
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<std::vector<uint8_t>> wq(5);
  std::vector<kernels::Matrix> mats;
  const int64_t rb = RowBytes(type, cols);
  for (int m = 0; m < 5; ++m) {
    std::vector<float> wf(static_cast<size_t>(rows_of[m] * cols));
    for (auto& v : wf) v = 0.05f * dist(rng);
    wq[m].resize(static_cast<size_t>(rows_of[m] * rb));
    for (int64_t r = 0; r < rows_of[m]; ++r) {
      kernels::QuantizeRow(type, wf.data() + r * cols, wq[m].data() + r * rb, cols);
    }
    auto pm = (*gpu)->PrepareMatrix({type, rows_of[m], cols, wq[m].data()});
    ASSERT_TRUE(pm.ok());
    mats.push_back(std::move(*pm));
  }
  const int64_t max_n = 20;
  std::vector<float> x(static_cast<size_t>(max_n * cols));
  for (auto& v : x) v = dist(rng);
  auto xd = (*gpu)->Alloc(x.size() * sizeof(float), "test x");
  ASSERT_TRUE(xd.ok());
  (*gpu)->CopyToDevice(*xd, x.data(), x.size() * sizeof(float));
  std::vector<void*> yd(5), yd1(5);
  for (int m = 0; m < 5; ++m) {
    auto a = (*gpu)->Alloc(static_cast<size_t>(max_n * rows_of[m]) * sizeof(float), "y");
    auto b = (*gpu)->Alloc(static_cast<size_t>(max_n * rows_of[m]) * sizeof(float), "y1");
    ASSERT_TRUE(a.ok() && b.ok());
    yd[m] = *a;
    yd1[m] = *b;
  }
  for (const int64_t n : {int64_t{1}, int64_t{2}, int64_t{5}, int64_t{15}, int64_t{20}}) {
    const kernels::Matrix* all[5] = {&mats[0], &mats[1], &mats[2], &mats[3], &mats[4]};
    float* ys[5];
    for (int m = 0; m < 5; ++m) ys[m] = static_cast<float*>(yd[m]);
    (*gpu)->MatMul(all, static_cast<const float*>(*xd), n, ys);
    for (int m = 0; m < 5; ++m) {
      const kernels::Matrix* one[1] = {&mats[m]};
      float* y1[1] = {static_cast<float*>(yd1[m])};
      (*gpu)->MatMul(one, static_cast<const float*>(*xd), n, y1);
    }
    for (int m = 0; m < 5; ++m) {
      std::vector<float> got(static_cast<size_t>(n * rows_of[m])), alone(got.size());
      (*gpu)->CopyToHost(got.data(), yd[m], got.size() * sizeof(float));
      (*gpu)->CopyToHost(alone.data(), yd1[m], alone.size() * sizeof(float));
      ASSERT_TRUE((*gpu)->Synchronize().ok());
      ASSERT_EQ(std::memcmp(got.data(), alone.data(), got.size() * sizeof(float)), 0)
          << DTypeName(type) << " n " << n << " matrix " << m << " (" << rows_of[m]
          << " rows): several in one call differ from the matrix alone";
      double mag = 0;
      for (const float v : got) mag = std::max(mag, static_cast<double>(std::fabs(v)));
      ASSERT_GT(mag, 0.0) << "an all-zero output proves nothing";
    }
  }
  (*gpu)->Free(*xd);
  for (int m = 0; m < 5; ++m) {
    (*gpu)->Free(yd[m]);
    (*gpu)->Free(yd1[m]);
  }
}

INSTANTIATE_TEST_SUITE_P(Types, GpuMatMul,
                         ::testing::Values(DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0,
                                           DType::kQ4_0, DType::kQ4_K, DType::kQ6_K),
                         [](const ::testing::TestParamInfo<DType>& info) {
                           return std::string(DTypeName(info.param));
                         });

// `type` matmuls (random weights, rows x cols, n tokens) with a kernel
// switch off and on (`set`, a test override): the same bits, not all zero.
void ExpectSwitchKeepsBits(kernels::Backend* be, DType type, void (*set)(int), const char* what,
                           const std::vector<std::pair<int64_t, int64_t>>& shapes,
                           const std::vector<int64_t>& ns, std::mt19937* rng) {
  struct Restore {
    void (*set)(int);
    ~Restore() { set(-1); }
  } restore{set};
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const int64_t max_n = *std::max_element(ns.begin(), ns.end());
  for (const auto& [rows, cols] : shapes) {
    const std::vector<uint8_t> wq = RandomQuantRows(type, rows, cols, rng);
    auto m = be->PrepareMatrix({type, rows, cols, wq.data()});
    ASSERT_TRUE(m.ok());
    std::vector<float> x(static_cast<size_t>(max_n * cols));
    for (int64_t i = 0; i < max_n * cols; ++i) x[i] = dist(*rng) * (i % 97 == 0 ? 20.0f : 1.0f);
    auto xd = be->Alloc(x.size() * sizeof(float), "test x");
    auto yd = be->Alloc(static_cast<size_t>(max_n * rows) * sizeof(float), "test y");
    ASSERT_TRUE(xd.ok() && yd.ok());
    be->CopyToDevice(*xd, x.data(), x.size() * sizeof(float));
    for (const int64_t n : ns) {
      std::vector<float> got[2];
      for (int on = 0; on < 2; ++on) {
        set(on);
        const kernels::Matrix* ws[1] = {&*m};
        float* ys[1] = {static_cast<float*>(*yd)};
        be->MatMul(ws, static_cast<const float*>(*xd), n, ys);
        got[on].resize(static_cast<size_t>(n * rows));
        be->CopyToHost(got[on].data(), *yd, got[on].size() * sizeof(float));
        ASSERT_TRUE(be->Synchronize().ok());
      }
      size_t first = 0;
      while (first < got[0].size() && std::memcmp(&got[0][first], &got[1][first], 4) == 0) {
        ++first;
      }
      ASSERT_EQ(first, got[0].size())
          << DTypeName(type) << " cols " << cols << " rows " << rows << " n " << n << ": token "
          << first / rows << " row " << first % rows << ": " << what << " " << got[1][first]
          << " vs default " << got[0][first];
      double mag = 0;
      for (const float v : got[1]) mag = std::max(mag, static_cast<double>(std::fabs(v)));
      ASSERT_GT(mag, 0.0) << "an all-zero output proves nothing";
    }
    be->Free(*xd);
    be->Free(*yd);
  }
}

// The pipelined Q4_K prefill kernel (the default; off and on here
// in-process) against the unpipelined tensor-core kernel, which GpuMatMul
// holds to the host emulation: the same bits for every output, over widths
// of 6, 16 and 18 units, row counts that are no multiple of the tile (a
// partial last row group) and token counts with a partial last tile.
TEST(GpuMatMulPipe, PipelinedQ4KGivesTheDefaultKernelsBits) {
  REQUIRE_GPU();
  auto gpu = kernels::CreateBackend(kCuda, 1);
  ASSERT_TRUE(gpu.ok());
  std::mt19937 rng(31);
  ExpectSwitchKeepsBits(gpu->get(), DType::kQ4_K, kernels::cuda::SetMmaPipeForTest, "pipelined",
                        {{200, 1536}, {1000, 1536}, {200, 4096}, {1000, 4096}, {200, 4608},
                         {1000, 4608}},
                        {16, 40, 130}, &rng);
}

// The pipelined Q8_0 / Q4_0 prefill kernel (opt-in, REPRISE_CUDA_MMA_PIPE32=1)
// against the default one: widths whose last stage is partial (1056 columns:
// 33 sub-blocks, activation scales not 16-byte aligned) or whole.
TEST(GpuMatMulPipe, PipelinedQ8_0AndQ4_0GiveTheDefaultKernelsBits) {
  REQUIRE_GPU();
  auto gpu = kernels::CreateBackend(kCuda, 1);
  ASSERT_TRUE(gpu.ok());
  std::mt19937 rng(47);
  for (const DType type : {DType::kQ8_0, DType::kQ4_0}) {
    ExpectSwitchKeepsBits(gpu->get(), type, kernels::cuda::SetMmaPipe32ForTest, "pipelined",
                          {{200, 1056}, {1000, 4096}, {200, 4608}}, {16, 40, 130}, &rng);
  }
}

// The F16 / BF16 prefill kernel with the deep copy pipeline (opt-in,
// REPRISE_CUDA_HALF_PIPE=1) against the default one: widths whose chunk
// count ends a step part-way (1000 columns: 63 chunks) or a segment
// part-way, token counts past one 128-token tile.
TEST(GpuMatMulPipe, DeepHalfPipelineGivesTheDefaultKernelsBits) {
  REQUIRE_GPU();
  auto gpu = kernels::CreateBackend(kCuda, 1);
  ASSERT_TRUE(gpu.ok());
  std::mt19937 rng(43);
  for (const DType type : {DType::kF16, DType::kBF16}) {
    ExpectSwitchKeepsBits(gpu->get(), type, kernels::cuda::SetHalfPipeForTest, "deep pipeline",
                          {{200, 1000}, {1000, 1536}, {200, 4096}}, {16, 130, 300}, &rng);
  }
}

// Q/K/V-like F16 / BF16 matrices (one width, three row counts, one not a
// multiple of the 16-row tile) in one decode MatMul call: with the shared
// launch (opt-in, REPRISE_CUDA_HALF_MULTI=1) the bits of one launch each.
TEST(GpuMatMulPipe, HalfGemvOfSeveralMatricesInOneLaunchGivesTheSameBits) {
  REQUIRE_GPU();
  auto gpu = kernels::CreateBackend(kCuda, 1);
  ASSERT_TRUE(gpu.ok());
  kernels::Backend* be = gpu->get();
  struct Restore {
    ~Restore() { kernels::cuda::SetHalfMultiForTest(-1); }
  } restore;
  std::mt19937 rng(53);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const int64_t cols = 1000;
  const int64_t rows[3] = {512, 136, 200};
  for (const DType type : {DType::kF16, DType::kBF16}) {
    std::vector<kernels::Matrix> ms;
    int64_t total_rows = 0;
    for (const int64_t r : rows) {
      const std::vector<uint8_t> wq = RandomQuantRows(type, r, cols, &rng);
      auto m = be->PrepareMatrix({type, r, cols, wq.data()});
      ASSERT_TRUE(m.ok());
      ms.push_back(std::move(*m));
      total_rows += r;
    }
    const int64_t max_n = 15;
    std::vector<float> x(static_cast<size_t>(max_n * cols));
    for (auto& v : x) v = dist(rng);
    auto xd = be->Alloc(x.size() * sizeof(float), "test x");
    auto yd = be->Alloc(static_cast<size_t>(max_n * total_rows) * sizeof(float), "test y");
    ASSERT_TRUE(xd.ok() && yd.ok());
    be->CopyToDevice(*xd, x.data(), x.size() * sizeof(float));
    for (const int64_t n : {int64_t{1}, int64_t{3}, int64_t{8}, int64_t{15}}) {
      std::vector<float> got[2];
      for (int multi = 0; multi < 2; ++multi) {
        kernels::cuda::SetHalfMultiForTest(multi);
        const kernels::Matrix* ws[3] = {&ms[0], &ms[1], &ms[2]};
        float* base = static_cast<float*>(*yd);
        float* ys[3] = {base, base + n * rows[0], base + n * (rows[0] + rows[1])};
        be->MatMul(ws, static_cast<const float*>(*xd), n, ys);
        got[multi].resize(static_cast<size_t>(n * total_rows));
        be->CopyToHost(got[multi].data(), *yd, got[multi].size() * sizeof(float));
        ASSERT_TRUE(be->Synchronize().ok());
      }
      size_t first = 0;
      while (first < got[0].size() && std::memcmp(&got[0][first], &got[1][first], 4) == 0) {
        ++first;
      }
      ASSERT_EQ(first, got[0].size()) << DTypeName(type) << " n " << n << ": output float "
                                      << first << ": one launch " << got[1][first]
                                      << " vs one each " << got[0][first];
      double mag = 0;
      for (const float v : got[1]) mag = std::max(mag, static_cast<double>(std::fabs(v)));
      ASSERT_GT(mag, 0.0) << "an all-zero output proves nothing";
    }
    be->Free(*xd);
    be->Free(*yd);
  }
}

#endif  // REPRISE_HAVE_CUDA

TEST(GpuKvPool, BlocksRoundTripThroughHostAndCopyOnTheDevice) {
  REQUIRE_GPU();
  auto be = kernels::CreateBackend(kCuda, 1);
  ASSERT_TRUE(be.ok()) << be.status().message();
  kv::BlockPoolConfig pc;
  pc.n_layers = 2;
  pc.k_dim = 64;
  pc.v_dim = 64;
  pc.n_heads = 2;
  pc.block_tokens = 8;
  pc.dtype = DType::kF16;
  pc.max_bytes = 1 << 20;
  auto pool = kv::BlockPool::Create(pc, be->get());
  ASSERT_TRUE(pool.ok()) << pool.status().message();
  const int32_t a = (*pool)->Allocate(), b = (*pool)->Allocate();
  std::vector<uint8_t> bytes((*pool)->block_bytes());
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 13 + 5);
  (*pool)->WriteBlock(a, bytes.data());
  std::vector<uint8_t> zero(bytes.size(), 0), back(bytes.size());
  (*pool)->WriteBlock(b, zero.data());
  (*pool)->CopyTokens(a, b, 3);
  (*pool)->ReadBlock(b, back.data());
  // Rows 0..2 of every head of every layer came from a; the rest stayed zero.
  const int64_t row = 32 * 2;  // head_dim 32, f16
  for (int l = 0; l < 2; ++l) {
    for (int kvsel = 0; kvsel < 2; ++kvsel) {
      for (int h = 0; h < 2; ++h) {
        const int64_t base = kvsel * 2 * (2 * 8 * row) + l * (2 * 8 * row) + h * 8 * row;
        for (int64_t i = 0; i < 8 * row; ++i) {
          ASSERT_EQ(back[base + i], i < 3 * row ? bytes[base + i] : 0) << l << kvsel << h << i;
        }
      }
    }
  }
  ASSERT_TRUE((*be)->Synchronize().ok());
}

TEST(GpuBackend, WeightsThatDoNotFitGetAClearError) {
  REQUIRE_GPU();
  auto be = kernels::CreateBackend(kCuda, 1);
  ASSERT_TRUE(be.ok()) << be.status().message();
  const Status st = (*be)->ReserveWeights(int64_t{1} << 50);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("does not fit"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("free"), std::string::npos) << st.message();
}

TEST(GpuBackend, DescribesTheGpu) {
  REQUIRE_GPU();
  auto be = kernels::CreateBackend(kernels::DevicePreference::kAuto, 1);
  ASSERT_TRUE(be.ok()) << be.status().message();
  EXPECT_EQ((*be)->type(), kernels::DeviceType::kCuda);
  EXPECT_EQ((*be)->Describe().rfind("cuda: ", 0), 0u) << (*be)->Describe();
  EXPECT_GT((*be)->FreeMemoryBytes(), 0);
}

// Runs everywhere: without a GPU, --device cuda is refused with the reason,
// and auto falls back to the CPU.
TEST(DeviceSelection, CudaWithoutAGpuIsAClearErrorAndAutoFallsBack) {
  std::string why;
  if (kernels::CudaDeviceCount(&why) > 0) GTEST_SKIP() << "a GPU is visible here";
  EXPECT_FALSE(why.empty());
  auto cuda = kernels::CreateBackend(kCuda, 1);
  ASSERT_FALSE(cuda.ok());
  EXPECT_NE(cuda.status().message().find("--device cuda"), std::string::npos);
  auto any = kernels::CreateBackend(kernels::DevicePreference::kAuto, 1);
  ASSERT_TRUE(any.ok());
  EXPECT_EQ((*any)->type(), kernels::DeviceType::kCpu);
}

}  // namespace
}  // namespace reprise::testing
