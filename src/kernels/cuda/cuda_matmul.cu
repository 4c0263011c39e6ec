// CUDA matmul: the weight repack done at upload, activation quantization,
// the dispatch of y = W x to its kernels, the F32 / F16 / BF16 prefill kernel
// and the host emulation of the canonical order.
//
// The canonical order of one output y[t, r] (the determinism contract):
//  - the row's columns are cut into 32-column sub-blocks; each sub-block
//    gives one term: Q8_0 / Q4_0, an exact integer dot product x with the
//    int8 activations, added as seg = fma(round(d * x), dx, seg) (Q32Add,
//    cuda_subblock.cuh; d the row's scale, dx the activations'); float
//    weights, c_b = a fused multiply-add chain over the sub-block's columns
//    in order from 0, added as seg + c_b. Q4_K / Q6_K give one c_b per
//    256-value unit instead: the unit's sub-blocks folded exactly in
//    integers, then fixed float terms (KInts, UnitContrib); a kernel that
//    works per sub-block may write it as the unit's first c_b and +0 for the
//    other seven (adding +0 to a sum that starts from +0 changes no bit);
//  - the sub-blocks (units) are grouped in segments of kSegCols columns (a
//    fixed width: it depends on nothing but the row); a segment's sum starts
//    from 0 and takes the terms in order;
//  - the first segment's sum starts y, every later one is added in order.
// Every kernel and the host emulation (HostDot) follow it, whatever n, the
// tile or the grid:
//  - n < kGemvMaxTokens (decode), every type: the GEMV (cuda_gemv.cu), and
//    for quantized types up to QuantGemvTokens() (REPRISE_CUDA_GEMV_WIDE);
//  - quantized, n >= QuantGemvTokens(): int8 tensor cores (cuda_matmul_quant.cu);
//  - float, n >= kGemvMaxTokens: MatMulFloatTileKernel below (64 x 64 tiles,
//    register-blocked fused multiply-adds). MatMulFloatKernel, one thread
//    per row, segment and kTokTile tokens with a second kernel adding the
//    segment sums, is its baseline (REPRISE_CUDA_FLOAT_TILES=0). Tensor
//    cores for float weights are next (they need their own canonical order).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/check.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_subblock.cuh"
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


template <int kElem, int kPerUnit>
__global__ void MatMulFloatKernel(const uint8_t* __restrict__ w, int64_t rows, int64_t n_units,
                                  const float* __restrict__ x, int64_t cols, int64_t n,
                                  float* __restrict__ part) {
  RowTile tile;
  if (!ThisRowTile(w, rows, n_units, 16, n, &tile)) return;
  const int64_t r = tile.r, t0 = tile.t0, seg = blockIdx.z;
  const int n_tok = tile.n_tok;
  const uint8_t* row = tile.row;
  float acc[kTokTile], c[kTokTile];  // the segment's sum, the sub-block's chain
  for (int k = 0; k < kTokTile; ++k) acc[k] = c[k] = 0.0f;
  int64_t u0, u1;
  SegmentUnits(seg, n_units, kPerUnit, &u0, &u1);
  for (int64_t u = u0; u < u1; ++u) {
    const uint8_t* unit = row + u * kRowGroup * 16;
    const int64_t c0 = u * kPerUnit;
    if (c0 % 32 == 0) {
      for (int k = 0; k < kTokTile; ++k) c[k] = 0.0f;
    }
    const int valid = static_cast<int>(cols - c0 < kPerUnit ? cols - c0 : kPerUnit);
    for (int i = 0; i < valid; ++i) {
      const float wv = LoadValue<kElem>(unit, i);
      for (int k = 0; k < n_tok; ++k) c[k] = FFma(wv, x[(t0 + k) * cols + c0 + i], c[k]);
    }
    if ((c0 + kPerUnit) % 32 == 0 || u + 1 == n_units) {  // the sub-block ends
      for (int k = 0; k < n_tok; ++k) acc[k] = FAdd(acc[k], c[k]);
    }
  }
  for (int k = 0; k < n_tok; ++k) part[(seg * n + t0 + k) * rows + r] = acc[k];
}

// Float weights, n >= kGemvMaxTokens: a block computes a 64-row x 64-token
// tile, thread (tr, tt) rows 4 tr .. 4 tr + 3 and tokens 8 tt .. 8 tt + 7.
// Per 32-column sub-block the weights (as f32) and activations are staged
// column-major in shared memory; every (row, token) runs its fused
// multiply-add chain from 0 over the sub-block's columns in order, then the
// canonical sub-block / segment folds. Same bits as the GEMV and HostDot.
constexpr int kFtRows = 64, kFtToks = 64, kFtStride = 68;  // 16-byte aligned, few bank conflicts

