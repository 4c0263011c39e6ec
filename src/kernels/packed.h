// Internal: repacked weight layouts for the AVX-512 VNNI Q8_0 / Q4_0 kernels,
// and the matching activation layout.
//
// "x16" layouts put 16 consecutive blocks of a row side by side: int32 lane i
// of a 64-byte vector holds 4 consecutive bytes of block i. One vpdpbusd then
// advances 16 block dot products by 4 elements each, so after 8 of them one
// register holds 16 exact block sums -- one convert and one FMA per 16 blocks
// instead of per 2. Rows are padded with zero blocks (d = 0) to a multiple of
// 16 blocks; activations are padded with zero blocks too.
//
// Packed row (64-byte aligned, `stride` bytes):
//   qs: [n_groups][kVecs][16 blocks][4 bytes]   kVecs = 8 (Q8_0) or 4 (Q4_0)
//       Q8_0 bytes are stored as w ^ 0x80 (unsigned w + 128);
//       Q4_0 bytes keep both nibbles: low = element 4k+j, high = 16+4k+j.
//   d:  [n_groups][16] f16 block scales
// Activation row (Act32x16): qs [n_groups][8][16][4] int8 (vector k, lane i =
// elements 4k..4k+3 of block i), d [n_groups][16] float, sums [n_groups][16] int32.
#pragma once

#include <cstdint>

#include "kernels/quant_blocks.h"

namespace reprise::kernels {

enum class PackedLayout : int { kNone = 0, kQ8_0x16 = 1, kQ4_0x16 = 2 };
constexpr int kGroupBlocks = 16;

struct PackedRowLayout {
  int64_t n_groups = 0;
  int64_t qs_group_bytes = 0;  // 512 (Q8_0) or 256 (Q4_0)
  int64_t d = 0;               // byte offset of the f16 scales
  int64_t stride = 0;          // bytes per packed row (multiple of 64)
};
PackedRowLayout MakePackedRowLayout(PackedLayout layout, int64_t cols);

// Packs one GGUF row of `cols` values into `dst` (PackedRowLayout.stride bytes).
void PackRow(PackedLayout layout, const uint8_t* src, int64_t cols, uint8_t* dst);

// Act32x16 row layout (ActRowLayout fields: qs, d, sums offsets; n_blocks
// counts the padded blocks).
ActRowLayout MakeAct32x16Layout(int64_t cols);
void QuantizeAct32x16(const float* x, int64_t cols, const ActRowLayout& l, uint8_t* row);

}  // namespace reprise::kernels
