// Quantized matmul kernels (Q8_0, Q4_0, Q4_K, Q6_K weights against int8
// activations), both following cuda_matmul.cu's canonical order for every
// output (row r, token t): per 32-value sub-block b one fused term
// seg = fma(round(d * x_b), dx_b, seg) (Q8_0 / Q4_0: Q32Add), per 256-value
// unit one c_u folded from exact integers and added (Q4_K / Q6_K: KInts,
// UnitContrib in cuda_subblock.cuh); a segment of kSegCols columns starts
// from 0 and takes its terms in order; the first segment's sum starts the
// total, every later one is added to it in order.
//  - Decode (n < QuantGemvTokens()): the GEMV (cuda_gemv.cu).
//  - Prefill (n >= QuantGemvTokens()): MatMulQuantMmaKernel, int8 tensor cores
//    (mma.sync m16n8k32, Q6_K two m16n8k16 halves) on 64 x 64 (rows x tokens)
//    tiles; the integer sums are exact, so the same terms give the same bits.
// REPRISE_CUDA_MMA=0 runs prefill through the GEMV kernel (16 tokens per
// launch) to measure the tensor-core path or rule it out: same bits.
// Q4_K runs MatMulQ4KPipeKernel (the same tile, its loads copied a stage
// ahead by cp.async, the mins' sums on the tensor cores too;
// REPRISE_CUDA_MMA_PIPE=0: the kernel above); Q8_0 / Q4_0 can run the
// pipelined kernel of cuda_matmul_q32_pipe.cu (opt-in: MmaPipe32On).
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "core/check.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/cuda_mma_int8.cuh"
#include "kernels/cuda/cuda_subblock.cuh"
#include "kernels/cuda/path_switch.h"

namespace reprise::kernels::cuda {
namespace {

// ---- prefill: int8 tensor cores ----
// The same canonical order as the GEMV, computed with int8 MMA: per 32-value
// sub-block the exact integer dot products of a 64-row x 64-token tile come
// from mma.sync (m16n8k32; Q6_K two m16n8k16 halves, so its two scales
// apply). Q8_0 / Q4_0: each element takes the very fused term Q32Add
// computes, in sub-block order. Q4_K / Q6_K: each
// element's KInts grow over the unit's 8 sub-blocks (isum += sc * S, Q4_K
// msum += m * sx: integer multiply-adds, no float work per sub-block) and
// UnitContrib's float terms come once per unit. Segment sums are combined in
// segment order. Integer sums are exact whatever the instruction, so every
// output is bit-identical to the GEMV kernel's: a token's result never
// depends on which path or batch computed it.
constexpr int kStage = 4;                       // sub-blocks staged per synchronisation
constexpr int kMmaStride = kStage * 32 + 16;    // smem bytes per row / token: fragment loads
                                                // of the 8 row groups hit 32 different banks

// At most 168 registers (3 blocks an SM, 12 warps): uncapped it took 178
// (2 blocks); capped it needs 159-163 and spills nothing (ptxas -v, sm_90).
// Registers do not change the arithmetic.
template <int kType, int kKind, int kSubs, int kUnitBytes>
__global__ void __launch_bounds__(128, 3)
    MatMulQuantMmaKernel(const uint8_t* __restrict__ w, int64_t rows, int64_t n_units,
                         const int8_t* __restrict__ xq, const float* __restrict__ xd,
                         const int32_t* __restrict__ xs, int64_t cols, int64_t n,
                         float* __restrict__ y, int64_t ldy) {
  __shared__ alignas(16) int8_t wq[kMmaRows * kMmaStride];
  __shared__ alignas(16) int8_t aq[kMmaToks * kMmaStride];
  __shared__ float row_a[kStage][kMmaRows], row_b[kStage][kMmaRows];  // per-row scale terms
  __shared__ int row_sc0[kStage][kMmaRows], row_sc1[kStage][kMmaRows];
  __shared__ float tok_d[kStage][kMmaToks];
  __shared__ int tok_s[kStage][kMmaToks];
  // K-quants: the running totals live here (element x of thread tid at
  // tot_sh[x * 128 + tid]), the registers holding the units' integers.
  __shared__ float tot_sh[kKind == 0 ? 1 : 32 * 128];

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, q4 = lane % 4;
  const int64_t r_base = static_cast<int64_t>(blockIdx.x) * kMmaRows;
  const int64_t t_base = static_cast<int64_t>(blockIdx.y) * kMmaToks;
  const int wr = (warp / 2) * 32, wt = (warp % 2) * 32;  // this warp's 32 x 32 sub-tile
  const int64_t nb32 = cols / 32;
  const int64_t padded_rows = (rows + kRowGroup - 1) / kRowGroup * kRowGroup;

  float seg_acc[2][4][4], total[2][4][4];
  KInts kint[2][4][4];  // K-quants: the current unit's integers
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j)
      for (int e = 0; e < 4; ++e) seg_acc[i][j][e] = 0.0f, total[i][j][e] = 0.0f;

