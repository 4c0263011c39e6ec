// AVX-512 version of the blocked online-softmax attention (kernels/attention.h),
// compiled with -mavx512f/bw/vl/dq. A 32-position tile is two ZMM registers of
// scores; up to four query heads of one token share each K/V load. A tile's K
// rows are transposed 16 x 16 in registers, and the next tile's rows are
// prefetched (KV blocks are scattered, and a decode step reads them once).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/fp16.h"
#include "kernels/attention.h"
#include "kernels/kv_format.h"
#include "kernels/cpu/exp.inc.h"

namespace reprise::kernels::avx512 {

namespace {

constexpr int T = kAttentionTile;

// exp(x) for x <= 0 (the polynomial of cpu/exp.inc.h, about 1 ulp; clamped at
// -104 and scaled with vscalefps, so results keep going down into the
// denormal range); lanes outside `keep` are 0.
inline __m512 MaskedExp(__mmask16 keep, __m512 x) {
  __m512 n;
  const __m512 y = ExpMantissa16(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), &n);
  return _mm512_maskz_scalef_ps(keep, y, n);
}

inline __mmask16 TailMask(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1);
}

// n elements of a KV row as floats into dst (Q8_0: the reference's LoadKvRow).
inline void LoadRow(const uint8_t* src, DType type, int64_t n, float* dst) {
  if (type == DType::kQ8_0) {
    // LoadKvRow's d * q, 16 lanes at a time (the same single multiply: the
    // same bits).
    const int64_t g = KvQ8Group(n);
    for (int64_t b = 0; b < n / g; ++b, src += 2 + g, dst += g) {
      uint16_t dh;
      std::memcpy(&dh, src, 2);
      const float d = Fp16ToFp32(dh);
      const __m512 vd = _mm512_set1_ps(d);
      const int8_t* q = reinterpret_cast<const int8_t*>(src + 2);
      int64_t i = 0;
      for (; i + 16 <= g; i += 16) {
        const __m512 v = _mm512_cvtepi32_ps(
            _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + i))));
        _mm512_storeu_ps(dst + i, _mm512_mul_ps(vd, v));
      }
      for (; i < g; ++i) dst[i] = d * static_cast<float>(q[i]);
    }
    return;
  }
  const bool f16 = type == DType::kF16;
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 mk = TailMask(n - i);
    __m512 v;
    if (f16) {
      v = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk, reinterpret_cast<const uint16_t*>(src) + i));
    } else {
      v = _mm512_maskz_loadu_ps(mk, reinterpret_cast<const float*>(src) + i);
    }
    _mm512_mask_storeu_ps(dst + i, mk, v);
  }
}

// In-register transpose of a 16 x 16 float matrix (r[i] = row i on entry,
// column i on exit).
inline void Transpose16(__m512 r[16]) {
  __m512 t[16];
  #pragma GCC unroll 16
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  auto lo = [](__m512 a, __m512 b) {
    return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
  };
  auto hi = [](__m512 a, __m512 b) {
    return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
  };
  // u[4i + c], 128-bit lane L: rows 4i..4i+3 of column c + 4L.
  __m512 u[16];
  #pragma GCC unroll 16
  for (int i = 0; i < 4; ++i) {
    u[4 * i] = lo(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = hi(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = lo(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = hi(t[4 * i + 1], t[4 * i + 3]);
  }
  #pragma GCC unroll 16
  for (int c = 0; c < 4; ++c) {
    const __m512 a = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44);
    const __m512 b = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xEE);
    const __m512 e = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44);
    const __m512 f = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xEE);
    r[c] = _mm512_shuffle_f32x4(a, e, 0x88);
    r[c + 4] = _mm512_shuffle_f32x4(a, e, 0xDD);
    r[c + 8] = _mm512_shuffle_f32x4(b, f, 0x88);
    r[c + 12] = _mm512_shuffle_f32x4(b, f, 0xDD);
  }
}

