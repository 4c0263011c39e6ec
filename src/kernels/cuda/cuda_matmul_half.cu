// F16 and BF16 weights on the tensor cores: mma.sync m16n8k16 with f32
// accumulation for every n (the decode GEMV included), on weights repacked at
// upload into the instruction's fragment order.
//
// The canonical order of these two types (the determinism contract; the
// other types keep cuda_matmul.cu's):
//  - activations are rounded to the weight's type, round to nearest (f16:
//    magnitudes above 65504 saturate to +-65504 instead of becoming inf), and
//    zero-padded to a multiple of 16 columns;
//  - per segment of kSegCols columns an f32 accumulator starts at +0 and takes
//    one mma.sync per 16-column chunk, in chunk order (the tensor core adds the
//    chunk's 16 exact products to it in its own fixed way);
//  - the first segment's sum starts y, every later one is added in order.
// Every kernel issues the same instruction on the same operands, chunk by
// chunk, for each output (row r, token t), so n, the tile, the path and the
// other tokens never change a bit. No host code reproduces the tensor core's
// internal rounding: the tests compare the paths with each other bit for bit,
// and each result with the exact dot product of the rounded operands to a
// bound. Compared with the CPU (f32 activations) the difference is the
// activations' rounding: 2^-11 (f16) or 2^-8 (bf16) of sum |w x| at most.
//
// Weight layout (RepackHalf): 16-row tiles x 16-column chunks; tile rt, chunk
// kc is 512 bytes at (rt * n_kc + kc) * 512, lane L's 16 bytes being its four
// A-fragment registers: rows g, g + 8 (g = L / 4) by columns 2q, 2q + 1 and
// 2q + 8, 2q + 9 (q = L % 4). One 16-byte load per lane gives a warp a whole
// fragment, coalesced, in both kernels.
#include <cuda_bf16.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "core/check.h"
#include "core/fp16.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/path_switch.h"

namespace reprise::kernels::cuda {
namespace {

constexpr int64_t kChunksPerSeg = kSegCols / 16;

template <bool kBf16>
__device__ __forceinline__ void MmaHalf(const uint4& a, uint32_t b0, uint32_t b1, float (&d)[4]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (kBf16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "r"(b0), "r"(b1));
  }
#else
  (void)a, (void)b0, (void)b1, (void)d;
  __trap();
#endif
}

__device__ __forceinline__ uint32_t Ld32(const uint16_t* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}

// One activation as the canonical order rounds it (the host twin is
// HostHalfActivation).
template <bool kBf16>
__device__ __forceinline__ uint16_t ActBits(float v) {
  if constexpr (kBf16) {
    return __bfloat16_as_ushort(__float2bfloat16_rn(v));
  } else {
    if (fabsf(v) > 65504.0f) v = copysignf(65504.0f, v);  // NaN stays NaN
    return __half_as_ushort(__float2half_rn(v));
  }
}

template <bool kBf16>
__global__ void HalfActKernel(const float* __restrict__ x, int64_t n, int64_t cols, int64_t cols16,
                              uint16_t* __restrict__ xh) {
  PdlTrigger();  // the matmul after it may launch and start its weight loads
  PdlWait();     // launched with PdlLaunch: x is written, xh's last readers are done
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * cols16) return;
  const int64_t t = i / cols16, c = i % cols16;
  xh[i] = c < cols ? ActBits<kBf16>(x[t * cols + c]) : 0;
}

// ---- decode: n < kGemvMaxTokens ----
// A block owns one 16-row tile; warp w takes segments w, w + 8, ... (each a
// chain of up to 32 mma.sync per 8-token column tile, weights loaded eight
// fragments ahead), writes its segment sums to shared memory, and one thread
// per (row, token) folds them in segment order.
// Several matrices of one type and width against the same activations (Q/K/V,
// gate/up) share a launch: block b serves row tile b - first[t] of target t.
constexpr int kHgWarps = 8;
struct HalfTargets {
  const uint4* w[kGemvMaxTargets];
  float* y[kGemvMaxTargets];
  int64_t rows[kGemvMaxTargets], ldy[kGemvMaxTargets];
  int64_t first[kGemvMaxTargets + 1];  // blocks of the targets before t (GEMV: a row tile
                                       // a block; prefill: 128 rows)
  int count;
};

