// CUDA matmul: the weight repack done at upload, activation quantization, and
// y = W x for every weight type.
//
// The canonical order of one output y[t, r] (the determinism contract): the
// row's columns are cut into segments of kSegCols (a fixed width: it depends
// on nothing but the row), each segment's units are accumulated in column
// order from 0, and the segment sums are added in segment order (the first
// one is the start). Every kernel and the host emulation follow it with the
// same shared device functions, whatever n, the tile or the grid.
// Here one thread owns one row r, one segment and up to kTokTile tokens (grid
// z = segments, so a decode step has rows / 32 x segments warps); the 32 lanes
// of a warp are 32 consecutive rows of one interleaved row group, so a warp's
// loads of one unit are 32 consecutive units (coalesced). Segment sums go to
// a scratch array and a second kernel adds them in order.
//  - Quantized weights (Q8_0, Q4_0, Q4_K, Q6_K) against int8 activations
//    (32 values per f32 scale): per 32-value sub-block an exact integer dot
//    product, scaled as SubBlockContrib says, added to the accumulator.
//  - F32 / F16 / BF16 weights against f32 activations: one fused multiply-add
//    per value, in column order.
// From 16 tokens on, quantized weights run on the int8 tensor cores
// (MatMulQuantMmaKernel below): the same canonical order, the same bits.
// This is the correctness-first version: tensor-core tiles and a split over
// columns for small row counts come next (BENCHMARKS.md tracks the speed).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "core/check.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"