  const int subs_per_seg = kSegCols / 32;
  for (int64_t b0 = 0; b0 < nb32; b0 += kStage) {
    // Stage sub-blocks b0 .. b0 + kStage - 1: the weights as signed bytes
    // (SubW's words, bias removed) with their scale terms, the activations
    // as they are (16-byte copies, consecutive threads on consecutive bytes).
    for (int it = tid; it < kMmaRows * kStage; it += 128) {
      const int rr = it % kMmaRows, sub = it / kMmaRows;
      const int64_t r = r_base + rr, b = b0 + sub;
      uint4* dst = reinterpret_cast<uint4*>(wq + rr * kMmaStride + sub * 32);
      if (r < padded_rows && b < nb32) {
        SubW sw;
        LoadSubW<kType>(
            w + (((r / kRowGroup) * n_units + b / kSubs) * kRowGroup + r % kRowGroup) * kUnitBytes,
            static_cast<int>(b % kSubs), &sw);
        if (sw.off != 0) {
          for (int k = 0; k < 8; ++k) sw.w[k] = __vsub4(sw.w[k], 0x01010101u * sw.off);
        }
        dst[0] = make_uint4(sw.w[0], sw.w[1], sw.w[2], sw.w[3]);
        dst[1] = make_uint4(sw.w[4], sw.w[5], sw.w[6], sw.w[7]);
        row_a[sub][rr] = sw.a;
        row_b[sub][rr] = sw.b;
        row_sc0[sub][rr] = sw.sc0;
        row_sc1[sub][rr] = kKind == 1 ? sw.m : sw.sc1;
      } else {
        dst[0] = dst[1] = make_uint4(0, 0, 0, 0);
        row_a[sub][rr] = row_b[sub][rr] = 0.0f;
        row_sc0[sub][rr] = row_sc1[sub][rr] = 0;
      }
    }
    for (int it = tid; it < kMmaToks * kStage * 2; it += 128) {
      const int tok = it / (kStage * 2), part = it % (kStage * 2), sub = part / 2, half = part % 2;
      const int64_t t = t_base + tok, b = b0 + sub;
      int4 v = make_int4(0, 0, 0, 0);
      if (t < n && b < nb32) v = *reinterpret_cast<const int4*>(xq + t * cols + b * 32 + half * 16);
      *reinterpret_cast<int4*>(aq + tok * kMmaStride + sub * 32 + half * 16) = v;
    }
    for (int it = tid; it < kMmaToks * kStage; it += 128) {
      const int tok = it % kMmaToks, sub = it / kMmaToks;
      const int64_t t = t_base + tok, b = b0 + sub;
      const bool ok = t < n && b < nb32;
      tok_d[sub][tok] = ok ? xd[t * nb32 + b] : 0.0f;
      tok_s[sub][tok] = ok ? xs[t * nb32 + b] : 0;
    }
    __syncthreads();

    const int ns = static_cast<int>(nb32 - b0 < kStage ? nb32 - b0 : kStage);
    for (int sub = 0; sub < ns; ++sub) {
      const int64_t b = b0 + sub;
      int a_lo[2][2], a_hi[2][2], b_lo[4], b_hi[4];
      for (int i = 0; i < 2; ++i) {
        const int8_t* r0 = wq + (wr + i * 16 + g) * kMmaStride + sub * 32 + q4 * 4;
        const int8_t* r1 = r0 + 8 * kMmaStride;
        a_lo[i][0] = *reinterpret_cast<const int*>(r0);
        a_lo[i][1] = *reinterpret_cast<const int*>(r1);
        a_hi[i][0] = *reinterpret_cast<const int*>(r0 + 16);
        a_hi[i][1] = *reinterpret_cast<const int*>(r1 + 16);
      }
      for (int j = 0; j < 4; ++j) {
        const int8_t* c0 = aq + (wt + j * 8 + g) * kMmaStride + sub * 32 + q4 * 4;
        b_lo[j] = *reinterpret_cast<const int*>(c0);
        b_hi[j] = *reinterpret_cast<const int*>(c0 + 16);
      }
      // This thread's 4 rows' and 8 tokens' scale terms, read once per
      // sub-block (not once per output element: shared-memory bound).
      float ra[2][2], rb[2][2], td[4][2];
      int rs0[2][2], rs1[2][2], ts[4][2];
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int rr = wr + i * 16 + g + 8 * h;
          ra[i][h] = row_a[sub][rr];
          rb[i][h] = kKind == 1 ? row_b[sub][rr] : 0.0f;
          if (kKind != 0) rs0[i][h] = row_sc0[sub][rr], rs1[i][h] = row_sc1[sub][rr];
        }
#pragma unroll
      for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int tt = wt + j * 8 + q4 * 2 + h;
          td[j][h] = tok_d[sub][tt];
          if (kKind == 1) ts[j][h] = tok_s[sub][tt];
        }
      // K-quants: the unit's integers grow over its 8 sub-blocks; its float
      // contribution joins the segment after the last (UnitContrib's terms).
      const bool unit_end = kKind == 0 || (b + 1) % kSubs == 0;
#pragma unroll
      for (int i = 0; i < 2; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          int lo[4], hi[4];
          if (kKind == 2) {
            MmaS8K16(a_lo[i][0], a_lo[i][1], b_lo[j], lo);
            MmaS8K16(a_hi[i][0], a_hi[i][1], b_hi[j], hi);
          } else {
            MmaS8K32(a_lo[i][0], a_lo[i][1], a_hi[i][0], a_hi[i][1], b_lo[j], b_hi[j], lo);
          }
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int h = e >= 2 ? 1 : 0, k = e & 1;
            if (kKind == 0) {
              seg_acc[i][j][e] = Q32Add(seg_acc[i][j][e], ra[i][h], lo[e], td[j][k]);
              continue;
            }
            KInts& ki = kint[i][j][e];
            if (kKind == 1) {
              ki.isum += rs0[i][h] * lo[e];
              ki.msum += rs1[i][h] * ts[j][k];
            } else {
              ki.isum += rs0[i][h] * lo[e] + rs1[i][h] * hi[e];
            }
            if (unit_end) {
              seg_acc[i][j][e] =
                  FAdd(seg_acc[i][j][e], UnitContrib<kKind>(ra[i][h], rb[i][h], td[j][k], ki));
              ki = KInts();
            }
          }
        }
      }
      // The end of a segment (or of the row): fold its sum into the total.
      if ((b + 1) % subs_per_seg == 0 || b + 1 == nb32) {
        const bool first = b < subs_per_seg;
        for (int i = 0; i < 2; ++i)
          for (int j = 0; j < 4; ++j)
            for (int e = 0; e < 4; ++e) {
              float& t = kKind == 0 ? total[i][j][e] : tot_sh[((i * 4 + j) * 4 + e) * 128 + tid];
              t = first ? seg_acc[i][j][e] : FAdd(t, seg_acc[i][j][e]);
              seg_acc[i][j][e] = 0.0f;
            }
      }
    }
    __syncthreads();
  }
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j)
      for (int e = 0; e < 4; ++e) {
        const int64_t r = r_base + wr + i * 16 + g + (e >= 2 ? 8 : 0);
        const int64_t t = t_base + wt + j * 8 + q4 * 2 + (e & 1);
        const float v = kKind == 0 ? total[i][j][e] : tot_sh[((i * 4 + j) * 4 + e) * 128 + tid];
        if (r < rows && t < n) y[t * ldy + r] = v;
      }
}

