// Scalar reference: activation quantization (shared by every kernel level, so
// all paths see identical int8 activations), the per-type reference dot
// products, and the scalar kernel table built on them. This is the oracle
// every SIMD kernel is tested against, and the fallback on CPUs without AVX2.
#include <emmintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/check.h"
#include "core/fp16.h"
#include "kernels/matmul_internal.h"

namespace reprise::kernels {
namespace {

template <class Fn>
void ForRows(const GemmArgs& a, int64_t r0, int64_t r1, int64_t t0, int64_t t1, Fn dot) {
  for (int64_t t = t0; t < t1; ++t) {
    for (int64_t r = r0; r < r1; ++r) a.y[t * a.ldy + r] = dot(a.w + r * a.w_stride, t);
  }
}

void GemmF32(const GemmArgs& a, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  ForRows(a, r0, r1, t0, t1, [&](const uint8_t* w, int64_t t) {
    return RefDotF32(reinterpret_cast<const float*>(w), a.x + t * a.cols, a.cols);
  });
}
void GemmF16(const GemmArgs& a, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  ForRows(a, r0, r1, t0, t1, [&](const uint8_t* w, int64_t t) {
    return RefDotF16(reinterpret_cast<const uint16_t*>(w), a.x + t * a.cols, a.cols);
  });
}
void GemmBF16(const GemmArgs& a, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  ForRows(a, r0, r1, t0, t1, [&](const uint8_t* w, int64_t t) {
    return RefDotBF16(reinterpret_cast<const uint16_t*>(w), a.x + t * a.cols, a.cols);
  });
}
template <class Block, float (*Dot)(const Block*, const uint8_t*, const ActRowLayout&)>
void GemmQuant(const GemmArgs& a, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  ForRows(a, r0, r1, t0, t1, [&](const uint8_t* w, int64_t t) {
    return Dot(reinterpret_cast<const Block*>(w), a.act + t * a.act_layout.stride, a.act_layout);
  });
}

template <class Load>
float DotFloat(const float* x, int64_t n, Load load) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) acc[k] += load(i + k) * x[i + k];
  }
  for (int k = 0; i < n; ++i, ++k) acc[k] += load(i) * x[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

}  // namespace

float QuantizeBlock(const float* x, int n, int8_t* q) {
  // SSE2 (the x86-64 baseline) by hand: GCC -O2 leaves these loops scalar,
  // and prefill quantizes every activation of every MatMul. Lane-wise the
  // arithmetic is exactly the scalar formula below.
  CHECK(n % 16 == 0);
  const __m128 abs_mask = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
  __m128 vmax = _mm_setzero_ps();
  for (int i = 0; i < n; i += 4) vmax = _mm_max_ps(vmax, _mm_and_ps(_mm_loadu_ps(x + i), abs_mask));
  vmax = _mm_max_ps(vmax, _mm_movehl_ps(vmax, vmax));
  vmax = _mm_max_ss(vmax, _mm_shuffle_ps(vmax, vmax, 1));
  const float amax = _mm_cvtss_f32(vmax);
  const float d = amax / 127.0f;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  // q = round_to_nearest_even(x * id): for |v| <= 2^22, v + 1.5 * 2^23 lands
  // where the float spacing is 1, so the addition itself rounds (default
  // rounding mode) and the subtraction is exact -- nearbyint without libm.
  const __m128 vid = _mm_set1_ps(id), magic = _mm_set1_ps(12582912.0f);
  for (int i = 0; i < n; i += 16) {
    __m128i v[4];
    for (int k = 0; k < 4; ++k) {
      const __m128 y = _mm_mul_ps(_mm_loadu_ps(x + i + 4 * k), vid);
      v[k] = _mm_cvttps_epi32(_mm_sub_ps(_mm_add_ps(y, magic), magic));
    }
    const __m128i p = _mm_packs_epi16(_mm_packs_epi32(v[0], v[1]), _mm_packs_epi32(v[2], v[3]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), p);
  }
  return d;
}

void QuantizeAct32(const float* x, int64_t cols, const ActRowLayout& l, uint8_t* row) {
  int8_t* qs = reinterpret_cast<int8_t*>(row + l.qs);
  float* d = reinterpret_cast<float*>(row + l.d);
  int32_t* sums = reinterpret_cast<int32_t*>(row + l.sums);
  for (int64_t b = 0; b < l.n_blocks; ++b) {
    int8_t* q = qs + b * kQK;
    d[b] = QuantizeBlock(x + b * kQK, kQK, q);
    int32_t s = 0;
    for (int i = 0; i < kQK; ++i) s += q[i];
    sums[b] = s;
  }
}

void QuantizeAct256(const float* x, int64_t cols, const ActRowLayout& l, uint8_t* row) {
  int8_t* qs = reinterpret_cast<int8_t*>(row + l.qs);
  float* d = reinterpret_cast<float*>(row + l.d);
  int16_t* sums = reinterpret_cast<int16_t*>(row + l.sums);
  for (int64_t b = 0; b < l.n_blocks; ++b) {
    int8_t* q = qs + b * kQKK;
    d[b] = QuantizeBlock(x + b * kQKK, kQKK, q);
    for (int j = 0; j < 16; ++j) {
      int s = 0;
      for (int i = 0; i < 16; ++i) s += q[16 * j + i];
      sums[b * 16 + j] = static_cast<int16_t>(s);
    }
  }
}