namespace reprise::kernels::cuda {
namespace {

int UnitBytes(DType type) {
  switch (type) {
    case DType::kQ8_0: return kQ8_0Bytes;
    case DType::kQ4_0: return kQ4_0Bytes;
    case DType::kQ4_K: return kQ4KBytes;
    case DType::kQ6_K: return kQ6KBytes;
    default: return 16;  // F32 / F16 / BF16: 16 bytes of values
  }
}

// Values per unit.
int UnitValues(DType type) {
  switch (type) {
    case DType::kQ8_0:
    case DType::kQ4_0: return 32;
    case DType::kQ4_K:
    case DType::kQ6_K: return 256;
    case DType::kF32: return 4;
    default: return 8;  // F16, BF16
  }
}

// Exact integer dot product of q[begin, end) and xq[begin, end) (begin and
// end multiples of 4; xq 4-byte aligned): dp4a on the device, the same sum on
// the host.
REPRISE_HD int DotSub(const SubBlock& s, const int8_t* xq, int begin, int end) {
  int acc = 0;
#ifdef __CUDA_ARCH__
  const int* qw = reinterpret_cast<const int*>(s.q);
  const int* xw = reinterpret_cast<const int*>(xq);
  for (int i = begin / 4; i < end / 4; ++i) acc = __dp4a(qw[i], xw[i], acc);
#else
  for (int i = begin; i < end; ++i) acc += static_cast<int>(s.q[i]) * static_cast<int>(xq[i]);
#endif
  return acc;
}

// The float contribution of one 32-value sub-block to one output.
template <int kKind>  // 0: Q8_0 / Q4_0, 1: Q4_K, 2: Q6_K
REPRISE_HD float SubBlockContrib(const SubBlock& s, const int8_t* xq, float dx,
                                                 int32_t sx) {
  if (kKind == 0) {
    const int sumi = DotSub(s, xq, 0, 32);
    return FMul(FMul(s.d, dx), static_cast<float>(sumi));
  } else if (kKind == 1) {
    const int sumi = DotSub(s, xq, 0, 32);
    const float pos = FMul(FMul(s.d, static_cast<float>(s.sc0)), static_cast<float>(sumi));
    const float neg = FMul(FMul(s.dmin, static_cast<float>(s.m)), static_cast<float>(sx));
    return FMul(dx, FSub(pos, neg));
  } else {
    const int isum = s.sc0 * DotSub(s, xq, 0, 16) + s.sc1 * DotSub(s, xq, 16, 32);
    return FMul(FMul(s.d, dx), static_cast<float>(isum));
  }
}

template <int kType>  // static_cast<int>(DType)
REPRISE_HD void LoadSub(const uint8_t* unit, int j, SubBlock* s) {
  if constexpr (kType == static_cast<int>(DType::kQ8_0)) {
    LoadSubBlockQ8_0(unit, s);
  } else if constexpr (kType == static_cast<int>(DType::kQ4_0)) {
    LoadSubBlockQ4_0(unit, s);
  } else if constexpr (kType == static_cast<int>(DType::kQ4_K)) {
    LoadSubBlockQ4K(unit, j, s);
  } else {
    LoadSubBlockQ6K(unit, j, s);
  }
}

// The (row, token tile) of this thread and where its row's first unit is.
struct RowTile {
  int64_t r = 0, t0 = 0;
  int n_tok = 0;
  const uint8_t* row = nullptr;  // unit u at row + u * kRowGroup * unit_bytes
};
__device__ __forceinline__ bool ThisRowTile(const uint8_t* w, int64_t rows, int64_t n_units,
                                            int unit_bytes, int64_t n, RowTile* t) {
  t->r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t->r >= rows) return false;  // no cross-lane work in the kernels: lanes may leave early
  t->t0 = static_cast<int64_t>(blockIdx.y) * kTokTile;
  t->n_tok = static_cast<int>(n - t->t0 < kTokTile ? n - t->t0 : kTokTile);
  const int64_t group = t->r / kRowGroup, lane = t->r % kRowGroup;
  t->row = w + (group * n_units * kRowGroup + lane) * unit_bytes;
  return true;
}

// Units [*u0, *u1) of segment `seg` for units of `per_unit` values.
REPRISE_HD void SegmentUnits(int64_t seg, int64_t n_units, int per_unit, int64_t* u0,
                             int64_t* u1) {
  const int64_t per_seg = kSegCols / per_unit;
  *u0 = seg * per_seg;
  *u1 = *u0 + per_seg < n_units ? *u0 + per_seg : n_units;
}

// Writes segment sums: part[(seg * n + t) * rows + r].
template <int kType, int kKind, int kSubs, int kUnitBytes>
__global__ void MatMulQuantKernel(const uint8_t* __restrict__ w, int64_t rows, int64_t n_units,
                                  const int8_t* __restrict__ xq, const float* __restrict__ xd,
                                  const int32_t* __restrict__ xs, int64_t cols, int64_t n,
                                  float* __restrict__ part) {
  RowTile tile;
  if (!ThisRowTile(w, rows, n_units, kUnitBytes, n, &tile)) return;
  const int64_t r = tile.r, t0 = tile.t0, seg = blockIdx.z;
  const int n_tok = tile.n_tok;
  const uint8_t* row = tile.row;
  float acc[kTokTile];
  for (int k = 0; k < kTokTile; ++k) acc[k] = 0.0f;
  const int64_t nb32 = cols / 32;
  int64_t u0, u1;
  SegmentUnits(seg, n_units, kSubs * 32, &u0, &u1);
  for (int64_t u = u0; u < u1; ++u) {
    const uint8_t* unit = row + u * kRowGroup * kUnitBytes;
    for (int j = 0; j < kSubs; ++j) {
      SubBlock s;
      LoadSub<kType>(unit, j, &s);
      const int64_t b = u * kSubs + j;  // 32-value block index within the row
      for (int k = 0; k < n_tok; ++k) {
        const int64_t t = t0 + k;
        const float c = SubBlockContrib<kKind>(s, xq + t * cols + b * 32, xd[t * nb32 + b],
                                               xs[t * nb32 + b]);
        acc[k] = FAdd(acc[k], c);
      }
    }
  }
  for (int k = 0; k < n_tok; ++k) part[(seg * n + t0 + k) * rows + r] = acc[k];
}

// ---- The tensor-core path for quantized weights (prefill) ----
// The same canonical order as MatMulQuantKernel, computed with int8 MMA:
// per 32-value sub-block the exact integer dot products of a 64-row x
// 64-token tile come from mma.sync (m16n8k16, s8 x s8 -> s32, two halves of
// 16 so Q6_K's two scales apply), then each element gets the very float
// contribution SubBlockContrib computes, added in sub-block order, with the
// segment sums combined in segment order. Integer sums are exact whatever
// the instruction, so every output is bit-identical to the GEMV kernel's:
// a token's result never depends on which path or batch computed it.
constexpr int kMmaRows = 64, kMmaToks = 64, kMmaStride = 48;  // smem row stride (bytes):
                                                              // conflict-free fragment loads

__device__ __forceinline__ void MmaS8K16(int a0, int a1, int b0, int (&d)[4]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5}, {%6}, "
      "{%7,%8,%9,%10};\n"
      : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
      : "r"(a0), "r"(a1), "r"(b0), "r"(0), "r"(0), "r"(0), "r"(0));
