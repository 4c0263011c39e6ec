// AVX-512 VNNI kernels (vpdpbusd / vpdpwssd). The in-place micro-kernels are
// in gemm_avx512.inc.h (shared with the plain AVX-512 level); the kernels for
// the x16 repacked layouts (packed.h), which Matrix::Prepare builds on CPUs
// with VNNI, live here.
#define REPRISE_VNNI 1
#include "kernels/cpu/gemm_avx512.inc.h"

namespace reprise::kernels {
namespace {

// One kernel for the four x16 layouts (packed.h). Per group of 16 sub-blocks
// and (row, token): the int32 accumulator starts at the layout's correction
// (which the quantizer stores in the activation row: PackedSumEntry), S/4
// vpdpbusd leave 16 exact sub-block sums, then one convert, one multiply of
// the 16 scale products and one FMA (plus one FNMADD for Q4_K's mins).
//   Q8_0: sum_i(w ^ 0x80, a) - 128 * asum    scale d_w * d_a
//   Q4_0: sum_i(q, a) - 8 * asum             scale d_w * d_a
//   Q4_K: sum_i(q, a)                        scale (d * sc) * d_a, minus (dmin * m) * (d_a * asum)
//   Q6_K: sum_i(q, a) - 32 * asum            scale (d * sc) * d_a
// Software prefetch distance on the packed (sequential) weight stream, in
// panel-groups: 2 when one core streams, 1 when several share the memory
// system. Measured on the 2-core Zen 5 (GEMV, kernels_bench --no-gemm):
// 1 thread, 2 groups beat 1 by 7-12% on Q4_0/Q4_K; 2 threads, 1 group beats 2
// by ~4%.
inline int64_t PrefetchDistance(const GemmArgs& a, int group_bytes) {
  return int64_t{a.threads > 1 ? 1 : 2} * group_bytes;
}

template <PackedLayout kLayout>
struct PackedTile {
  static constexpr int kVecs = kLayout == PackedLayout::kQ6_Kx16 ? 4 : 8;  // vpdpbusd per group
  static constexpr int kGroupValues = kVecs * 64;

  static constexpr PanelGroupLayout kG = MakePanelGroupLayout(kLayout);

  // Weight vector k (u8 values) of row lane `i` in the panel-group at `pg`.
  static inline __m512i LoadWeights(const uint8_t* pg, int i, int k) {
    const __m512i nib = _mm512_set1_epi8(0x0F);
    const uint8_t* q = pg + kG.qs + i * kG.qs_row;
    if constexpr (kLayout == PackedLayout::kQ8_0x16) {
      return _mm512_load_si512(q + 64 * k);
    } else if constexpr (kLayout == PackedLayout::kQ6_Kx16) {
      const __m512i ql = _mm512_load_si512(q + 64 * (k % 2));
      const __m512i qh = _mm512_load_si512(pg + kG.qh + i * kG.qh_row);
      const __m512i low = _mm512_and_si512(k < 2 ? ql : _mm512_srli_epi16(ql, 4), nib);
      const __m512i hi_bits = k == 3 ? _mm512_srli_epi16(qh, 2) : _mm512_slli_epi16(qh, 4 - 2 * k);
      return _mm512_or_si512(low, _mm512_and_si512(hi_bits, _mm512_set1_epi8(0x30)));
    } else {
      const __m512i v = _mm512_load_si512(q + 64 * (k % 4));
      return _mm512_and_si512(k < 4 ? v : _mm512_srli_epi16(v, 4), nib);
    }
  }

  // Prefetches, `pf` bytes ahead, the lines of rows [i0, i0 + R) in the
  // panel-group at `pg`: the whole panel-group for a full panel (a decode
  // step streams it sequentially), else the rows' quants.
  template <int R>
  static inline void Prefetch(const uint8_t* pg, int i0, int64_t pf) {
    const uint8_t* p = R == kPanelRows ? pg : pg + kG.qs + i0 * kG.qs_row;
    constexpr int kLines = R == kPanelRows ? kG.bytes / 64 : R * kG.qs_row / 64;
    REPRISE_UNROLL
    for (int j = 0; j < kLines; ++j) {
      _mm_prefetch(reinterpret_cast<const char*>(p + pf + 64 * j), _MM_HINT_T0);
    }
  }

