// AVX2 + FMA + F16C versions of kernels/vec.h and of the elementwise ops
// (compiled with -mavx2 -mfma -mf16c).
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "core/fp16.h"
#include "kernels/cpu/exp.inc.h"

namespace reprise::kernels::avx2 {

void ConvertToF16(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
  for (; i < n; ++i) dst[i] = Fp32ToFp16(src[i]);
}

// gate[i] = gate[i] / (1 + exp(-gate[i])) * up[i]; the tail goes through the
// same vector code (masked), so every element sees the same arithmetic.
void SiluMul(float* gate, const float* up, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t i = 0; i < n; i += 8) {
    const int left = static_cast<int>(n - i < 8 ? n - i : 8);
    const __m256i mk = _mm256_cmpgt_epi32(_mm256_set1_epi32(left), idx);
    const __m256 g = _mm256_maskload_ps(gate + i, mk);
    const __m256 u = _mm256_maskload_ps(up + i, mk);
    const __m256 e = Exp8(_mm256_xor_ps(g, sign));
    _mm256_maskstore_ps(gate + i, mk, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), u));
  }
}

// RmsNorm with the sum of squares in double (8 partial sums, then added in a
// fixed order): the same accuracy as the portable version, vectorised. n must
// be a multiple of 8 (callers check); out may alias x.
void RmsNorm(const float* x, const float* w, int64_t n, float eps, float* out) {
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  for (int64_t i = 0; i < n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
    const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    s0 = _mm256_fmadd_pd(lo, lo, s0);
    s1 = _mm256_fmadd_pd(hi, hi, s1);
  }
  alignas(32) double part[8];
  _mm256_store_pd(part, s0);
  _mm256_store_pd(part + 4, s1);
  double ss = 0;
  for (double p : part) ss += p;
  const float scale = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  const __m256 sc = _mm256_set1_ps(scale);
  for (int64_t i = 0; i < n; i += 8) {
    const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), sc);
    _mm256_storeu_ps(out + i, w != nullptr ? _mm256_mul_ps(v, _mm256_loadu_ps(w + i)) : v);
  }
}

}  // namespace reprise::kernels::avx2