// Up to 16 elements (mask mk) of a KV row as floats; zeros elsewhere.
inline __m512 LoadChunk(const uint8_t* src, bool f16, __mmask16 mk) {
  if (f16) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk, src));
  return _mm512_maskz_loadu_ps(mk, src);
}

inline void PrefetchRow(const uint8_t* p, int64_t bytes) {
  for (int64_t b = 0; b < bytes; b += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(p + b), _MM_HINT_T0);
  }
}

// Converts the tile of positions [p0, p0 + rows) for kv head `kv_head`: K
// transposed into kt [dk][T] (zero for rows >= rows) and V into vs [T][dv].
// Prefetches the next tile's rows while the memory system is otherwise idle.
// kq: scratch for 16 K rows as floats (Q8_0 rows are dequantized there first).
inline void LoadTile(const AttentionParams& p, const AttentionRun& run, int64_t p0, int64_t rows,
                     int64_t next_rows, float* kt, float* vs, float* kq) {
  const int64_t dk = p.head_dim_k, dv = p.head_dim_v;
  const bool q8 = p.kv_type == DType::kQ8_0;
  const bool f16 = p.kv_type == DType::kF16;
  const int64_t esz = f16 ? 2 : 4;  // of the rows LoadChunk reads (Q8_0: kq's floats)
  const int64_t kb = KRowBytes(p), vb = VRowBytes(p);
  const int bt = p.block_tokens;
  auto k_row = [&](int64_t pp) {
    return run.k_blocks[pp / bt] + (run.kv_head * bt + pp % bt) * kb;
  };
  auto v_row = [&](int64_t pp) {
    return run.v_blocks[pp / bt] + (run.kv_head * bt + pp % bt) * vb;
  };
  for (int64_t j = 0; j < next_rows; ++j) {
    PrefetchRow(k_row(p0 + T + j), kb);
    PrefetchRow(v_row(p0 + T + j), vb);
  }
  for (int64_t j0 = 0; j0 < T; j0 += 16) {
    const uint8_t* src[16];
    #pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) src[i] = j0 + i < rows ? k_row(p0 + j0 + i) : nullptr;
    if (q8) {
      for (int i = 0; i < 16; ++i) {
        if (src[i] == nullptr) continue;
        LoadRow(src[i], p.kv_type, dk, kq + i * dk);
        src[i] = reinterpret_cast<const uint8_t*>(kq + i * dk);
      }
    }
    for (int64_t d0 = 0; d0 < dk; d0 += 16) {
      const __mmask16 mk = TailMask(dk - d0);
      __m512 r[16];
      #pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) {
        r[i] = src[i] != nullptr ? LoadChunk(src[i] + d0 * esz, f16, mk) : _mm512_setzero_ps();
      }
      Transpose16(r);
      const int64_t nd = std::min<int64_t>(16, dk - d0);
      for (int64_t i = 0; i < nd; ++i) _mm512_storeu_ps(kt + (d0 + i) * T + j0, r[i]);
    }
  }
  for (int64_t j = 0; j < rows; ++j) LoadRow(v_row(p0 + j), p.kv_type, dv, vs + j * dv);
}