// ---- prefill: Q4_K, pipelined (the default) ----
// MatMulQuantMmaKernel's tile and warps with the loads taken off the
// critical path: a stage is one Q4_K unit (8 sub-blocks), and stage s + 1's
// raw weight units (two row groups of 32 x 144 contiguous bytes), int8
// activations (64 tokens x 256 bytes) and activation scales and sums are
// copied by cp.async into the other of two buffers while stage s is
// computed. The nibbles are unpacked where the fragments are loaded (a shift
// and a mask); a pass per stage (StagePass) decodes the rows' 6-bit scales
// and mins and splits the tokens' activation sums into two int8 each. Per
// sub-block an element costs one k32 MMA share and one integer multiply-add
// (isum += sc * S); per unit, msum = sum_j m_j * sx_j comes from two k16 MMAs
// (the mins against the sums' low and high bytes) and UnitContrib<1>'s float
// terms follow. The same integers and float terms in the same order: the
// bits of every other path. The default (MmaPipeOn); REPRISE_CUDA_MMA_PIPE=0: off.
constexpr int kPipeUnit = 144;                 // bytes of a Q4_K unit
constexpr int kPipeActStride = 256 + 16;       // bytes per token of a stage's activations:
                                               // fragment loads of 8 tokens hit 32 banks
