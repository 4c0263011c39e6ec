// AVX2 + FMA + F16C kernels (256-bit). Same tile structure and determinism
// rules as the AVX-512 micro-kernels (gemm_avx512.inc.h), one 32-value block
// per register. Int8 dot products use vpmaddubsw, whose int16 pair sums must
// not saturate: Q8_0 uses dot(|w|, sign(a, w)); Q4_0 / Q4_K / Q6_K weights are
// small unsigned values (<= 63) against int8 activations, so they cannot.
#include <immintrin.h>

#include "kernels/cpu/tile_loop.inc.h"
#include "kernels/matmul_internal.h"

namespace reprise::kernels {
namespace {

// Weights are prefetched at the same offset two row panels ahead (see
// gemm_avx512.inc.h).
inline int64_t PrefetchOffset(const GemmArgs& a, int rows) { return 2 * rows * a.w_stride; }

inline float Fp16Scalar(uint16_t h) { return _cvtsh_ss(h); }

inline float HorizontalSum(__m256 v) {
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

inline __m256i SumPairs16(__m256i p) { return _mm256_madd_epi16(p, _mm256_set1_epi16(1)); }

// ---------------------------------------------------------------- float weights

enum class FloatKind { kF32, kF16, kBF16 };

template <FloatKind kKind>
inline __m256 LoadW8(const uint8_t* row, int64_t c) {
  if constexpr (kKind == FloatKind::kF32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + c);
  } else if constexpr (kKind == FloatKind::kF16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * c)));
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * c));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}

// The last cols % 8 weights, zero padded.
template <FloatKind kKind>
inline __m256 LoadWTail(const uint8_t* row, int64_t c, int64_t n) {
  alignas(32) float v[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < n; ++i) {
    if constexpr (kKind == FloatKind::kF32) {
      v[i] = reinterpret_cast<const float*>(row)[c + i];
    } else {
      uint16_t h;
      std::memcpy(&h, row + 2 * (c + i), 2);
      if constexpr (kKind == FloatKind::kF16) {
        v[i] = Fp16Scalar(h);
      } else {
        const uint32_t u = uint32_t{h} << 16;
        std::memcpy(&v[i], &u, 4);
      }
    }
  }
  return _mm256_load_ps(v);
}

inline __m256i TailMask(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
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
      __m256 acc[R][T];
      REPRISE_UNROLL
      for (int r = 0; r < R; ++r) {
        REPRISE_UNROLL
        for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
      }
      int64_t c = 0;
      for (; c + 8 <= a.cols; c += 8) {
        __m256 wv[R];
        REPRISE_UNROLL
        for (int r = 0; r < R; ++r) wv[r] = LoadW8<kKind>(w[r], c);
        REPRISE_UNROLL
        for (int t = 0; t < T; ++t) {
          const __m256 xv = _mm256_loadu_ps(x[t] + c);
          REPRISE_UNROLL
          for (int r = 0; r < R; ++r) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
        }
      }
      if (c < a.cols) {
        const __m256i m = TailMask(a.cols - c);
        __m256 wv[R];
        REPRISE_UNROLL
        for (int r = 0; r < R; ++r) wv[r] = LoadWTail<kKind>(w[r], c, a.cols - c);
        REPRISE_UNROLL
        for (int t = 0; t < T; ++t) {
          const __m256 xv = _mm256_maskload_ps(x[t] + c, m);
          REPRISE_UNROLL
          for (int r = 0; r < R; ++r) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
        }
      }
      REPRISE_UNROLL
      for (int t = 0; t < T; ++t) {
        REPRISE_UNROLL
        for (int r = 0; r < R; ++r) a.y[(tok + t) * a.ldy + row + r] = HorizontalSum(acc[r][t]);
      }
    }
  };
};

template <FloatKind kKind>
void GemmFloat(const GemmArgs& a, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  TileLoop<4, 2, FloatTile<kKind>::template K>(a, r0, r1, t0, t1);
}

// ---------------------------------------------------------------- Q8_0 / Q4_0