// o[k][i0 + c] = o[k][i0 + c] * alpha[k] + sum_j p[k][j] * V[j][i0 + c] for NC
// 16-wide chunks c (the last one masked to `rem` columns), accumulators kept
// in registers across the nv rows.
template <int NQ, int NC>
inline void AccumulatePv(float* const* o, const float* alpha, const float* ps, const float* vs,
                         int64_t dv, int64_t rem, int64_t nv, int64_t i0) {
  __mmask16 mk[NC];
  #pragma GCC unroll 16
  for (int c = 0; c < NC; ++c) mk[c] = TailMask(rem - 16 * c);
  __m512 acc[NQ][NC];
  #pragma GCC unroll 16
  for (int k = 0; k < NQ; ++k) {
    const __m512 a = _mm512_set1_ps(alpha[k]);
    #pragma GCC unroll 16
    for (int c = 0; c < NC; ++c) {
      acc[k][c] = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk[c], o[k] + i0 + 16 * c), a);
    }
  }
  for (int64_t j = 0; j < nv; ++j) {
    #pragma GCC unroll 16
    for (int c = 0; c < NC; ++c) {
      const __m512 v = _mm512_maskz_loadu_ps(mk[c], vs + j * dv + 16 * c);
      #pragma GCC unroll 16
      for (int k = 0; k < NQ; ++k) {
        acc[k][c] = _mm512_fmadd_ps(_mm512_set1_ps(ps[k * T + j]), v, acc[k][c]);
      }
    }
  }
  #pragma GCC unroll 16
  for (int k = 0; k < NQ; ++k) {
    #pragma GCC unroll 16
    for (int c = 0; c < NC; ++c) _mm512_mask_storeu_ps(o[k] + i0 + 16 * c, mk[c], acc[k][c]);
  }
}

// One tile for NQ query heads of the same token (same valid-row count nv):
// scores, online-softmax update of (m, l) and o += P V.
template <int NQ>
inline void TileStep(const float* const* q, float* const* o, float* m, float* l, const float* kt,
                     const float* vs, int64_t dk, int64_t dv, float scale, int64_t nv, float* ps) {
  __m512 a0[NQ], a1[NQ];
  #pragma GCC unroll 16
  for (int k = 0; k < NQ; ++k) a0[k] = a1[k] = _mm512_setzero_ps();
  for (int64_t d = 0; d < dk; ++d) {
    const __m512 k0 = _mm512_loadu_ps(kt + d * T);
    const __m512 k1 = _mm512_loadu_ps(kt + d * T + 16);
    #pragma GCC unroll 16
    for (int k = 0; k < NQ; ++k) {
      const __m512 qd = _mm512_set1_ps(q[k][d]);
      a0[k] = _mm512_fmadd_ps(qd, k0, a0[k]);
      a1[k] = _mm512_fmadd_ps(qd, k1, a1[k]);
    }
  }
  const __mmask16 v0 = TailMask(nv), v1 = TailMask(nv - 16 > 0 ? nv - 16 : 0);
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const __m512 sc = _mm512_set1_ps(scale);
  __m512 s0[NQ], s1[NQ];
  alignas(64) float m_new[16] = {};
  #pragma GCC unroll 16
  for (int k = 0; k < NQ; ++k) {
    s0[k] = _mm512_mask_blend_ps(v0, ninf, _mm512_mul_ps(a0[k], sc));
    s1[k] = _mm512_mask_blend_ps(v1, ninf, _mm512_mul_ps(a1[k], sc));
    m_new[k] = std::max(m[k], _mm512_reduce_max_ps(_mm512_max_ps(s0[k], s1[k])));
  }
  // The rescale factors of all NQ heads in one vector exp (lane k: head k;
  // each lane on its own, so a head's bits do not depend on the others). The
  // first tile has m = -inf: alpha is then ~0 (the clamp) and multiplies the
  // zero o and l.
  const __mmask16 heads = static_cast<__mmask16>((1u << NQ) - 1);
  const __m512 mnv = _mm512_load_ps(m_new);
  alignas(64) float alpha[16];
  _mm512_store_ps(alpha, MaskedExp(heads, _mm512_sub_ps(_mm512_mask_loadu_ps(mnv, heads, m), mnv)));
  #pragma GCC unroll 16
  for (int k = 0; k < NQ; ++k) {
    const __m512 mn = _mm512_set1_ps(m_new[k]);
    const __m512 p0 = MaskedExp(v0, _mm512_sub_ps(s0[k], mn));
    const __m512 p1 = MaskedExp(v1, _mm512_sub_ps(s1[k], mn));
    m[k] = m_new[k];
    l[k] = l[k] * alpha[k] + _mm512_reduce_add_ps(_mm512_add_ps(p0, p1));
    _mm512_storeu_ps(ps + k * T, p0);
    _mm512_storeu_ps(ps + k * T + 16, p1);
  }
  for (int64_t i = 0; i < dv; i += 64) {
    switch (std::min<int64_t>(4, (dv - i + 15) / 16)) {
      case 4:
        AccumulatePv<NQ, 4>(o, alpha, ps, vs + i, dv, dv - i, nv, i);
        break;
      case 3:
        AccumulatePv<NQ, 3>(o, alpha, ps, vs + i, dv, dv - i, nv, i);
        break;
      case 2:
        AccumulatePv<NQ, 2>(o, alpha, ps, vs + i, dv, dv - i, nv, i);
        break;
      default:
        AccumulatePv<NQ, 1>(o, alpha, ps, vs + i, dv, dv - i, nv, i);
        break;
    }
  }
}

}  // namespace