constexpr int kPipeW = kMmaRows * kPipeUnit;   // 9216
constexpr int kPipeA = kMmaToks * kPipeActStride;
constexpr int kPipeBuf = kPipeW + kPipeA + kMmaToks * 8 * 8;  // + xd, xs (8 sub-blocks each)
// After the two buffers, the stage's row and token terms (StagePass):
constexpr int kPipeRowSc = 2 * kPipeBuf;                   // int [8][kMmaRows]: 6-bit scales
constexpr int kPipeRowM = kPipeRowSc + 8 * kMmaRows * 4;   // uint32 [kMmaRows][2]: mins as bytes
constexpr int kPipeRowD = kPipeRowM + kMmaRows * 2 * 4;    // float [kMmaRows]: d, then dmin
constexpr int kPipeTokLo = kPipeRowD + 2 * kMmaRows * 4;   // uint32 [kMmaToks][2]: sums' low bytes
constexpr int kPipeTokHi = kPipeTokLo + kMmaToks * 2 * 4;  // uint32 [kMmaToks][2]: sums' high bytes
constexpr int kPipeTot = kPipeTokHi + kMmaToks * 2 * 4;    // float [32][128]: the running totals
constexpr int kPipeSmem = kPipeTot + 32 * 128 * 4;           // (registers hold the units' integers)

