#include "kernels/vec.h"

#include "core/cpu_features.h"
#include "core/fp16.h"

namespace reprise::kernels {

namespace avx2 {
float DotF32(const float* a, const float* b, int64_t n);
float DotF16(const float* a, const uint16_t* b, int64_t n);
void AxpyF32(float a, const float* x, float* y, int64_t n);
void AxpyF16(float a, const uint16_t* x, float* y, int64_t n);
void ConvertToF16(const float* src, uint16_t* dst, int64_t n);
}  // namespace avx2

namespace ref {
// Sequential sums: the SIMD versions differ only by float reassociation.
float DotF32(const float* a, const float* b, int64_t n) {
  float acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}
float DotF16(const float* a, const uint16_t* b, int64_t n) {
  float acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += a[i] * Fp16ToFp32(b[i]);
  return acc;
}
void AxpyF16(float a, const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * Fp16ToFp32(x[i]);
}
void ConvertToF16(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = Fp32ToFp16(src[i]);
}
}  // namespace ref

namespace {
bool UseAvx2() {
  static const bool use = GetCpuFeatures().avx2;
  return use;
}
}  // namespace

float DotF32(const float* a, const float* b, int64_t n) {
  return UseAvx2() ? avx2::DotF32(a, b, n) : ref::DotF32(a, b, n);
}
float DotF16(const float* a, const uint16_t* b, int64_t n) {
  return UseAvx2() ? avx2::DotF16(a, b, n) : ref::DotF16(a, b, n);
}
void AxpyF32(float a, const float* x, float* y, int64_t n) {
  if (UseAvx2()) return avx2::AxpyF32(a, x, y, n);
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}
void AxpyF16(float a, const uint16_t* x, float* y, int64_t n) {
  if (UseAvx2()) return avx2::AxpyF16(a, x, y, n);
  ref::AxpyF16(a, x, y, n);
}
void ConvertToF16(const float* src, uint16_t* dst, int64_t n) {
  if (UseAvx2()) return avx2::ConvertToF16(src, dst, n);
  ref::ConvertToF16(src, dst, n);
}

}  // namespace reprise::kernels