template <bool kQ8>
struct Q32Tile {
  using Block = std::conditional_t<kQ8, BlockQ8_0, BlockQ4_0>;

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
      __m256 acc[R][T];
      REPRISE_UNROLL
      for (int r = 0; r < R; ++r) {
        REPRISE_UNROLL
        for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
      }
      for (int64_t b = 0; b < l.n_blocks; ++b) {
        __m256i wv[R];
        __m256 wd[R];
        REPRISE_UNROLL
        for (int r = 0; r < R; ++r) {
          _mm_prefetch(reinterpret_cast<const char*>(w[r] + b) + pf, _MM_HINT_T0);
          if constexpr (kQ8) {
            wv[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[r][b].qs));
          } else {
            const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[r][b].qs));
            const __m256i qq =
                _mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1);
            wv[r] = _mm256_and_si256(qq, _mm256_set1_epi8(0x0F));
          }
          wd[r] = _mm256_set1_ps(Fp16Scalar(w[r][b].d));
        }
        REPRISE_UNROLL
        for (int t = 0; t < T; ++t) {
          const __m256i av =
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(act[t] + l.qs + b * kQK));
          const __m256 ad = _mm256_set1_ps(reinterpret_cast<const float*>(act[t] + l.d)[b]);
          REPRISE_UNROLL
          for (int r = 0; r < R; ++r) {
            __m256i isum;
            if constexpr (kQ8) {
              isum = SumPairs16(
                  _mm256_maddubs_epi16(_mm256_abs_epi8(wv[r]), _mm256_sign_epi8(av, wv[r])));
            } else {
              const int32_t s = reinterpret_cast<const int32_t*>(act[t] + l.sums)[b];
              const __m256i corr = _mm256_zextsi128_si256(_mm_cvtsi32_si128(-8 * s));
              isum = _mm256_add_epi32(corr, SumPairs16(_mm256_maddubs_epi16(wv[r], av)));
            }
            acc[r][t] =
                _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(wd[r], ad), acc[r][t]);
          }
        }
      }
      REPRISE_UNROLL
      for (int t = 0; t < T; ++t) {
        REPRISE_UNROLL
        for (int r = 0; r < R; ++r) a.y[(tok + t) * a.ldy + row + r] = HorizontalSum(acc[r][t]);
      }
    }
  };
};

template <bool kQ8>
void GemmQ32(const GemmArgs& a, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  TileLoop<2, 2, Q32Tile<kQ8>::template K>(a, r0, r1, t0, t1);
}