#else
  d[0] = d[1] = d[2] = d[3] = 0;
  __trap();
#endif
}

template <int kType, int kKind, int kSubs, int kUnitBytes>
__global__ void __launch_bounds__(128)
    MatMulQuantMmaKernel(const uint8_t* __restrict__ w, int64_t rows, int64_t n_units,
                         const int8_t* __restrict__ xq, const float* __restrict__ xd,
                         const int32_t* __restrict__ xs, int64_t cols, int64_t n,
                         float* __restrict__ y, int64_t ldy) {
  __shared__ alignas(16) int8_t wq[kMmaRows * kMmaStride];
  __shared__ alignas(16) int8_t aq[kMmaToks * kMmaStride];
  __shared__ float row_a[kMmaRows], row_b[kMmaRows];  // per-row scale terms
  __shared__ int row_sc0[kMmaRows], row_sc1[kMmaRows];
  __shared__ float tok_d[kMmaToks];
  __shared__ int tok_s[kMmaToks];

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, q4 = lane % 4;
  const int64_t r_base = static_cast<int64_t>(blockIdx.x) * kMmaRows;
  const int64_t t_base = static_cast<int64_t>(blockIdx.y) * kMmaToks;
  const int wr = (warp / 2) * 32, wt = (warp % 2) * 32;  // this warp's 32 x 32 sub-tile
  const int64_t nb32 = cols / 32;
  const int64_t padded_rows = (rows + kRowGroup - 1) / kRowGroup * kRowGroup;

  float seg_acc[2][4][4], total[2][4][4];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j)
      for (int e = 0; e < 4; ++e) seg_acc[i][j][e] = 0.0f, total[i][j][e] = 0.0f;

  const int subs_per_seg = kSegCols / 32;
  for (int64_t b = 0; b < nb32; ++b) {
    // Stage sub-block b: threads 0..63 decode one weight row each, threads
    // 64..127 copy one token's 32 activation bytes each (two 16-byte loads).
    if (tid < kMmaRows) {
      const int64_t r = r_base + tid;
      SubBlock sb;
      if (r < padded_rows) {
        const int64_t group = r / kRowGroup, rl = r % kRowGroup;
        const uint8_t* unit =
            w + ((group * n_units + b / kSubs) * kRowGroup + rl) * kUnitBytes;
        LoadSub<kType>(unit, static_cast<int>(b % kSubs), &sb);
      } else {
        for (int i = 0; i < 32; ++i) sb.q[i] = 0;
        sb.d = 0.0f;
      }
      int4* dst = reinterpret_cast<int4*>(wq + tid * kMmaStride);
      dst[0] = *reinterpret_cast<const int4*>(sb.q);
      dst[1] = *reinterpret_cast<const int4*>(sb.q + 16);
      if (kKind == 1) {
        row_a[tid] = FMul(sb.d, static_cast<float>(sb.sc0));
        row_b[tid] = FMul(sb.dmin, static_cast<float>(sb.m));
      } else {
        row_a[tid] = sb.d;
      }
      row_sc0[tid] = sb.sc0;
      row_sc1[tid] = sb.sc1;
    } else {
      const int k = tid - kMmaRows;
      const int64_t t = t_base + k;
      int4* dst = reinterpret_cast<int4*>(aq + k * kMmaStride);
      if (t < n) {
        const int4* src = reinterpret_cast<const int4*>(xq + t * cols + b * 32);
        dst[0] = src[0];
        dst[1] = src[1];
        tok_d[k] = xd[t * nb32 + b];
        tok_s[k] = xs[t * nb32 + b];
      } else {
        dst[0] = dst[1] = make_int4(0, 0, 0, 0);
        tok_d[k] = 0.0f;
        tok_s[k] = 0;
      }
    }
    __syncthreads();

    int a_lo[2][2], a_hi[2][2], b_lo[4], b_hi[4];
    for (int i = 0; i < 2; ++i) {
      const int8_t* r0 = wq + (wr + i * 16 + g) * kMmaStride + q4 * 4;
      const int8_t* r1 = r0 + 8 * kMmaStride;
      a_lo[i][0] = *reinterpret_cast<const int*>(r0);
      a_lo[i][1] = *reinterpret_cast<const int*>(r1);
      a_hi[i][0] = *reinterpret_cast<const int*>(r0 + 16);
      a_hi[i][1] = *reinterpret_cast<const int*>(r1 + 16);
    }
    for (int j = 0; j < 4; ++j) {
      const int8_t* c0 = aq + (wt + j * 8 + g) * kMmaStride + q4 * 4;
      b_lo[j] = *reinterpret_cast<const int*>(c0);
      b_hi[j] = *reinterpret_cast<const int*>(c0 + 16);
    }
    for (int i = 0; i < 2; ++i) {
      for (int j = 0; j < 4; ++j) {
        int lo[4], hi[4];
        MmaS8K16(a_lo[i][0], a_lo[i][1], b_lo[j], lo);
        MmaS8K16(a_hi[i][0], a_hi[i][1], b_hi[j], hi);
        for (int e = 0; e < 4; ++e) {
          const int rr = wr + i * 16 + g + (e >= 2 ? 8 : 0);
          const int tt = wt + j * 8 + q4 * 2 + (e & 1);
          const float dx = tok_d[tt];
          float c;
          if (kKind == 0) {
            c = FMul(FMul(row_a[rr], dx), static_cast<float>(lo[e] + hi[e]));
          } else if (kKind == 1) {
            const float pos = FMul(row_a[rr], static_cast<float>(lo[e] + hi[e]));
            const float neg = FMul(row_b[rr], static_cast<float>(tok_s[tt]));
            c = FMul(dx, FSub(pos, neg));
          } else {
            const int isum = row_sc0[rr] * lo[e] + row_sc1[rr] * hi[e];
            c = FMul(FMul(row_a[rr], dx), static_cast<float>(isum));
          }
          seg_acc[i][j][e] = FAdd(seg_acc[i][j][e], c);
        }
      }
    }
    // The end of a segment (or of the row): fold its sum into the total.
    if ((b + 1) % subs_per_seg == 0 || b + 1 == nb32) {
      const bool first = b < subs_per_seg;
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 4; ++j)
          for (int e = 0; e < 4; ++e) {
            total[i][j][e] = first ? seg_acc[i][j][e] : FAdd(total[i][j][e], seg_acc[i][j][e]);
            seg_acc[i][j][e] = 0.0f;
          }
    }
    __syncthreads();
  }
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j)
      for (int e = 0; e < 4; ++e) {
        const int64_t r = r_base + wr + i * 16 + g + (e >= 2 ? 8 : 0);
        const int64_t t = t_base + wt + j * 8 + q4 * 2 + (e & 1);
        if (r < rows && t < n) y[t * ldy + r] = total[i][j][e];
      }
}