// kSkip: as MatMulQ32PipeKernel's (a single partial token tile).
template <bool kSkip>
__global__ void __launch_bounds__(128, 3)
    MatMulQ4KPipeKernel(const uint8_t* __restrict__ w, int64_t rows, int64_t n_units,
                        const int8_t* __restrict__ xq, const float* __restrict__ xd,
                        const int32_t* __restrict__ xs, int64_t cols, int64_t n,
                        float* __restrict__ y, int64_t ldy) {
  extern __shared__ __align__(16) uint8_t pipe_sh[];
  int* row_sc = reinterpret_cast<int*>(pipe_sh + kPipeRowSc);
  uint32_t* row_m = reinterpret_cast<uint32_t*>(pipe_sh + kPipeRowM);
  float* row_d = reinterpret_cast<float*>(pipe_sh + kPipeRowD);
  float* row_dmin = row_d + kMmaRows;
  uint32_t* tok_lo = reinterpret_cast<uint32_t*>(pipe_sh + kPipeTokLo);
  uint32_t* tok_hi = reinterpret_cast<uint32_t*>(pipe_sh + kPipeTokHi);
  float* tot = reinterpret_cast<float*>(pipe_sh + kPipeTot);  // element x: tot[x * 128 + tid]
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, q4 = lane % 4;
  const int64_t r_base = static_cast<int64_t>(blockIdx.x) * kMmaRows;
  const int64_t t_base = static_cast<int64_t>(blockIdx.y) * kMmaToks;
  const int wr = (warp / 2) * 32, wt = (warp % 2) * 32;
  const int jt_n = kSkip ? ColumnTiles(n - t_base - wt) : 4;
  const int64_t nb32 = cols / 32;
  const int64_t groups = (rows + kRowGroup - 1) / kRowGroup;

  auto issue = [&](int64_t u) {
    if (u < n_units) {
      uint8_t* buf = pipe_sh + (u % 2) * kPipeBuf;
      for (int i = tid; i < kPipeW / 16; i += 128) {  // two row groups' units
        const int half = i / (kPipeW / 32), piece = i % (kPipeW / 32);
        const int64_t grp = r_base / kRowGroup + half;
        const bool ok = grp < groups;
        const uint8_t* src = w + ((ok ? grp : 0) * n_units + u) * kRowGroup * kPipeUnit;
        CpAsync16(buf + i * 16, src + piece * 16, ok);
      }
      uint8_t* abuf = buf + kPipeW;
      for (int i = tid; i < kMmaToks * 16; i += 128) {  // activations
        const int tok = i / 16, piece = i % 16;
        const int64_t t = t_base + tok;
        const bool ok = t < n;
        CpAsync16(abuf + tok * kPipeActStride + piece * 16,
                  xq + (ok ? t : 0) * cols + u * 256 + piece * 16, ok);
      }
      uint8_t* dbuf = abuf + kPipeA;
      for (int i = tid; i < kMmaToks * 4; i += 128) {  // scales then sums, 2 pieces a token
        const int tok = i / 4, which = (i / 2) % 2, piece = i % 2;
        const int64_t t = t_base + tok;
        const bool ok = t < n;
        const uint8_t* src = which == 0
                                 ? reinterpret_cast<const uint8_t*>(xd + (ok ? t : 0) * nb32 + u * 8)
                                 : reinterpret_cast<const uint8_t*>(xs + (ok ? t : 0) * nb32 + u * 8);
        CpAsync16(dbuf + which * (kMmaToks * 32) + tok * 32 + piece * 16, src + piece * 16, ok);
      }
    }
    CpAsyncCommit();  // always: one group per stage keeps the wait counts exact
  };

  float seg_acc[2][4][4];
  int isum[2][4][4];  // the current unit's sum_j sc_j * S_j (KInts::isum)
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j)
      for (int e = 0; e < 4; ++e) seg_acc[i][j][e] = 0.0f, isum[i][j][e] = 0;

  constexpr int units_per_seg = static_cast<int>(kSegCols / 256);
  issue(0);
  for (int64_t u = 0; u < n_units; ++u) {
    issue(u + 1);
    CpAsyncWait<1>();
    __syncthreads();  // stage u has landed, every thread's copies
    const uint8_t* wbuf = pipe_sh + (u % 2) * kPipeBuf;
    const uint8_t* abuf = wbuf + kPipeW;
    const float* tdx = reinterpret_cast<const float*>(abuf + kPipeA);  // [tok][8]
    const int32_t* tsx = reinterpret_cast<const int32_t*>(abuf + kPipeA + kMmaToks * 32);
    {  // StagePass: thread (row or token rr, half): sub-blocks 4 half .. 4 half + 3
      const int rr = tid % kMmaRows, half = tid / kMmaRows;
      const uint8_t* unit = wbuf + rr * kPipeUnit;
      uint32_t mw = 0, lo = 0, hi = 0;
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int j = 4 * half + q;
        int sc, m;
        ScaleMinK4(j, unit + 4, &sc, &m);
        row_sc[j * kMmaRows + rr] = sc;
        mw |= static_cast<uint32_t>(m) << (8 * q);
        // Token rr's activation sum of sub-block j as two int8: sx = 128 hi + lo,
        // lo in [0, 127], hi in [-32, 31] (|sx| <= 32 * 127).
        const int32_t sx = tsx[rr * 8 + j];
        lo |= static_cast<uint32_t>(sx & 127) << (8 * q);
        hi |= static_cast<uint32_t>((sx >> 7) & 0xFF) << (8 * q);
      }
      row_m[rr * 2 + half] = mw;
      tok_lo[rr * 2 + half] = lo;
      tok_hi[rr * 2 + half] = hi;
      row_d[half * kMmaRows + rr] = HalfBitsToFloat(Ld16(unit + 2 * half));  // d, dmin
    }
    __syncthreads();
    // The unit's 8 sub-blocks: S_j = the 32-value dot products (one k32 MMA
    // per 16 x 8 piece), isum += sc_j * S_j.
