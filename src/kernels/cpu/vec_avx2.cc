// AVX2 + FMA + F16C versions of kernels/vec.h and of the elementwise ops
// (compiled with -mavx2 -mfma -mf16c).
#include <immintrin.h>

#include <cstdint>

#include "core/fp16.h"
#include "kernels/cpu/exp_avx2.inc.h"

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

}  // namespace reprise::kernels::avx2
