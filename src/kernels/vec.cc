#include "kernels/vec.h"

#include "core/cpu_features.h"
#include "core/fp16.h"

namespace reprise::kernels {

namespace avx2 {
void ConvertToF16(const float* src, uint16_t* dst, int64_t n);
}  // namespace avx2

namespace ref {
void ConvertToF16(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = Fp32ToFp16(src[i]);
}
}  // namespace ref

void ConvertToF16(const float* src, uint16_t* dst, int64_t n) {
  static const bool use_avx2 = GetCpuFeatures().avx2;
  if (use_avx2) return avx2::ConvertToF16(src, dst, n);
  ref::ConvertToF16(src, dst, n);
}

}  // namespace reprise::kernels