template <int kElem>  // 0: F32, 1: F16, 2: BF16
REPRISE_HD float LoadValue(const uint8_t* unit, int i) {
  if constexpr (kElem == 0) {
    float v;
    std::memcpy(&v, unit + 4 * i, sizeof(v));
    return v;
  } else if constexpr (kElem == 1) {
    return HalfBitsToFloat(reinterpret_cast<const uint16_t*>(unit)[i]);
  } else {
    return Bf16BitsToFloat(reinterpret_cast<const uint16_t*>(unit)[i]);
  }
}

template <int kElem, int kPerUnit>
__global__ void MatMulFloatKernel(const uint8_t* __restrict__ w, int64_t rows, int64_t n_units,
                                  const float* __restrict__ x, int64_t cols, int64_t n,
                                  float* __restrict__ part) {
  RowTile tile;
  if (!ThisRowTile(w, rows, n_units, 16, n, &tile)) return;
  const int64_t r = tile.r, t0 = tile.t0, seg = blockIdx.z;
  const int n_tok = tile.n_tok;
  const uint8_t* row = tile.row;
  float acc[kTokTile];
  for (int k = 0; k < kTokTile; ++k) acc[k] = 0.0f;
  int64_t u0, u1;
  SegmentUnits(seg, n_units, kPerUnit, &u0, &u1);
  for (int64_t u = u0; u < u1; ++u) {
    const uint8_t* unit = row + u * kRowGroup * 16;
    const int64_t c0 = u * kPerUnit;
    const int valid = static_cast<int>(cols - c0 < kPerUnit ? cols - c0 : kPerUnit);
    for (int i = 0; i < valid; ++i) {
      const float wv = LoadValue<kElem>(unit, i);
      for (int k = 0; k < n_tok; ++k) acc[k] = FFma(wv, x[(t0 + k) * cols + c0 + i], acc[k]);
    }
  }
  for (int k = 0; k < n_tok; ++k) part[(seg * n + t0 + k) * rows + r] = acc[k];
}

