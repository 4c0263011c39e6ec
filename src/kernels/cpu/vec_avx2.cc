// AVX2 + F16C versions of kernels/vec.h (compiled with -mavx2 -mfma -mf16c).
#include <immintrin.h>

#include <cstdint>

#include "core/fp16.h"

namespace reprise::kernels::avx2 {

void ConvertToF16(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
  for (; i < n; ++i) dst[i] = Fp32ToFp16(src[i]);
}

}  // namespace reprise::kernels::avx2