template <bool kBf16>
__global__ void __launch_bounds__(kHgWarps * 32)
    GemvHalfKernel(const HalfTargets ts, int64_t n_kc, const uint16_t* __restrict__ xh, int n) {
  __shared__ float sbuf[kHgWarps][16 * 16];  // [warp][row * 16 + token]
  PdlTrigger();  // the next op may launch; it waits for this grid before reading y
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
  int target = 0;
  while (target + 1 < ts.count && blockIdx.x >= ts.first[target + 1]) ++target;
  const uint4* __restrict__ w = ts.w[target];
  float* __restrict__ y = ts.y[target];
  const int64_t rows = ts.rows[target], ldy = ts.ldy[target];
  const int64_t rt = blockIdx.x - ts.first[target];
  const int64_t cols16 = n_kc * 16;
  const int64_t n_seg = (n_kc + kChunksPerSeg - 1) / kChunksPerSeg;
  const uint4* wr = w + rt * n_kc * 32 + lane;
  const bool two = n > 8;
  const bool ok0 = g < n, ok1 = g + 8 < n;
  const uint16_t* x0 = xh + static_cast<int64_t>(g) * cols16 + 2 * q;
  const uint16_t* x1 = xh + static_cast<int64_t>(g + 8) * cols16 + 2 * q;
  const int fr = threadIdx.x % 16, ft = threadIdx.x / 16;  // the fold thread's row, token
  float total = 0.0f;
  // Launched with PdlLaunch: a warp with a first-round segment waits (for
  // the activations' producer) after issuing its first weight loads; one
  // without waits here.
  if (warp >= n_seg) PdlWait();
  for (int64_t s0 = 0; s0 < n_seg; s0 += kHgWarps) {
    const int64_t seg = s0 + warp;
    if (seg < n_seg) {
      float acc[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
      const int64_t k0 = seg * kChunksPerSeg;
      const int64_t k1 = k0 + kChunksPerSeg < n_kc ? k0 + kChunksPerSeg : n_kc;
      // Batches of 8 chunks, two in flight: batch i + 1's loads are issued
      // before batch i's instructions (the same instructions in chunk order).
      auto load = [&](uint4 (&a)[8], int64_t kc) {
#pragma unroll
        for (int u = 0; u < 8; ++u) {
          if (kc + u < k1) a[u] = wr[(kc + u) * 32];
        }
      };
      auto compute = [&](const uint4 (&a)[8], int64_t kc) {
#pragma unroll
        for (int u = 0; u < 8; ++u) {
          if (kc + u < k1) {
            const int64_t c = (kc + u) * 16;
            MmaHalf<kBf16>(a[u], ok0 ? Ld32(x0 + c) : 0u, ok0 ? Ld32(x0 + c + 8) : 0u, acc[0]);
            if (two) {
              MmaHalf<kBf16>(a[u], ok1 ? Ld32(x1 + c) : 0u, ok1 ? Ld32(x1 + c + 8) : 0u, acc[1]);
            }
          }
        }
      };
      uint4 a0[8], a1[8];
      load(a0, k0);
      if (s0 == 0) PdlWait();
      for (int64_t kc = k0; kc < k1; kc += 16) {
        if (kc + 8 < k1) load(a1, kc + 8);
        compute(a0, kc);
        if (kc + 16 < k1) load(a0, kc + 16);
        if (kc + 8 < k1) compute(a1, kc + 8);
      }
      for (int j = 0; j < 2; ++j) {
        float* s = sbuf[warp];
        s[g * 16 + 8 * j + 2 * q] = acc[j][0];
        s[g * 16 + 8 * j + 2 * q + 1] = acc[j][1];
        s[(g + 8) * 16 + 8 * j + 2 * q] = acc[j][2];
        s[(g + 8) * 16 + 8 * j + 2 * q + 1] = acc[j][3];
      }
    }
    __syncthreads();
    if (ft < n) {
      for (int k = 0; k < kHgWarps; ++k) {
        const int64_t seg_k = s0 + k;
        if (seg_k >= n_seg) break;
        const float v = sbuf[k][fr * 16 + ft];
        total = seg_k == 0 ? v : FAdd(total, v);
      }
    }
    __syncthreads();
  }
  const int64_t r = rt * 16 + fr;
  if (ft < n && r < rows) y[ft * ldy + r] = total;
}

// ---- prefill: n >= kGemvMaxTokens ----
// A block computes a 128-row x 128-token tile in steps of 32 columns, the
// next step's weights and activations copied (cp.async) while this one
// computes; warp (wr, wt) of 2 x 4 owns 64 rows x 32 tokens: 4 x 4 mma tiles.
constexpr int kHmRows = 128, kHmToks = 128;
constexpr int kHmStride = 40;  // halfs per token line in shared memory: 80 bytes, so the
                               // B-fragment loads of 8 tokens x 4 lanes hit 32 banks
constexpr int kHmAs = (kHmRows / 16) * 2 * 32;  // uint4 of a stage's weights
constexpr int kHmBs = kHmToks * kHmStride;      // halfs of a stage's activations

// Where a warp's per-segment totals live. In registers (RegTotals, 64 of
// them beside the 64 accumulators: one block an SM), or in shared memory
// (SmemTotals: 64 KiB a block, element (i, j, e) of thread tid at
// ((i * 4 + j) * 4 + e) * 256 + tid, conflict-free; two blocks an SM). The
// same adds in the same order either way: the same bits.
struct RegTotals {
  float v[4][4][4];
  __device__ __forceinline__ void Fold(float (&acc)[4][4][4], bool first) {
    FoldTileSegment(acc, v, first);
  }
  __device__ __forceinline__ float Get(int i, int j, int e) const { return v[i][j][e]; }
};
struct SmemTotals {
  float* p;  // this thread's first element
  __device__ __forceinline__ void Fold(float (&acc)[4][4][4], bool first) {
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          float* q = p + (((i * 4 + j) * 4 + e) << 8);
          *q = first ? acc[i][j][e] : FAdd(*q, acc[i][j][e]);
          acc[i][j][e] = 0.0f;
        }
  }
  __device__ __forceinline__ float Get(int i, int j, int e) const {
    return p[((i * 4 + j) * 4 + e) << 8];
  }
};
constexpr int kHmSmemTotalBytes = 64 * 256 * 4;