// y[t, r] = part[0] + part[1] + ... in segment order.
__global__ void CombineSegmentsKernel(const float* __restrict__ part, int64_t segs, int64_t n,
                                      int64_t rows, float* __restrict__ y, int64_t ldy) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * rows) return;
  const int64_t t = i / rows, r = i % rows;
  float acc = part[t * rows + r];
  for (int64_t g = 1; g < segs; ++g) acc = FAdd(acc, part[(g * n + t) * rows + r]);
  y[t * ldy + r] = acc;
}

// The activation quantizer's arithmetic, exactly the CPU's (kernels/ref
// QuantizeBlock): d = amax / 127, q = round-to-nearest-even(x * (1 / d)). So
// the GPU's int8 activations equal the CPU's bit for bit, given the same x.
REPRISE_HD float ActScale(float amax) { return FDiv(amax, 127.0f); }
REPRISE_HD float ActInvScale(float d) { return d != 0.0f ? FDiv(1.0f, d) : 0.0f; }

// One warp per 32 values; for G = 256 the 8 warps of a thread block share
// the block's amax through shared memory (the grid is exact: no early exit).
template <int G>
__global__ void QuantizeActKernel(const float* __restrict__ x, int64_t n_blocks, int8_t* q,
                                  float* d, int32_t* sum) {
  const int64_t b = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (G == 32 && b >= n_blocks) return;
  const float v = x[b * 32 + lane];
  float amax = WarpMax(fabsf(v));
  if constexpr (G == 256) {
    __shared__ float warp_max[8];
    if (lane == 0) warp_max[threadIdx.x / 32] = amax;
    __syncthreads();
    amax = warp_max[0];
    for (int w = 1; w < 8; ++w) amax = fmaxf(amax, warp_max[w]);
  }
  const float scale = ActScale(amax);
  const float inv = ActInvScale(scale);
  int qi = __float2int_rn(FMul(v, inv));
  qi = max(-127, min(127, qi));
  q[b * 32 + lane] = static_cast<int8_t>(qi);
  int s = qi;
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if (lane == 0) {
    d[b] = scale;
    sum[b] = s;
  }
}