void Attend(const AttentionParams& p, const AttentionRun& run, AttentionScratch* scratch) {
  const int64_t dk = p.head_dim_k, dv = p.head_dim_v;
  const int64_t nh = run.head_end - run.head_begin;
  if (run.n_tok <= 0 || nh <= 0) return;
  const int64_t nq = run.n_tok * nh;
  float* kt = scratch->Get(T * dk + T * dv + 2 * nq + 4 * T + 16 * dk);
  float* vs = kt + T * dk;  // [T][dv]
  float* m = vs + T * dv;   // [nq] running max
  float* l = m + nq;        // [nq] running sum
  float* ps = l + nq;       // [4][T] probabilities
  float* kq = ps + 4 * T;   // [16][dk] Q8_0 K rows as floats
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
  for (int64_t p0 = 0; p0 <= max_pos; p0 += T) {
    const int64_t rows = std::min<int64_t>(T, max_pos + 1 - p0);
    const int64_t next_rows = std::clamp<int64_t>(max_pos + 1 - (p0 + T), 0, T);
    LoadTile(p, run, p0, rows, next_rows, kt, vs, kq);
    for (int64_t t = 0; t < run.n_tok; ++t) {
      if (run.pos[t] < p0) continue;
      const int64_t nv = std::min<int64_t>(T, run.pos[t] + 1 - p0);
      const float* q[4];
      float* o[4];
      for (int64_t h = run.head_begin; h < run.head_end; h += 4) {
        const int nk = static_cast<int>(std::min<int64_t>(4, run.head_end - h));
        for (int k = 0; k < nk; ++k) {
          q[k] = run.q + t * run.q_stride + (h + k) * dk;
          o[k] = run.out + t * run.out_stride + (h + k) * dv;
        }
        const int64_t qi = t * nh + (h - run.head_begin);
        switch (nk) {
          case 4:
            TileStep<4>(q, o, m + qi, l + qi, kt, vs, dk, dv, p.scale, nv, ps);
            break;
          case 3:
            TileStep<3>(q, o, m + qi, l + qi, kt, vs, dk, dv, p.scale, nv, ps);
            break;
          case 2:
            TileStep<2>(q, o, m + qi, l + qi, kt, vs, dk, dv, p.scale, nv, ps);
            break;
          default:
            TileStep<1>(q, o, m + qi, l + qi, kt, vs, dk, dv, p.scale, nv, ps);
            break;
        }
      }
    }
  }
  for (int64_t t = 0; t < run.n_tok; ++t) {
    for (int64_t h = run.head_begin; h < run.head_end; ++h) {
      const __m512 lv = _mm512_set1_ps(l[t * nh + (h - run.head_begin)]);
      float* o = run.out + t * run.out_stride + h * dv;
      for (int64_t i = 0; i < dv; i += 16) {
        const __mmask16 mk = TailMask(dv - i);
        _mm512_mask_storeu_ps(o + i, mk, _mm512_div_ps(_mm512_maskz_loadu_ps(mk, o + i), lv));
      }
    }
  }
}

}  // namespace reprise::kernels::avx512
