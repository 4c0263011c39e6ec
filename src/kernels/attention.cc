// Scalar reference of the blocked online-softmax attention (kernels/attention.h)
// and the run-time dispatch to the SIMD versions.
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/cpu_features.h"
#include "core/fp16.h"
#include "kernels/kv_format.h"

namespace reprise::kernels {

namespace ref {

void Attend(const AttentionParams& p, const AttentionRun& run, AttentionScratch* scratch) {
  constexpr int T = kAttentionTile;
  const int64_t dk = p.head_dim_k, dv = p.head_dim_v;
  const int64_t nh = run.head_end - run.head_begin;
  if (run.n_tok <= 0 || nh <= 0) return;
  const int64_t nq = run.n_tok * nh;
  float* kt = scratch->Get(T * dk + T * dv + 2 * nq + T + dk);
  float* vs = kt + T * dk;  // [T][dv]
  float* m = vs + T * dv;   // [nq] running max
  float* l = m + nq;        // [nq] running sum
  float* s = l + nq;        // [T] scores / probabilities of one query
  float* krow = s + T;      // [dk] one K row as floats
  int32_t max_pos = 0;
  for (int64_t t = 0; t < run.n_tok; ++t) max_pos = std::max(max_pos, run.pos[t]);
  for (int64_t t = 0; t < run.n_tok; ++t) {
    for (int64_t h = run.head_begin; h < run.head_end; ++h) {
      float* o = run.out + t * run.out_stride + h * dv;
      std::fill(o, o + dv, 0.0f);
    }
  }
  std::fill(m, m + nq, -std::numeric_limits<float>::infinity());
  std::fill(l, l + nq, 0.0f);
  const int64_t kb = KRowBytes(p), vb = VRowBytes(p);
  const int bt = p.block_tokens;
  for (int64_t p0 = 0; p0 <= max_pos; p0 += T) {
    const int64_t rows = std::min<int64_t>(T, max_pos + 1 - p0);
    for (int64_t j = 0; j < T; ++j) {
      if (j >= rows) {
        for (int64_t d = 0; d < dk; ++d) kt[d * T + j] = 0.0f;
        for (int64_t i = 0; i < dv; ++i) vs[j * dv + i] = 0.0f;
        continue;
      }
      const int64_t pp = p0 + j;
      const uint8_t* kr = run.k_blocks[pp / bt] + (run.kv_head * bt + pp % bt) * kb;
      const uint8_t* vr = run.v_blocks[pp / bt] + (run.kv_head * bt + pp % bt) * vb;
      LoadKvRow(kr, dk, p.kv_type, krow);
      for (int64_t d = 0; d < dk; ++d) kt[d * T + j] = krow[d];
      LoadKvRow(vr, dv, p.kv_type, vs + j * dv);
    }
    for (int64_t t = 0; t < run.n_tok; ++t) {
      if (run.pos[t] < p0) continue;
      const int64_t nv = std::min<int64_t>(T, run.pos[t] + 1 - p0);
      for (int64_t h = run.head_begin; h < run.head_end; ++h) {
        const float* q = run.q + t * run.q_stride + h * dk;
        const int64_t qi = t * nh + (h - run.head_begin);
        float bm = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < nv; ++j) {
          float acc = 0.0f;
          for (int64_t d = 0; d < dk; ++d) acc = std::fma(q[d], kt[d * T + j], acc);
          s[j] = acc * p.scale;
          bm = std::max(bm, s[j]);
        }
        const float m_new = std::max(m[qi], bm);
        const float alpha = std::exp(m[qi] - m_new);
        float sum = 0.0f;
        for (int64_t j = 0; j < nv; ++j) {
          s[j] = std::exp(s[j] - m_new);
          sum += s[j];
        }
        m[qi] = m_new;
        l[qi] = l[qi] * alpha + sum;
        float* o = run.out + t * run.out_stride + h * dv;
        for (int64_t i = 0; i < dv; ++i) {
          float acc = o[i] * alpha;
          for (int64_t j = 0; j < nv; ++j) acc = std::fma(s[j], vs[j * dv + i], acc);
          o[i] = acc;
        }
      }
    }
  }
  for (int64_t t = 0; t < run.n_tok; ++t) {
    for (int64_t h = run.head_begin; h < run.head_end; ++h) {
      const int64_t qi = t * nh + (h - run.head_begin);
      float* o = run.out + t * run.out_stride + h * dv;
      for (int64_t i = 0; i < dv; ++i) o[i] = o[i] / l[qi];
    }
  }
}

}  // namespace ref

// The best version this CPU runs. One choice per process: the versions
// differ in their last bits.
void Attend(const AttentionParams& p, const AttentionRun& run, AttentionScratch* scratch) {
  static const int level = GetCpuFeatures().avx512 ? 2 : GetCpuFeatures().avx2 ? 1 : 0;
  if (level == 2) return avx512::Attend(p, run, scratch);
  if (level == 1) return avx2::Attend(p, run, scratch);
  ref::Attend(p, run, scratch);
}

}  // namespace reprise::kernels