constexpr int kThreads = 128;
// From this many tokens on, quantized matmuls run on the tensor cores
// (MatMulQuantMmaKernel); the bits are the same either way.
constexpr int64_t kMmaMinTokens = 16;

// REPRISE_CUDA_MMA=0 turns the tensor-core path off (to measure it, or to
// rule it out); the results are the same bits either way.
bool MmaEnabled() {
  static const bool on = [] {
    const char* v = std::getenv("REPRISE_CUDA_MMA");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return on;
}

}  // namespace

// The activation block of a weight type, as on the CPU: 32 values for
// Q8_0/Q4_0, 256 for the K-quants (one scale per 256 values; d and sum are
// still stored per 32 values, the scale repeated, so every matmul kernel
// reads one layout).
int ActGroup(DType type) { return type == DType::kQ4_K || type == DType::kQ6_K ? 256 : 32; }

bool IsQuantType(DType type) {
  return type == DType::kQ8_0 || type == DType::kQ4_0 || type == DType::kQ4_K ||
         type == DType::kQ6_K;
}

std::vector<uint8_t> RepackInterleaved(const MatrixView& v, int64_t* n_units, int* unit_bytes) {
  const int ub = UnitBytes(v.type);
  const int per = UnitValues(v.type);
  const int64_t units = (v.cols + per - 1) / per;
  const int64_t groups = (v.rows + kRowGroup - 1) / kRowGroup;
  const int64_t row_bytes = v.row_bytes();
  std::vector<uint8_t> out(static_cast<size_t>(groups * units * kRowGroup * ub), 0);
  for (int64_t r = 0; r < v.rows; ++r) {
    const uint8_t* src = v.data + r * row_bytes;
    const int64_t g = r / kRowGroup, lane = r % kRowGroup;
    for (int64_t u = 0; u < units; ++u) {
      uint8_t* dst = out.data() + ((g * units + u) * kRowGroup + lane) * ub;
      const int64_t off = u * ub;
      const int64_t bytes = std::min<int64_t>(ub, row_bytes - off);
      std::memcpy(dst, src + off, static_cast<size_t>(bytes));
    }
  }
  *n_units = units;
  *unit_bytes = ub;
  return out;
}

void HostDequantizeRow(DType type, const uint8_t* row, int64_t cols, float* out) {
  const int ub = UnitBytes(type);
  for (int64_t b = 0; b < cols / 32; ++b) {
    const int subs = UnitValues(type) / 32;
    const uint8_t* unit = row + (b / subs) * ub;
    DequantSub32(type, unit, static_cast<int>(b % subs), out + b * 32);
  }
}