#pragma unroll 1
    for (int j = 0; j < 8; ++j) {
      const int qoff = 16 + 32 * (j / 2), shift = 4 * (j % 2);
      int a_lo[2][2], a_hi[2][2], b_lo[4], b_hi[4];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const uint8_t* r0 = wbuf + (wr + i * 16 + g) * kPipeUnit + qoff + q4 * 4;
        const uint8_t* r1 = r0 + 8 * kPipeUnit;
        a_lo[i][0] = static_cast<int>((*reinterpret_cast<const uint32_t*>(r0) >> shift) & 0x0F0F0F0Fu);
        a_lo[i][1] = static_cast<int>((*reinterpret_cast<const uint32_t*>(r1) >> shift) & 0x0F0F0F0Fu);
        a_hi[i][0] =
            static_cast<int>((*reinterpret_cast<const uint32_t*>(r0 + 16) >> shift) & 0x0F0F0F0Fu);
        a_hi[i][1] =
            static_cast<int>((*reinterpret_cast<const uint32_t*>(r1 + 16) >> shift) & 0x0F0F0F0Fu);
      }
#pragma unroll
      for (int jt = 0; jt < 4; ++jt) {
        if (kSkip && jt >= jt_n) break;
        const uint8_t* c0 = abuf + (wt + jt * 8 + g) * kPipeActStride + j * 32 + q4 * 4;
        b_lo[jt] = *reinterpret_cast<const int*>(c0);
        b_hi[jt] = *reinterpret_cast<const int*>(c0 + 16);
      }
      int rsc[2][2];
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) rsc[i][h] = row_sc[j * kMmaRows + wr + i * 16 + g + 8 * h];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
#pragma unroll
        for (int jt = 0; jt < 4; ++jt) {
          if (kSkip && jt >= jt_n) break;
          int dot[4];
          MmaS8K32(a_lo[i][0], a_lo[i][1], a_hi[i][0], a_hi[i][1], b_lo[jt], b_hi[jt], dot);
#pragma unroll
          for (int e = 0; e < 4; ++e) isum[i][jt][e] += rsc[i][e >> 1] * dot[e];
        }
      }
    }
    // The unit's end: msum = sum_j m_j * sx_j by two k16 MMAs (the mins as
    // bytes at k 0..7, the sums' low and high bytes: msum = lo + 128 hi),
    // then UnitContrib<1>'s float terms: the bits of every other path
    // (|msum| < 2^21: SmallIntToFloat is the plain conversion).
    {
      int am[2][2], bl[4], bh[4];
      float rd[2][2], rdm[2][2], dx[4][2];
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int rr = wr + i * 16 + g + 8 * h;
          am[i][h] = q4 < 2 ? static_cast<int>(row_m[rr * 2 + q4]) : 0;
          rd[i][h] = row_d[rr];
          rdm[i][h] = row_dmin[rr];
        }
#pragma unroll
      for (int jt = 0; jt < 4; ++jt) {
        if (kSkip && jt >= jt_n) break;
        const int tok = wt + jt * 8 + g;
        bl[jt] = q4 < 2 ? static_cast<int>(tok_lo[tok * 2 + q4]) : 0;
        bh[jt] = q4 < 2 ? static_cast<int>(tok_hi[tok * 2 + q4]) : 0;
#pragma unroll
        for (int k = 0; k < 2; ++k) dx[jt][k] = tdx[(wt + jt * 8 + q4 * 2 + k) * 8];
      }
