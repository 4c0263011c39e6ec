// Blocked online-softmax attention (kernels/attention.h): each SIMD version
// this CPU runs against the scalar reference and a double-precision softmax on
// random KV of awkward shapes, and bit-exact independence of each (token,
// head) result from the other tokens and heads computed in the same call.
#include "kernels/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/cpu_features.h"
#include "core/fp16.h"
#include "kernels/kv_format.h"
#include "kernel_test_util.h"

namespace reprise::kernels {
namespace {

using testing::RandomFloats;

struct Shape {
  int64_t dk, dv, n_kv, group, ctx;
  int block_tokens;
  DType type;  // KV row format: F32, F16 or Q8_0 (kernels/kv_format.h)
};

// A sequence's KV for one layer, in blocks scattered through a pool in
// shuffled order; rows past ctx hold NaN (F32/F16) or huge values (Q8_0),
// which would show in any result that read them.
struct TestKv {
  Shape s;
  AttentionParams p;
  std::vector<uint8_t> k_pool, v_pool;
  std::vector<const uint8_t*> k_blocks, v_blocks;
  int64_t k_row = 0, v_row = 0;  // elements of a full K / V row (all kv heads)
  int64_t krb = 0, vrb = 0;      // bytes of one head's K / V row
  std::vector<float> q;  // [ctx, n_heads * dk]

  explicit TestKv(const Shape& shape, uint32_t seed) : s(shape) {
    const int64_t n_heads = s.n_kv * s.group;
    p.head_dim_k = s.dk;
    p.head_dim_v = s.dv;
    k_row = s.n_kv * s.dk;
    v_row = s.n_kv * s.dv;
    krb = KvRowBytes(s.type, s.dk);
    vrb = KvRowBytes(s.type, s.dv);
    p.block_tokens = s.block_tokens;
    p.kv_type = s.type;
    p.k_row_bytes = krb;
    p.v_row_bytes = vrb;
    p.scale = 1.0f / std::sqrt(static_cast<float>(s.dk));
    const int64_t n_blocks = (s.ctx + s.block_tokens - 1) / s.block_tokens;
    const int64_t kb = s.block_tokens * s.n_kv * krb, vb = s.block_tokens * s.n_kv * vrb;
    const int64_t pool_blocks = n_blocks + 3;
    k_pool.resize(pool_blocks * kb);
    v_pool.resize(pool_blocks * vb);
    std::vector<int64_t> order(pool_blocks);
    for (int64_t i = 0; i < pool_blocks; ++i) order[i] = i;
    std::mt19937 rng(seed);
    std::shuffle(order.begin(), order.end(), rng);
    const std::vector<float> kf =
        RandomFloats(pool_blocks * s.block_tokens * k_row, seed + 1, 2.0f);
    const std::vector<float> vf = RandomFloats(pool_blocks * s.block_tokens * v_row, seed + 2);
    const float dead = s.type == DType::kQ8_0 ? 1e4f : std::numeric_limits<float>::quiet_NaN();
    std::vector<float> row(std::max(s.dk, s.dv));
    for (int64_t b = 0; b < n_blocks; ++b) {
      uint8_t* kd = &k_pool[order[b] * kb];
      uint8_t* vd = &v_pool[order[b] * vb];
      k_blocks.push_back(kd);
      v_blocks.push_back(vd);
      for (int64_t r = 0; r < s.block_tokens; ++r) {
        const bool live = b * s.block_tokens + r < s.ctx;
        const int64_t base = b * s.block_tokens + r;
        for (int64_t h = 0; h < s.n_kv; ++h) {
          for (int64_t i = 0; i < s.dk; ++i) row[i] = live ? kf[base * k_row + h * s.dk + i] : dead;
          StoreKvRow(kd + (h * s.block_tokens + r) * krb, row.data(), s.dk, s.type);
          for (int64_t i = 0; i < s.dv; ++i) row[i] = live ? vf[base * v_row + h * s.dv + i] : dead;
          StoreKvRow(vd + (h * s.block_tokens + r) * vrb, row.data(), s.dv, s.type);
        }
      }
    }
    q = RandomFloats(s.ctx * n_heads * s.dk, seed + 3);
  }
  // Position pp of kv head h as floats (what every attention version must read).
  std::vector<float> KRow(int64_t pp, int64_t h) const {
    std::vector<float> out(s.dk);
    LoadKvRow(k_blocks[pp / s.block_tokens] + (h * s.block_tokens + pp % s.block_tokens) * krb,
              s.dk, s.type, out.data());
    return out;
  }
  std::vector<float> VRow(int64_t pp, int64_t h) const {
    std::vector<float> out(s.dv);
    LoadKvRow(v_blocks[pp / s.block_tokens] + (h * s.block_tokens + pp % s.block_tokens) * vrb,
              s.dv, s.type, out.data());
    return out;
  }
  int64_t n_heads() const { return s.n_kv * s.group; }

