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
#include "kernel_test_util.h"

namespace reprise::kernels {
namespace {

using testing::RandomFloats;

struct Shape {
  int64_t dk, dv, n_kv, group, ctx;
  int block_tokens;
  bool f16;
};

// A sequence's KV for one layer, in blocks scattered through a pool in
// shuffled order; rows past ctx hold NaN (never read unmasked).
struct TestKv {
  Shape s;
  AttentionParams p;
  std::vector<uint8_t> k_pool, v_pool;
  std::vector<const uint8_t*> k_blocks, v_blocks;
  int64_t k_row = 0, v_row = 0;  // elements of a full K / V row (all kv heads)
  std::vector<float> q;  // [ctx, n_heads * dk]

  explicit TestKv(const Shape& shape, uint32_t seed) : s(shape) {
    const int64_t n_heads = s.n_kv * s.group;
    p.head_dim_k = s.dk;
    p.head_dim_v = s.dv;
    k_row = s.n_kv * s.dk;
    v_row = s.n_kv * s.dv;
    p.block_tokens = s.block_tokens;
    p.f16 = s.f16;
    p.scale = 1.0f / std::sqrt(static_cast<float>(s.dk));
    const int64_t n_blocks = (s.ctx + s.block_tokens - 1) / s.block_tokens;
    const int64_t esz = s.f16 ? 2 : 4;
    const int64_t kb = s.block_tokens * k_row * esz, vb = s.block_tokens * v_row * esz;
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
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (int64_t b = 0; b < n_blocks; ++b) {
      uint8_t* kd = &k_pool[order[b] * kb];
      uint8_t* vd = &v_pool[order[b] * vb];
      k_blocks.push_back(kd);
      v_blocks.push_back(vd);
      for (int64_t r = 0; r < s.block_tokens; ++r) {
        const bool live = b * s.block_tokens + r < s.ctx;
        const int64_t base = b * s.block_tokens + r;
        for (int64_t i = 0; i < k_row; ++i)
          Store(kd, KIndex(r, i), live ? kf[base * k_row + i] : nan);
        for (int64_t i = 0; i < v_row; ++i)
          Store(vd, VIndex(r, i), live ? vf[base * v_row + i] : nan);
      }
    }
    q = RandomFloats(s.ctx * n_heads * s.dk, seed + 3);
  }
  // Element i of row r's full K (V) row in the head-major block layout
  // (kv/block_pool.h): head i / dk, at (head * block_tokens + r) * dk + i % dk.
  int64_t KIndex(int64_t r, int64_t i) const {
    return ((i / s.dk) * s.block_tokens + r) * s.dk + i % s.dk;
  }
  int64_t VIndex(int64_t r, int64_t i) const {
    return ((i / s.dv) * s.block_tokens + r) * s.dv + i % s.dv;
  }
  void Store(uint8_t* base, int64_t i, float f) const {
    if (s.f16) {
      reinterpret_cast<uint16_t*>(base)[i] = Fp32ToFp16(f);
    } else {
      reinterpret_cast<float*>(base)[i] = f;
    }
  }
  float Load(const uint8_t* base, int64_t i) const {
    return s.f16 ? Fp16ToFp32(reinterpret_cast<const uint16_t*>(base)[i])
                 : reinterpret_cast<const float*>(base)[i];
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
          const uint8_t* kb = k_blocks[pp / s.block_tokens];
          const int64_t r = pp % s.block_tokens;
          double acc = 0;
          for (int64_t d = 0; d < s.dk; ++d) {
            acc += static_cast<double>(qh[d]) * Load(kb, KIndex(r, kvh * s.dk + d));
          }
          sc[pp] = acc * p.scale;
          mx = std::max(mx, sc[pp]);
        }
        double sum = 0;
        for (int64_t pp = 0; pp <= t; ++pp) sum += (sc[pp] = std::exp(sc[pp] - mx));
        for (int64_t pp = 0; pp <= t; ++pp) {
          const uint8_t* vb = v_blocks[pp / s.block_tokens];
          const int64_t r = pp % s.block_tokens;
          for (int64_t i = 0; i < s.dv; ++i) {
            out[(t * nh + h) * s.dv + i] += sc[pp] / sum * Load(vb, VIndex(r, kvh * s.dv + i));
          }
        }
      }
    }
    return out;
  }
};

const Shape kShapes[] = {
    {64, 64, 4, 8, 77, 32, true},    {64, 64, 4, 8, 77, 32, false}, {128, 128, 2, 4, 100, 32, true},
    {128, 128, 2, 4, 65, 32, false}, {32, 32, 3, 1, 45, 32, true},  {32, 32, 3, 1, 33, 32, false},
    {64, 64, 1, 8, 1, 32, true},     {40, 24, 2, 3, 70, 16, false}, {64, 64, 2, 5, 90, 48, true},
    {128, 128, 1, 8, 300, 32, true},
};

std::string Describe(const Shape& s) {
  return "dk=" + std::to_string(s.dk) + " dv=" + std::to_string(s.dv) +
         " n_kv=" + std::to_string(s.n_kv) + " group=" + std::to_string(s.group) +
         " ctx=" + std::to_string(s.ctx) + " bt=" + std::to_string(s.block_tokens) +
         (s.f16 ? " f16" : " f32");
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

}  // namespace
}  // namespace reprise::kernels
