// Internal: the GGUF/ggml weight block layouts (fixed by the file format) and
// the int8 activation layouts the quantized MatMul paths use. Shared by ref/
// (the oracle) and cpu/ (SIMD); not part of the public API.
//
// Activation formats (decided here, not by ggml):
//  - Act32 (for Q8_0 / Q4_0 weights): per 32 values, float d = amax/127,
//    q = round-to-nearest-even(x * (127/amax)) in [-127, 127], and the block
//    sum of q (int32). d is kept in f32 (ggml rounds it to f16; we need not).
//  - Act256 (for Q4_K / Q6_K weights): per 256 values, float d = amax/127,
//    same rounding, plus the sum of q over each 16 values (int16).
// One token row of activations is laid out structure-of-arrays so SIMD loads
// are contiguous; see ActRowLayout.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace reprise::kernels {

constexpr int kQK = 32;    // elements per Q8_0 / Q4_0 block
constexpr int kQKK = 256;  // elements per K-quant super-block

struct BlockQ8_0 {
  uint16_t d;  // f16 scale
  int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8_0) == 34);

struct BlockQ4_0 {
  uint16_t d;           // f16 scale; value = (q - 8) * d
  uint8_t qs[kQK / 2];  // low nibbles: elements 0..15, high nibbles: 16..31
};
static_assert(sizeof(BlockQ4_0) == 18);

struct BlockQ4K {
  uint16_t d;            // f16 scale of the 6-bit sub-block scales
  uint16_t dmin;         // f16 scale of the 6-bit sub-block mins
  uint8_t scales[12];    // 8 scales + 8 mins, 6 bits each (see GetScaleMinK4)
  uint8_t qs[kQKK / 2];  // per 64 values: 32 bytes, low nibbles first 32, high next 32
};
static_assert(sizeof(BlockQ4K) == 144);

struct BlockQ6K {
  uint8_t ql[kQKK / 2];      // low 4 bits
  uint8_t qh[kQKK / 4];      // high 2 bits
  int8_t scales[kQKK / 16];  // per 16 values
  uint16_t d;                // f16 super-block scale
};
static_assert(sizeof(BlockQ6K) == 210);

// Sub-block j (0..7) scale and min of a Q4_K block (6 bits each).
inline void GetScaleMinK4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Byte offsets of one token's quantized activations inside its row of the
// workspace. Every array starts 64-byte aligned.
struct ActRowLayout {
  int64_t qs = 0;    // int8 [cols]
  int64_t d = 0;     // float [n_blocks]
  int64_t sums = 0;  // Act32: int32 [n_blocks]; Act256: int16 [n_blocks * 16]
  int64_t n_blocks = 0;
  int64_t stride = 0;  // bytes per token row
};

inline int64_t AlignUp64(int64_t v) { return (v + 63) & ~int64_t{63}; }

// Act32 for block 32, Act256 for block 256.
inline ActRowLayout MakeActRowLayout(int64_t cols, int block) {
  ActRowLayout l;
  l.n_blocks = cols / block;
  l.qs = 0;
  l.d = AlignUp64(cols);
  l.sums = l.d + AlignUp64(l.n_blocks * 4);
  const int64_t sums_bytes = block == kQK ? l.n_blocks * 4 : l.n_blocks * 16 * 2;
  l.stride = l.sums + AlignUp64(sums_bytes);
  return l;
}

// Quantizes n values to int8 with one scale (d = amax / 127, round to
// nearest even); returns d. The one activation quantizer of every path.
float QuantizeBlock(const float* x, int n, int8_t* q);

// Quantizes one token row x[cols] into `row` (layout from MakeActRowLayout).
// Portable; every kernel level uses it, so activations are identical bits on
// every path.
void QuantizeAct32(const float* x, int64_t cols, const ActRowLayout& l, uint8_t* row);
void QuantizeAct256(const float* x, int64_t cols, const ActRowLayout& l, uint8_t* row);

}  // namespace reprise::kernels
