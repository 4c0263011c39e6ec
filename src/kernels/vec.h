// Small vector primitives chosen once at run time (AVX2+F16C when available,
// else portable). Used to store K/V rows into F16 KV blocks.
#pragma once

#include <cstdint>

namespace reprise::kernels {

// dst[i] = half(src[i]), round to nearest even (bit-identical on every path
// for non-NaN input).
void ConvertToF16(const float* src, uint16_t* dst, int64_t n);

namespace ref {
void ConvertToF16(const float* src, uint16_t* dst, int64_t n);
}  // namespace ref

// The SIMD versions behind SiluMul / RmsNorm (ops.h), exposed for tests; call
// one only when GetCpuFeatures() reports its extension. The two SiluMul
// versions give the same bits.
namespace avx2 {
void SiluMul(float* gate, const float* up, int64_t n);
void RmsNorm(const float* x, const float* w, int64_t n, float eps, float* out);
}  // namespace avx2
namespace avx512 {
void SiluMul(float* gate, const float* up, int64_t n);
}  // namespace avx512

}  // namespace reprise::kernels
