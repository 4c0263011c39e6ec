// AVX-512 micro-kernels, shared by matmul_avx512.cc (kVnni = false: the int8
// dot products use vpmaddubsw + vpmaddwd) and matmul_vnni.cc (kVnni = true:
// vpdpbusd / vpdpwssd). Everything lives in an anonymous namespace, so each
// including file gets its own copy compiled with its own flags.
//
// Each micro-kernel computes an R-row x T-token tile over the whole reduction.
// The operations applied to one (row, token) accumulator are the same for
// every R and T (GEMV is the T = 1 case), and the final reduction is fixed, so
// results are bitwise independent of the tiling (matmul_internal.h).
//
// Per-type integer formulations (all exact in int32):
//  Q8_0 (vnni):  dot(w ^ 0x80 as u8, a) - 128 * sum(a)
//  Q8_0 (plain): dot(|w|, sign(a, w))            (vpmaddubsw would saturate on w + 128)
//  Q4_0:         dot(q as u8, a) - 8 * sum(a)
//  Q4_K:         sum_j sc_j * dot_j(q, a)  and  sum_j m_j * asum_j
//  Q6_K:         sum_j sc_j * dot_j(q, a) - 32 * sum_j sc_j * asum_j
// The block correction terms enter the int32 accumulator (lane 0 of each
// block), so one convert + one FMA per block (per super-block for K-quants)
// turns the tile into float.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "core/check.h"
#include "kernels/cpu/tile_loop.inc.h"
#include "kernels/matmul_internal.h"

namespace reprise::kernels {
namespace {

// ---------------------------------------------------------------- helpers

inline __m512i DotU8S8(__m512i acc, __m512i u, __m512i s) {
#if REPRISE_VNNI
  return _mm512_dpbusd_epi32(acc, u, s);
#else
  const __m512i p = _mm512_maddubs_epi16(u, s);
  return _mm512_add_epi32(acc, _mm512_madd_epi16(p, _mm512_set1_epi16(1)));
#endif
}

inline __m512i DotI16(__m512i acc, __m512i a, __m512i b) {
#if REPRISE_VNNI
  return _mm512_dpwssd_epi32(acc, a, b);
#else
  return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b));
#endif
}

// Software prefetch distance for streamed weights (GEMV is memory-bound and
// each row is only a few KiB: too short for the hardware prefetcher to ramp).
// Measured on Zen 5 (GEMV, cold weights): 2 panels ahead beats in-row
// distances of 1-4 KiB; more panels, L2 hints or extra bytes change nothing.
constexpr int kPrefetchPanels = 2;
// Prefetch target: the same offset `kPrefetchPanels` row panels ahead.
inline int64_t PrefetchOffset(const GemmArgs& a, int rows) {
  return kPrefetchPanels * rows * a.w_stride;
}

inline float Fp16Scalar(uint16_t h) { return _cvtsh_ss(h); }

// Zeroes the float accumulators of an R x T tile.
template <int R, int T>
__attribute__((always_inline)) inline void ZeroTile(__m512 (&acc)[R][T]) {
  REPRISE_UNROLL
  for (int r = 0; r < R; ++r) {
    REPRISE_UNROLL
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  }
}

