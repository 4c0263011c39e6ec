// Small vector primitives for attention over KV rows (F32 or F16 storage),
// chosen once at run time: AVX2+F16C+FMA when available, else portable.
// Every call with the same length uses the same summation order, so results
// never depend on batch composition.
#pragma once

#include <cstdint>

namespace reprise::kernels {

// sum_i a[i] * b[i]
float DotF32(const float* a, const float* b, int64_t n);
// sum_i a[i] * half(b[i])
float DotF16(const float* a, const uint16_t* b, int64_t n);
// y[i] += a * x[i]
void AxpyF32(float a, const float* x, float* y, int64_t n);
void AxpyF16(float a, const uint16_t* x, float* y, int64_t n);
// dst[i] = half(src[i]) (round to nearest even)
void ConvertToF16(const float* src, uint16_t* dst, int64_t n);

// The portable versions (the oracle in tests).
namespace ref {
float DotF32(const float* a, const float* b, int64_t n);
float DotF16(const float* a, const uint16_t* b, int64_t n);
void AxpyF16(float a, const uint16_t* x, float* y, int64_t n);
void ConvertToF16(const float* src, uint16_t* dst, int64_t n);
}  // namespace ref

}  // namespace reprise::kernels
