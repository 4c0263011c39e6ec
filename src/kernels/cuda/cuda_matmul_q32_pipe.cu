// Q8_0 / Q4_0 prefill, pipelined (the default; REPRISE_CUDA_MMA_PIPE32=0
// turns it off, MmaPipe32On): MatMulQuantMmaKernel's tile, warps and arithmetic with the
// loads taken off the critical path, as MatMulQ4KPipeKernel does for Q4_K.
// That kernel stages 4 sub-blocks at a time through registers (a global load
// of each row's unit, a conversion, a store) and then computes, so each
// stage waits on memory. Here a stage is 8 sub-blocks (256 columns): its raw
// units (two row groups x 8 units of 32 rows, contiguous in the upload
// layout), int8 activations and activation scales are copied by cp.async
// into the other of two buffers while the stage before is computed. A pass
// per stage converts the rows' f16 scales. Per sub-block an element costs a
// k32 MMA share and Q32Add's two fused multiply-adds, in sub-block order,
// folded per segment: the bits of every other path. The MMA's accumulators
// start at kSmallIntBias, so they hold x's biased bits and round(d * x) is
// one FFMA with the row's -d * 1.5 * 2^23, taken once per row and sub-block
// (the epilogue's float terms are most of this kernel's instructions).
#include <cuda_fp16.h>

#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/cuda_mma_int8.cuh"
#include "kernels/cuda/cuda_subblock.cuh"

namespace reprise::kernels::cuda {
namespace {

constexpr int kQpSubs = 8;                  // sub-blocks (units) a stage
constexpr int kQpActStride = 256 + 16;      // bytes per token of a stage's activations
constexpr int kQpAct = kMmaToks * kQpActStride;

// Bytes of one buffer: the weights (2 row groups x kQpSubs units x 32 rows
// x kUnitBytes), the activations, their scales [tok][kQpSubs].
template <int kUnitBytes>
constexpr int QpW() {
  return 2 * kQpSubs * kRowGroup * kUnitBytes;
}
template <int kUnitBytes>
constexpr int QpBuf() {
  return QpW<kUnitBytes>() + kQpAct + kMmaToks * kQpSubs * 4;
}
// After the two buffers: the stage's row scales as floats [kQpSubs][kMmaRows].
template <int kUnitBytes>
constexpr int QpSmem() {
  return 2 * QpBuf<kUnitBytes>() + kQpSubs * kMmaRows * 4;
}

// Four bytes at a 2-byte aligned address of shared memory.
__device__ __forceinline__ uint32_t Sh32A2(const uint8_t* p) {
  const uint16_t* h = reinterpret_cast<const uint16_t*>(p);
  return static_cast<uint32_t>(h[0]) | (static_cast<uint32_t>(h[1]) << 16);
}

// kSkip (decode batches of 17-63 tokens, one partial token tile; opt-in,
// MmaSkipTilesOn, written without a GPU): a warp skips the MMAs and float
// terms of its 8-token column tiles past the last token (outputs never
// stored; the others' operations unchanged: the same bits).
template <int kType, int kUnitBytes, bool kSkip>
__global__ void __launch_bounds__(128, 3)
    MatMulQ32PipeKernel(const uint8_t* __restrict__ w, int64_t rows, int64_t n_units,
                        const int8_t* __restrict__ xq, const float* __restrict__ xd, int64_t cols,
                        int64_t n, float* __restrict__ y, int64_t ldy) {
  constexpr bool kQ4 = kType == static_cast<int>(DType::kQ4_0);
  constexpr int kW = QpW<kUnitBytes>(), kBuf = QpBuf<kUnitBytes>();
  extern __shared__ __align__(16) uint8_t qp_sh[];
  float* row_d = reinterpret_cast<float*>(qp_sh + 2 * kBuf);  // [sub][row]
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, q4 = lane % 4;
  const int64_t r_base = static_cast<int64_t>(blockIdx.x) * kMmaRows;
  const int64_t t_base = static_cast<int64_t>(blockIdx.y) * kMmaToks;
  const int wr = (warp / 2) * 32, wt = (warp % 2) * 32;
  const int jt_n = kSkip ? ColumnTiles(n - t_base - wt) : 4;
  const int64_t nb32 = cols / 32;  // == n_units
  const int64_t groups = (rows + kRowGroup - 1) / kRowGroup;
  const int64_t n_stages = (nb32 + kQpSubs - 1) / kQpSubs;

  // Stage st's copies into buffer st % 2; one commit group per call.
  auto issue = [&](int64_t st) {
    if (st < n_stages) {
      uint8_t* buf = qp_sh + (st % 2) * kBuf;
      const int64_t u0 = st * kQpSubs;
      const int units = static_cast<int>(nb32 - u0 < kQpSubs ? nb32 - u0 : kQpSubs);
      constexpr int kPieces = kQpSubs * kRowGroup * kUnitBytes / 16;  // per row group
      #pragma unroll 1
      for (int i = tid; i < 2 * kPieces; i += 128) {
        const int half = i / kPieces, piece = i % kPieces;
        const int64_t grp = r_base / kRowGroup + half;
        // Piece p holds bytes of unit p * 16 / (32 kUnitBytes): copied when
        // that unit exists (a partial last stage copies fewer).
        const bool ok = grp < groups && piece * 16 < units * kRowGroup * kUnitBytes;
        const uint8_t* src = w + ((ok ? grp : 0) * n_units + u0) * kRowGroup * kUnitBytes;
        CpAsync16(buf + half * (kW / 2) + piece * 16, ok ? src + piece * 16 : w, ok);
      }
      uint8_t* abuf = buf + kW;
      #pragma unroll 1
      for (int i = tid; i < kMmaToks * 16; i += 128) {  // activations
        const int tok = i / 16, piece = i % 16;
        const int64_t t = t_base + tok;
        const bool ok = t < n && piece * 16 < units * 32;
        CpAsync16(abuf + tok * kQpActStride + piece * 16,
                  ok ? xq + t * cols + u0 * 32 + piece * 16 : xq, ok);
      }
      uint8_t* dbuf = abuf + kQpAct;
      #pragma unroll 1
      for (int i = tid; i < kMmaToks * kQpSubs; i += 128) {  // scales, one float a copy
        const int tok = i / kQpSubs, j = i % kQpSubs;
        const int64_t t = t_base + tok;
        const bool ok = t < n && j < units;
        // (4-byte copies: a row of cols / 32 scales is 16-byte aligned only
        // when cols is a multiple of 128)
        CpAsync4(dbuf + (tok * kQpSubs + j) * 4, ok ? xd + t * nb32 + u0 + j : xd, ok);
      }
    }
    CpAsyncCommit();
  };

  float seg_acc[2][4][4], total[2][4][4];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) seg_acc[i][j][e] = total[i][j][e] = 0.0f;

