// AVX2 + FMA + F16C version of the blocked online-softmax attention
// (kernels/attention.h), compiled with -mavx2 -mfma -mf16c. A 32-position tile
// is four YMM registers of scores; up to two query heads of one token share
// each K/V load.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/fp16.h"
#include "kernels/attention.h"
#include "kernels/kv_format.h"
#include "kernels/cpu/exp.inc.h"

namespace reprise::kernels::avx2 {

namespace {

constexpr int T = kAttentionTile;

// exp(x) for x <= 0; lanes outside `keep` are 0.
inline __m256 MaskedExp(__m256 keep, __m256 x) { return _mm256_and_ps(keep, Exp8(x)); }

inline float HorizontalMax(__m256 v) {
  __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_max_ps(x, _mm_movehl_ps(x, x));
  x = _mm_max_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

inline float HorizontalSum(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

// Lanes i < n of a vector of 8 (all-ones mask), as an integer mask.
inline __m256i TailMask(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::min<int64_t>(n, 8))), idx);
}

// n elements of a KV row as floats into dst (Q8_0: the reference's LoadKvRow).
inline void LoadRow(const uint8_t* src, DType type, int64_t n, float* dst) {
  int64_t i = 0;
  if (type == DType::kQ8_0) {
    // LoadKvRow's d * q, 8 lanes at a time (the same single multiply).
    const int64_t g = KvQ8Group(n);
    for (int64_t b = 0; b < n / g; ++b, src += 2 + g, dst += g) {
      uint16_t dh;
      std::memcpy(&dh, src, 2);
      const float d = Fp16ToFp32(dh);
      const __m256 vd = _mm256_set1_ps(d);
      const int8_t* q = reinterpret_cast<const int8_t*>(src + 2);
      int64_t k = 0;
      for (; k + 8 <= g; k += 8) {
        const __m256 v = _mm256_cvtepi32_ps(
            _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + k))));
        _mm256_storeu_ps(dst + k, _mm256_mul_ps(vd, v));
      }
      for (; k < g; ++k) dst[k] = d * static_cast<float>(q[k]);
    }
    return;
  } else if (type == DType::kF16) {
    const uint16_t* s = reinterpret_cast<const uint16_t*>(src);
    for (; i + 8 <= n; i += 8) {
      _mm256_storeu_ps(dst + i,
                       _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
    }
    for (; i < n; ++i) dst[i] = Fp16ToFp32(s[i]);
  } else {
    const float* s = reinterpret_cast<const float*>(src);
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_loadu_ps(s + i));
    for (; i < n; ++i) dst[i] = s[i];
  }
}

// One tile for NQ query heads of the same token (same valid-row count nv):
// scores, online-softmax update of (m, l) and o += P V.
template <int NQ>
inline void TileStep(const float* const* q, float* const* o, float* m, float* l, const float* kt,
                     const float* vs, int64_t dk, int64_t dv, float scale, int64_t nv, float* ps) {
  __m256 a[NQ][4];
  for (int k = 0; k < NQ; ++k) {
    for (int c = 0; c < 4; ++c) a[k][c] = _mm256_setzero_ps();
  }
  for (int64_t d = 0; d < dk; ++d) {
    const __m256 k0 = _mm256_loadu_ps(kt + d * T);
    const __m256 k1 = _mm256_loadu_ps(kt + d * T + 8);
    const __m256 k2 = _mm256_loadu_ps(kt + d * T + 16);
    const __m256 k3 = _mm256_loadu_ps(kt + d * T + 24);
    for (int k = 0; k < NQ; ++k) {
      const __m256 qd = _mm256_broadcast_ss(q[k] + d);
      a[k][0] = _mm256_fmadd_ps(qd, k0, a[k][0]);
      a[k][1] = _mm256_fmadd_ps(qd, k1, a[k][1]);
      a[k][2] = _mm256_fmadd_ps(qd, k2, a[k][2]);
      a[k][3] = _mm256_fmadd_ps(qd, k3, a[k][3]);
    }
  }
  __m256 valid[4];
  for (int c = 0; c < 4; ++c) {
    valid[c] = _mm256_castsi256_ps(TailMask(std::max<int64_t>(0, nv - 8 * c)));
  }
  const __m256 ninf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  const __m256 sc = _mm256_set1_ps(scale);
  float alpha[NQ];
  for (int k = 0; k < NQ; ++k) {
    __m256 s[4];
    for (int c = 0; c < 4; ++c) {
      s[c] = _mm256_blendv_ps(ninf, _mm256_mul_ps(a[k][c], sc), valid[c]);
    }
    const float bm =
        HorizontalMax(_mm256_max_ps(_mm256_max_ps(s[0], s[1]), _mm256_max_ps(s[2], s[3])));
    const float m_new = std::max(m[k], bm);
    alpha[k] = std::exp(m[k] - m_new);
    const __m256 mn = _mm256_set1_ps(m_new);
    __m256 pv[4];
    for (int c = 0; c < 4; ++c) {
      pv[c] = MaskedExp(valid[c], _mm256_sub_ps(s[c], mn));
      _mm256_storeu_ps(ps + k * T + 8 * c, pv[c]);
    }
    m[k] = m_new;
    l[k] = l[k] * alpha[k] +
           HorizontalSum(_mm256_add_ps(_mm256_add_ps(pv[0], pv[1]), _mm256_add_ps(pv[2], pv[3])));
  }
  for (int64_t i = 0; i < dv; i += 8) {
    const __m256i mk = TailMask(dv - i);
    __m256 acc[NQ];
    for (int k = 0; k < NQ; ++k) {
      acc[k] = _mm256_mul_ps(_mm256_maskload_ps(o[k] + i, mk), _mm256_set1_ps(alpha[k]));
    }
    for (int64_t j = 0; j < nv; ++j) {
      const __m256 v = _mm256_maskload_ps(vs + j * dv + i, mk);
      for (int k = 0; k < NQ; ++k) {
        acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(ps[k * T + j]), v, acc[k]);
      }
    }
    for (int k = 0; k < NQ; ++k) _mm256_maskstore_ps(o[k] + i, mk, acc[k]);
  }
}

}  // namespace