  // Runs `fn` over the tokens `toks` (positions; q row = position) for heads
  // [h0, h1) of kv head kvh, writing out[pos, n_heads * dv].
  template <typename Fn>
  void Run(Fn fn, const std::vector<int32_t>& toks, int64_t kvh, int64_t h0, int64_t h1,
           std::vector<float>* out, AttentionScratch* scratch) const {
    // Gather q rows of the tokens (contiguous run), then scatter outputs back.
    const int64_t qs = n_heads() * s.dk, os = n_heads() * s.dv;
    std::vector<float> qg(toks.size() * qs), og(toks.size() * os, 0.0f);
    for (size_t i = 0; i < toks.size(); ++i) {
      std::memcpy(&qg[i * qs], &q[toks[i] * qs], qs * sizeof(float));
    }
    AttentionRun run;
    run.q = qg.data();
    run.q_stride = qs;
    run.pos = toks.data();
    run.n_tok = static_cast<int64_t>(toks.size());
    run.out = og.data();
    run.out_stride = os;
    run.k_blocks = k_blocks.data();
    run.v_blocks = v_blocks.data();
    run.kv_head = kvh;
    run.head_begin = h0;
    run.head_end = h1;
    fn(p, run, scratch);
    for (size_t i = 0; i < toks.size(); ++i) {
      for (int64_t h = h0; h < h1; ++h) {
        std::memcpy(&(*out)[toks[i] * os + h * s.dv], &og[i * os + h * s.dv], s.dv * sizeof(float));
      }
    }
  }
  // Every token 0..ctx-1 and every head, kv head by kv head in one call each.
  template <typename Fn>
  std::vector<float> All(Fn fn) const {
    std::vector<float> out(s.ctx * n_heads() * s.dv, 0.0f);
    std::vector<int32_t> toks(s.ctx);
    for (int64_t i = 0; i < s.ctx; ++i) toks[i] = static_cast<int32_t>(i);
    AttentionScratch scratch;
    for (int64_t kvh = 0; kvh < s.n_kv; ++kvh) {
      Run(fn, toks, kvh, kvh * s.group, (kvh + 1) * s.group, &out, &scratch);
    }
    return out;
  }
  // Plain two-pass softmax attention in double.
  std::vector<double> Exact() const {
    const int64_t nh = n_heads();
    std::vector<double> out(s.ctx * nh * s.dv, 0.0);
    std::vector<double> sc(s.ctx);
    for (int64_t t = 0; t < s.ctx; ++t) {
      for (int64_t h = 0; h < nh; ++h) {
        const int64_t kvh = h / s.group;
        const float* qh = &q[(t * nh + h) * s.dk];
        double mx = -1e300;
        for (int64_t pp = 0; pp <= t; ++pp) {
          const std::vector<float> kr = KRow(pp, kvh);
          double acc = 0;
          for (int64_t d = 0; d < s.dk; ++d) acc += static_cast<double>(qh[d]) * kr[d];
          sc[pp] = acc * p.scale;
          mx = std::max(mx, sc[pp]);
        }
        double sum = 0;
        for (int64_t pp = 0; pp <= t; ++pp) sum += (sc[pp] = std::exp(sc[pp] - mx));
        for (int64_t pp = 0; pp <= t; ++pp) {
          const std::vector<float> vr = VRow(pp, kvh);
          for (int64_t i = 0; i < s.dv; ++i) {
            out[(t * nh + h) * s.dv + i] += sc[pp] / sum * vr[i];
          }
        }
      }
    }
    return out;
  }
};

constexpr DType kF16 = DType::kF16, kF32 = DType::kF32, kQ8 = DType::kQ8_0;
const Shape kShapes[] = {
    {64, 64, 4, 8, 77, 32, kF16},    {64, 64, 4, 8, 77, 32, kF32},  {128, 128, 2, 4, 100, 32, kF16},
    {128, 128, 2, 4, 65, 32, kF32},  {32, 32, 3, 1, 45, 32, kF16},  {32, 32, 3, 1, 33, 32, kF32},
    {64, 64, 1, 8, 1, 32, kF16},     {40, 24, 2, 3, 70, 16, kF32},  {64, 64, 2, 5, 90, 48, kF16},
    {128, 128, 1, 8, 300, 32, kF16}, {64, 64, 4, 8, 77, 32, kQ8},   {128, 128, 2, 4, 100, 32, kQ8},
    {16, 16, 2, 3, 50, 16, kQ8},     {96, 96, 1, 2, 130, 32, kQ8},
};

std::string Describe(const Shape& s) {
  return "dk=" + std::to_string(s.dk) + " dv=" + std::to_string(s.dv) +
         " n_kv=" + std::to_string(s.n_kv) + " group=" + std::to_string(s.group) +
         " ctx=" + std::to_string(s.ctx) + " bt=" + std::to_string(s.block_tokens) +
         " " + DTypeName(s.type);
}

using AttendFn = void (*)(const AttentionParams&, const AttentionRun&, AttentionScratch*);

// The dispatched version and every SIMD version this CPU can run.
std::vector<AttendFn> SimdVersions() {
  std::vector<AttendFn> fns = {&Attend};
  if (GetCpuFeatures().avx2) fns.push_back(&avx2::Attend);
  if (GetCpuFeatures().avx512) fns.push_back(&avx512::Attend);
  return fns;
}

TEST(AttentionTest, MatchesReferenceAndExactSoftmax) {
  uint32_t seed = 100;
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(Describe(s));
    TestKv kv(s, seed += 10);
    const std::vector<float> ref = kv.All(ref::Attend);
    const std::vector<double> exact = kv.Exact();
    ASSERT_EQ(ref.size(), exact.size());
    for (size_t i = 0; i < ref.size(); ++i) {
      ASSERT_NEAR(ref[i], exact[i], 2e-5 * std::max(1.0, std::fabs(exact[i]))) << i;
    }
    for (AttendFn fn : SimdVersions()) {
      const std::vector<float> simd = kv.All(fn);
      for (size_t i = 0; i < simd.size(); ++i) {
        ASSERT_TRUE(std::isfinite(simd[i])) << i;
        ASSERT_NEAR(simd[i], ref[i], 2e-6 * std::max(1.0f, std::fabs(ref[i]))) << i;
      }
    }
  }
}

// Each (token, head) alone, in odd subsets and with heads split differently
// gives the same bits as all tokens and heads together.
TEST(AttentionTest, ResultDoesNotDependOnOtherTokensOrHeads) {
  uint32_t seed = 500;
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(Describe(s));
    TestKv kv(s, seed += 10);
    std::vector<AttendFn> fns = SimdVersions();
    fns.push_back(&ref::Attend);
    for (AttendFn fn : fns) {
      const std::vector<float> all = kv.All(fn);
      std::vector<float> out(all.size(), 0.0f);
      AttentionScratch scratch;
      std::mt19937 rng(seed);
      // Tokens in shuffled subsets of 1..9, heads one by one or in halves.
      std::vector<int32_t> toks(s.ctx);
      for (int64_t i = 0; i < s.ctx; ++i) toks[i] = static_cast<int32_t>(i);
      std::shuffle(toks.begin(), toks.end(), rng);
      for (size_t i = 0; i < toks.size();) {
        const size_t n = std::min<size_t>(1 + rng() % 9, toks.size() - i);
        std::vector<int32_t> sub(toks.begin() + i, toks.begin() + i + n);
        for (int64_t kvh = 0; kvh < s.n_kv; ++kvh) {
          const int64_t h0 = kvh * s.group, h1 = h0 + s.group;
          if (n % 2 == 0) {
            for (int64_t h = h0; h < h1; ++h) kv.Run(fn, sub, kvh, h, h + 1, &out, &scratch);
          } else {
            const int64_t mid = h0 + s.group / 2;
            if (mid > h0) kv.Run(fn, sub, kvh, h0, mid, &out, &scratch);
            kv.Run(fn, sub, kvh, mid, h1, &out, &scratch);
          }
        }
        i += n;
      }
      ASSERT_EQ(0, std::memcmp(all.data(), out.data(), all.size() * sizeof(float)));
    }
  }
}

