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
// Rows are stored in panels of 8 (kPanelRows), and within a panel group by
// group: [panel][group][section][row lane][per-row bytes]. A decode step (one
// token, an 8-row tile) then streams the matrix strictly sequentially, which
// the memory system serves at ~40% more bandwidth than 8 interleaved row
// streams (measured on Zen 5 with 4-bit weights). Rows are padded with zero
// rows to a whole panel. Per row and group, the sections are
//   Q8_0x16: qs 512 (vector k lane i = w ^ 0x80 of values 4k..4k+3), d 32 (16 f16)
//   Q4_0x16: qs 256 (vector k < 4: low nibbles = values 4k.., high = 16+4k..), d 32
//   Q4_Kx16: qs 256 (as Q4_0), scales 32 (16 u8 scales, 16 u8 mins),
//            d 8 (f16 d of both super-blocks, then their dmin)
//   Q6_Kx16: qs 128 (low 4 bits: vector v low nibbles = values 4v.., high = 8+4v..),
//            qh 64 (bits 2k..2k+1 of lane byte b = high 2 bits of value 4k+b),
//            scales 16 (int8), d 2 (f16)
//   F16x8:   qs 64 (values 32g..32g+31 as f16; zeros past the row's end)
// and a panel-group holds each section for the 8 rows in turn (row lane i of
// section S at S's offset + i * S's per-row bytes), padded to 64 bytes.
// Activation row (ActX16): qs [n_groups][S/4][16][4] int8 (vector k, lane i =
// values 4k..4k+3 of sub-block i), d [n_groups][16] float (scale of the block
// holding sub-block i), sums [n_groups][16] int32: for Q4_Kx16 the sum of
// sub-block i's q; for the other layouts the kernel's starting value
// -(sum << PackedSumShift(layout)), the correction for the weights' offset.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "kernels/quant_blocks.h"

namespace reprise::kernels {

enum class PackedLayout : int {
  kNone = 0,
  kQ8_0x16 = 1,
  kQ4_0x16 = 2,
  kQ4_Kx16 = 3,
  kQ6_Kx16 = 4,
  kF16x8 = 5,  // F16 rows in 8-row panels, 32 values (64 bytes) a row per group
};
constexpr int kGroupLanes = 16;
constexpr int kPanelRows = 8;

// The per-group geometry of a layout (independent of the matrix size).
struct PanelGroupLayout {
  int qs_row = 0, qh_row = 0, scales_row = 0, d_row = 0;  // bytes per row and group
  int qs = 0, qh = 0, scales = 0, d = 0;  // section offsets within a panel-group
  int bytes = 0;                          // bytes per panel-group (multiple of 64)
};
constexpr PanelGroupLayout MakePanelGroupLayout(PackedLayout layout) {
  PanelGroupLayout g;
  switch (layout) {
    case PackedLayout::kQ8_0x16:
      g.qs_row = 512, g.d_row = 32;
      break;
    case PackedLayout::kQ4_0x16:
      g.qs_row = 256, g.d_row = 32;
      break;
    case PackedLayout::kQ4_Kx16:
      g.qs_row = 256, g.scales_row = 32, g.d_row = 8;
      break;
    case PackedLayout::kQ6_Kx16:
      g.qs_row = 128, g.qh_row = 64, g.scales_row = 16, g.d_row = 2;
      break;
    case PackedLayout::kF16x8:
      g.qs_row = 64;  // 32 halves
      break;
    default:
      break;
  }
  g.qs = 0;
  g.qh = g.qs + kPanelRows * g.qs_row;
  g.scales = g.qh + kPanelRows * g.qh_row;
  g.d = g.scales + kPanelRows * g.scales_row;
  g.bytes = (g.d + kPanelRows * g.d_row + 63) / 64 * 64;
  return g;
}

struct PackedMatrixLayout {
  int64_t n_groups = 0;      // groups per row
  int64_t n_panels = 0;      // ceil(rows / kPanelRows)
  int64_t panel_stride = 0;  // bytes per panel: n_groups * panel-group bytes
  int64_t bytes = 0;         // n_panels * panel_stride
};
PackedMatrixLayout MakePackedMatrixLayout(PackedLayout layout, int64_t rows, int64_t cols);

// Packs GGUF row `r` of `cols` values into a zero-initialized packed matrix
// `dst` (laid out by MakePackedMatrixLayout).
void PackRow(PackedLayout layout, const uint8_t* src, int64_t cols, int64_t r, uint8_t* dst);

// Values per sub-block (32 or 16) and per quantization block (32 or 256);
// F16x8 has no activation quantization (sub-block 2, block 1: a group of 32
// values, any width).
int PackedSubBlock(PackedLayout layout);
int PackedActBlock(PackedLayout layout);
// The shift of the per-sub-block activation sum stored as a correction in
// ActX16's sums (-1: the plain sum is stored): Q8_0x16 7 (weights stored as
// w ^ 0x80 = w + 128), Q4_0x16 3 (q - 8), Q6_Kx16 5 (q - 32).
constexpr int PackedSumShift(PackedLayout layout) {
  return layout == PackedLayout::kQ8_0x16   ? 7
         : layout == PackedLayout::kQ4_0x16 ? 3
         : layout == PackedLayout::kQ6_Kx16 ? 5
                                            : -1;
}
// The value ActX16 stores in sums for a sub-block whose q add up to `sum`.
constexpr int32_t PackedSumEntry(PackedLayout layout, int32_t sum) {
  return PackedSumShift(layout) >= 0 ? -(sum * (1 << PackedSumShift(layout))) : sum;
}
// Whether the layout's kernels take int8 activations (all but kF16x8).
inline bool PackedQuantizesActivations(PackedLayout layout) {
  return layout != PackedLayout::kF16x8;
}

// ActX16 row layout for `layout` (n_blocks = number of sub-block lanes).
ActRowLayout MakeActX16Layout(PackedLayout layout, int64_t cols);
// Same quantization as QuantizeAct32 / QuantizeAct256, laid out as ActX16.
void QuantizeActX16(PackedLayout layout, const float* x, int64_t cols, const ActRowLayout& l,
                    uint8_t* row);

}  // namespace reprise::kernels
