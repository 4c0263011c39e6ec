// Repacking of GGUF rows into the x16 layouts, and activation quantization
// into ActX16 (see packed.h). Portable code: runs at load time and once per
// MatMul call.
#include "kernels/packed.h"

#include <algorithm>
#include <cstring>

#include "core/check.h"

namespace reprise::kernels {

int PackedSubBlock(PackedLayout layout) {
  if (layout == PackedLayout::kF16x8) return 2;
  return layout == PackedLayout::kQ6_Kx16 ? 16 : 32;
}
int PackedActBlock(PackedLayout layout) {
  if (layout == PackedLayout::kF16x8) return 1;
  return layout == PackedLayout::kQ8_0x16 || layout == PackedLayout::kQ4_0x16 ? kQK : kQKK;
}

namespace {
int64_t GroupValues(PackedLayout layout) { return kGroupLanes * PackedSubBlock(layout); }
int64_t NumGroups(PackedLayout layout, int64_t cols) {
  return (cols + GroupValues(layout) - 1) / GroupValues(layout);
}
}  // namespace

PackedMatrixLayout MakePackedMatrixLayout(PackedLayout layout, int64_t rows, int64_t cols) {
  CHECK(layout != PackedLayout::kNone && rows > 0 && cols % PackedActBlock(layout) == 0);
  PackedMatrixLayout l;
  l.n_groups = NumGroups(layout, cols);
  l.n_panels = (rows + kPanelRows - 1) / kPanelRows;
  l.panel_stride = l.n_groups * MakePanelGroupLayout(layout).bytes;
  l.bytes = l.n_panels * l.panel_stride;
  return l;
}

void PackRow(PackedLayout layout, const uint8_t* src, int64_t cols, int64_t r, uint8_t* dst) {
  const PanelGroupLayout gl = MakePanelGroupLayout(layout);
  const int64_t lane = r % kPanelRows;
  uint8_t* panel = dst + (r / kPanelRows) * NumGroups(layout, cols) * gl.bytes;
  // Section bytes of row `lane` in group g.
  auto qs = [&](int64_t g) { return panel + g * gl.bytes + gl.qs + lane * gl.qs_row; };
  auto qh = [&](int64_t g) { return panel + g * gl.bytes + gl.qh + lane * gl.qh_row; };
  auto scales = [&](int64_t g) {
    return panel + g * gl.bytes + gl.scales + lane * gl.scales_row;
  };
  auto d = [&](int64_t g) {
    return reinterpret_cast<uint16_t*>(panel + g * gl.bytes + gl.d + lane * gl.d_row);
  };
  if (layout == PackedLayout::kF16x8) {
    const uint16_t* h = reinterpret_cast<const uint16_t*>(src);
    for (int64_t c = 0; c < cols; c += 32) {
      std::memcpy(qs(c / 32), h + c, 2 * std::min<int64_t>(32, cols - c));
    }
  } else if (layout == PackedLayout::kQ8_0x16 || layout == PackedLayout::kQ4_0x16) {
    for (int64_t b = 0; b < cols / kQK; ++b) {
      const int64_t g = b / kGroupLanes, i = b % kGroupLanes;
      if (layout == PackedLayout::kQ8_0x16) {
        const BlockQ8_0& blk = reinterpret_cast<const BlockQ8_0*>(src)[b];
        d(g)[i] = blk.d;
        for (int k = 0; k < 8; ++k) {
          for (int j = 0; j < 4; ++j) {
            qs(g)[64 * k + 4 * i + j] = static_cast<uint8_t>(blk.qs[4 * k + j]) ^ 0x80;
          }
        }
      } else {
        const BlockQ4_0& blk = reinterpret_cast<const BlockQ4_0*>(src)[b];
        d(g)[i] = blk.d;
        for (int k = 0; k < 4; ++k) std::memcpy(qs(g) + 64 * k + 4 * i, blk.qs + 4 * k, 4);
      }
    }
  } else if (layout == PackedLayout::kQ4_Kx16) {
    for (int64_t sb = 0; sb < cols / kQKK; ++sb) {
      const BlockQ4K& blk = reinterpret_cast<const BlockQ4K*>(src)[sb];
      const int64_t g = sb / 2, half = sb % 2;
      d(g)[half] = blk.d;
      d(g)[2 + half] = blk.dmin;
      for (int j = 0; j < 8; ++j) {
        const int i = static_cast<int>(8 * half + j);  // lane
        uint8_t sc, m;
        GetScaleMinK4(j, blk.scales, &sc, &m);
        scales(g)[i] = sc;
        scales(g)[16 + i] = m;
        const uint8_t* q = blk.qs + 32 * (j / 2);
        const int shift = 4 * (j % 2);
        for (int e = 0; e < 16; ++e) {  // value e (low nibble) and 16 + e (high nibble)
          const uint8_t lo = (q[e] >> shift) & 0xF, hi = (q[e + 16] >> shift) & 0xF;
          qs(g)[64 * (e / 4) + 4 * i + e % 4] = static_cast<uint8_t>(lo | (hi << 4));
        }
      }
    }
  } else {  // kQ6_Kx16: one super-block per group
    for (int64_t g = 0; g < cols / kQKK; ++g) {
      const BlockQ6K& blk = reinterpret_cast<const BlockQ6K*>(src)[g];
      d(g)[0] = blk.d;
      std::memcpy(scales(g), blk.scales, 16);
      for (int v = 0; v < kQKK; ++v) {  // value v of the super-block
        const int h = v / 128, l2 = v % 32, part = (v % 128) / 32;
        const uint8_t qlb = blk.ql[64 * h + l2 + 32 * (part & 1)];
        const int low = part < 2 ? (qlb & 0xF) : (qlb >> 4);
        const int high = (blk.qh[32 * h + l2] >> (2 * part)) & 3;
        const int i = v / 16, e = v % 16;  // lane, value within the sub-block
        const int k = e / 4, b = e % 4;    // vector, byte
        qs(g)[64 * (k % 2) + 4 * i + b] |= static_cast<uint8_t>(low << (4 * (k / 2)));
        qh(g)[4 * i + b] |= static_cast<uint8_t>(high << (2 * k));
      }
    }
  }
}

ActRowLayout MakeActX16Layout(PackedLayout layout, int64_t cols) {
  ActRowLayout l;
  const int64_t n = NumGroups(layout, cols);
  l.n_blocks = n * kGroupLanes;
  l.qs = 0;
  l.d = n * GroupValues(layout);
  l.sums = l.d + n * kGroupLanes * 4;
  l.stride = l.sums + n * kGroupLanes * 4;
  return l;
}

void QuantizeActX16(PackedLayout layout, const float* x, int64_t cols, const ActRowLayout& l,
                    uint8_t* row) {
  const int block = PackedActBlock(layout), sub = PackedSubBlock(layout);
  const int64_t group_values = GroupValues(layout);
  float* d = reinterpret_cast<float*>(row + l.d);
  int32_t* sums = reinterpret_cast<int32_t*>(row + l.sums);
  std::memset(row, 0, l.stride);
  int8_t q[kQKK];
  for (int64_t b = 0; b < cols / block; ++b) {
    const float db = QuantizeBlock(x + b * block, block, q);
    for (int s = 0; s < block / sub; ++s) {
      const int64_t lane_global = (b * block + s * sub) / sub;
      const int64_t g = lane_global / kGroupLanes, i = lane_global % kGroupLanes;
      d[lane_global] = db;
      int32_t sum = 0;
      for (int e = 0; e < sub; ++e) sum += q[s * sub + e];
      sums[lane_global] = PackedSumEntry(layout, sum);
      uint8_t* qs = row + l.qs + g * group_values;
      for (int k = 0; k < sub / 4; ++k) std::memcpy(qs + 64 * k + 4 * i, q + s * sub + 4 * k, 4);
    }
  }
}

}  // namespace reprise::kernels