// One block's tile (row tiles rt0.., tokens t0..): the steps, the segment
// folds, the stores. as / bs: the two stages' buffers. kSkip (a batch of
// fewer tokens than the tile, MmaSkipTilesOn): a warp skips its 8-token
// column tiles past the last token.
template <bool kBf16, bool kSkip = false, class Totals>
__device__ __forceinline__ void HalfMmaTile(const uint4* __restrict__ w, int64_t n_rt,
                                            int64_t n_kc, const uint16_t* __restrict__ xh,
                                            int64_t n, int64_t rows, float* __restrict__ y,
                                            int64_t ldy, int64_t rt0, int64_t t0,
                                            uint4 (*as)[kHmAs], uint16_t (*bs)[kHmBs],
                                            Totals& totals) {
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, q = lane % 4;
  const int64_t cols16 = n_kc * 16;
  const int wr = warp / 4, wt = warp % 4;
  const int64_t n_ks = (n_kc + 1) / 2;
  const int jn = kSkip ? ColumnTiles(n - t0 - 32 * wt) : 4;

  auto load = [&](int st, int64_t ks) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int idx = tid + 256 * i;
      const int rtl = idx / 64, kcl = (idx / 32) % 2, l = idx % 32;
      const int64_t rt = rt0 + rtl, kc = 2 * ks + kcl;
      const bool ok = rt < n_rt && kc < n_kc;
      CpAsync16(&as[st][(rtl * 2 + kcl) * 32 + l], ok ? w + (rt * n_kc + kc) * 32 + l : w, ok);
    }
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int idx = tid + 256 * i;
      const int tok = idx / 4, part = idx % 4;
      const int64_t t = t0 + tok, c = 32 * ks + 8 * part;
      const bool ok = t < n && c < cols16;
      CpAsync16(&bs[st][tok * kHmStride + 8 * part], ok ? xh + t * cols16 + c : xh, ok);
    }
    CpAsyncCommit();
  };

  float acc[4][4][4] = {};

  load(0, 0);
  constexpr int64_t kStepsPerSeg = kChunksPerSeg / 2;  // 32-column steps per segment
  for (int64_t ks0 = 0; ks0 < n_ks; ks0 += kStepsPerSeg) {
    const int64_t ks1 = ks0 + kStepsPerSeg < n_ks ? ks0 + kStepsPerSeg : n_ks;
    for (int64_t ks = ks0; ks < ks1; ++ks) {
      const int st = static_cast<int>(ks & 1);
      if (ks + 1 < n_ks) {
        load(st ^ 1, ks + 1);
        CpAsyncWait<1>();
      } else {
        CpAsyncWait<0>();
      }
      __syncthreads();
      // Chunk 2 ks + 1 exists unless n_kc is odd and this is the last step.
      const int n_chunks = 2 * ks + 1 < n_kc ? 2 : 1;
#pragma unroll 1
      for (int kcl = 0; kcl < n_chunks; ++kcl) {
        uint4 a[4];
        uint32_t b[4][2];
#pragma unroll
        for (int i = 0; i < 4; ++i) a[i] = as[st][((4 * wr + i) * 2 + kcl) * 32 + lane];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          if (kSkip && j >= jn) break;
          const uint16_t* p = &bs[st][(32 * wt + 8 * j + g) * kHmStride + kcl * 16 + 2 * q];
          b[j][0] = Ld32(p);
          b[j][1] = Ld32(p + 8);
        }
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            if (kSkip && j >= jn) break;
            MmaHalf<kBf16>(a[i], b[j][0], b[j][1], acc[i][j]);
          }
      }
      __syncthreads();
    }
    totals.Fold(acc, ks0 == 0);
  }
  // A warp's totals (warp (wr, wt) of the block at row tile rt0, token t0).
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t r = (rt0 + 4 * wr + i) * 16 + g + (e >= 2 ? 8 : 0);
        const int64_t t = t0 + 32 * wt + 8 * j + 2 * q + (e & 1);
        if (r < rows && t < n) y[t * ldy + r] = totals.Get(i, j, e);
      }
}