// Lane l of the result = the sum of v[l]'s 16 lanes, added in exactly the
// order of _mm512_reduce_add_ps ((lo256 + hi256), then 128-bit halves, then
// (x0 + x2) + (x1 + x3)), so results are bitwise those of 16 separate
// reductions, for 45 instructions instead of ~130.
inline __m512 ReduceLanes16(const __m512 (&v)[16]) {
  // Level by level the lanes get permuted; feeding the inputs in this order
  // (an involution) leaves sum(v[l]) in lane l.
  constexpr int kIn[16] = {0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15};
  __m512 t[8], u[4], w[2];
  REPRISE_UNROLL
  for (int i = 0; i < 8; ++i) {  // [v_i 256-bit half-sums | v_i+8 half-sums]
    const __m512 a = v[kIn[i]], b = v[kIn[i + 8]];
    t[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0xEE), _mm512_shuffle_f32x4(a, b, 0x44));
  }
  REPRISE_UNROLL
  for (int i = 0; i < 4; ++i) {  // 128-bit quarters: sums of 4 lanes
    u[i] = _mm512_add_ps(_mm512_shuffle_f32x4(t[i], t[i + 4], 0xDD),
                         _mm512_shuffle_f32x4(t[i], t[i + 4], 0x88));
  }
  REPRISE_UNROLL
  for (int i = 0; i < 2; ++i) {  // (x0 + x2), (x1 + x3) in each quarter
    w[i] = _mm512_add_ps(_mm512_shuffle_ps(u[i], u[i + 2], 0x44),
                         _mm512_shuffle_ps(u[i], u[i + 2], 0xEE));
  }
  return _mm512_add_ps(_mm512_shuffle_ps(w[0], w[1], 0x88), _mm512_shuffle_ps(w[0], w[1], 0xDD));
}

// y[tok + t, row + r] = the sum of acc[r][t]'s lanes (the fixed final
// reduction of every micro-kernel). kButterfly: one ReduceLanes16 for a
// 16-accumulator tile, measured +6% on the int8 GEMM tiles (their loop leaves
// the shuffle pipes idle) and -5% on the F16 ones, which keep the per-vector
// reductions; both give the same bits.
template <bool kButterfly = false, int R, int T>
__attribute__((always_inline)) inline void StoreTile(const GemmArgs& a, int64_t row, int64_t tok,
                                                     const __m512 (&acc)[R][T]) {
  if constexpr (kButterfly && R * T == 16) {
    __m512 v[16];
    REPRISE_UNROLL
    for (int i = 0; i < 16; ++i) v[i] = acc[i % R][i / R];
    alignas(64) float sums[16];
    _mm512_store_ps(sums, ReduceLanes16(v));
    REPRISE_UNROLL
    for (int t = 0; t < T; ++t) std::memcpy(&a.y[(tok + t) * a.ldy + row], &sums[t * R], R * 4);
  } else {
    REPRISE_UNROLL
    for (int t = 0; t < T; ++t) {
      REPRISE_UNROLL
      for (int r = 0; r < R; ++r) a.y[(tok + t) * a.ldy + row + r] = _mm512_reduce_add_ps(acc[r][t]);
    }
  }
}

// ---------------------------------------------------------------- float weights

enum class FloatKind { kF32, kF16, kBF16 };

template <FloatKind kKind>
inline __m512 LoadW(const uint8_t* row, int64_t c, __mmask16 m) {
  if constexpr (kKind == FloatKind::kF32) {
    return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(row) + c);
  } else if constexpr (kKind == FloatKind::kF16) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(row) + c));
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(row) + c);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

template <FloatKind kKind>
struct FloatTile {
  template <int R, int T>
  struct K {
    static void Run(const GemmArgs& a, int64_t row, int64_t tok) {
      const uint8_t* w[R];
      REPRISE_UNROLL
      for (int r = 0; r < R; ++r) w[r] = a.w + (row + r) * a.w_stride;
      const float* x[T];
      REPRISE_UNROLL
      for (int t = 0; t < T; ++t) x[t] = a.x + (tok + t) * a.cols;
      __m512 acc[R][T];
      ZeroTile(acc);
      int64_t c = 0;
      const int64_t pf = PrefetchOffset(a, R);
      for (; c + 16 <= a.cols; c += 16) {
        REPRISE_UNROLL
        for (int r = 0; r < R; ++r) {
          const uint8_t* p = w[r] + c * (kKind == FloatKind::kF32 ? 4 : 2);
          _mm_prefetch(reinterpret_cast<const char*>(p + pf), _MM_HINT_T0);
        }
        __m512 wv[R];
        REPRISE_UNROLL
        for (int r = 0; r < R; ++r) wv[r] = LoadW<kKind>(w[r], c, 0xFFFF);
        REPRISE_UNROLL
        for (int t = 0; t < T; ++t) {
          const __m512 xv = _mm512_loadu_ps(x[t] + c);
          REPRISE_UNROLL
          for (int r = 0; r < R; ++r) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
        }
      }
      if (c < a.cols) {
        const __mmask16 m = static_cast<__mmask16>((1u << (a.cols - c)) - 1);
        __m512 wv[R];
        REPRISE_UNROLL
        for (int r = 0; r < R; ++r) wv[r] = LoadW<kKind>(w[r], c, m);
        REPRISE_UNROLL
        for (int t = 0; t < T; ++t) {
          const __m512 xv = _mm512_maskz_loadu_ps(m, x[t] + c);
          REPRISE_UNROLL
          for (int r = 0; r < R; ++r) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
        }
      }
      StoreTile(a, row, tok, acc);
    }
  };
};

