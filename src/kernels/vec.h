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

}  // namespace reprise::kernels