  const int64_t subs_per_seg = kSegCols / 32;
  issue(0);
  for (int64_t st = 0; st < n_stages; ++st) {
    issue(st + 1);
    CpAsyncWait<1>();
    __syncthreads();  // stage st has landed, every thread's copies
    const uint8_t* wbuf = qp_sh + (st % 2) * kBuf;
    const uint8_t* abuf = wbuf + kW;
    const float* tdx = reinterpret_cast<const float*>(abuf + kQpAct);  // [tok][kQpSubs]
    const int64_t u0 = st * kQpSubs;
    const int units = static_cast<int>(nb32 - u0 < kQpSubs ? nb32 - u0 : kQpSubs);
    // The rows' scales (d of each unit) as floats.
    #pragma unroll 1
    for (int i = tid; i < kQpSubs * kMmaRows; i += 128) {
      const int j = i / kMmaRows, rr = i % kMmaRows;
      const uint8_t* unit =
          wbuf + (rr / kRowGroup) * (kW / 2) + (j * kRowGroup + rr % kRowGroup) * kUnitBytes;
      row_d[i] = j < units ? HalfBitsToFloat(Ld16(unit)) : 0.0f;
    }
    __syncthreads();
#pragma unroll 1
    for (int j = 0; j < units; ++j) {
      const int64_t b = u0 + j;
      int a_lo[2][2], a_hi[2][2], b_lo[4], b_hi[4];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int rr = wr + i * 16 + g + 8 * h;
          const uint8_t* qs = wbuf + (rr / kRowGroup) * (kW / 2) +
                              (j * kRowGroup + rr % kRowGroup) * kUnitBytes + 2 + q4 * 4;
          if constexpr (kQ4) {  // values 4 q4 .. (low nibbles) and 16 + 4 q4 .. (high)
            const uint32_t v = Sh32A2(qs);
            a_lo[i][h] = static_cast<int>(__vsub4(v & 0x0F0F0F0Fu, 0x08080808u));
            a_hi[i][h] = static_cast<int>(__vsub4((v >> 4) & 0x0F0F0F0Fu, 0x08080808u));
          } else {
            a_lo[i][h] = static_cast<int>(Sh32A2(qs));
            a_hi[i][h] = static_cast<int>(Sh32A2(qs + 16));
          }
        }
      }
#pragma unroll
      for (int jt = 0; jt < 4; ++jt) {
        if (kSkip && jt >= jt_n) break;
        const uint8_t* c0 = abuf + (wt + jt * 8 + g) * kQpActStride + j * 32 + q4 * 4;
        b_lo[jt] = *reinterpret_cast<const int*>(c0);
        b_hi[jt] = *reinterpret_cast<const int*>(c0 + 16);
      }
      float ra[2][2], rn[2][2], td[4][2];
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          ra[i][h] = row_d[j * kMmaRows + wr + i * 16 + g + 8 * h];
          rn[i][h] = Q32NegBias(ra[i][h]);
        }
#pragma unroll
      for (int jt = 0; jt < 4; ++jt) {
        if (kSkip && jt >= jt_n) break;
#pragma unroll
        for (int k = 0; k < 2; ++k) td[jt][k] = tdx[(wt + jt * 8 + q4 * 2 + k) * kQpSubs + j];
      }
#pragma unroll
      for (int i = 0; i < 2; ++i) {
#pragma unroll
        for (int jt = 0; jt < 4; ++jt) {
          if (kSkip && jt >= jt_n) break;
          int dot[4];
          MmaS8K32(a_lo[i][0], a_lo[i][1], a_hi[i][0], a_hi[i][1], b_lo[jt], b_hi[jt], dot,
                   kSmallIntBias);
#pragma unroll
          for (int e = 0; e < 4; ++e) {  // Q32Add from the biased sum
            const float p = Q32Scaled(ra[i][e >> 1], BiasedBits(dot[e]), rn[i][e >> 1]);
            seg_acc[i][jt][e] = FFma(p, td[jt][e & 1], seg_acc[i][jt][e]);
          }
        }
      }
      // The end of a segment (or of the row): fold its sum into the total.
      if ((b + 1) % subs_per_seg == 0 || b + 1 == nb32) {
        FoldTileSegment(seg_acc, total, b < subs_per_seg);
      }
    }
    __syncthreads();  // this buffer and the row scales are no longer read
  }
  CpAsyncWait<0>();
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int jt = 0; jt < 4; ++jt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t r = r_base + wr + i * 16 + g + (e >= 2 ? 8 : 0);
        const int64_t t = t_base + wt + jt * 8 + q4 * 2 + (e & 1);
        if (r < rows && t < n) y[t * ldy + r] = total[i][jt][e];
      }
}

