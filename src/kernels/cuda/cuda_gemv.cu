// The GEMV: y = W x for a few tokens (decode), every weight type, in the
// canonical order of cuda_matmul.cu (32-column sub-blocks, each one term,
// K-quants one per 256-value unit; segments of kSegCols summed from 0 in
// order; segment sums added in order).
//
// A block owns kGemvRows rows. Warp w computes row w's sub-block
// contributions, lane l taking sub-block b0 + l of a 32-sub-block window (so
// consecutive lanes read consecutive units of the row), for every token, into
// shared memory; then one thread per (row, token) folds the window's 32
// contributions in order: exactly two segments per window. No scratch, no
// second kernel. The fold is serial by design (the order is the contract);
// it costs ~1 instruction per sub-block per token, the loads and dot
// products ~1 per 4 values.
//
// Quantized weights take a second shape by default, the staged GEMV
// (REPRISE_CUDA_GEMV_STAGED=0: the shape above, same bits). The repack
// interleaves 32 rows unit by unit, so a 32-row group's units are one
// contiguous run of bytes: a block owns one row group and each of its warps
// copies its share of the run into shared memory with cp.async (every
// instruction 512 contiguous bytes, two stages in flight per warp), then
// lane l computes row l's contributions from shared memory and adds them in
// order into its segment sum, in registers (one token: a stage's activations
// are loaded before the wait for its weights; several tokens: they are copied
// into the stage's slot with its weights, so the inner loop reads shared
// memory, not a global load per sub-block and token). Warp w takes segments w, w + 8, ...;
// after each round of 8 segments the block folds the round's segment sums
// into the totals, in segment order. Several matrices of one type and width
// share a launch (LaunchGemvStaged: blocks map to matrices by row group).
// With a split over K (opt-in, GemvSplit) a row group has several blocks,
// each taking every split-th round and writing its segment sums to scratch;
// the group's last block to finish folds them in segment order. Same
// contributions, same sums in the same order: the same bits as every other
// path.
//
// A sub-block's contribution (the Sub policies):
//  - quantized: SubW / SubWAdd (cuda_subblock.cuh), the same bits as
//    SubBlockAdd, from 32-bit word loads and dp4a (Q8_0 / Q4_0 in the
//    warp-per-row shape: round(d * x) in shared memory, the fold adds it
//    times the activation scale, Q32Add's fused order); K-quants: a unit's
//    integers (SubWInts) added by its 8 lanes' shuffles (warp per row) or by
//    one lane over its stage (staged), then UnitContrib once;
//  - F32 / F16 / BF16: its (up to) 32 weights held in registers, one fused
//    multiply-add chain per token over the columns in order.
#include <algorithm>

#include "core/check.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/cuda_subblock.cuh"
#include "kernels/cuda/path_switch.h"