  // Per-lane weight scales (and Q4_K min scales) of row lane `i`.
  static inline __m512 WeightScales(const uint8_t* pg, int i, __m512* mins) {
    const uint8_t* d = pg + kG.d + i * kG.d_row;
    if constexpr (kLayout == PackedLayout::kQ8_0x16 || kLayout == PackedLayout::kQ4_0x16) {
      return _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(d)));
    } else if constexpr (kLayout == PackedLayout::kQ4_Kx16) {
      // f16 d0, d1, dmin0, dmin1 -> lanes 0-7 take super-block 0, 8-15 super-block 1.
      const __m128 dd = _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(d)));
      const __m512 ddz = _mm512_castps128_ps512(dd);
      const __m512i lo = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
      const __m512 dv = _mm512_permutexvar_ps(lo, ddz);
      const __m512 dmin = _mm512_permutexvar_ps(_mm512_add_epi32(lo, _mm512_set1_epi32(2)), ddz);
      const uint8_t* s = pg + kG.scales + i * kG.scales_row;
      const __m512 sc = _mm512_cvtepi32_ps(
          _mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(s))));
      const __m512 m = _mm512_cvtepi32_ps(
          _mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(s + 16))));
      *mins = _mm512_mul_ps(dmin, m);
      return _mm512_mul_ps(dv, sc);
    } else {
      uint16_t dh;
      std::memcpy(&dh, d, 2);
      const __m512 sc = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_load_si128(
          reinterpret_cast<const __m128i*>(pg + kG.scales + i * kG.scales_row))));
      return _mm512_mul_ps(_mm512_set1_ps(Fp16Scalar(dh)), sc);
    }
  }

  // Rows [row, row + R) must lie in one panel (GemmPacked guarantees it).
  template <int R, int T>
  struct K {
    static void Run(const GemmArgs& a, int64_t row, int64_t tok) {
      const ActRowLayout& l = a.act_layout;
      const int64_t n_groups = l.n_blocks / kGroupLanes;
      const int i0 = static_cast<int>(row % kPanelRows);
      const uint8_t* panel = a.w + (row / kPanelRows) * a.w_stride;
      const int64_t pf = PrefetchDistance(a, kG.bytes);
      const uint8_t* act[T];
      REPRISE_UNROLL
      for (int t = 0; t < T; ++t) act[t] = a.act + (tok + t) * l.stride;
      __m512 acc[R][T];
      ZeroTile(acc);
      for (int64_t g = 0; g < n_groups; ++g) {
        const uint8_t* pg = panel + g * kG.bytes;
        __m512i iacc[R][T];
        REPRISE_UNROLL
        for (int t = 0; t < T; ++t) {
          // The activation row holds the correction (PackedSumEntry).
          const __m512i init = PackedSumShift(kLayout) >= 0
                                   ? _mm512_load_si512(act[t] + l.sums + g * 64)
                                   : _mm512_setzero_si512();
          REPRISE_UNROLL
          for (int r = 0; r < R; ++r) iacc[r][t] = init;
        }
        // One token, or a decode step of a few streams: the weights stream
        // from memory once. Prefill tiles reuse cached weights instead.
        if (T == 1 || a.stream_weights) Prefetch<R>(pg, i0, pf);
        REPRISE_UNROLL
        for (int k = 0; k < kVecs; ++k) {
          __m512i wv[R];
          REPRISE_UNROLL
          for (int r = 0; r < R; ++r) wv[r] = LoadWeights(pg, i0 + r, k);
          REPRISE_UNROLL
          for (int t = 0; t < T; ++t) {
            const __m512i av = _mm512_load_si512(act[t] + l.qs + g * kGroupValues + 64 * k);
            REPRISE_UNROLL
            for (int r = 0; r < R; ++r) iacc[r][t] = _mm512_dpbusd_epi32(iacc[r][t], wv[r], av);
          }
        }
        __m512 ws[R], wm[R];
        REPRISE_UNROLL
        for (int r = 0; r < R; ++r) ws[r] = WeightScales(pg, i0 + r, &wm[r]);
        REPRISE_UNROLL
        for (int t = 0; t < T; ++t) {
          const __m512 ad = _mm512_load_ps(act[t] + l.d + g * 64);
          __m512 ams;  // Q4_K: d_a * asum per lane
          if constexpr (kLayout == PackedLayout::kQ4_Kx16) {
            ams =
                _mm512_mul_ps(ad, _mm512_cvtepi32_ps(_mm512_load_si512(act[t] + l.sums + g * 64)));
          }
          REPRISE_UNROLL
          for (int r = 0; r < R; ++r) {
            acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(iacc[r][t]), _mm512_mul_ps(ws[r], ad),
                                        acc[r][t]);
            if constexpr (kLayout == PackedLayout::kQ4_Kx16) {
              acc[r][t] = _mm512_fnmadd_ps(wm[r], ams, acc[r][t]);
            }
          }
        }
      }
      StoreTile</*kButterfly=*/true>(a, row, tok, acc);
    }
  };
};