template <bool kBf16, bool kSkip>
__global__ void __launch_bounds__(256)
    MatMulHalfMmaKernel(const uint4* __restrict__ w, int64_t n_rt, int64_t n_kc,
                        const uint16_t* __restrict__ xh, int64_t n, int64_t rows,
                        float* __restrict__ y, int64_t ldy) {
  __shared__ alignas(16) uint4 as[2][kHmAs];
  __shared__ alignas(16) uint16_t bs[2][kHmBs];
  RegTotals totals;
  HalfMmaTile<kBf16, kSkip>(w, n_rt, n_kc, xh, n, rows, y, ldy,
                            static_cast<int64_t>(blockIdx.x) * (kHmRows / 16),
                            static_cast<int64_t>(blockIdx.y) * kHmToks, as, bs, totals);
}

// The default for Q/K/V and gate/up (HalfPrefillMultiOn): the same tile for
// up to kGemvMaxTargets matrices of one width in one
// launch (block b of grid row serves 128-row block b - first[t] of target
// t: Q, K and V together fill the GPU where K and V alone fill a quarter of
// it), with the totals in registers or (kSmem) in shared memory, so that
// two blocks share an SM.
template <bool kBf16, bool kSmem>
__global__ void __launch_bounds__(256, kSmem ? 2 : 1)
    MatMulHalfMmaMultiKernel(const HalfTargets ts, int64_t n_kc, const uint16_t* __restrict__ xh,
                             int64_t n) {
  __shared__ alignas(16) uint4 as[2][kHmAs];
  __shared__ alignas(16) uint16_t bs[2][kHmBs];
  int target = 0;
  while (target + 1 < ts.count && blockIdx.x >= ts.first[target + 1]) ++target;
  const int64_t rows = ts.rows[target];
  const int64_t rt0 = (blockIdx.x - ts.first[target]) * (kHmRows / 16);
  const int64_t t0 = static_cast<int64_t>(blockIdx.y) * kHmToks;
  if constexpr (kSmem) {
    extern __shared__ __align__(16) float tot_sh[];
    SmemTotals totals{tot_sh + threadIdx.x};
    HalfMmaTile<kBf16>(ts.w[target], (rows + 15) / 16, n_kc, xh, n, rows, ts.y[target],
                       ts.ldy[target], rt0, t0, as, bs, totals);
  } else {
    RegTotals totals;
    HalfMmaTile<kBf16>(ts.w[target], (rows + 15) / 16, n_kc, xh, n, rows, ts.y[target],
                       ts.ldy[target], rt0, t0, as, bs, totals);
  }
}

// On unless =0: the same bits on an H100 (2026-12-06); F16 tg128 127.3 ->
// 136.8 tok/s.
PathSwitch g_half_multi("REPRISE_CUDA_HALF_MULTI", PathDefault::kOn);
// Written without a GPU after the tenth GPU run's ncu (K and V at 48
// TFLOP/s on 32 of 132 SMs, Q at 185 with 65% of cycles without a ready
// warp); the same bits on an H100 (eleventh run, 2026-12-06): F16 pp512
// 9,836 -> 11,036 tok/s with the shared launch alone (MULTI, opt-in: for
// measurement), 12,812 with its totals in shared memory (SMEM, on unless
// =0; pp8192 7,972 -> 9,797).
PathSwitch g_half_prefill_multi("REPRISE_CUDA_HALF_PREFILL_MULTI", PathDefault::kOff);
PathSwitch g_half_prefill_smem("REPRISE_CUDA_HALF_PREFILL_SMEM", PathDefault::kOn);

