// AVX-512 versions of elementwise ops (compiled with the AVX-512 flags).
// SiluMul computes exactly what the AVX2 version does, 16 lanes at a time.
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/exp.inc.h"

namespace reprise::kernels::avx512 {

void SiluMul(float* gate, const float* up, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 sign = _mm512_set1_ps(-0.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 mk =
        n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 g = _mm512_maskz_loadu_ps(mk, gate + i);
    const __m512 u = _mm512_maskz_loadu_ps(mk, up + i);
    const __m512 e = Exp16(_mm512_xor_ps(g, sign));
    _mm512_mask_storeu_ps(gate + i, mk, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), u));
  }
}

}  // namespace reprise::kernels::avx512
