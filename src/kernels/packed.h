// Internal: repacked weight layouts for the AVX-512 VNNI kernels, and the
// matching activation layout.
//
// "x16" layouts put 16 sub-blocks side by side: int32 lane i of a 64-byte
// vector holds 4 consecutive values of sub-block i. One vpdpbusd then advances
// 16 sub-block dot products by 4 values each, so after S/4 of them (S = values
// per sub-block) one register holds 16 exact sub-block sums: one convert and
// one FMA per 16 sub-blocks instead of per 2. A group is 16 sub-blocks:
//   Q8_0x16, Q4_0x16: 16 blocks of 32 (512 values)
//   Q4_Kx16:          2 super-blocks = 16 sub-blocks of 32 (512 values)
//   Q6_Kx16:          1 super-block  = 16 sub-blocks of 16 (256 values)
// Rows (and activations) are padded with zero blocks to whole groups.
//
// Packed row sections, each [n_groups][per-group bytes], 64-byte aligned row:
//   Q8_0x16: qs 512 (vector k lane i = w ^ 0x80 of values 4k..4k+3), d 32 (16 f16)
//   Q4_0x16: qs 256 (vector k < 4: low nibbles = values 4k.., high = 16+4k..), d 32
//   Q4_Kx16: qs 256 (as Q4_0), scales 32 (16 u8 scales, 16 u8 mins),
//            d 8 (f16 d of both super-blocks, then their dmin)
//   Q6_Kx16: qs 128 (low 4 bits: vector v low nibbles = values 4v.., high = 8+4v..),
//            qh 64 (bits 2k..2k+1 of lane byte b = high 2 bits of value 4k+b),
//            scales 16 (int8), d 2 (f16)
// Activation row (ActX16): qs [n_groups][S/4][16][4] int8 (vector k, lane i =
// values 4k..4k+3 of sub-block i), d [n_groups][16] float (scale of the block
// holding sub-block i), sums [n_groups][16] int32 (sum of sub-block i's q).
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "kernels/quant_blocks.h"

namespace reprise::kernels {

enum class PackedLayout : int { kNone = 0, kQ8_0x16 = 1, kQ4_0x16 = 2, kQ4_Kx16 = 3, kQ6_Kx16 = 4 };
constexpr int kGroupLanes = 16;

struct PackedRowLayout {
  int64_t n_groups = 0;
  int64_t qs = 0, qh = 0, scales = 0, d = 0;  // section byte offsets
  int64_t stride = 0;                         // bytes per packed row (multiple of 64)
};
PackedRowLayout MakePackedRowLayout(PackedLayout layout, int64_t cols);

// Packs one GGUF row of `cols` values into `dst` (PackedRowLayout.stride bytes).
void PackRow(PackedLayout layout, const uint8_t* src, int64_t cols, uint8_t* dst);

// Values per sub-block (32 or 16) and per quantization block (32 or 256).
int PackedSubBlock(PackedLayout layout);
int PackedActBlock(PackedLayout layout);

// ActX16 row layout for `layout` (n_blocks = number of sub-block lanes).
ActRowLayout MakeActX16Layout(PackedLayout layout, int64_t cols);
// Same quantization as QuantizeAct32 / QuantizeAct256, laid out as ActX16.
void QuantizeActX16(PackedLayout layout, const float* x, int64_t cols, const ActRowLayout& l,
                    uint8_t* row);

}  // namespace reprise::kernels