// The launch's targets, block b serving rows_per_block rows of one of them.
HalfTargets MakeHalfTargets(const GemvTarget* targets, int count, int64_t rows_per_block) {
  CHECK(count >= 1 && count <= kGemvMaxTargets);
  HalfTargets ts{};
  ts.count = count;
  for (int t = 0; t < count; ++t) {
    ts.w[t] = reinterpret_cast<const uint4*>(targets[t].w);
    ts.y[t] = targets[t].y;
    ts.rows[t] = targets[t].rows;
    ts.ldy[t] = targets[t].ldy;
    ts.first[t + 1] = ts.first[t] + (targets[t].rows + rows_per_block - 1) / rows_per_block;
  }
  return ts;
}

template <bool kBf16>
void RunGemv(const GemvTarget* targets, int count, int64_t n_kc, const uint16_t* xh, int64_t n,
             cudaStream_t s) {
  const HalfTargets ts = MakeHalfTargets(targets, count, 16);  // a row tile a block
  PdlLaunch(GemvHalfKernel<kBf16>, dim3(static_cast<unsigned>(ts.first[count])),
            dim3(kHgWarps * 32), 0, s, ts, n_kc, xh, static_cast<int>(n));
}

template <bool kBf16, bool kSmem>
void RunMultiT(const HalfTargets& ts, int64_t n_kc, const uint16_t* xh, int64_t n,
               cudaStream_t s) {
  const dim3 grid(static_cast<unsigned>(ts.first[ts.count]),
                  static_cast<unsigned>((n + kHmToks - 1) / kHmToks));
  const size_t smem = kSmem ? kHmSmemTotalBytes : 0;
  static bool configured = false;
  if (kSmem && !configured) {
    cudaFuncSetAttribute(MatMulHalfMmaMultiKernel<kBf16, kSmem>,
                         cudaFuncAttributeMaxDynamicSharedMemorySize, kHmSmemTotalBytes);
    // two blocks of ~101 KiB an SM: all of the unified memory as shared
    cudaFuncSetAttribute(MatMulHalfMmaMultiKernel<kBf16, kSmem>,
                         cudaFuncAttributePreferredSharedMemoryCarveout,
                         cudaSharedmemCarveoutMaxShared);
    configured = true;
  }
  MatMulHalfMmaMultiKernel<kBf16, kSmem><<<grid, 256, smem, s>>>(ts, n_kc, xh, n);
}

template <bool kBf16>
void RunMulti(const GemvTarget* targets, int count, int64_t n_kc, const uint16_t* xh, int64_t n,
              cudaStream_t s) {
  const HalfTargets ts = MakeHalfTargets(targets, count, kHmRows);
  if (g_half_prefill_smem.On()) {
    RunMultiT<kBf16, true>(ts, n_kc, xh, n, s);
  } else {
    RunMultiT<kBf16, false>(ts, n_kc, xh, n, s);
  }
}

template <bool kBf16>
void Run(const uint8_t* w, int64_t rows, int64_t n_kc, const uint16_t* xh, int64_t n, float* y,
         int64_t ldy, cudaStream_t s) {
  const uint4* wv = reinterpret_cast<const uint4*>(w);
  const int64_t n_rt = (rows + 15) / 16;
  if (n >= kGemvMaxTokens) {
    const dim3 grid(static_cast<unsigned>((n_rt + kHmRows / 16 - 1) / (kHmRows / 16)),
                    static_cast<unsigned>((n + kHmToks - 1) / kHmToks));
    if (n < kHmToks && MmaSkipTilesOn()) {
      MatMulHalfMmaKernel<kBf16, true><<<grid, 256, 0, s>>>(wv, n_rt, n_kc, xh, n, rows, y, ldy);
    } else {
      MatMulHalfMmaKernel<kBf16, false><<<grid, 256, 0, s>>>(wv, n_rt, n_kc, xh, n, rows, y, ldy);
    }
    return;
  }
  const GemvTarget one{w, rows, y, ldy};
  RunGemv<kBf16>(&one, 1, n_kc, xh, n, s);
}

}  // namespace