float HostDot(DType type, const uint8_t* row, int64_t cols, const float* x) {
  // Segment sums, then their sum in order (the kernels' canonical order).
  std::vector<float> seg_sum(static_cast<size_t>(MatMulSegments(cols)), 0.0f);
  if (!IsQuantType(type)) {
    const int per = UnitValues(type);
    for (int64_t c = 0; c < cols; ++c) {
      const uint8_t* unit = row + (c / per) * 16;
      const int i = static_cast<int>(c % per);
      const float wv = type == DType::kF32   ? LoadValue<0>(unit, i)
                       : type == DType::kF16 ? LoadValue<1>(unit, i)
                                             : LoadValue<2>(unit, i);
      float& acc = seg_sum[c / kSegCols];
      acc = FFma(wv, x[c], acc);
    }
    float total = seg_sum[0];
    for (size_t g = 1; g < seg_sum.size(); ++g) total = FAdd(total, seg_sum[g]);
    return total;
  }
  // Quantize x as QuantizeActKernel does.
  const int64_t nb = cols / 32;
  const int group = ActGroup(type);
  std::vector<int8_t> q(cols);
  std::vector<float> d(nb);
  std::vector<int32_t> sum(nb);
  for (int64_t g = 0; g < cols / group; ++g) {
    float amax = 0.0f;
    for (int i = 0; i < group; ++i) amax = std::max(amax, std::fabs(x[g * group + i]));
    const float scale = ActScale(amax);
    const float inv = ActInvScale(scale);
    for (int64_t b = g * group / 32; b < (g + 1) * group / 32; ++b) {
      int s = 0;
      for (int i = 0; i < 32; ++i) {
        int qi = static_cast<int>(std::nearbyint(FMul(x[b * 32 + i], inv)));
        qi = std::max(-127, std::min(127, qi));
        q[b * 32 + i] = static_cast<int8_t>(qi);
        s += qi;
      }
      d[b] = scale;
      sum[b] = s;
    }
  }
  const int ub = UnitBytes(type), subs = UnitValues(type) / 32;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* unit = row + (b / subs) * ub;
    const int j = static_cast<int>(b % subs);
    SubBlock s;
    float c = 0.0f;
    switch (type) {
      case DType::kQ8_0:
        LoadSub<static_cast<int>(DType::kQ8_0)>(unit, j, &s);
        c = SubBlockContrib<0>(s, &q[b * 32], d[b], sum[b]);
        break;
      case DType::kQ4_0:
        LoadSub<static_cast<int>(DType::kQ4_0)>(unit, j, &s);
        c = SubBlockContrib<0>(s, &q[b * 32], d[b], sum[b]);
        break;
      case DType::kQ4_K:
        LoadSub<static_cast<int>(DType::kQ4_K)>(unit, j, &s);
        c = SubBlockContrib<1>(s, &q[b * 32], d[b], sum[b]);
        break;
      default:
        LoadSub<static_cast<int>(DType::kQ6_K)>(unit, j, &s);
        c = SubBlockContrib<2>(s, &q[b * 32], d[b], sum[b]);
        break;
    }
    float& acc = seg_sum[b * 32 / kSegCols];
    acc = FAdd(acc, c);
  }
  float total = seg_sum[0];
  for (size_t g = 1; g < seg_sum.size(); ++g) total = FAdd(total, seg_sum[g]);
  return total;
}

void LaunchQuantizeAct(DType type, const float* x, int64_t n, int64_t cols, const ActQ& a,
                       cudaStream_t s) {
  const int64_t n_blocks = n * cols / 32;
  const int64_t threads = n_blocks * 32;
  const unsigned grid = static_cast<unsigned>((threads + 255) / 256);
  if (ActGroup(type) == 256) {
    CHECK(cols % 256 == 0);
    QuantizeActKernel<256><<<grid, 256, 0, s>>>(x, n_blocks, a.q, a.d, a.sum);
  } else {
    QuantizeActKernel<32><<<grid, 256, 0, s>>>(x, n_blocks, a.q, a.d, a.sum);
  }
}

int64_t MatMulSegments(int64_t cols) { return (cols + kSegCols - 1) / kSegCols; }

