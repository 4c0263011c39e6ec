// Repacking of Q8_0 / Q4_0 rows into the x16 layouts, and activation
// quantization into Act32x16 (see packed.h). Portable code: runs at load time
// and once per MatMul call.
#include "kernels/packed.h"

#include <cstring>

#include "core/check.h"

namespace reprise::kernels {

PackedRowLayout MakePackedRowLayout(PackedLayout layout, int64_t cols) {
  CHECK(layout != PackedLayout::kNone && cols % kQK == 0);
  PackedRowLayout l;
  const int64_t nb = cols / kQK;
  l.n_groups = (nb + kGroupBlocks - 1) / kGroupBlocks;
  l.qs_group_bytes = layout == PackedLayout::kQ8_0x16 ? 512 : 256;
  l.d = l.n_groups * l.qs_group_bytes;
  l.stride = AlignUp64(l.d + l.n_groups * kGroupBlocks * 2);
  return l;
}

void PackRow(PackedLayout layout, const uint8_t* src, int64_t cols, uint8_t* dst) {
  const PackedRowLayout l = MakePackedRowLayout(layout, cols);
  std::memset(dst, 0, l.stride);
  const int64_t nb = cols / kQK;
  uint16_t* d = reinterpret_cast<uint16_t*>(dst + l.d);
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t g = b / kGroupBlocks, i = b % kGroupBlocks;
    uint8_t* qs = dst + g * l.qs_group_bytes;
    if (layout == PackedLayout::kQ8_0x16) {
      const BlockQ8_0& blk = reinterpret_cast<const BlockQ8_0*>(src)[b];
      d[b] = blk.d;
      for (int k = 0; k < 8; ++k) {
        for (int j = 0; j < 4; ++j) {
          qs[64 * k + 4 * i + j] = static_cast<uint8_t>(blk.qs[4 * k + j]) ^ 0x80;
        }
      }
    } else {
      const BlockQ4_0& blk = reinterpret_cast<const BlockQ4_0*>(src)[b];
      d[b] = blk.d;
      for (int k = 0; k < 4; ++k) std::memcpy(qs + 64 * k + 4 * i, blk.qs + 4 * k, 4);
    }
  }
}

ActRowLayout MakeAct32x16Layout(int64_t cols) {
  ActRowLayout l;
  const int64_t n_groups = (cols / kQK + kGroupBlocks - 1) / kGroupBlocks;
  l.n_blocks = n_groups * kGroupBlocks;
  l.qs = 0;
  l.d = n_groups * kGroupBlocks * kQK;
  l.sums = l.d + n_groups * kGroupBlocks * 4;
  l.stride = l.sums + n_groups * kGroupBlocks * 4;
  return l;
}

void QuantizeAct32x16(const float* x, int64_t cols, const ActRowLayout& l, uint8_t* row) {
  const int64_t nb = cols / kQK;
  float* d = reinterpret_cast<float*>(row + l.d);
  int32_t* sums = reinterpret_cast<int32_t*>(row + l.sums);
  for (int64_t b = 0; b < l.n_blocks; ++b) {
    const int64_t g = b / kGroupBlocks, i = b % kGroupBlocks;
    int8_t q[kQK] = {};
    d[b] = b < nb ? QuantizeBlock(x + b * kQK, kQK, q) : 0.0f;
    int32_t s = 0;
    for (int j = 0; j < kQK; ++j) s += q[j];
    sums[b] = s;
    uint8_t* qs = row + l.qs + g * kGroupBlocks * kQK;
    for (int k = 0; k < 8; ++k) std::memcpy(qs + 64 * k + 4 * i, q + 4 * k, 4);
  }
}

}  // namespace reprise::kernels