// The Q8_0 KV row: 34 bytes per 32 values (the group shrinks to a narrower
// head), each value within half a step of its group's F16 scale, zeros exact,
// and head sizes that do not split into groups refused with a reason.
TEST(KvFormatTest, Q8RowsRoundTripWithinHalfAStep) {
  EXPECT_EQ(KvRowBytes(DType::kQ8_0, 128), 4 * 34);
  EXPECT_EQ(KvRowBytes(DType::kQ8_0, 16), 18);
  EXPECT_EQ(KvRowBytes(DType::kF16, 128), 256);
  EXPECT_EQ(KvRowBytes(DType::kQ8_0, 40), 0);
  EXPECT_NE(KvTypeUnsupported(DType::kQ8_0, 40, 40), "");
  EXPECT_EQ(KvTypeUnsupported(DType::kQ8_0, 128, 128), "");
  EXPECT_NE(KvTypeUnsupported(DType::kQ4_0, 128, 128), "");
  for (int64_t n : {8, 16, 32, 64, 128, 256}) {
    std::vector<float> x = RandomFloats(n, static_cast<uint32_t>(n), 3.0f);
    x[0] = 0.0f;
    if (n >= 64) x[40] = 50.0f;  // one outlier: only its own group's scale grows
    std::vector<uint8_t> row(KvRowBytes(DType::kQ8_0, n));
    StoreKvRow(row.data(), x.data(), n, DType::kQ8_0);
    std::vector<float> back(n);
    LoadKvRow(row.data(), n, DType::kQ8_0, back.data());
    const int64_t g = KvQ8Group(n);
    for (int64_t b = 0; b < n / g; ++b) {
      float amax = 0;
      for (int64_t i = 0; i < g; ++i) amax = std::max(amax, std::fabs(x[b * g + i]));
      const float step = amax / 127.0f;
      for (int64_t i = 0; i < g; ++i) {
        ASSERT_LE(std::fabs(back[b * g + i] - x[b * g + i]), 0.5f * step * 1.002f + 1e-7f)
            << "n=" << n << " i=" << b * g + i;
      }
    }
    EXPECT_EQ(back[0], 0.0f);
    // Pure: the same values give the same bytes.
    std::vector<uint8_t> again(row.size());
    StoreKvRow(again.data(), x.data(), n, DType::kQ8_0);
    EXPECT_EQ(row, again);
  }
}

}  // namespace
}  // namespace reprise::kernels
