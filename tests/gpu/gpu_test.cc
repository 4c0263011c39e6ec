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