#pragma unroll
      for (int i = 0; i < 2; ++i) {
#pragma unroll
        for (int jt = 0; jt < 4; ++jt) {
          if (kSkip && jt >= jt_n) break;
          int ml[4], mh[4];
          MmaS8K16(am[i][0], am[i][1], bl[jt], ml);
          MmaS8K16(am[i][0], am[i][1], bh[jt], mh);
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int h = e >> 1, k = e & 1;
            const float pos = FMul(rd[i][h], static_cast<float>(isum[i][jt][e]));
            const float neg = FMul(rdm[i][h], SmallIntToFloat(ml[e] + 128 * mh[e]));
            seg_acc[i][jt][e] = FAdd(seg_acc[i][jt][e], FMul(dx[jt][k], FSub(pos, neg)));
            isum[i][jt][e] = 0;
          }
        }
      }
    }
    if ((u + 1) % units_per_seg == 0 || u + 1 == n_units) {
      const bool first = u < units_per_seg;
      for (int i = 0; i < 2; ++i)
        for (int jt = 0; jt < 4; ++jt)
          for (int e = 0; e < 4; ++e) {
            float& t = tot[((i * 4 + jt) * 4 + e) * 128 + tid];
            t = first ? seg_acc[i][jt][e] : FAdd(t, seg_acc[i][jt][e]);
            seg_acc[i][jt][e] = 0.0f;
          }
    }
    __syncthreads();  // this buffer and the stage's terms are no longer read
  }
  CpAsyncWait<0>();
  for (int i = 0; i < 2; ++i)
    for (int jt = 0; jt < 4; ++jt)
      for (int e = 0; e < 4; ++e) {
        const int64_t r = r_base + wr + i * 16 + g + (e >= 2 ? 8 : 0);
        const int64_t t = t_base + wt + jt * 8 + q4 * 2 + (e & 1);
        if (r < rows && t < n) y[t * ldy + r] = tot[((i * 4 + jt) * 4 + e) * 128 + tid];
      }
}

// On unless =0. MMA_PIPE: validated on an H100 (2026-12-05). MMA_PIPE32:
// the same bits as the unpipelined kernel on an H100 (2026-12-06), Q8_0
// pp512 4,676 -> 5,963 tok/s with the tensor-core attention (~1.2x of it
// this kernel's).
PathSwitch g_pipe("REPRISE_CUDA_MMA_PIPE", PathDefault::kOn);
PathSwitch g_pipe32("REPRISE_CUDA_MMA_PIPE32", PathDefault::kOn);
// Off unless =1: written without a GPU (2026-12-06).
PathSwitch g_skip_tiles("REPRISE_CUDA_MMA_SKIP_TILES", PathDefault::kOff);

bool MmaEnabled() {
  static const bool on = EnvSwitchOn("REPRISE_CUDA_MMA");
  return on;
}

template <int kType, int kKind, int kSubs, int kUnitBytes>
void Launch(const uint8_t* w, int64_t rows, int64_t cols, int64_t n_units, const ActQ& act,
            int64_t n, float* y, int64_t ldy, cudaStream_t s) {
  if constexpr (kType == static_cast<int>(DType::kQ4_K)) {
    if (n >= QuantGemvTokens() && MmaEnabled() && MmaPipeOn()) {
      static bool configured = false;
      if (!configured) {
        cudaFuncSetAttribute(MatMulQ4KPipeKernel<false>,
                             cudaFuncAttributeMaxDynamicSharedMemorySize, kPipeSmem);
        cudaFuncSetAttribute(MatMulQ4KPipeKernel<true>,
                             cudaFuncAttributeMaxDynamicSharedMemorySize, kPipeSmem);
        configured = true;
      }
      const dim3 grid(static_cast<unsigned>((rows + kMmaRows - 1) / kMmaRows),
                      static_cast<unsigned>((n + kMmaToks - 1) / kMmaToks));
      if (n < kMmaToks && MmaSkipTilesOn()) {
        MatMulQ4KPipeKernel<true><<<grid, 128, kPipeSmem, s>>>(w, rows, n_units, act.q, act.d,
                                                               act.sum, cols, n, y, ldy);
      } else {
        MatMulQ4KPipeKernel<false><<<grid, 128, kPipeSmem, s>>>(w, rows, n_units, act.q, act.d,
                                                                act.sum, cols, n, y, ldy);
      }
      return;
    }
  }
  if constexpr (kKind == 0) {
    if (n >= QuantGemvTokens() && MmaEnabled() && MmaPipe32On()) {
      LaunchMatMulQ32Pipe(static_cast<DType>(kType), w, rows, n_units, act.q, act.d, cols, n, y,
                          ldy, s);
      return;
    }
  }
  if (n >= QuantGemvTokens() && MmaEnabled()) {
    const dim3 grid(static_cast<unsigned>((rows + kMmaRows - 1) / kMmaRows),
                    static_cast<unsigned>((n + kMmaToks - 1) / kMmaToks));
    MatMulQuantMmaKernel<kType, kKind, kSubs, kUnitBytes>
        <<<grid, 128, 0, s>>>(w, rows, n_units, act.q, act.d, act.sum, cols, n, y, ldy);
    return;
  }
  LaunchGemv(static_cast<DType>(kType), w, rows, cols, n_units, nullptr, act, n, y, ldy, s);
}