void LaunchMatMul(DType type, const uint8_t* w, int64_t rows, int64_t cols, int64_t n_units,
                  const float* x, const ActQ& act, int64_t n, float* part, float* y, int64_t ldy,
                  cudaStream_t s) {
  const int64_t padded_rows = (rows + kRowGroup - 1) / kRowGroup * kRowGroup;
  const int64_t segs = MatMulSegments(cols);
  const dim3 grid(static_cast<unsigned>((padded_rows + kThreads - 1) / kThreads),
                  static_cast<unsigned>((n + kTokTile - 1) / kTokTile),
                  static_cast<unsigned>(segs));
  static_assert(kThreads % kRowGroup == 0);
  if (IsQuantType(type) && n >= kMmaMinTokens && MmaEnabled()) {
    const dim3 mgrid(static_cast<unsigned>((rows + kMmaRows - 1) / kMmaRows),
                     static_cast<unsigned>((n + kMmaToks - 1) / kMmaToks));
    switch (type) {
      case DType::kQ8_0:
        MatMulQuantMmaKernel<static_cast<int>(DType::kQ8_0), 0, 1, kQ8_0Bytes>
            <<<mgrid, 128, 0, s>>>(w, rows, n_units, act.q, act.d, act.sum, cols, n, y, ldy);
        break;
      case DType::kQ4_0:
        MatMulQuantMmaKernel<static_cast<int>(DType::kQ4_0), 0, 1, kQ4_0Bytes>
            <<<mgrid, 128, 0, s>>>(w, rows, n_units, act.q, act.d, act.sum, cols, n, y, ldy);
        break;
      case DType::kQ4_K:
        MatMulQuantMmaKernel<static_cast<int>(DType::kQ4_K), 1, 8, kQ4KBytes>
            <<<mgrid, 128, 0, s>>>(w, rows, n_units, act.q, act.d, act.sum, cols, n, y, ldy);
        break;
      default:
        MatMulQuantMmaKernel<static_cast<int>(DType::kQ6_K), 2, 8, kQ6KBytes>
            <<<mgrid, 128, 0, s>>>(w, rows, n_units, act.q, act.d, act.sum, cols, n, y, ldy);
        break;
    }
    return;
  }
  switch (type) {
    case DType::kQ8_0:
      MatMulQuantKernel<static_cast<int>(DType::kQ8_0), 0, 1, kQ8_0Bytes>
          <<<grid, kThreads, 0, s>>>(w, rows, n_units, act.q, act.d, act.sum, cols, n, part);
      break;
    case DType::kQ4_0:
      MatMulQuantKernel<static_cast<int>(DType::kQ4_0), 0, 1, kQ4_0Bytes>
          <<<grid, kThreads, 0, s>>>(w, rows, n_units, act.q, act.d, act.sum, cols, n, part);
      break;
    case DType::kQ4_K:
      MatMulQuantKernel<static_cast<int>(DType::kQ4_K), 1, 8, kQ4KBytes>
          <<<grid, kThreads, 0, s>>>(w, rows, n_units, act.q, act.d, act.sum, cols, n, part);
      break;
    case DType::kQ6_K:
      MatMulQuantKernel<static_cast<int>(DType::kQ6_K), 2, 8, kQ6KBytes>
          <<<grid, kThreads, 0, s>>>(w, rows, n_units, act.q, act.d, act.sum, cols, n, part);
      break;
    case DType::kF32:
      MatMulFloatKernel<0, 4><<<grid, kThreads, 0, s>>>(w, rows, n_units, x, cols, n, part);
      break;
    case DType::kF16:
      MatMulFloatKernel<1, 8><<<grid, kThreads, 0, s>>>(w, rows, n_units, x, cols, n, part);
      break;
    case DType::kBF16:
      MatMulFloatKernel<2, 8><<<grid, kThreads, 0, s>>>(w, rows, n_units, x, cols, n, part);
      break;
    default:
      CHECK_MSG(false, "unsupported weight type %s on CUDA", DTypeName(type));
  }
  const int64_t outs = n * rows;
  CombineSegmentsKernel<<<static_cast<unsigned>((outs + 255) / 256), 256, 0, s>>>(part, segs, n,
                                                                                 rows, y, ldy);
}

}  // namespace reprise::kernels::cuda