template <FloatKind kKind>
void GemmFloat(const GemmArgs& a, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  TileLoop<4, 4, FloatTile<kKind>::template K>(a, r0, r1, t0, t1);
}

// F16 weights repacked into 8-row panels (packed.h kF16x8): per group of 32
// values, 64 bytes a row, the panel's 8 rows side by side, so a decode step
// streams the matrix sequentially (in place, 8 rows are 8 streams 4 KiB apart
// for a 2048-wide matrix: +22% measured on one Zen 5 core). Per (row, token)
// lane i accumulates columns i, i + 16, i + 32, ... in order, exactly as
// FloatTile does, so results are the bits of the in-place kernel.
struct F16PanelTile {
  static constexpr PanelGroupLayout kG = MakePanelGroupLayout(PackedLayout::kF16x8);
  // Prefetch distance on the sequential stream: 8 panel-groups (4 KiB).
  static constexpr int64_t kPrefetch = 8 * kG.bytes;

  template <int R, int T>
  struct K {
    static void Run(const GemmArgs& a, int64_t row, int64_t tok) {
      const int i0 = static_cast<int>(row % kPanelRows);
      const uint8_t* panel = a.w + (row / kPanelRows) * a.w_stride;
      const int64_t n_groups = (a.cols + 31) / 32;
      const float* x[T];
      REPRISE_UNROLL
      for (int t = 0; t < T; ++t) x[t] = a.x + (tok + t) * a.cols;
      __m512 acc[R][T];
      ZeroTile(acc);
      for (int64_t g = 0; g < n_groups; ++g) {
        const uint8_t* q = panel + g * kG.bytes + kG.qs + i0 * kG.qs_row;
        if (T == 1 || a.stream_weights) {  // decode: the weights stream from memory once
          REPRISE_UNROLL
          for (int j = 0; j < R * kG.qs_row / 64; ++j) {
            _mm_prefetch(reinterpret_cast<const char*>(q + kPrefetch + 64 * j), _MM_HINT_T0);
          }
        }
        // Columns 32g.. of the activations; past the row's end (zero
        // weights) they must not be read: masked.
        const int64_t left = a.cols - 32 * g;
        const __mmask16 m0 = left >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << left) - 1);
        const __mmask16 m1 =
            left >= 32 ? 0xFFFF : left <= 16 ? 0 : static_cast<__mmask16>((1u << (left - 16)) - 1);
        __m512 w0[R], w1[R];
        REPRISE_UNROLL
        for (int r = 0; r < R; ++r) {
          const uint8_t* p = q + r * kG.qs_row;
          w0[r] = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(p)));
          w1[r] = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(p + 32)));
        }
        REPRISE_UNROLL
        for (int t = 0; t < T; ++t) {
          const __m512 x0 = _mm512_maskz_loadu_ps(m0, x[t] + 32 * g);
          REPRISE_UNROLL
          for (int r = 0; r < R; ++r) acc[r][t] = _mm512_fmadd_ps(w0[r], x0, acc[r][t]);
          if (m1 != 0) {
            const __m512 x1 = _mm512_maskz_loadu_ps(m1, x[t] + 32 * g + 16);
            REPRISE_UNROLL
            for (int r = 0; r < R; ++r) acc[r][t] = _mm512_fmadd_ps(w1[r], x1, acc[r][t]);
          }
        }
      }
      StoreTile(a, row, tok, acc);
    }
  };
};