// ---------------------------------------------------------------- Q4_K / Q6_K

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
      __m256 acc[R][T];
      REPRISE_UNROLL
      for (int r = 0; r < R; ++r) {
        REPRISE_UNROLL
        for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
      }
      const __m256i nib = _mm256_set1_epi8(0x0F);
      for (int64_t sb = 0; sb < l.n_blocks; ++sb) {
        alignas(16) uint8_t sc[R][8], m[R][8];
        REPRISE_UNROLL
        for (int r = 0; r < R; ++r) {
          const char* p = reinterpret_cast<const char*>(&w[r][sb]);
          _mm_prefetch(p + pf, _MM_HINT_T0);
          _mm_prefetch(p + pf + 64, _MM_HINT_T0);
          uint64_t s8, m8;
          DecodeScalesK4(w[r][sb].scales, &s8, &m8);
          std::memcpy(sc[r], &s8, 8);
          std::memcpy(m[r], &m8, 8);
        }
        __m256i iacc[R][T];
        REPRISE_UNROLL
        for (int r = 0; r < R; ++r) {
          REPRISE_UNROLL
          for (int t = 0; t < T; ++t) iacc[r][t] = _mm256_setzero_si256();
        }
        REPRISE_UNROLL
        for (int j = 0; j < 8; ++j) {  // sub-blocks of 32
          __m256i wv[R], s16[R];
          REPRISE_UNROLL
          for (int r = 0; r < R; ++r) {
            const __m256i q =
                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[r][sb].qs + 32 * (j / 2)));
            wv[r] = _mm256_and_si256(j % 2 ? _mm256_srli_epi16(q, 4) : q, nib);
            s16[r] = _mm256_set1_epi16(sc[r][j]);
          }
          REPRISE_UNROLL
          for (int t = 0; t < T; ++t) {
            const __m256i av = _mm256_loadu_si256(
                reinterpret_cast<const __m256i*>(act[t] + l.qs + sb * kQKK + 32 * j));
            REPRISE_UNROLL
            for (int r = 0; r < R; ++r) {
              iacc[r][t] = _mm256_add_epi32(
                  iacc[r][t], _mm256_madd_epi16(_mm256_maddubs_epi16(wv[r], av), s16[r]));
            }
          }
        }
        REPRISE_UNROLL
        for (int t = 0; t < T; ++t) {
          const float da = reinterpret_cast<const float*>(act[t] + l.d)[sb];
          // Pair sums of the per-16 activation sums: asum_j for the 8 sub-blocks.
          const __m256i bs =
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(act[t] + l.sums + sb * 32));
          const __m256i asum = SumPairs16(bs);  // 8 x int32
          REPRISE_UNROLL
          for (int r = 0; r < R; ++r) {
            const float d = Fp16Scalar(w[r][sb].d) * da;
            const float dmin = Fp16Scalar(w[r][sb].dmin) * da;
            const __m256i mv =
                _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(m[r])));
            const __m256i mins = _mm256_mullo_epi32(mv, asum);
            acc[r][t] =
                _mm256_fmadd_ps(_mm256_cvtepi32_ps(iacc[r][t]), _mm256_set1_ps(d), acc[r][t]);
            acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_set1_ps(-dmin), acc[r][t]);
          }
        }
      }
      REPRISE_UNROLL
      for (int t = 0; t < T; ++t) {
        REPRISE_UNROLL
        for (int r = 0; r < R; ++r) a.y[(tok + t) * a.ldy + row + r] = HorizontalSum(acc[r][t]);
      }
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
      __m256 acc[R][T];
      REPRISE_UNROLL
      for (int r = 0; r < R; ++r) {
        REPRISE_UNROLL
        for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
      }
      const __m256i lo4 = _mm256_set1_epi8(0x0F), hi2 = _mm256_set1_epi8(0x30);
      for (int64_t sb = 0; sb < l.n_blocks; ++sb) {
        REPRISE_UNROLL
        for (int r = 0; r < R; ++r) {
          const char* p = reinterpret_cast<const char*>(&w[r][sb]);
          REPRISE_UNROLL
          for (int k = 0; k < 4; ++k) _mm_prefetch(p + pf + 64 * k, _MM_HINT_T0);
        }
        __m256i iacc[R][T];
        REPRISE_UNROLL
        for (int r = 0; r < R; ++r) {
          REPRISE_UNROLL
          for (int t = 0; t < T; ++t) iacc[r][t] = _mm256_setzero_si256();
        }
        REPRISE_UNROLL
        for (int k = 0; k < 8; ++k) {  // 32 values each: half k / 4, quarter k % 4
          const int h = k / 4, part = k % 4;
          __m256i wv[R], s16[R];
          REPRISE_UNROLL
          for (int r = 0; r < R; ++r) {
            const BlockQ6K& blk = w[r][sb];
            const __m256i ql = _mm256_loadu_si256(
                reinterpret_cast<const __m256i*>(blk.ql + 64 * h + 32 * (part & 1)));
            const __m256i qh =
                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh + 32 * h));
            const __m256i low = _mm256_and_si256(part < 2 ? ql : _mm256_srli_epi16(ql, 4), lo4);
            __m256i high;
            switch (part) {
              case 0:
                high = _mm256_slli_epi16(qh, 4);
                break;
              case 1:
                high = _mm256_slli_epi16(qh, 2);
                break;
              case 2:
                high = qh;
                break;
              default:
                high = _mm256_srli_epi16(qh, 2);
                break;
            }
            wv[r] = _mm256_or_si256(low, _mm256_and_si256(high, hi2));
            const int s0 = blk.scales[2 * k], s1 = blk.scales[2 * k + 1];
            s16[r] = _mm256_inserti128_si256(_mm256_set1_epi16(static_cast<int16_t>(s0)),
                                             _mm_set1_epi16(static_cast<int16_t>(s1)), 1);
          }
          REPRISE_UNROLL
          for (int t = 0; t < T; ++t) {
            const __m256i av = _mm256_loadu_si256(
                reinterpret_cast<const __m256i*>(act[t] + l.qs + sb * kQKK + 32 * k));
            REPRISE_UNROLL
            for (int r = 0; r < R; ++r) {
              iacc[r][t] = _mm256_add_epi32(
                  iacc[r][t], _mm256_madd_epi16(_mm256_maddubs_epi16(wv[r], av), s16[r]));
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
            const __m256i sc = _mm256_cvtepi8_epi16(
                _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[r][sb].scales)));
            const __m256i corr =
                _mm256_madd_epi16(_mm256_mullo_epi16(sc, _mm256_set1_epi16(-32)), bs);
            const float d = Fp16Scalar(w[r][sb].d) * da;
            acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(iacc[r][t], corr)),
                                        _mm256_set1_ps(d), acc[r][t]);
          }
        }
      }
      REPRISE_UNROLL
      for (int t = 0; t < T; ++t) {
        REPRISE_UNROLL
        for (int r = 0; r < R; ++r) a.y[(tok + t) * a.ldy + row + r] = HorizontalSum(acc[r][t]);
      }
    }
  };
};

void GemmQ4K(const GemmArgs& a, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  TileLoop<2, 2, Q4KTile::K>(a, r0, r1, t0, t1);
}
void GemmQ6K(const GemmArgs& a, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  TileLoop<2, 2, Q6KTile::K>(a, r0, r1, t0, t1);
}

}  // namespace

const KernelTable& Avx2Kernels() {
  static const KernelTable table = {
      GemmFloat<FloatKind::kF32>,
      GemmFloat<FloatKind::kF16>,
      GemmFloat<FloatKind::kBF16>,
      GemmQ32<true>,
      GemmQ32<false>,
      GemmQ4K,
      GemmQ6K,
  };
  return table;
}

}  // namespace reprise::kernels