int ActBlockSize(DType type) {
  switch (type) {
    case DType::kQ8_0:
    case DType::kQ4_0:
      return kQK;
    case DType::kQ4_K:
    case DType::kQ6_K:
      return kQKK;
    default:
      return 0;
  }
}

float RefDotF32(const float* w, const float* x, int64_t n) {
  return DotFloat(x, n, [w](int64_t i) { return w[i]; });
}
float RefDotF16(const uint16_t* w, const float* x, int64_t n) {
  return DotFloat(x, n, [w](int64_t i) { return Fp16ToFp32(w[i]); });
}
float RefDotBF16(const uint16_t* w, const float* x, int64_t n) {
  return DotFloat(x, n, [w](int64_t i) { return Bf16ToFp32(w[i]); });
}

float RefDotQ8_0(const BlockQ8_0* w, const uint8_t* act, const ActRowLayout& l) {
  const int8_t* qs = reinterpret_cast<const int8_t*>(act + l.qs);
  const float* d = reinterpret_cast<const float*>(act + l.d);
  float sum = 0;
  for (int64_t b = 0; b < l.n_blocks; ++b) {
    int32_t isum = 0;
    for (int i = 0; i < kQK; ++i) isum += int32_t{w[b].qs[i]} * qs[b * kQK + i];
    sum += (Fp16ToFp32(w[b].d) * d[b]) * static_cast<float>(isum);
  }
  return sum;
}

float RefDotQ4_0(const BlockQ4_0* w, const uint8_t* act, const ActRowLayout& l) {
  const int8_t* qs = reinterpret_cast<const int8_t*>(act + l.qs);
  const float* d = reinterpret_cast<const float*>(act + l.d);
  float sum = 0;
  for (int64_t b = 0; b < l.n_blocks; ++b) {
    const int8_t* a = qs + b * kQK;
    int32_t isum = 0;
    for (int i = 0; i < 16; ++i) {
      isum += ((w[b].qs[i] & 0xF) - 8) * a[i] + ((w[b].qs[i] >> 4) - 8) * a[i + 16];
    }
    sum += (Fp16ToFp32(w[b].d) * d[b]) * static_cast<float>(isum);
  }
  return sum;
}

float RefDotQ4K(const BlockQ4K* w, const uint8_t* act, const ActRowLayout& l) {
  const int8_t* qs = reinterpret_cast<const int8_t*>(act + l.qs);
  const float* d = reinterpret_cast<const float*>(act + l.d);
  const int16_t* bsums = reinterpret_cast<const int16_t*>(act + l.sums);
  float sum = 0;
  for (int64_t b = 0; b < l.n_blocks; ++b) {
    const int8_t* a = qs + b * kQKK;
    const int16_t* bs = bsums + b * 16;
    int32_t s1 = 0, s2 = 0;  // sum_j sc_j * dot_j, sum_j m_j * asum_j
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      GetScaleMinK4(j, w[b].scales, &sc, &m);
      const uint8_t* q = w[b].qs + 32 * (j / 2);
      const int shift = (j % 2) * 4;
      int32_t dot = 0;
      for (int i = 0; i < 32; ++i) dot += ((q[i] >> shift) & 0xF) * a[32 * j + i];
      s1 += sc * dot;
      s2 += m * (bs[2 * j] + bs[2 * j + 1]);
    }
    sum += (Fp16ToFp32(w[b].d) * d[b]) * static_cast<float>(s1);
    sum -= (Fp16ToFp32(w[b].dmin) * d[b]) * static_cast<float>(s2);
  }
  return sum;
}

float RefDotQ6K(const BlockQ6K* w, const uint8_t* act, const ActRowLayout& l) {
  const int8_t* qs = reinterpret_cast<const int8_t*>(act + l.qs);
  const float* d = reinterpret_cast<const float*>(act + l.d);
  float sum = 0;
  for (int64_t b = 0; b < l.n_blocks; ++b) {
    const int8_t* a = qs + b * kQKK;
    int32_t isum = 0;
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = w[b].ql + 64 * h;
      const uint8_t* qh = w[b].qh + 32 * h;
      const int8_t* sc = w[b].scales + 8 * h;
      const int8_t* ah = a + 128 * h;
      int32_t sub[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // per 16 values
      for (int l2 = 0; l2 < 32; ++l2) {
        const int q1 = ((ql[l2] & 0xF) | (((qh[l2] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l2 + 32] & 0xF) | (((qh[l2] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l2] >> 4) | (((qh[l2] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l2 + 32] >> 4) | (((qh[l2] >> 6) & 3) << 4)) - 32;
        const int is = l2 / 16;
        sub[is + 0] += q1 * ah[l2];
        sub[is + 2] += q2 * ah[l2 + 32];
        sub[is + 4] += q3 * ah[l2 + 64];
        sub[is + 6] += q4 * ah[l2 + 96];
      }
      for (int j = 0; j < 8; ++j) isum += sc[j] * sub[j];
    }
    sum += (Fp16ToFp32(w[b].d) * d[b]) * static_cast<float>(isum);
  }
  return sum;
}

const KernelTable& ScalarKernels() {
  static const KernelTable table = {
      GemmF32,
      GemmF16,
      GemmBF16,
      GemmQuant<BlockQ8_0, RefDotQ8_0>,
      GemmQuant<BlockQ4_0, RefDotQ4_0>,
      GemmQuant<BlockQ4K, RefDotQ4K>,
      GemmQuant<BlockQ6K, RefDotQ6K>,
  };
  return table;
}

}  // namespace reprise::kernels