void GemmF16Panels(const GemmArgs& a, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  CHECK(r0 % kPanelRows == 0);  // tiles of 8 and 4 rows then never straddle a panel
  if (t1 - t0 == 1) return TileLoop<8, 1, F16PanelTile::K>(a, r0, r1, t0, t1);
  TileLoop<4, 4, F16PanelTile::K>(a, r0, r1, t0, t1);
}

// ---------------------------------------------------------------- Q8_0 / Q4_0

// Act32 helpers: per pair of blocks (2k, 2k+1), lanes 0-7 belong to block 2k
// and lanes 8-15 to block 2k+1.
inline __m512 PairScale(float d0, float d1) {
  return _mm512_insertf32x8(_mm512_set1_ps(d0), _mm256_set1_ps(d1), 1);
}

// Correction -k * sum placed in lanes 0 and 8 (the rest zero).
inline __m512i PairCorrection(const int32_t* sums, int shift, bool pair) {
  const __m512i s =
      pair ? _mm512_castsi128_si512(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sums)))
           : _mm512_castsi128_si512(_mm_cvtsi32_si128(sums[0]));
  const __m512i neg = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(s, shift));
  const __m512i idx = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_maskz_permutexvar_epi32(0x0101, idx, neg);
}

// kQ8 = true: Q8_0 weights; false: Q4_0.
template <bool kQ8>
struct Q32Tile {
  using Block = std::conditional_t<kQ8, BlockQ8_0, BlockQ4_0>;
#if REPRISE_VNNI
  static constexpr bool kSignTrick = false;
#else
  static constexpr bool kSignTrick = kQ8;
#endif
  static constexpr int kShift = kQ8 ? 7 : 3;  // correction 128 * sum or 8 * sum