namespace reprise::kernels::cuda {
namespace {

constexpr int kGemvRows = 4;     // rows (warps) per block
constexpr int kGemvStride = 36;  // floats per (row, token) line of contributions (16-byte rows)
constexpr int kSubsPerSeg = static_cast<int>(kSegCols / 32);
static_assert(kSubsPerSeg == 16, "a 32-sub-block window holds exactly two segments");

struct GemvIn {
  const float* x;      // float weights: [n, cols]
  const int8_t* xq;    // quantized weights: [n, cols]
  const float* xd;     // [n, cols / 32]
  const int32_t* xs;   // [n, cols / 32]
  int64_t cols, nb32;  // nb32: sub-blocks per row (the last may be partial: float weights)
};

// Token t's 32 int8 activations of sub-block b as 8 words.
__device__ __forceinline__ void LoadActWords(const GemvIn& in, int t, int64_t b, uint32_t* xw) {
  const uint4* xp = reinterpret_cast<const uint4*>(in.xq + t * in.cols + b * 32);
  const uint4 x0 = xp[0], x1 = xp[1];
  xw[0] = x0.x, xw[1] = x0.y, xw[2] = x0.z, xw[3] = x0.w;
  xw[4] = x1.x, xw[5] = x1.y, xw[6] = x1.z, xw[7] = x1.w;
}

template <int kType, int kKind, int kSubs, int kUnitBytes>
struct QuantSub {
  static constexpr int kBytes = kUnitBytes;
  // Q8_0 / Q4_0: Contrib gives round(d * x), the fold its fused multiply by
  // the activation scale (Q32Add's order).
  static constexpr bool kScaled = kKind == 0;
  SubW sw;
  __device__ __forceinline__ void Load(const uint8_t* row, int64_t b, int64_t) {
    LoadSubW<kType>(row + (b / kSubs) * kRowGroup * kUnitBytes, static_cast<int>(b % kSubs), &sw);
  }
  // Called by every lane of the warp (ok: this lane's sub-block exists).
  // K-quants: the 8 lanes of a unit add their integers by shuffles (exact),
  // and the unit's first lane gives the unit's contribution, the others +0.
  __device__ __forceinline__ float Contrib(const GemvIn& in, int t, int64_t b, bool ok) const {
    uint32_t xw[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (ok) LoadActWords(in, t, b, xw);
    if constexpr (kKind == 0) {
      if (!ok) return 0.0f;
      return Q32Round(sw.a, SubWDot(sw, xw));
    } else {
      KInts k;
      if (ok) SubWInts<kKind>(sw, xw, in.xs[t * in.nb32 + b], &k);
#pragma unroll
      for (int o = 1; o < kSubs; o <<= 1) {
        k.isum += __shfl_xor_sync(0xffffffffu, k.isum, o);
        k.msum += __shfl_xor_sync(0xffffffffu, k.msum, o);
      }
      if (!ok || b % kSubs != 0) return 0.0f;
      return UnitContrib<kKind>(sw.a, sw.b, in.xd[t * in.nb32 + b], k);
    }
  }
};

template <int kElem>  // 0: F32, 1: F16, 2: BF16
struct FloatSub {
  static constexpr int kBytes = 16;
  static constexpr int kPerUnit = kElem == 0 ? 4 : 8;
  static constexpr bool kScaled = false;
  float v[32];
  int valid = 0;  // columns of this sub-block (< 32 only for a row's last one)
  __device__ __forceinline__ void Load(const uint8_t* row, int64_t b, int64_t cols) {
    const int64_t c0 = b * 32;
    valid = cols - c0 < 32 ? static_cast<int>(cols - c0) : 32;
#pragma unroll
    for (int k = 0; k < 32 / kPerUnit; ++k) {
      uint4 u = make_uint4(0, 0, 0, 0);
      if (k * kPerUnit < valid) {
        u = *reinterpret_cast<const uint4*>(row + (c0 / kPerUnit + k) * kRowGroup * 16);
      }
      const uint32_t wd[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
      for (int i = 0; i < kPerUnit; ++i) {
        if constexpr (kElem == 0) {
          v[k * kPerUnit + i] = __uint_as_float(wd[i]);
        } else {
          const uint16_t h = static_cast<uint16_t>(wd[i / 2] >> (16 * (i % 2)));
          v[k * kPerUnit + i] = kElem == 1 ? HalfBitsToFloat(h) : Bf16BitsToFloat(h);
        }
      }
    }
  }
  __device__ __forceinline__ float Contrib(const GemvIn& in, int t, int64_t b, bool ok) const {
    if (!ok) return 0.0f;
    const float* x = in.x + t * in.cols + b * 32;
    float acc = 0.0f;
#pragma unroll
    for (int i = 0; i < 32; ++i) {
      if (i < valid) acc = FFma(v[i], x[i], acc);
    }
    return acc;
  }
};

// Adds contributions c[0..count) in order from 0 and folds the segment into
// total; `first`: this is the row's first segment. kScaled (Q8_0 / Q4_0):
// c[i] is round(d * x) of sub-block i, added as fma(c[i], dx[i], seg).
template <bool kScaled>
__device__ __forceinline__ void FoldSegment(const float* c, const float* dx, int count, bool first,
                                            float* total) {
  float seg = 0.0f;
  if constexpr (kScaled) {
    for (int i = 0; i < count; ++i) seg = FFma(c[i], dx[i], seg);
  } else if (count == kSubsPerSeg) {
#pragma unroll
    for (int i = 0; i < kSubsPerSeg; i += 4) {
      const float4 v = *reinterpret_cast<const float4*>(c + i);
      seg = FAdd(seg, v.x);
      seg = FAdd(seg, v.y);
      seg = FAdd(seg, v.z);
      seg = FAdd(seg, v.w);
    }
  } else {
    for (int i = 0; i < count; ++i) seg = FAdd(seg, c[i]);
  }
  *total = first ? seg : FAdd(*total, seg);
}

template <class Sub>
__global__ void __launch_bounds__(kGemvRows * 32)
    GemvKernel(const uint8_t* __restrict__ w, int64_t rows, int64_t n_units, GemvIn in, int n,
               float* __restrict__ y, int64_t ldy) {
  __shared__ alignas(16) float cbuf[kGemvRows * kGemvMaxTokens * kGemvStride];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kGemvRows + warp;
  const bool row_ok = r < rows;
  const uint8_t* row =
      w + ((r / kRowGroup) * n_units * kRowGroup + r % kRowGroup) * static_cast<int64_t>(Sub::kBytes);
  // The fold thread: (row fr of this block, token ft).
  const int fr = threadIdx.x % kGemvRows, ft = threadIdx.x / kGemvRows;
  const int64_t out_r = static_cast<int64_t>(blockIdx.x) * kGemvRows + fr;
  const bool folds = ft < n && out_r < rows;
  float total = 0.0f;
  for (int64_t b0 = 0; b0 < in.nb32; b0 += 32) {
    const int64_t b = b0 + lane;
    const bool ok = row_ok && b < in.nb32;
    Sub sub;
    if (ok) sub.Load(row, b, in.cols);
    for (int t = 0; t < n; ++t) {  // every lane: a K-quant unit's lanes shuffle
      const float c = sub.Contrib(in, t, b, ok);
      if (ok) cbuf[(warp * kGemvMaxTokens + t) * kGemvStride + lane] = c;
    }
    __syncthreads();
    if (folds) {
      const float* c = cbuf + (fr * kGemvMaxTokens + ft) * kGemvStride;
      const float* dx = Sub::kScaled ? in.xd + ft * in.nb32 + b0 : nullptr;
      const int nv = static_cast<int>(in.nb32 - b0 < 32 ? in.nb32 - b0 : 32);
      FoldSegment<Sub::kScaled>(c, dx, nv < kSubsPerSeg ? nv : kSubsPerSeg, b0 == 0, &total);
      if (nv > kSubsPerSeg) {
        FoldSegment<Sub::kScaled>(c + kSubsPerSeg, dx + kSubsPerSeg, nv - kSubsPerSeg, false,
                                  &total);
      }
    }
    __syncthreads();
  }
  if (folds) y[ft * ldy + out_r] = total;
}

template <class Sub>
void Run(const uint8_t* w, int64_t rows, int64_t n_units, GemvIn in, int64_t n, float* y,
         int64_t ldy, cudaStream_t s) {
  const unsigned grid = static_cast<unsigned>((rows + kGemvRows - 1) / kGemvRows);
  for (int64_t t0 = 0; t0 < n; t0 += kGemvMaxTokens) {
    const int nt = static_cast<int>(n - t0 < kGemvMaxTokens ? n - t0 : kGemvMaxTokens);
    GemvIn at = in;
    if (at.x != nullptr) at.x += t0 * in.cols;
    if (at.xq != nullptr) {
      at.xq += t0 * in.cols;
      at.xd += t0 * in.nb32;
      at.xs += t0 * in.nb32;
    }
    GemvKernel<Sub><<<grid, kGemvRows * 32, 0, s>>>(w, rows, n_units, at, nt, y + t0 * ldy, ldy);
  }
}

// ---- the staged GEMV (quantized weights) ----

constexpr int kStWarps = 8;  // warps per block: segments per round
constexpr int kDepth = 2;    // stages in flight per warp (three measured no faster)

// Units of one pipeline stage: 256 values (4 for Q8_0, whose 34-byte units
// would make 8-unit stages twice the bytes).
template <int kSubs, int kUnitBytes>
constexpr int StageUnits() {
  return kSubs == 8 ? 1 : (kUnitBytes > 32 ? 4 : 8);
}

// Bytes of a ring slot: the stage's weights, then (several tokens) the
// stage's activations: kMaxT x kStageSubs runs of 32 int8, then their
// scales (float) and sums (int32), token-major.
template <int kSubs, int kUnitBytes, int kMaxT>
constexpr int SlotBytes() {
  constexpr int kSU = StageUnits<kSubs, kUnitBytes>();
  constexpr int kActs = kMaxT > 1 ? kMaxT * kSU * kSubs * (32 + 4 + 4) : 0;
  return kSU * kRowGroup * kUnitBytes + kActs;
}

// The matrices of one launch: block b serves row group b - first[m] of
// matrix m, first[m] <= b < first[m + 1].
struct StagedTargets {
  const uint8_t* w[kGemvMaxTargets];
  int64_t rows[kGemvMaxTargets];
  float* y[kGemvMaxTargets];
  int64_t ldy[kGemvMaxTargets];
  int32_t first[kGemvMaxTargets + 1];
  int count;
};

template <int kType, int kKind, int kSubs, int kUnitBytes, int kMaxT>
__global__ void __launch_bounds__(kStWarps * 32)
    GemvStagedKernel(StagedTargets tg, int64_t n_units, GemvIn in, int n, GemvSplit sp) {
  constexpr int kSU = StageUnits<kSubs, kUnitBytes>();
  constexpr int kStageBytes = kSU * kRowGroup * kUnitBytes;  // a multiple of 16
  constexpr int kStageSubs = kSU * kSubs;
  constexpr int kStagesPerSeg = static_cast<int>(kSegCols / 32) / kStageSubs;
  constexpr int kSlot = SlotBytes<kSubs, kUnitBytes, kMaxT>();
  static_assert(kStageBytes % 16 == 0 && kStagesPerSeg * kStageSubs * 32 == kSegCols);
  extern __shared__ __align__(16) uint8_t st_sh[];
  PdlTrigger();  // the next op may launch; it waits for this grid before reading y
  uint8_t* ring = st_sh + threadIdx.x / 32 * (kDepth * kSlot);  // this warp's stages
  float* ssum = reinterpret_cast<float*>(st_sh + kStWarps * kDepth * kSlot);  // [warp][t][32]

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  // Split: blocks gblock * split + part, part p taking rounds p, p + split,
  // ... of its row group (gblock over all targets).
  const int split = sp.split, part = static_cast<int>(blockIdx.x) % split;
  const int32_t gblock = static_cast<int32_t>(blockIdx.x) / split;
  int m = 0;
  while (m + 1 < tg.count && gblock >= tg.first[m + 1]) ++m;
  const int64_t group = gblock - tg.first[m];
  const uint8_t* __restrict__ w = tg.w[m];
  const int64_t rows = tg.rows[m], ldy = tg.ldy[m];
  float* __restrict__ y = tg.y[m];
  const uint8_t* gbase = w + group * n_units * kRowGroup * kUnitBytes;
  const int64_t n_stages = (n_units + kSU - 1) / kSU;
  const int64_t segs = (in.nb32 + kSegCols / 32 - 1) / (kSegCols / 32);

  // This warp's k-th stage: segment warp + round * kStWarps, the block's
  // (k / kStagesPerSeg)-th round being part + (k / kStagesPerSeg) * split.
  auto stage_index = [&](int64_t k) -> int64_t {
    const int64_t seg = warp + (part + (k / kStagesPerSeg) * split) * kStWarps;
    const int64_t st = seg * kStagesPerSeg + k % kStagesPerSeg;
    return seg < segs && st < n_stages ? st : -1;
  };
  // Stage k's weights (w) and, several tokens, its activations (a); no
  // commit.
  auto issue_w = [&](int64_t k) {
    const int64_t st = stage_index(k);
    if (st >= 0) {
      const int64_t u0 = st * kSU;
      const int64_t units = n_units - u0 < kSU ? n_units - u0 : kSU;
      const int chunks = static_cast<int>(units * kRowGroup * kUnitBytes / 16);
      const uint8_t* src = gbase + u0 * kRowGroup * kUnitBytes;
      uint8_t* dst = ring + (k % kDepth) * kSlot;
      for (int i = lane; i < chunks; i += 32) CpAsync16(dst + 16 * i, src + 16 * i, true);
    }
  };
  auto issue_a = [&](int64_t k) {
    const int64_t st = stage_index(k);
    if (st >= 0) {
      uint8_t* dst = ring + (k % kDepth) * kSlot;
      if constexpr (kMaxT > 1) {
        // Several tokens: the stage's activations come with its weights (read
        // from shared memory, every lane the same word, instead of a global
        // load per sub-block and token after the wait).
        const int64_t b_first = st * kStageSubs;
        const int subs = static_cast<int>(in.nb32 - b_first < kStageSubs ? in.nb32 - b_first
                                                                         : kStageSubs);
        uint8_t* aq = dst + kStageBytes;
        for (int i = lane; i < n * subs * 2; i += 32) {  // 16-byte halves of 32-value runs
          const int t = i / (subs * 2), h = i % (subs * 2);
          CpAsync16(aq + t * (kStageSubs * 32) + 16 * h, in.xq + t * in.cols + b_first * 32 + 16 * h,
                    true);
        }
        uint8_t* ad = aq + kMaxT * kStageSubs * 32;
        uint8_t* as = ad + kMaxT * kStageSubs * 4;
        for (int i = lane; i < n * subs; i += 32) {
          const int t = i / subs, j = i % subs;
          CpAsync4(ad + (t * kStageSubs + j) * 4, in.xd + t * in.nb32 + b_first + j);
          CpAsync4(as + (t * kStageSubs + j) * 4, in.xs + t * in.nb32 + b_first + j);
        }
      }
    }
  };
  auto issue = [&](int64_t k) {
    issue_w(k);
    issue_a(k);
    CpAsyncCommit();  // always: one group per k keeps the wait counts exact
  };

  // The fold threads: (row fr, tokens ft and ft + 8).
  const int fr = threadIdx.x % 32, ft = threadIdx.x / 32;
  float total0 = 0.0f, total1 = 0.0f;

  int64_t k = 0;
  // Launched with PdlLaunch: the first stages' weights are on their way
  // while the kernel before (the activations' producer) finishes; their
  // activations are copied only after it has (stage i's weights in group
  // 0, its activations in group i: still one group per stage to wait for).
#pragma unroll
  for (int i = 0; i < kDepth; ++i) {
    issue_w(i);
    if constexpr (kMaxT == 1) CpAsyncCommit();
  }
  PdlWait();
  if constexpr (kMaxT > 1) {
#pragma unroll
    for (int i = 0; i < kDepth; ++i) {
      issue_a(i);
      CpAsyncCommit();
    }
  }
  for (int64_t round = part; round * kStWarps < segs; round += split) {
    const int64_t seg = round * kStWarps + warp;
    if (seg < segs) {
      float acc[kMaxT];
#pragma unroll
      for (int t = 0; t < kMaxT; ++t) acc[t] = 0.0f;
      for (int s = 0; s < kStagesPerSeg; ++s, ++k) {
        const int64_t st = stage_index(k);
        if (st < 0) break;  // a short last segment: the warp's last stages
        const int64_t b_first = st * kStageSubs;
        const int subs = static_cast<int>(in.nb32 - b_first < kStageSubs ? in.nb32 - b_first
                                                                         : kStageSubs);
        // One token: the stage's activations (uniform across the warp, usually
        // L2 hits) are loaded before the wait for its weights, so their round
        // trip overlaps the copy's instead of following it; predicated, no
        // early exit, so the loads issue together.
        uint4 xa[kStageSubs], xb[kStageSubs];
        float xd[kStageSubs];
        int32_t xs[kStageSubs];
        if constexpr (kMaxT == 1) {
#pragma unroll
          for (int j = 0; j < kStageSubs; ++j) {
            if (j < subs) {
              const int64_t b = b_first + j;
              const uint4* xp = reinterpret_cast<const uint4*>(in.xq + b * 32);
              xa[j] = xp[0];
              xb[j] = xp[1];
              xd[j] = in.xd[b];
              xs[j] = in.xs[b];
            }
          }
        }
        CpAsyncWait<kDepth - 1>();
        __syncwarp();
        const uint8_t* slot = ring + (k % kDepth) * kSlot;
        if constexpr (kMaxT == 1 && kType == static_cast<int>(DType::kQ4_K)) {
          // One token, Q4_K (a stage is one unit): the unit's header (d, dmin,
          // scales) in one 16-byte load and each 32-byte run of nibbles once
          // for the two sub-blocks that share it, instead of LoadSubW's
          // byte loads of the header and both runs per sub-block; the same
          // SubW fields, so the same contribution (LoadSubW<Q4_K>'s arithmetic).
          const uint8_t* unit = slot + lane * kUnitBytes;
          const uint4 hdr = *reinterpret_cast<const uint4*>(unit);
          const uint32_t hw[4] = {hdr.x, hdr.y, hdr.z, hdr.w};
          const auto scale_byte = [&hw](int i) {  // header byte 4 + i (constant i: registers)
            return static_cast<int>((hw[(i + 4) / 4] >> (8 * ((i + 4) % 4))) & 0xFFu);
          };
          const float d = HalfBitsToFloat(static_cast<uint16_t>(hw[0] & 0xFFFFu));
          const float dmin = HalfBitsToFloat(static_cast<uint16_t>(hw[0] >> 16));
          KInts ki;
#pragma unroll
          for (int jp = 0; jp < 4; ++jp) {
            const uint4 r0 = reinterpret_cast<const uint4*>(unit + 16 + 32 * jp)[0];
            const uint4 r1 = reinterpret_cast<const uint4*>(unit + 16 + 32 * jp)[1];
            const uint32_t raw[8] = {r0.x, r0.y, r0.z, r0.w, r1.x, r1.y, r1.z, r1.w};
#pragma unroll
            for (int half = 0; half < 2; ++half) {
              const int j = 2 * jp + half;
              SubW sw;
              ScaleMinK4From(j, scale_byte, &sw.sc0, &sw.m);
#pragma unroll
              for (int k = 0; k < 8; ++k) sw.w[k] = (raw[k] >> (4 * half)) & 0x0F0F0F0Fu;
              const uint32_t xw[8] = {xa[j].x, xa[j].y, xa[j].z, xa[j].w,
                                      xb[j].x, xb[j].y, xb[j].z, xb[j].w};
              SubWInts<1>(sw, xw, xs[j], &ki);
            }
          }
          acc[0] = FAdd(acc[0], UnitContrib<1>(d, dmin, xd[0], ki));
        } else if constexpr (kMaxT == 1 && kKind == 0) {
#pragma unroll
          for (int j = 0; j < kStageSubs; ++j) {
            if (j < subs) {
              SubW sw;
              LoadSubW<kType>(slot + ((j / kSubs) * kRowGroup + lane) * kUnitBytes, j % kSubs, &sw);
              const uint32_t xw[8] = {xa[j].x, xa[j].y, xa[j].z, xa[j].w,
                                      xb[j].x, xb[j].y, xb[j].z, xb[j].w};
              acc[0] = SubWAdd<kKind>(acc[0], sw, xw, xd[j], xs[j]);
            }
          }
        } else if constexpr (kMaxT == 1) {  // Q6_K: a stage is one unit (subs == 8)
          KInts ki;
          SubW sw;
#pragma unroll
          for (int j = 0; j < kStageSubs; ++j) {
            LoadSubW<kType>(slot + lane * kUnitBytes, j, &sw);
            const uint32_t xw[8] = {xa[j].x, xa[j].y, xa[j].z, xa[j].w,
                                    xb[j].x, xb[j].y, xb[j].z, xb[j].w};
            SubWInts<kKind>(sw, xw, xs[j], &ki);
          }
          acc[0] = FAdd(acc[0], UnitContrib<kKind>(sw.a, sw.b, xd[0], ki));
        } else {  // several tokens (K-quants: a stage is one unit, subs == 8)
          // The stage's activations, staged with its weights (issue).
          const uint8_t* aq = slot + kStageBytes;
          const float* ad = reinterpret_cast<const float*>(aq + kMaxT * kStageSubs * 32);
          const int32_t* as = reinterpret_cast<const int32_t*>(ad + kMaxT * kStageSubs);
          KInts ki[kMaxT];
          SubW sw;
          for (int j = 0; j < subs; ++j) {
            LoadSubW<kType>(slot + ((j / kSubs) * kRowGroup + lane) * kUnitBytes, j % kSubs, &sw);
#pragma unroll
            for (int t = 0; t < kMaxT; ++t) {
              if (t < n) {
                const uint4* xp = reinterpret_cast<const uint4*>(aq + (t * kStageSubs + j) * 32);
                const uint4 x0 = xp[0], x1 = xp[1];
                const uint32_t xw[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
                if constexpr (kKind == 0) {
                  acc[t] = SubWAdd<0>(acc[t], sw, xw, ad[t * kStageSubs + j],
                                      as[t * kStageSubs + j]);
                } else {
                  SubWInts<kKind>(sw, xw, as[t * kStageSubs + j], &ki[t]);
                }
              }
            }
          }
          if constexpr (kKind != 0) {
#pragma unroll
            for (int t = 0; t < kMaxT; ++t) {
              if (t < n) {
                acc[t] = FAdd(acc[t], UnitContrib<kKind>(sw.a, sw.b, ad[t * kStageSubs], ki[t]));
              }
            }
          }
        }
        __syncwarp();  // every lane is done with this slot
        issue(k + kDepth);
      }
#pragma unroll
      for (int t = 0; t < kMaxT; ++t) {
        if (t < n) ssum[(warp * kMaxT + t) * 32 + lane] = acc[t];
      }
    }
    __syncthreads();
    for (int ww = 0; ww < kStWarps; ++ww) {
      const int64_t sg = round * kStWarps + ww;
      if (sg >= segs) break;
      if (split > 1) {  // the segment sums go to scratch; the last block folds them
        float* dst = sp.scratch + (gblock * segs + sg) * n * 32;
        if (ft < n && ft < kMaxT) dst[ft * 32 + fr] = ssum[(ww * kMaxT + ft) * 32 + fr];
        if (ft + 8 < n && ft + 8 < kMaxT) {
          dst[(ft + 8) * 32 + fr] = ssum[(ww * kMaxT + ft + 8) * 32 + fr];
        }
        continue;
      }
      if (ft < n && ft < kMaxT) {
        const float v = ssum[(ww * kMaxT + ft) * 32 + fr];
        total0 = sg == 0 ? v : FAdd(total0, v);
      }
      if (ft + 8 < n && ft + 8 < kMaxT) {
        const float v = ssum[(ww * kMaxT + ft + 8) * 32 + fr];
        total1 = sg == 0 ? v : FAdd(total1, v);
      }
    }
    __syncthreads();
  }
  CpAsyncWait<0>();  // nothing in flight when the block exits
  if (split > 1) {
    // The row group's last block to finish folds every segment sum in
    // segment order, as one block does (the same additions: the same bits).
    __shared__ int last_sh;
    __threadfence();  // this block's sums are visible before its count is
    __syncthreads();
    if (threadIdx.x == 0) {
      const bool last = atomicAdd(sp.counters + gblock, 1) == split - 1;
      if (last) sp.counters[gblock] = 0;  // every part has counted: ready for the next launch
      last_sh = last;
    }
    __syncthreads();
    if (!last_sh) return;
    __threadfence();
    const float* src = sp.scratch + gblock * segs * n * 32;
    for (int64_t sg = 0; sg < segs; ++sg) {
      if (ft < n && ft < kMaxT) {
        const float v = __ldcg(src + (sg * n + ft) * 32 + fr);
        total0 = sg == 0 ? v : FAdd(total0, v);
      }
      if (ft + 8 < n && ft + 8 < kMaxT) {
        const float v = __ldcg(src + (sg * n + ft + 8) * 32 + fr);
        total1 = sg == 0 ? v : FAdd(total1, v);
      }
    }
  }
  const int64_t r = group * kRowGroup + fr;
  if (r < rows) {
    if (ft < n) y[ft * ldy + r] = total0;
    if (ft + 8 < n) y[(ft + 8) * ldy + r] = total1;
  }
}

template <int kType, int kKind, int kSubs, int kUnitBytes, int kMaxT>
void RunStagedT(const StagedTargets& tg, int64_t n_units, const GemvIn& in, int nt,
                const GemvSplit& sp, cudaStream_t s) {
  constexpr size_t kSmem = kStWarps * kDepth * SlotBytes<kSubs, kUnitBytes, kMaxT>() +
                           kStWarps * kMaxT * 32 * sizeof(float);
  static_assert(kSmem <= 227 * 1024, "a staged GEMV block's shared memory fits an SM");
  static bool configured = false;
  if (!configured) {
    cudaFuncSetAttribute(GemvStagedKernel<kType, kKind, kSubs, kUnitBytes, kMaxT>,
                         cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSmem));
    configured = true;
  }
  const unsigned grid = static_cast<unsigned>(tg.first[tg.count] * sp.split);
  PdlLaunch(GemvStagedKernel<kType, kKind, kSubs, kUnitBytes, kMaxT>, dim3(grid),
            dim3(kStWarps * 32), kSmem, s, tg, n_units, in, nt, sp);
}

template <int kType, int kKind, int kSubs, int kUnitBytes>
void RunStaged(const GemvTarget* targets, int count, int64_t n_units, const GemvIn& in, int64_t n,
               const GemvSplit& sp, cudaStream_t s) {
  CHECK(count >= 1 && count <= kGemvMaxTargets);
  StagedTargets base{};
  base.count = count;
  base.first[0] = 0;
  for (int m = 0; m < count; ++m) {
    base.w[m] = targets[m].w;
    base.rows[m] = targets[m].rows;
    base.ldy[m] = targets[m].ldy;
    base.first[m + 1] =
        base.first[m] + static_cast<int32_t>((targets[m].rows + kRowGroup - 1) / kRowGroup);
  }
  static_assert(kGemvMaxTokens == 16, "the fold threads cover 16 tokens");
  for (int64_t t0 = 0; t0 < n; t0 += kGemvMaxTokens) {
    const int nt = static_cast<int>(n - t0 < kGemvMaxTokens ? n - t0 : kGemvMaxTokens);
    GemvIn at = in;
    at.xq += t0 * in.cols;
    at.xd += t0 * in.nb32;
    at.xs += t0 * in.nb32;
    StagedTargets tg = base;
    for (int m = 0; m < count; ++m) tg.y[m] = targets[m].y + t0 * targets[m].ldy;
    if (nt == 1) {
      RunStagedT<kType, kKind, kSubs, kUnitBytes, 1>(tg, n_units, at, nt, sp, s);
    } else if (nt <= 4) {
      RunStagedT<kType, kKind, kSubs, kUnitBytes, 4>(tg, n_units, at, nt, sp, s);
    } else {
      RunStagedT<kType, kKind, kSubs, kUnitBytes, 16>(tg, n_units, at, nt, sp, s);
    }
  }
}

}  // namespace

bool GemvStagedOn() {
  static const bool on = EnvSwitchOn("REPRISE_CUDA_GEMV_STAGED");
  return on;
}

namespace {
PathSwitch g_gemv_wide("REPRISE_CUDA_GEMV_WIDE", PathDefault::kOn);
// Both switches of the split: every type (=1), none (=0); unset, the types
// it measured faster on.
PathSwitch g_gemv_split_all("REPRISE_CUDA_GEMV_SPLIT", PathDefault::kOff);
PathSwitch g_gemv_split_any("REPRISE_CUDA_GEMV_SPLIT", PathDefault::kOn);
}  // namespace

int64_t QuantGemvTokens() { return g_gemv_wide.On() ? kGemvWideTokens : kGemvMaxTokens; }
void SetGemvWideForTest(int on) { g_gemv_wide.SetForTest(on); }
bool GemvSplitOn(DType type) {
  if (!g_gemv_split_any.On()) return false;
  return g_gemv_split_all.On() || type == DType::kQ8_0 || type == DType::kQ4_0;
}
void SetGemvSplitForTest(int on) {
  g_gemv_split_all.SetForTest(on);
  g_gemv_split_any.SetForTest(on);
}

int GemvSplitFactor(int64_t groups, int64_t cols, int n_sms) {
  const int64_t rounds = (MatMulSegments(cols) + kStWarps - 1) / kStWarps;
  if (groups <= 0 || rounds < 2) return 1;
  // Blocks for about two an SM, then as few rounds a block as that allows,
  // spread evenly (4 rounds at 3 blocks a group would be 2 + 1 + 1).
  int64_t split = std::min<int64_t>(rounds, (2 * std::max(n_sms, 1) + groups - 1) / groups);
  if (split < 2) return 1;
  const int64_t per = (rounds + split - 1) / split;
  split = (rounds + per - 1) / per;
  return static_cast<int>(std::min<int64_t>(split, 8));
}

int64_t GemvSplitScratchFloats(int64_t groups, int64_t cols, int64_t n) {
  return groups * MatMulSegments(cols) * std::min<int64_t>(n, kGemvMaxTokens) * 32;
}

void LaunchGemvStaged(DType type, const GemvTarget* targets, int count, int64_t cols,
                      int64_t n_units, const ActQ& act, int64_t n, cudaStream_t s,
                      const GemvSplit& sp) {
  const GemvIn in{nullptr, act.q, act.d, act.sum, cols, cols / 32};
  constexpr int kQ8 = static_cast<int>(DType::kQ8_0), kQ40 = static_cast<int>(DType::kQ4_0);
  constexpr int kQ4K = static_cast<int>(DType::kQ4_K), kQ6K = static_cast<int>(DType::kQ6_K);
  CHECK(cols % 32 == 0);
  CHECK(sp.split >= 1 && (sp.split == 1 || (sp.scratch != nullptr && sp.counters != nullptr)));
  switch (type) {
    case DType::kQ8_0: return RunStaged<kQ8, 0, 1, kQ8_0Bytes>(targets, count, n_units, in, n, sp, s);
    case DType::kQ4_0: return RunStaged<kQ40, 0, 1, kQ4_0Bytes>(targets, count, n_units, in, n, sp, s);
    case DType::kQ4_K: return RunStaged<kQ4K, 1, 8, kQ4KBytes>(targets, count, n_units, in, n, sp, s);
    case DType::kQ6_K: return RunStaged<kQ6K, 2, 8, kQ6KBytes>(targets, count, n_units, in, n, sp, s);
    default: CHECK_MSG(false, "not a quantized type: %s", DTypeName(type));
  }
}

void LaunchGemv(DType type, const uint8_t* w, int64_t rows, int64_t cols, int64_t n_units,
                const float* x, const ActQ& act, int64_t n, float* y, int64_t ldy, cudaStream_t s) {
  const GemvIn in{x, act.q, act.d, act.sum, cols, (cols + 31) / 32};
  constexpr int kQ8 = static_cast<int>(DType::kQ8_0), kQ40 = static_cast<int>(DType::kQ4_0);
  constexpr int kQ4K = static_cast<int>(DType::kQ4_K), kQ6K = static_cast<int>(DType::kQ6_K);
  if (IsQuantType(type) && GemvStagedOn()) {
    const GemvTarget target{w, rows, y, ldy};
    LaunchGemvStaged(type, &target, 1, cols, n_units, act, n, s);
    return;
  }
  switch (type) {
    case DType::kQ8_0: Run<QuantSub<kQ8, 0, 1, kQ8_0Bytes>>(w, rows, n_units, in, n, y, ldy, s); break;
    case DType::kQ4_0: Run<QuantSub<kQ40, 0, 1, kQ4_0Bytes>>(w, rows, n_units, in, n, y, ldy, s); break;
    case DType::kQ4_K: Run<QuantSub<kQ4K, 1, 8, kQ4KBytes>>(w, rows, n_units, in, n, y, ldy, s); break;
    case DType::kQ6_K: Run<QuantSub<kQ6K, 2, 8, kQ6KBytes>>(w, rows, n_units, in, n, y, ldy, s); break;
    case DType::kF32: Run<FloatSub<0>>(w, rows, n_units, in, n, y, ldy, s); break;
    case DType::kF16: Run<FloatSub<1>>(w, rows, n_units, in, n, y, ldy, s); break;
    case DType::kBF16: Run<FloatSub<2>>(w, rows, n_units, in, n, y, ldy, s); break;
    default: CHECK_MSG(false, "unsupported weight type %s on CUDA", DTypeName(type));
  }
}

}  // namespace reprise::kernels::cuda