template <int kElem, int kPerUnit>
__global__ void __launch_bounds__(128)
    MatMulFloatTileKernel(const uint8_t* __restrict__ w, int64_t rows, int64_t n_units,
                          const float* __restrict__ x, int64_t cols, int64_t n,
                          float* __restrict__ y, int64_t ldy) {
  __shared__ alignas(16) float ws[32 * kFtStride];  // [column][row]
  __shared__ alignas(16) float xs[32 * kFtStride];  // [column][token]
  const int tid = threadIdx.x, tr = tid % 16, tt = tid / 16;
  const int64_t r_base = static_cast<int64_t>(blockIdx.x) * kFtRows;
  const int64_t t_base = static_cast<int64_t>(blockIdx.y) * kFtToks;
  const int64_t padded_rows = (rows + kRowGroup - 1) / kRowGroup * kRowGroup;
  const int64_t nb = (cols + 31) / 32;
  constexpr int kUnitsPerSub = 32 / kPerUnit;
  float c[4][8], seg[4][8], total[4][8];
  for (int a = 0; a < 4; ++a)
    for (int k = 0; k < 8; ++k) seg[a][k] = total[a][k] = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t c0 = b * 32;
    const int valid = static_cast<int>(cols - c0 < 32 ? cols - c0 : 32);
    // Weights: thread -> (unit k of the sub-block, row); consecutive threads
    // read consecutive rows' units (contiguous in the interleaved layout).
    for (int it = tid; it < kFtRows * kUnitsPerSub; it += 128) {
      const int rr = it % kFtRows, k = it / kFtRows;
      const int64_t r = r_base + rr, u = c0 / kPerUnit + k;
      float v[kPerUnit];
      if (r < padded_rows && k * kPerUnit < valid) {
        const uint8_t* unit =
            w + (((r / kRowGroup) * n_units + u) * kRowGroup + r % kRowGroup) * 16;
        for (int i = 0; i < kPerUnit; ++i) v[i] = LoadValue<kElem>(unit, i);
      } else {
        for (int i = 0; i < kPerUnit; ++i) v[i] = 0.0f;
      }
      for (int i = 0; i < kPerUnit; ++i) ws[(k * kPerUnit + i) * kFtStride + rr] = v[i];
    }
    for (int it = tid; it < kFtToks * 32; it += 128) {
      const int tok = it / 32, col = it % 32;
      const int64_t t = t_base + tok;
      xs[col * kFtStride + tok] = t < n && col < valid ? x[t * cols + c0 + col] : 0.0f;
    }
    __syncthreads();
    for (int a = 0; a < 4; ++a)
      for (int k = 0; k < 8; ++k) c[a][k] = 0.0f;
    for (int i = 0; i < valid; ++i) {
      const float4 wv = *reinterpret_cast<const float4*>(ws + i * kFtStride + tr * 4);
      const float4 x0 = *reinterpret_cast<const float4*>(xs + i * kFtStride + tt * 8);
      const float4 x1 = *reinterpret_cast<const float4*>(xs + i * kFtStride + tt * 8 + 4);
      const float wa[4] = {wv.x, wv.y, wv.z, wv.w};
      const float xb[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
#pragma unroll
      for (int a = 0; a < 4; ++a)
#pragma unroll
        for (int k = 0; k < 8; ++k) c[a][k] = FFma(wa[a], xb[k], c[a][k]);
    }
    for (int a = 0; a < 4; ++a)
      for (int k = 0; k < 8; ++k) seg[a][k] = FAdd(seg[a][k], c[a][k]);
    if ((c0 + 32) % kSegCols == 0 || b + 1 == nb) {  // the segment ends
      const bool first = c0 < kSegCols;
      for (int a = 0; a < 4; ++a)
        for (int k = 0; k < 8; ++k) {
          total[a][k] = first ? seg[a][k] : FAdd(total[a][k], seg[a][k]);
          seg[a][k] = 0.0f;
        }
    }
    __syncthreads();
  }
  for (int a = 0; a < 4; ++a)
    for (int k = 0; k < 8; ++k) {
      const int64_t r = r_base + tr * 4 + a, t = t_base + tt * 8 + k;
      if (r < rows && t < n) y[t * ldy + r] = total[a][k];
    }
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


// One warp per 32 values; for G = 256 the 8 warps of a thread block share
// the block's amax through shared memory (the grid is exact: no early exit).
template <int G>
__global__ void QuantizeActKernel(const float* __restrict__ x, int64_t n_blocks, int8_t* q,
                                  float* d, int32_t* sum) {
  PdlTrigger();  // the matmul after it may launch and start its weight copies
  PdlWait();     // launched with PdlLaunch: x is written, the last readers of q are done
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
  StoreActSubBlock(ActQuant(v, ActInvScale(scale)), scale, b, q, d, sum);
}

constexpr int kThreads = 128;

// REPRISE_CUDA_FLOAT_TILES=0: float prefill through the one-thread-per-row
// kernel (the tiled kernel's baseline; the same bits).
bool FloatTilesEnabled() {
  static const bool on = EnvSwitchOn("REPRISE_CUDA_FLOAT_TILES");
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
    for (int64_t b = 0; b * 32 < cols; ++b) {  // 32-column sub-blocks: one chain each
      float chain = 0.0f;
      for (int64_t c = b * 32; c < std::min<int64_t>(cols, b * 32 + 32); ++c) {
        const uint8_t* unit = row + (c / per) * 16;
        const int i = static_cast<int>(c % per);
        const float wv = type == DType::kF32   ? LoadValue<0>(unit, i)
                         : type == DType::kF16 ? LoadValue<1>(unit, i)
                                               : LoadValue<2>(unit, i);
        chain = FFma(wv, x[c], chain);
      }
      float& acc = seg_sum[b * 32 / kSegCols];
      acc = FAdd(acc, chain);
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
  if (type == DType::kQ4_K || type == DType::kQ6_K) {  // one contribution per unit
    for (int64_t u = 0; u < nb / subs; ++u) {
      const uint8_t* unit = row + u * ub;
      KInts k;
      SubBlock s;
      for (int j = 0; j < subs; ++j) {
        const int64_t b = u * subs + j;
        if (type == DType::kQ4_K) {
          LoadSub<static_cast<int>(DType::kQ4_K)>(unit, j, &s);
          SubBlockInts<1>(s, &q[b * 32], sum[b], &k);
        } else {
          LoadSub<static_cast<int>(DType::kQ6_K)>(unit, j, &s);
          SubBlockInts<2>(s, &q[b * 32], sum[b], &k);
        }
      }
      const float c = type == DType::kQ4_K ? UnitContrib<1>(s.d, s.dmin, d[u * subs], k)
                                           : UnitContrib<2>(s.d, s.dmin, d[u * subs], k);
      float& acc = seg_sum[u * subs * 32 / kSegCols];
      acc = FAdd(acc, c);
    }
  } else {
    for (int64_t b = 0; b < nb; ++b) {
      SubBlock s;
      if (type == DType::kQ8_0) {
        LoadSub<static_cast<int>(DType::kQ8_0)>(row + b * ub, 0, &s);
      } else {
        LoadSub<static_cast<int>(DType::kQ4_0)>(row + b * ub, 0, &s);
      }
      float& acc = seg_sum[b * 32 / kSegCols];
      acc = SubBlockAdd<0>(acc, s, &q[b * 32], d[b], sum[b]);
    }
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
    PdlLaunch(QuantizeActKernel<256>, dim3(grid), dim3(256), 0, s, x, n_blocks, a.q, a.d, a.sum);
  } else {
    PdlLaunch(QuantizeActKernel<32>, dim3(grid), dim3(256), 0, s, x, n_blocks, a.q, a.d, a.sum);
  }
}

int64_t MatMulSegments(int64_t cols) { return (cols + kSegCols - 1) / kSegCols; }

int64_t MatMulScratchFloats(DType type, int64_t rows, int64_t cols, int64_t n) {
  if (IsQuantType(type) || HalfTensorCores(type) || n < kGemvMaxTokens || FloatTilesEnabled()) {
    return 0;
  }
  return MatMulSegments(cols) * n * rows;
}

void LaunchMatMul(DType type, const uint8_t* w, int64_t rows, int64_t cols, int64_t n_units,
                  const float* x, const ActQ& act, int64_t n, float* part, float* y, int64_t ldy,
                  cudaStream_t s) {
  const int64_t padded_rows = (rows + kRowGroup - 1) / kRowGroup * kRowGroup;
  const int64_t segs = MatMulSegments(cols);
  const dim3 grid(static_cast<unsigned>((padded_rows + kThreads - 1) / kThreads),
                  static_cast<unsigned>((n + kTokTile - 1) / kTokTile),
                  static_cast<unsigned>(segs));
  static_assert(kThreads % kRowGroup == 0);
  if (IsQuantType(type)) {
    LaunchMatMulQuant(type, w, rows, cols, n_units, act, n, y, ldy, s);
    return;
  }
  if (n < kGemvMaxTokens) {
    LaunchGemv(type, w, rows, cols, n_units, x, act, n, y, ldy, s);
    return;
  }
  if (FloatTilesEnabled()) {
    const dim3 tgrid(static_cast<unsigned>((rows + kFtRows - 1) / kFtRows),
                     static_cast<unsigned>((n + kFtToks - 1) / kFtToks));
    switch (type) {
      case DType::kF32:
        MatMulFloatTileKernel<0, 4><<<tgrid, 128, 0, s>>>(w, rows, n_units, x, cols, n, y, ldy);
        return;
      case DType::kF16:
        MatMulFloatTileKernel<1, 8><<<tgrid, 128, 0, s>>>(w, rows, n_units, x, cols, n, y, ldy);
        return;
      case DType::kBF16:
        MatMulFloatTileKernel<2, 8><<<tgrid, 128, 0, s>>>(w, rows, n_units, x, cols, n, y, ldy);
        return;
      default:
        break;
    }
  }
  switch (type) {
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