  // Weights of blocks b (and b + 1 when pair) as u8 (or |w| for the sign trick).
  static inline __m512i LoadWeights(const Block* blk, bool pair, __m512i* sign_src) {
    if constexpr (kQ8) {
      const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk[0].qs));
      const __m256i hi = pair ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk[1].qs))
                              : _mm256_setzero_si256();
      const __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
      if constexpr (kSignTrick) {
        *sign_src = w;
        return _mm512_abs_epi8(w);
      } else {
        const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
        // Flip only the valid half so a missing block stays all zero.
        return _mm512_mask_xor_epi64(w, pair ? 0xFF : 0x0F, w, flip);
      }
    } else {
      const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk[0].qs));
      const __m128i q1 =
          pair ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk[1].qs)) : _mm_setzero_si128();
      // [q0, q0, q1, q1] -> [lo(q0), hi(q0), lo(q1), hi(q1)]
      const __m512i dup =
          _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_broadcastsi128_si256(q0)),
                             _mm256_broadcastsi128_si256(q1), 1);
      const __m512i shifts = _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0);
      const __m512i w = _mm512_and_si512(_mm512_srlv_epi64(dup, shifts), _mm512_set1_epi8(0x0F));
      return pair ? w : _mm512_maskz_mov_epi64(0x0F, w);
    }
  }

  template <int R, int T>
  struct K {
    static void Run(const GemmArgs& a, int64_t row, int64_t tok) {
      const ActRowLayout& l = a.act_layout;
      const int64_t pf = PrefetchOffset(a, R);
      const Block* w[R];
      REPRISE_UNROLL
      for (int r = 0; r < R; ++r)
        w[r] = reinterpret_cast<const Block*>(a.w + (row + r) * a.w_stride);
      const uint8_t* act[T];
      REPRISE_UNROLL
      for (int t = 0; t < T; ++t) act[t] = a.act + (tok + t) * l.stride;
      __m512 acc[R][T];
      ZeroTile(acc);
      const int64_t nb = l.n_blocks;
      for (int64_t b = 0; b < nb; b += 2) {
        const bool pair = b + 1 < nb;
        __m512i wv[R], sgn[R];
        __m512 wd[R];
        REPRISE_UNROLL
        for (int r = 0; r < R; ++r) {
          _mm_prefetch(reinterpret_cast<const char*>(w[r] + b) + pf, _MM_HINT_T0);
          wv[r] = LoadWeights(w[r] + b, pair, &sgn[r]);
          wd[r] = PairScale(Fp16Scalar(w[r][b].d), pair ? Fp16Scalar(w[r][b + 1].d) : 0.0f);
        }
        REPRISE_UNROLL
        for (int t = 0; t < T; ++t) {
          const int8_t* qs = reinterpret_cast<const int8_t*>(act[t] + l.qs) + b * kQK;
          const __m512i av =
              pair ? _mm512_loadu_si512(qs) : _mm512_maskz_loadu_epi8(0xFFFFFFFFull, qs);
          const float* ad = reinterpret_cast<const float*>(act[t] + l.d) + b;
          const __m512 adv = PairScale(ad[0], pair ? ad[1] : 0.0f);
          if constexpr (kSignTrick) {
            REPRISE_UNROLL
            for (int r = 0; r < R; ++r) {
              const __m512i s =
                  _mm512_mask_sub_epi8(av, _mm512_movepi8_mask(sgn[r]), _mm512_setzero_si512(), av);
              const __m512i isum = DotU8S8(_mm512_setzero_si512(), wv[r], s);
              acc[r][t] =
                  _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(wd[r], adv), acc[r][t]);
            }
          } else {
            const int32_t* sums = reinterpret_cast<const int32_t*>(act[t] + l.sums) + b;
            const __m512i corr = PairCorrection(sums, kShift, pair);
            REPRISE_UNROLL
            for (int r = 0; r < R; ++r) {
              const __m512i isum = DotU8S8(corr, wv[r], av);
              acc[r][t] =
                  _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(wd[r], adv), acc[r][t]);
            }
          }
        }
      }
      StoreTile(a, row, tok, acc);
    }
  };
};

template <bool kQ8>
void GemmQ32(const GemmArgs& a, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  TileLoop<4, 4, Q32Tile<kQ8>::template K>(a, r0, r1, t0, t1);
}

// ---------------------------------------------------------------- Q4_K / Q6_K

// int16 lane i of the result = v[idx(i)] for a 64-value chunk whose 32 int16
// lanes cover sub-blocks of `sub` values starting at sub-block `first`.
inline __m512i SpreadScales(__m512i v16, int first, int sub) {
  alignas(64) int16_t idx[32];
  for (int i = 0; i < 32; ++i) idx[i] = static_cast<int16_t>(first + (2 * i) / sub);
  return _mm512_permutexvar_epi16(_mm512_load_si512(idx), v16);
}