// One sub-block through both paths (HostSubAdd).
template <int kType, int kKind>
void BothAdds(const uint8_t* unit, int j, const int8_t* xq, float dx, int32_t sx, float acc,
              float* slow, float* fast) {
  uint32_t xw[8];
  std::memcpy(xw, xq, sizeof(xw));
  SubBlock sb;
  SubW sw;
  LoadSub<kType>(unit, j, &sb);
  LoadSubW<kType>(unit, j, &sw);
  *slow = SubBlockAdd<kKind>(acc, sb, xq, dx, sx);
  *fast = SubWAdd<kKind>(acc, sw, xw, dx, sx);
}

}  // namespace

bool MmaPipeOn() { return g_pipe.On(); }
void SetMmaPipeForTest(int on) { g_pipe.SetForTest(on); }
bool MmaPipe32On() { return g_pipe32.On(); }
void SetMmaPipe32ForTest(int on) { g_pipe32.SetForTest(on); }
bool MmaSkipTilesOn() { return g_skip_tiles.On(); }
void SetMmaSkipTilesForTest(int on) { g_skip_tiles.SetForTest(on); }

void LaunchMatMulQuant(DType type, const uint8_t* w, int64_t rows, int64_t cols, int64_t n_units,
                       const ActQ& act, int64_t n, float* y, int64_t ldy, cudaStream_t s) {
  CHECK(cols % 32 == 0);
  switch (type) {
    case DType::kQ8_0:
      Launch<static_cast<int>(DType::kQ8_0), 0, 1, kQ8_0Bytes>(w, rows, cols, n_units, act, n, y, ldy, s);
      break;
    case DType::kQ4_0:
      Launch<static_cast<int>(DType::kQ4_0), 0, 1, kQ4_0Bytes>(w, rows, cols, n_units, act, n, y, ldy, s);
      break;
    case DType::kQ4_K:
      Launch<static_cast<int>(DType::kQ4_K), 1, 8, kQ4KBytes>(w, rows, cols, n_units, act, n, y, ldy, s);
      break;
    case DType::kQ6_K:
      Launch<static_cast<int>(DType::kQ6_K), 2, 8, kQ6KBytes>(w, rows, cols, n_units, act, n, y, ldy, s);
      break;
    default:
      CHECK_MSG(false, "not a quantized type: %s", DTypeName(type));
  }
}

void HostSubAdd(DType type, const uint8_t* unit, int j, const int8_t* xq, float dx, int32_t sx,
                float acc, float* slow, float* fast) {
  constexpr int kQ8 = static_cast<int>(DType::kQ8_0), kQ40 = static_cast<int>(DType::kQ4_0);
  constexpr int kQ4K = static_cast<int>(DType::kQ4_K), kQ6K = static_cast<int>(DType::kQ6_K);
  switch (type) {
    case DType::kQ8_0: return BothAdds<kQ8, 0>(unit, j, xq, dx, sx, acc, slow, fast);
    case DType::kQ4_0: return BothAdds<kQ40, 0>(unit, j, xq, dx, sx, acc, slow, fast);
    case DType::kQ4_K: return BothAdds<kQ4K, 1>(unit, j, xq, dx, sx, acc, slow, fast);
    default: return BothAdds<kQ6K, 2>(unit, j, xq, dx, sx, acc, slow, fast);
  }
}

float HostQ32Round(float d, int x) { return Q32Round(d, x); }

}  // namespace reprise::kernels::cuda