// 4 x 4 and 4 x 3 tiles measure the same; 2 x 6 is 30% slower.
template <PackedLayout kLayout>
void GemmPacked(const GemmArgs& a, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  // One token (decode): 8-row panels keep more weight streams in flight
  // (measured: Q8_0 29 -> 32 GB/s, Q6_K 17 -> 20 GB/s on one Zen 5 core).
  // Row tiling never changes a (row, token) result, so this is deterministic.
  CHECK(r0 % kPanelRows == 0);  // tiles of 8 and 4 rows then never straddle a panel
  if (t1 - t0 == 1) return TileLoop<8, 1, PackedTile<kLayout>::template K>(a, r0, r1, t0, t1);
  TileLoopTokensOuter<4, 4, PackedTile<kLayout>::template K>(a, r0, r1, t0, t1);
}

}  // namespace

void QuantizeActX16Vnni(PackedLayout layout, const float* x, int64_t cols, const ActRowLayout& l,
                        uint8_t* row) {
  const int block = PackedActBlock(layout), sub = PackedSubBlock(layout);
  const int64_t group_values = int64_t{kGroupLanes} * sub;
  float* d = reinterpret_cast<float*>(row + l.d);
  int32_t* sums = reinterpret_cast<int32_t*>(row + l.sums);
  if (cols % group_values != 0) std::memset(row, 0, l.stride);  // zero padding lanes
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  for (int64_t b = 0; b < cols / block; ++b) {
    const float* xb = x + b * block;
    __m512 vmax = _mm512_setzero_ps();
    for (int j = 0; j < block; j += 16) {
      vmax = _mm512_max_ps(vmax, _mm512_and_ps(_mm512_loadu_ps(xb + j), abs_mask));
    }
    // The arithmetic of QuantizeBlock: d = amax / 127, q = nearest-even(x * (1 / d)).
    const float amax = _mm512_reduce_max_ps(vmax);
    const float db = amax / 127.0f;
    const __m512 id = _mm512_set1_ps(db != 0 ? 1.0f / db : 0.0f);
    for (int s0 = 0; s0 < block; s0 += sub) {
      const int64_t lane = (b * block + s0) / sub;
      const int64_t g = lane / kGroupLanes, i = lane % kGroupLanes;
      uint8_t* qs = row + l.qs + g * group_values + 4 * i;
      __m512i sum = _mm512_setzero_si512();
      for (int c = 0; c < sub; c += 16) {
        const __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb + s0 + c), id));
        sum = _mm512_add_epi32(sum, q);
        const __m128i bytes = _mm512_cvtsepi32_epi8(q);
        const int k0 = c / 4;  // vectors k0..k0+3 take the 4 dwords
        const int32_t w0 = _mm_cvtsi128_si32(bytes), w1 = _mm_extract_epi32(bytes, 1);
        const int32_t w2 = _mm_extract_epi32(bytes, 2), w3 = _mm_extract_epi32(bytes, 3);
        std::memcpy(qs + 64 * (k0 + 0), &w0, 4);
        std::memcpy(qs + 64 * (k0 + 1), &w1, 4);
        std::memcpy(qs + 64 * (k0 + 2), &w2, 4);
        std::memcpy(qs + 64 * (k0 + 3), &w3, 4);
      }
      d[lane] = db;
      sums[lane] = PackedSumEntry(layout, _mm512_reduce_add_epi32(sum));
    }
  }
}

const KernelTable& Avx512VnniKernels() {
  static const KernelTable table = {
      GemmFloat<FloatKind::kF32>,
      GemmFloat<FloatKind::kF16>,
      GemmFloat<FloatKind::kBF16>,
      GemmQ32<true>,
      GemmQ32<false>,
      GemmQ4K,
      GemmQ6K,
      GemmPacked<PackedLayout::kQ8_0x16>,
      GemmPacked<PackedLayout::kQ4_0x16>,
      GemmPacked<PackedLayout::kQ4_Kx16>,
      GemmPacked<PackedLayout::kQ6_Kx16>,
      GemmF16Panels,
  };
  return table;
}

}  // namespace reprise::kernels