struct Q4KTile {
  template <int R, int T>
  struct K {
    static void Run(const GemmArgs& a, int64_t row, int64_t tok) {
      const ActRowLayout& l = a.act_layout;
      const int64_t pf = PrefetchOffset(a, R);
      const BlockQ4K* w[R];
      REPRISE_UNROLL
      for (int r = 0; r < R; ++r)
        w[r] = reinterpret_cast<const BlockQ4K*>(a.w + (row + r) * a.w_stride);
      const uint8_t* act[T];
      REPRISE_UNROLL
      for (int t = 0; t < T; ++t) act[t] = a.act + (tok + t) * l.stride;
      __m512 acc[R][T];
      ZeroTile(acc);
      const __m512i nib = _mm512_set1_epi8(0x0F);
      const __m512i nib_shift = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0);
      const __m256i dup_idx = _mm256_set_epi16(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
      for (int64_t sb = 0; sb < l.n_blocks; ++sb) {
        __m512i sc16[R];
        __m256i m16[R];
        REPRISE_UNROLL
        for (int r = 0; r < R; ++r) {
          const BlockQ4K& blk = w[r][sb];
          _mm_prefetch(reinterpret_cast<const char*>(&blk) + pf, _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(&blk) + pf + 64, _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(&blk) + pf + 128, _MM_HINT_T0);
          uint64_t sc, m;
          DecodeScalesK4(blk.scales, &sc, &m);
          sc16[r] = _mm512_castsi128_si512(
              _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(sc))));
          m16[r] = _mm256_permutexvar_epi16(
              dup_idx, _mm256_castsi128_si256(
                           _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(m)))));
        }
        __m512i iacc[R][T];
        REPRISE_UNROLL
        for (int r = 0; r < R; ++r) {
          REPRISE_UNROLL
          for (int t = 0; t < T; ++t) iacc[r][t] = _mm512_setzero_si512();
        }
        REPRISE_UNROLL
        for (int c = 0; c < 4; ++c) {
          __m512i wv[R], s16[R];
          REPRISE_UNROLL
          for (int r = 0; r < R; ++r) {
            const __m512i q = _mm512_broadcast_i64x4(
                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[r][sb].qs + 32 * c)));
            wv[r] = _mm512_and_si512(_mm512_srlv_epi64(q, nib_shift), nib);
            s16[r] = SpreadScales(sc16[r], 2 * c, 32);
          }
          REPRISE_UNROLL
          for (int t = 0; t < T; ++t) {
            const __m512i av = _mm512_loadu_si512(act[t] + l.qs + sb * kQKK + 64 * c);
            REPRISE_UNROLL
            for (int r = 0; r < R; ++r) {
              iacc[r][t] = DotI16(iacc[r][t], _mm512_maddubs_epi16(wv[r], av), s16[r]);
            }
          }
        }
        REPRISE_UNROLL
        for (int t = 0; t < T; ++t) {
          const float da = reinterpret_cast<const float*>(act[t] + l.d)[sb];
          const __m256i bs =
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(act[t] + l.sums + sb * 32));
          REPRISE_UNROLL
          for (int r = 0; r < R; ++r) {
            const float d = Fp16Scalar(w[r][sb].d) * da;
            const float dmin = Fp16Scalar(w[r][sb].dmin) * da;
            acc[r][t] =
                _mm512_fmadd_ps(_mm512_cvtepi32_ps(iacc[r][t]), _mm512_set1_ps(d), acc[r][t]);
            const __m256i mins = _mm256_madd_epi16(m16[r], bs);  // m_j * asum_j
            acc[r][t] = _mm512_fmadd_ps(_mm512_zextps256_ps512(_mm256_cvtepi32_ps(mins)),
                                        _mm512_set1_ps(-dmin), acc[r][t]);
          }
        }
      }
      StoreTile(a, row, tok, acc);
    }
  };
};