void Attend(const AttentionParams& p, const AttentionRun& run, AttentionScratch* scratch) {
  const int64_t dk = p.head_dim_k, dv = p.head_dim_v;
  const int64_t nh = run.head_end - run.head_begin;
  if (run.n_tok <= 0 || nh <= 0) return;
  const int64_t nq = run.n_tok * nh;
  float* kt = scratch->Get(T * dk + T * dv + 2 * nq + 2 * T + std::max(dk, dv) + 8);
  float* vs = kt + T * dk;  // [T][dv]
  float* m = vs + T * dv;   // [nq] running max
  float* l = m + nq;        // [nq] running sum
  float* ps = l + nq;       // [2][T] probabilities
  float* row = ps + 2 * T;  // one converted K row
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
        continue;
      }
      const int64_t pp = p0 + j;
      const uint8_t* kr = run.k_blocks[pp / bt] + (run.kv_head * bt + pp % bt) * kb;
      const uint8_t* vr = run.v_blocks[pp / bt] + (run.kv_head * bt + pp % bt) * vb;
      LoadRow(kr, p.kv_type, dk, row);
      for (int64_t d = 0; d < dk; ++d) kt[d * T + j] = row[d];
      LoadRow(vr, p.kv_type, dv, vs + j * dv);
    }
    for (int64_t t = 0; t < run.n_tok; ++t) {
      if (run.pos[t] < p0) continue;
      const int64_t nv = std::min<int64_t>(T, run.pos[t] + 1 - p0);
      const float* q[2];
      float* o[2];
      for (int64_t h = run.head_begin; h < run.head_end; h += 2) {
        const int nk = static_cast<int>(std::min<int64_t>(2, run.head_end - h));
        for (int k = 0; k < nk; ++k) {
          q[k] = run.q + t * run.q_stride + (h + k) * dk;
          o[k] = run.out + t * run.out_stride + (h + k) * dv;
        }
        const int64_t qi = t * nh + (h - run.head_begin);
        if (nk == 2) {
          TileStep<2>(q, o, m + qi, l + qi, kt, vs, dk, dv, p.scale, nv, ps);
        } else {
          TileStep<1>(q, o, m + qi, l + qi, kt, vs, dk, dv, p.scale, nv, ps);
        }
      }
    }
  }
  for (int64_t t = 0; t < run.n_tok; ++t) {
    for (int64_t h = run.head_begin; h < run.head_end; ++h) {
      const float li = l[t * nh + (h - run.head_begin)];
      float* o = run.out + t * run.out_stride + h * dv;
      for (int64_t i = 0; i < dv; ++i) o[i] = o[i] / li;
    }
  }
}

}  // namespace reprise::kernels::avx2