template <int kType, int kUnitBytes, bool kSkip>
void RunT(const uint8_t* w, int64_t rows, int64_t n_units, const int8_t* xq, const float* xd,
          int64_t cols, int64_t n, float* y, int64_t ldy, cudaStream_t s) {
  constexpr int smem = QpSmem<kUnitBytes>();
  static bool configured = false;
  if (!configured) {
    cudaFuncSetAttribute(MatMulQ32PipeKernel<kType, kUnitBytes, kSkip>,
                         cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    configured = true;
  }
  const dim3 grid(static_cast<unsigned>((rows + kMmaRows - 1) / kMmaRows),
                  static_cast<unsigned>((n + kMmaToks - 1) / kMmaToks));
  MatMulQ32PipeKernel<kType, kUnitBytes, kSkip>
      <<<grid, 128, smem, s>>>(w, rows, n_units, xq, xd, cols, n, y, ldy);
}

template <int kType, int kUnitBytes>
void Run(const uint8_t* w, int64_t rows, int64_t n_units, const int8_t* xq, const float* xd,
         int64_t cols, int64_t n, float* y, int64_t ldy, cudaStream_t s) {
  if (n < kMmaToks && MmaSkipTilesOn()) {
    RunT<kType, kUnitBytes, true>(w, rows, n_units, xq, xd, cols, n, y, ldy, s);
  } else {
    RunT<kType, kUnitBytes, false>(w, rows, n_units, xq, xd, cols, n, y, ldy, s);
  }
}

}  // namespace

void LaunchMatMulQ32Pipe(DType type, const uint8_t* w, int64_t rows, int64_t n_units,
                         const int8_t* xq, const float* xd, int64_t cols, int64_t n, float* y,
                         int64_t ldy, cudaStream_t s) {
  if (type == DType::kQ4_0) {
    Run<static_cast<int>(DType::kQ4_0), kQ4_0Bytes>(w, rows, n_units, xq, xd, cols, n, y, ldy, s);
  } else {
    Run<static_cast<int>(DType::kQ8_0), kQ8_0Bytes>(w, rows, n_units, xq, xd, cols, n, y, ldy, s);
  }
}

}  // namespace reprise::kernels::cuda