struct Q6KTile {
  template <int R, int T>
  struct K {
    static void Run(const GemmArgs& a, int64_t row, int64_t tok) {
      const ActRowLayout& l = a.act_layout;
      const int64_t pf = PrefetchOffset(a, R);
      const BlockQ6K* w[R];
      REPRISE_UNROLL
      for (int r = 0; r < R; ++r)
        w[r] = reinterpret_cast<const BlockQ6K*>(a.w + (row + r) * a.w_stride);
      const uint8_t* act[T];
      REPRISE_UNROLL
      for (int t = 0; t < T; ++t) act[t] = a.act + (tok + t) * l.stride;
      __m512 acc[R][T];
      ZeroTile(acc);
      const __m512i lo4 = _mm512_set1_epi8(0x0F), hi2 = _mm512_set1_epi8(0x30);
      const __m512i shl_a = _mm512_set_epi64(2, 2, 2, 2, 4, 4, 4, 4);  // in 16-bit lanes below
      const __m512i shr_b = _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0);
      const __m512i shl_a16 = _mm512_or_si512(shl_a, _mm512_slli_epi64(shl_a, 16));
      const __m512i shl_a32 = _mm512_or_si512(shl_a16, _mm512_slli_epi64(shl_a16, 32));
      const __m512i shr_b16 = _mm512_or_si512(shr_b, _mm512_slli_epi64(shr_b, 16));
      const __m512i shr_b32 = _mm512_or_si512(shr_b16, _mm512_slli_epi64(shr_b16, 32));
      for (int64_t sb = 0; sb < l.n_blocks; ++sb) {
        __m512i sc16[R];
        REPRISE_UNROLL
        for (int r = 0; r < R; ++r) {
          const BlockQ6K& blk = w[r][sb];
          REPRISE_UNROLL
          for (int p = 0; p < 4; ++p) {
            _mm_prefetch(reinterpret_cast<const char*>(&blk) + pf + 64 * p, _MM_HINT_T0);
          }
          sc16[r] = _mm512_castsi256_si512(
              _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.scales))));
        }
        __m512i iacc[R][T];
        REPRISE_UNROLL
        for (int r = 0; r < R; ++r) {
          REPRISE_UNROLL
          for (int t = 0; t < T; ++t) iacc[r][t] = _mm512_setzero_si512();
        }
        REPRISE_UNROLL
        for (int c = 0; c < 4; ++c) {  // 64 values each: half c / 2, part c % 2
          const int h = c / 2;
          __m512i wv[R], s16[R];
          REPRISE_UNROLL
          for (int r = 0; r < R; ++r) {
            const BlockQ6K& blk = w[r][sb];
            const __m512i ql = _mm512_loadu_si512(blk.ql + 64 * h);
            const __m512i qh = _mm512_broadcast_i64x4(
                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh + 32 * h)));
            if (c % 2 == 0) {
              wv[r] = _mm512_or_si512(_mm512_and_si512(ql, lo4),
                                      _mm512_and_si512(_mm512_sllv_epi16(qh, shl_a32), hi2));
            } else {
              wv[r] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), lo4),
                                      _mm512_and_si512(_mm512_srlv_epi16(qh, shr_b32), hi2));
            }
            s16[r] = SpreadScales(sc16[r], 4 * c, 16);
          }
          REPRISE_UNROLL
          for (int t = 0; t < T; ++t) {
            const __m512i av = _mm512_loadu_si512(act[t] + l.qs + sb * kQKK + 64 * c);
            REPRISE_UNROLL
            for (int r = 0; r < R; ++r) {
              iacc[r][t] = DotI16(iacc[r][t], _mm512_maddubs_epi16(wv[r], av), s16[r]);
            }
          }
        }
        REPRISE_UNROLL
        for (int t = 0; t < T; ++t) {
          const float da = reinterpret_cast<const float*>(act[t] + l.d)[sb];
          const __m512i bs = _mm512_castsi256_si512(
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(act[t] + l.sums + sb * 32)));
          REPRISE_UNROLL
          for (int r = 0; r < R; ++r) {
            // -32 * sum_j sc_j * asum_j, into the same int32 lanes.
            const __m512i neg =
                _mm512_maskz_mov_epi64(0x0F, _mm512_mullo_epi16(sc16[r], _mm512_set1_epi16(-32)));
            const __m512i isum = DotI16(iacc[r][t], neg, bs);
            const float d = Fp16Scalar(w[r][sb].d) * da;
            acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d), acc[r][t]);
          }
        }
      }
      StoreTile(a, row, tok, acc);
    }
  };
};

void GemmQ4K(const GemmArgs& a, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  TileLoop<4, 4, Q4KTile::K>(a, r0, r1, t0, t1);
}
void GemmQ6K(const GemmArgs& a, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  TileLoop<4, 4, Q6KTile::K>(a, r0, r1, t0, t1);
}

}  // namespace
}  // namespace reprise::kernels