bool HalfMultiOn() { return g_half_multi.On(); }
void SetHalfMultiForTest(int on) { g_half_multi.SetForTest(on); }
bool HalfPrefillMultiOn() { return g_half_prefill_multi.On() || g_half_prefill_smem.On(); }
void SetHalfPrefillForTest(int multi, int smem) {
  g_half_prefill_multi.SetForTest(multi);
  g_half_prefill_smem.SetForTest(smem);
}

bool HalfTensorCores(DType type) {
  static const bool on = EnvSwitchOn("REPRISE_CUDA_HALF_MMA");
  return on && (type == DType::kF16 || type == DType::kBF16);
}

std::vector<uint8_t> RepackHalf(const MatrixView& v, int64_t* n_kc) {
  const int64_t rows = v.rows, cols = v.cols;
  const int64_t kcs = (cols + 15) / 16, rts = (rows + 15) / 16;
  std::vector<uint8_t> out(static_cast<size_t>(rts * kcs * 512), 0);
  uint32_t* dst = reinterpret_cast<uint32_t*>(out.data());
  const int64_t row_bytes = v.row_bytes();
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* src = v.data + r * row_bytes;
    const int64_t rt = r / 16;
    const int g = static_cast<int>(r % 8), hi = static_cast<int>((r % 16) / 8);
    for (int64_t c = 0; c < cols; c += 2) {
      const int64_t kc = c / 16;
      const int j = static_cast<int>((c % 16) / 2);  // the column pair within the chunk
      const int lane = 4 * g + j % 4, reg = hi + 2 * (j / 4);
      uint32_t pair = Ld16(src + 2 * c);
      if (c + 1 < cols) pair |= static_cast<uint32_t>(Ld16(src + 2 * c + 2)) << 16;
      dst[((rt * kcs + kc) * 32 + lane) * 4 + reg] = pair;
    }
  }
  *n_kc = kcs;
  return out;
}

uint16_t HostHalfActivation(DType type, float v) {
  if (type == DType::kBF16) return Fp32ToBf16(v);
  if (std::fabs(v) > 65504.0f) v = std::copysign(65504.0f, v);
  return Fp32ToFp16(v);
}

int64_t HalfActCols(int64_t cols) { return (cols + 15) / 16 * 16; }

void LaunchHalfAct(DType type, const float* x, int64_t n, int64_t cols, uint16_t* xh,
                   cudaStream_t s) {
  const int64_t cols16 = HalfActCols(cols);
  const unsigned grid = static_cast<unsigned>((n * cols16 + 255) / 256);
  if (type == DType::kBF16) {
    PdlLaunch(HalfActKernel<true>, dim3(grid), dim3(256), 0, s, x, n, cols, cols16, xh);
  } else {
    PdlLaunch(HalfActKernel<false>, dim3(grid), dim3(256), 0, s, x, n, cols, cols16, xh);
  }
}

void LaunchGemvHalf(DType type, const GemvTarget* targets, int count, int64_t n_kc,
                    const uint16_t* xh, int64_t n, cudaStream_t s) {
  CHECK((type == DType::kF16 || type == DType::kBF16) && n < kGemvMaxTokens);
  if (type == DType::kBF16) {
    RunGemv<true>(targets, count, n_kc, xh, n, s);
  } else {
    RunGemv<false>(targets, count, n_kc, xh, n, s);
  }
}

void LaunchMatMulHalfMulti(DType type, const GemvTarget* targets, int count, int64_t n_kc,
                           const uint16_t* xh, int64_t n, cudaStream_t s) {
  CHECK((type == DType::kF16 || type == DType::kBF16) && n >= kGemvMaxTokens);
  if (type == DType::kBF16) {
    RunMulti<true>(targets, count, n_kc, xh, n, s);
  } else {
    RunMulti<false>(targets, count, n_kc, xh, n, s);
  }
}

void LaunchMatMulHalf(DType type, const uint8_t* w, int64_t rows, int64_t n_kc,
                      const uint16_t* xh, int64_t n, float* y, int64_t ldy, cudaStream_t s) {
  CHECK(type == DType::kF16 || type == DType::kBF16);
  if (type == DType::kBF16) {
    Run<true>(w, rows, n_kc, xh, n, y, ldy, s);
  } else {
    Run<false>(w, rows, n_kc, xh, n, y, ldy, s);
  }
}

}  // namespace reprise::kernels::cuda
