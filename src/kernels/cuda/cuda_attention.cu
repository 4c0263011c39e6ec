// CUDA paged attention: each token reads its sequence's K/V back from the KV
// blocks through the block table.
//
// The canonical order of one (token, query head) — the determinism contract:
//  - positions 0..pos are cut into chunks of kChunk (fixed: independent of the
//    batch), each chunk into tiles of 32 positions;
//  - within a chunk, one online softmax from scratch: per tile, the scores
//    (q . k_j, j = lane, as ScoreDot sums it, times scale),
//    the tile max, m' = max(m, tile max), l = l * e^(m - m') + (butterfly sum
//    of e^(s_j - m')), o = o * e^(m - m') + sum over j in order of
//    e^(s_j - m') v_j;
//  - the chunk states (m, l, o) are merged in chunk order (MergeState), and
//    the result is o / l.
// Two launch shapes run exactly this arithmetic: for few tokens (decode) one
// block per (token, kv head, chunk) writes chunk states and the last of them
// to finish merges them, so a long context spreads over the whole GPU; for many tokens
// (prefill) one block per (token, kv head) runs its chunks one after another
// and merges as it goes. Which shape runs never changes a bit.
//
// A block serves every query head of one KV head's GQA group (K/V tiles are
// staged once in shared memory for all of them); warp w takes heads w, w + 4, ...
// Prefill runs a third shape when a batch holds runs of consecutive positions
// of one sequence (prompt chunks): one block per (query tile, kv head), a
// query tile being up to kPairs / group consecutive tokens of one sequence,
// stages each K/V tile once for all of them (the serial shape re-reads the
// whole context per token). Each (token, head) pair still runs exactly the
// serial shape's arithmetic: the same chunks and tiles (a token skips tiles
// past its position), the same per-tile update, the same merges — only the
// loads are shared. REPRISE_CUDA_ATTN_TILES=0 turns it off. It lives in
// cuda_attention_tiled.cu, with its blocked variant for F16 KV (a warp's pairs
// computed together from raw rows copied ahead; opt-in with
// REPRISE_CUDA_ATTN_BLOCKED=1 until a GPU run validates it);
// cuda_attention.cuh holds what the shapes share. The split (decode) shape
// has a raw variant for F16 KV too (a chunk's rows copied in one cp.async
// burst; opt-in with REPRISE_CUDA_ATTN_RAW=1 for the same reason).
#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cstdlib>
#include <cstring>

#include "core/check.h"
#include "kernels/cuda/cuda_attention.cuh"
#include "kernels/cuda/cuda_subblock.cuh"

namespace reprise::kernels::cuda {
namespace {

using namespace attn;

struct HeadState {
  float m, l;
  float o[kMaxDimPerLane];  // dims lane, lane + 32, ...
};

__device__ __forceinline__ void ResetState(HeadState* s) {
  s->m = -FLT_MAX;
  s->l = 0.0f;
  for (int k = 0; k < kMaxDimPerLane; ++k) s->o[k] = 0.0f;
}

// (m, l, o) := merge of (m, l, o) and (m2, l2, o2) — chunk order fixed by the caller.
__device__ __forceinline__ void MergeState(HeadState* a, float m2, float l2, const float* o2) {
  const float m = fmaxf(a->m, m2);
  const float ca = expf(FSub(a->m, m)), cb = expf(FSub(m2, m));
  a->l = FAdd(FMul(a->l, ca), FMul(l2, cb));
  for (int k = 0; k < kMaxDimPerLane; ++k) a->o[k] = FAdd(FMul(a->o[k], ca), FMul(o2[k], cb));
  a->m = m;
}

// One chunk of positions [p_begin, p_end] (inclusive end) for the heads of
// kv head `kvh` that this warp owns; states[i] is the warp's i-th head.
// Shared memory: q_sh [group][hk], k_sh [kTile][hk + 1] (the odd stride puts
// the 32 lanes' rows in 32 different banks), v_sh [kTile][hv].
// `table`: the sequence's block table from entry tbl_first on (the chunk
// kernel's copy in shared memory, or the table itself with 0).
__device__ __forceinline__ void RunChunk(const Ctx& c, int64_t kvh, int64_t p_begin, int64_t p_end,
                                         const int32_t* table, int tbl_first, float* q_sh,
                                         float* k_sh, float* v_sh, HeadState* states) {
  const int64_t hk = c.s.head_dim_k, hv = c.s.head_dim_v;
  const int64_t group = c.s.n_heads / c.s.n_kv_heads;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int hi = 0; hi < kMaxHeadsPerWarp; ++hi) {
    if (warp + hi * kWarps >= group) break;
    ResetState(&states[hi]);
  }
  for (int64_t p0 = p_begin; p0 <= p_end; p0 += kTile) {
    const int valid = static_cast<int>(p_end - p0 + 1 < kTile ? p_end - p0 + 1 : kTile);
    __syncthreads();  // the previous tile is no longer read
    StageTile(c.kv, c.layer, table, tbl_first, kvh, p0, valid, static_cast<int>(hk),
              static_cast<int>(hv), kWarps, k_sh, v_sh);
    __syncthreads();
#pragma unroll
    for (int hi = 0; hi < kMaxHeadsPerWarp; ++hi) {
      if (warp + hi * kWarps >= group) break;
      const int64_t gh = warp + hi * kWarps;  // head within the group
      HeadState& st = states[hi];
      const float* qh = q_sh + gh * hk;
      float sc = -FLT_MAX;
      if (lane < valid) {
        sc = FMul(ScoreDot(qh, k_sh + lane * (hk + 1), static_cast<int>(hk)), c.s.scale);
      }
      const float m_new = fmaxf(st.m, WarpMax(sc));
      const float corr = expf(FSub(st.m, m_new));
      const float p = lane < valid ? expf(FSub(sc, m_new)) : 0.0f;
      st.l = FAdd(FMul(st.l, corr), WarpSum(p));
      for (int k = 0; k < kMaxDimPerLane; ++k) st.o[k] = FMul(st.o[k], corr);
      for (int j = 0; j < valid; ++j) {
        const float pj = __shfl_sync(0xffffffffu, p, j);
        for (int k = 0; k < kMaxDimPerLane; ++k) {
          const int64_t e = lane + 32 * k;
          if (e < hv) st.o[k] = FFma(pj, v_sh[j * hv + e], st.o[k]);
        }
      }
      st.m = m_new;
    }
  }
}

__device__ void LoadQ(const Ctx& c, int64_t t, int64_t kvh, float* q_sh) {
  const int64_t hk = c.s.head_dim_k, group = c.s.n_heads / c.s.n_kv_heads;
  const float* src = c.q + t * c.s.n_heads * hk + kvh * group * hk;
  for (int64_t i = threadIdx.x; i < group * hk; i += blockDim.x) q_sh[i] = src[i];
  __syncthreads();
}

// Merges one (token, head)'s chunk states src[0 .. n_chunks) (stride hv + 2)
// in chunk order and writes o / l to dst; one warp. The states are read from
// L2 (__ldcg): other blocks of the same kernel wrote them.
// sh_dst (may be null) gets the same values (QuantizeMerged reads them).
__device__ __forceinline__ void MergeHead(const float* src, int64_t n_chunks, int64_t hv,
                                          float* dst, float* sh_dst = nullptr) {
  const int lane = threadIdx.x % 32;
  const int64_t stride = hv + 2;
  HeadState st;
  st.m = __ldcg(src);
  st.l = __ldcg(src + 1);
  for (int k = 0; k < kMaxDimPerLane; ++k) {
    const int64_t e = lane + 32 * k;
    st.o[k] = e < hv ? __ldcg(src + 2 + e) : 0.0f;
  }
  // kAhead chunk states loaded at once, then merged one by one in order (a
  // state's loads no longer wait for the previous merge).
  constexpr int kAhead = 8;
  for (int64_t ch0 = 1; ch0 < n_chunks; ch0 += kAhead) {
    float m2[kAhead], l2[kAhead], o2[kAhead][kMaxDimPerLane];
#pragma unroll
    for (int a = 0; a < kAhead; ++a) {
      const float* sc = src + (ch0 + a) * stride;
      const bool ok = ch0 + a < n_chunks;
      m2[a] = ok ? __ldcg(sc) : 0.0f;
      l2[a] = ok ? __ldcg(sc + 1) : 0.0f;
#pragma unroll
      for (int k = 0; k < kMaxDimPerLane; ++k) {
        const int64_t e = lane + 32 * k;
        o2[a][k] = ok && e < hv ? __ldcg(sc + 2 + e) : 0.0f;
      }
    }
#pragma unroll
    for (int a = 0; a < kAhead; ++a) {
      if (ch0 + a < n_chunks) MergeState(&st, m2[a], l2[a], o2[a]);
    }
  }
  for (int k = 0; k < kMaxDimPerLane; ++k) {
    const int64_t e = lane + 32 * k;
    if (e < hv) {
      const float v = FDiv(st.o[k], st.l);
      dst[e] = v;
      if (sh_dst != nullptr) sh_dst[e] = v;
    }
  }
}

// Sub-blocks of 32 outputs one merging block quantizes at most (group * hv /
// 32; AttentionFuseFits).
constexpr int kMaxMergedSubs = 256;

// The merging block's fused quantization: merged[0 .. group * hv), its heads'
// outputs (columns kvh * group * hv on of row t), quantized for c.act_group
// exactly as QuantizeActKernel quantizes them — the amax of each group of
// values (max is exact in any order), ActScale, ActQuant and
// StoreActSubBlock's bytes, scale and sum — so the O projection's matmul
// reads the bytes its own quantize kernel would have made. Every thread of
// the block calls it.
__device__ void QuantizeMerged(const Ctx& c, int64_t t, int64_t kvh, const float* merged) {
  __shared__ float sub_max[kMaxMergedSubs];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t group = c.s.n_heads / c.s.n_kv_heads, hv = c.s.head_dim_v;
  const int n_subs = static_cast<int>(group * hv / 32), per = c.act_group / 32;
  for (int sb = warp; sb < n_subs; sb += kWarps) {
    const float m = WarpMax(fabsf(merged[sb * 32 + lane]));
    if (lane == 0) sub_max[sb] = m;
  }
  __syncthreads();
  const int64_t b0 = (t * c.s.n_heads * hv + kvh * group * hv) / 32;
  for (int sb = warp; sb < n_subs; sb += kWarps) {
    const int g0 = sb / per * per;
    float amax = sub_max[g0];
    for (int i = 1; i < per; ++i) amax = fmaxf(amax, sub_max[g0 + i]);
    const float scale = ActScale(amax);
    StoreActSubBlock(ActQuant(merged[sb * 32 + lane], ActInvScale(scale)), scale, b0 + sb, c.act.q,
                     c.act.d, c.act.sum);
  }
}

// Decode shape: block (token, kv head, chunk) -> chunk states.
// part: [(t * n_heads + h) * max_chunks + chunk] of (m, l, o[hv]). The
// block's block-table entries are copied to shared memory with q, so staging
// a tile waits for one round trip (the K/V loads), not two. The last block of
// a (token, kv head) to finish (counters[t * n_kv_heads + kvh], zero between
// launches: that block resets it) merges the chunk states in chunk order, as
// a separate merge kernel would, one launch fewer. With counters == nullptr
// (REPRISE_CUDA_ATTN_LAST_MERGES=0) the blocks only write their states and
// AttentionMergeKernel merges them: the same MergeHead, the same bits.
// At most 168 registers (3 blocks of 128 threads an SM): at 178, two blocks
// fit and a 32k context took 1.3x as long (more waves of chunk blocks).
// kFuse: the merging block quantizes (c.act_group > 0); a template argument
// so the default kernel carries none of it.
template <bool kFuse>
__global__ void __launch_bounds__(kThreads, 3)
    AttentionChunkKernel(Ctx c, int64_t max_chunks, float* part, int32_t* counters, float* out) {
  extern __shared__ float sh[];
  __shared__ int32_t tbl_sh[kChunk + 1];
  __shared__ int last_sh;
  PdlTrigger();  // the O projection's quantize kernel (and through it the GEMV) may launch
  PdlWait();     // launched with PdlLaunch: q and the new K/V row are written
  const int64_t t = blockIdx.x, kvh = blockIdx.y, chunk = blockIdx.z;
  const int64_t pos = c.b.pos[t];
  if (chunk * kChunk > pos) return;
  const int64_t hk = c.s.head_dim_k, hv = c.s.head_dim_v;
  const int64_t group = c.s.n_heads / c.s.n_kv_heads;
  float* q_sh = sh;
  float* k_sh = q_sh + group * hk;
  float* v_sh = k_sh + kTile * (hk + 1);
  const int64_t p_begin = chunk * kChunk, p_end = min(pos, (chunk + 1) * kChunk - 1);
  const int bt = static_cast<int>(c.kv.block_tokens);
  const int tbl_first = static_cast<int>(p_begin / bt);
  const int n_tbl = static_cast<int>(p_end / bt) - tbl_first + 1;  // <= kChunk + 1
  const int32_t* table = c.b.block_table + static_cast<int64_t>(c.b.seq[t]) * c.b.max_blocks;
  for (int i = threadIdx.x; i < n_tbl; i += blockDim.x) tbl_sh[i] = table[tbl_first + i];
  LoadQ(c, t, kvh, q_sh);  // its barrier also publishes tbl_sh
  HeadState states[kMaxHeadsPerWarp];
  RunChunk(c, kvh, p_begin, p_end, tbl_sh, tbl_first, q_sh, k_sh, v_sh, states);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t stride = hv + 2;
#pragma unroll
  for (int hi = 0; hi < kMaxHeadsPerWarp; ++hi) {
    if (warp + hi * kWarps >= group) break;
    const int64_t h = kvh * group + warp + hi * kWarps;
    float* dst = part + ((t * c.s.n_heads + h) * max_chunks + chunk) * stride;
    if (lane == 0) {
      dst[0] = states[hi].m;
      dst[1] = states[hi].l;
    }
    for (int k = 0; k < kMaxDimPerLane; ++k) {
      const int64_t e = lane + 32 * k;
      if (e < hv) dst[2 + e] = states[hi].o[k];
    }
  }
  if (counters == nullptr) return;  // AttentionMergeKernel merges
  const int64_t n_chunks = pos / kChunk + 1;
  __threadfence();  // this block's states are visible before its count is
  __syncthreads();
  if (threadIdx.x == 0) {
    int32_t* ctr = counters + t * c.s.n_kv_heads + kvh;
    const bool last = atomicAdd(ctr, 1) == static_cast<int32_t>(n_chunks - 1);
    if (last) *ctr = 0;  // every other block of the group has counted
    last_sh = last;
  }
  __syncthreads();
  if (!last_sh) return;
  __threadfence();
  float* merged = kFuse ? k_sh : nullptr;  // the tile staging area is free now
  for (int64_t gh = warp; gh < group; gh += kWarps) {
    const int64_t h = kvh * group + gh;
    MergeHead(part + (t * c.s.n_heads + h) * max_chunks * stride, n_chunks, hv,
              out + t * c.s.n_heads * hv + h * hv, merged != nullptr ? merged + gh * hv : nullptr);
  }
  if constexpr (kFuse) {
    __syncthreads();
    QuantizeMerged(c, t, kvh, merged);
  }
}

// ---- the raw decode shape (F16 KV) ----
// The split shape's block (token, kv head, chunk) with the chunk's K/V rows
// copied as stored, by cp.async, in one burst (the staged shape waits on
// memory four times a chunk: two batches of four rows a warp, two tiles), and
// read from shared memory as the blocked prefill shape reads them: lane j's
// K row 8 dims per 16-byte load against q's float4s, a lane's dims
// 4 lane + 128 g for P.V. Each (token, head) runs RunChunk's arithmetic:
// ScoreDot's partials in dim order, the same per-tile update in position
// order, the same chunk state; the merge is MergeHead's. Opt-in
// (REPRISE_CUDA_ATTN_RAW=1, AttentionRawOn) until a GPU run validates it.
template <int kVD>
struct RawHead {
  float m, l;
  float o[kVD][4];  // dims 128 g + 4 lane + i
};

template <int kVD, int kHpw>  // hv <= 128 kVD; heads per warp: group <= kHpw * kWarps
__global__ void __launch_bounds__(kThreads, 3)
    AttentionChunkRawKernel(Ctx c, int64_t max_chunks, float* part, int32_t* counters, float* out) {
  extern __shared__ __align__(16) float sh[];
  __shared__ int last_sh;
  PdlTrigger();  // as AttentionChunkKernel
  PdlWait();
  const int t = blockIdx.x, kvh = blockIdx.y, chunk = blockIdx.z;
  const int pos = c.b.pos[t];
  if (chunk * kChunk > pos) return;
  const int hk = static_cast<int>(c.s.head_dim_k), hv = static_cast<int>(c.s.head_dim_v);
  const int group = static_cast<int>(c.s.n_heads / c.s.n_kv_heads);
  float* q_sh = sh;
  __half* kraw = reinterpret_cast<__half*>(q_sh + group * hk);
  __half* vraw = kraw + kChunk * (hk + kKPad);
  const int p_begin = chunk * kChunk, p_end = min(pos, p_begin + kChunk - 1);
  const int32_t* table = c.b.block_table + static_cast<int64_t>(c.b.seq[t]) * c.b.max_blocks;
  StageRawRows<kThreads>(c, table, kvh, p_begin, p_end - p_begin + 1, kraw, vraw);
  CpAsyncCommit();
  LoadQ(c, t, kvh, q_sh);
  CpAsyncWait<0>();
  __syncthreads();  // every thread's rows have landed
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  RawHead<kVD> st[kHpw];
#pragma unroll
  for (int hi = 0; hi < kHpw; ++hi) {
    st[hi].m = -FLT_MAX;
    st[hi].l = 0.0f;
#pragma unroll
    for (int g = 0; g < kVD; ++g)
#pragma unroll
      for (int i = 0; i < 4; ++i) st[hi].o[g][i] = 0.0f;
  }
  for (int p0 = p_begin; p0 <= p_end; p0 += kTile) {
    const int valid = min(kTile, p_end - p0 + 1);
    const __half* krow = kraw + (p0 - p_begin + lane) * (hk + kKPad);  // row < kChunk
    const __half* vt = vraw + (p0 - p_begin) * hv;
#pragma unroll
    for (int hi = 0; hi < kHpw; ++hi) {
      const int gh = warp + hi * kWarps;
      if (gh >= group) break;
      const float* qh = q_sh + gh * hk;
      float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
      for (int e = 0; e < hk; e += 8) {
        float kf[8];
        Halves8(*reinterpret_cast<const uint4*>(krow + e), kf);
        const float4 qa = *reinterpret_cast<const float4*>(qh + e);
        const float4 qb = *reinterpret_cast<const float4*>(qh + e + 4);
        a0 = FFma(qa.x, kf[0], a0);
        a1 = FFma(qa.y, kf[1], a1);
        a2 = FFma(qa.z, kf[2], a2);
        a3 = FFma(qa.w, kf[3], a3);
        a0 = FFma(qb.x, kf[4], a0);
        a1 = FFma(qb.y, kf[5], a1);
        a2 = FFma(qb.z, kf[6], a2);
        a3 = FFma(qb.w, kf[7], a3);
      }
      RawHead<kVD>& h = st[hi];
      const float sc = lane < valid ? FMul(FAdd(FAdd(a0, a1), FAdd(a2, a3)), c.s.scale) : -FLT_MAX;
      const float m_new = fmaxf(h.m, WarpMax(sc));
      const float corr = expf(FSub(h.m, m_new));
      const float p = lane < valid ? expf(FSub(sc, m_new)) : 0.0f;
      h.l = FAdd(FMul(h.l, corr), WarpSum(p));
#pragma unroll
      for (int g = 0; g < kVD; ++g)
#pragma unroll
        for (int i = 0; i < 4; ++i) h.o[g][i] = FMul(h.o[g][i], corr);
      for (int j = 0; j < valid; ++j) {
        const float pj = __shfl_sync(0xffffffffu, p, j);
#pragma unroll
        for (int g = 0; g < kVD; ++g) {
          const int e = 128 * g + 4 * lane;
          if (e >= hv) continue;
          const uint2 r = *reinterpret_cast<const uint2*>(vt + j * hv + e);
          const float2 v01 = __half22float2(*reinterpret_cast<const __half2*>(&r.x));
          const float2 v23 = __half22float2(*reinterpret_cast<const __half2*>(&r.y));
          h.o[g][0] = FFma(pj, v01.x, h.o[g][0]);
          h.o[g][1] = FFma(pj, v01.y, h.o[g][1]);
          h.o[g][2] = FFma(pj, v23.x, h.o[g][2]);
          h.o[g][3] = FFma(pj, v23.y, h.o[g][3]);
        }
      }
      h.m = m_new;
    }
  }
  const int64_t stride = hv + 2;
#pragma unroll
  for (int hi = 0; hi < kHpw; ++hi) {
    const int gh = warp + hi * kWarps;
    if (gh >= group) break;
    const int64_t h = static_cast<int64_t>(kvh) * group + gh;
    float* dst = part + ((t * c.s.n_heads + h) * max_chunks + chunk) * stride;
    if (lane == 0) {
      dst[0] = st[hi].m;
      dst[1] = st[hi].l;
    }
#pragma unroll
    for (int g = 0; g < kVD; ++g) {
      const int e = 128 * g + 4 * lane;
      if (e >= hv) continue;
#pragma unroll
      for (int i = 0; i < 4; ++i) dst[2 + e + i] = st[hi].o[g][i];
    }
  }
  if (counters == nullptr) return;  // AttentionMergeKernel merges
  const int64_t n_chunks = pos / kChunk + 1;
  __threadfence();  // this block's states are visible before its count is
  __syncthreads();
  if (threadIdx.x == 0) {
    int32_t* ctr = counters + static_cast<int64_t>(t) * c.s.n_kv_heads + kvh;
    const bool last = atomicAdd(ctr, 1) == static_cast<int32_t>(n_chunks - 1);
    if (last) *ctr = 0;  // every other block of the group has counted
    last_sh = last;
  }
  __syncthreads();
  if (!last_sh) return;
  __threadfence();
  float* merged = c.act_group > 0 ? reinterpret_cast<float*>(kraw) : nullptr;  // free now
  for (int gh = warp; gh < group; gh += kWarps) {
    const int64_t h = static_cast<int64_t>(kvh) * group + gh;
    MergeHead(part + (t * c.s.n_heads + h) * max_chunks * stride, n_chunks, hv,
              out + t * c.s.n_heads * hv + h * hv, merged != nullptr ? merged + gh * hv : nullptr);
  }
  if (merged != nullptr) {
    __syncthreads();
    QuantizeMerged(c, t, kvh, merged);
  }
}

template <int kVD, int kHpw>
void LaunchChunkRaw(const Ctx& c, dim3 grid, int64_t chunks, float* scratch, int32_t* counters,
                    float* out, cudaStream_t s) {
  const int64_t group = c.s.n_heads / c.s.n_kv_heads;
  const int64_t hk = c.s.head_dim_k, hv = c.s.head_dim_v;
  const size_t smem = static_cast<size_t>(group * hk) * sizeof(float) +
                      static_cast<size_t>(kChunk * (hk + kKPad + hv)) * sizeof(__half);
  static bool configured = false;
  if (!configured) {
    cudaFuncSetAttribute(AttentionChunkRawKernel<kVD, kHpw>,
                         cudaFuncAttributeMaxDynamicSharedMemorySize, 160 << 10);
    configured = true;
  }
  PdlLaunch(AttentionChunkRawKernel<kVD, kHpw>, grid, dim3(kThreads), smem, s, c, chunks, scratch,
            counters, out);
}

// The split shape's launch: the raw kernel when it is on and fits. With
// counters (the last block merges) and c.act_group > 0, the merging block
// also quantizes when the group's outputs fill whole activation groups and
// fit the kernel's staging area; returns the group it quantized for, or 0.
int LaunchChunk(Ctx c, dim3 grid, size_t smem, int64_t chunks, float* scratch, int32_t* counters,
                float* out, cudaStream_t s) {
  const int64_t group = c.s.n_heads / c.s.n_kv_heads;
  const int64_t hk = c.s.head_dim_k, hv = c.s.head_dim_v, merged = group * hv;
  const bool raw = AttentionRawOn() && RawRowsFit(c) && group <= 2 * kWarps;
  const int64_t room = raw ? kChunk * (hk + kKPad) / 2 : kTile * (hk + 1);  // floats
  if (counters == nullptr || c.act_group <= 0 || c.act.q == nullptr || merged % c.act_group != 0 ||
      merged / 32 > kMaxMergedSubs || merged > room) {
    c.act_group = 0;
  }
  if (raw) {
    const bool wide = hv > 128, two = group > kWarps;
    if (!wide && !two) {
      LaunchChunkRaw<1, 1>(c, grid, chunks, scratch, counters, out, s);
    } else if (!wide) {
      LaunchChunkRaw<1, 2>(c, grid, chunks, scratch, counters, out, s);
    } else if (!two) {
      LaunchChunkRaw<2, 1>(c, grid, chunks, scratch, counters, out, s);
    } else {
      LaunchChunkRaw<2, 2>(c, grid, chunks, scratch, counters, out, s);
    }
  } else if (c.act_group > 0) {
    PdlLaunch(AttentionChunkKernel<true>, grid, dim3(kThreads), smem, s, c, chunks, scratch,
              counters, out);
  } else {
    PdlLaunch(AttentionChunkKernel<false>, grid, dim3(kThreads), smem, s, c, chunks, scratch,
              counters, out);
  }
  return c.act_group;
}

// The split shape's merge as a kernel of its own (REPRISE_CUDA_ATTN_LAST_MERGES=0,
// to measure what merging in the last chunk block buys): a warp per (token,
// head).
__global__ void AttentionMergeKernel(Ctx c, int64_t max_chunks, const float* part, float* out) {
  const int64_t w = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  if (w >= c.b.n * c.s.n_heads) return;
  const int64_t t = w / c.s.n_heads, h = w % c.s.n_heads, hv = c.s.head_dim_v;
  MergeHead(part + (t * c.s.n_heads + h) * max_chunks * (hv + 2), c.b.pos[t] / kChunk + 1, hv,
            out + t * c.s.n_heads * hv + h * hv);
}

bool LastMergesOn() {
  static const bool on = EnvSwitchOn("REPRISE_CUDA_ATTN_LAST_MERGES");
  return on;
}

// Prefill shape: block (token, kv head) runs its chunks in order, merging as
// it goes (the same MergeState sequence as MergeHead).
__global__ void AttentionSerialKernel(Ctx c, float* out) {
  extern __shared__ float sh[];
  const int64_t t = blockIdx.x, kvh = blockIdx.y;
  const int64_t pos = c.b.pos[t];
  const int64_t hk = c.s.head_dim_k, hv = c.s.head_dim_v;
  const int64_t group = c.s.n_heads / c.s.n_kv_heads;
  float* q_sh = sh;
  float* k_sh = q_sh + group * hk;
  float* v_sh = k_sh + kTile * (hk + 1);
  LoadQ(c, t, kvh, q_sh);
  const int32_t* table = c.b.block_table + static_cast<int64_t>(c.b.seq[t]) * c.b.max_blocks;
  HeadState total[kMaxHeadsPerWarp], chunk_state[kMaxHeadsPerWarp];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int64_t chunk = 0; chunk * kChunk <= pos; ++chunk) {
    const int64_t p_end = min(pos, (chunk + 1) * kChunk - 1);
    RunChunk(c, kvh, chunk * kChunk, p_end, table, 0, q_sh, k_sh, v_sh, chunk_state);
    if (chunk == 0) {
#pragma unroll
      for (int hi = 0; hi < kMaxHeadsPerWarp; ++hi) total[hi] = chunk_state[hi];
    } else {
#pragma unroll
      for (int hi = 0; hi < kMaxHeadsPerWarp; ++hi) {
        if (warp + hi * kWarps >= group) break;
        MergeState(&total[hi], chunk_state[hi].m, chunk_state[hi].l, chunk_state[hi].o);
      }
    }
  }
#pragma unroll
  for (int hi = 0; hi < kMaxHeadsPerWarp; ++hi) {
    if (warp + hi * kWarps >= group) break;
    const int64_t h = kvh * group + warp + hi * kWarps;
    float* dst = out + t * c.s.n_heads * hv + h * hv;
    for (int k = 0; k < kMaxDimPerLane; ++k) {
      const int64_t e = lane + 32 * k;
      if (e < hv) dst[e] = FDiv(total[hi].o[k], total[hi].l);
    }
  }
}

}  // namespace

int64_t AttentionTileTokens(const AttentionShape& s) {
  const int64_t group = s.n_kv_heads > 0 ? s.n_heads / s.n_kv_heads : 1;
  const int64_t pairs = kTiledWarps * (s.head_dim_v <= 128 ? 8 : 4);
  return std::max<int64_t>(1, std::min<int64_t>(32, pairs / group));
}

namespace {
bool EnvIsOne(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && std::strcmp(v, "1") == 0;
}
std::atomic<int> g_blocked_override{-1}, g_raw_override{-1}, g_fuse_override{-1};
}  // namespace

// The opt-in shapes are off unless their variable is 1: written without a
// GPU, they stay opt-in until scripts/gpu_check.sh has run the GPU tests
// (GpuAttention.OptInShapesGiveTheDefaultShapesBits among them) and the
// benches with them.
bool AttentionBlockedOn() {
  static const bool env = EnvIsOne("REPRISE_CUDA_ATTN_BLOCKED");
  const int o = g_blocked_override.load(std::memory_order_relaxed);
  return o >= 0 ? o != 0 : env;
}

bool AttentionRawOn() {
  static const bool env = EnvIsOne("REPRISE_CUDA_ATTN_RAW");
  const int o = g_raw_override.load(std::memory_order_relaxed);
  return o >= 0 ? o != 0 : env;
}

void SetAttentionShapesForTest(int blocked, int raw) {
  g_blocked_override.store(blocked, std::memory_order_relaxed);
  g_raw_override.store(raw, std::memory_order_relaxed);
}

// Off unless REPRISE_CUDA_FUSE_ATTN=1 (written without a GPU; opt-in until
// gpu_check has run the GPU tests and the decode benches with it).
bool AttentionFuseOn() {
  static const bool env = EnvIsOne("REPRISE_CUDA_FUSE_ATTN");
  const int o = g_fuse_override.load(std::memory_order_relaxed);
  return o >= 0 ? o != 0 : env;
}

void SetAttentionFuseForTest(int fuse) { g_fuse_override.store(fuse, std::memory_order_relaxed); }

bool AttentionTilesOn() {
  static const bool on = EnvSwitchOn("REPRISE_CUDA_ATTN_TILES");
  return on;
}

int64_t AttentionGridChunks(int32_t max_pos) {
  const int64_t chunks = max_pos / kChunk + 1;
  return (chunks + kGridChunkRound - 1) / kGridChunkRound * kGridChunkRound;
}

int64_t AttentionScratchFloats(const AttentionShape& s, int64_t n, int32_t max_pos) {
  const int64_t chunks = AttentionGridChunks(max_pos);
  return n * s.n_heads * chunks * (s.head_dim_v + 2);
}

bool AttentionShapeSupported(const AttentionShape& s) {
  const int64_t group = s.n_kv_heads > 0 ? s.n_heads / s.n_kv_heads : 0;
  return group >= 1 && group <= kWarps * kMaxHeadsPerWarp && s.head_dim_v <= 32 * kMaxDimPerLane &&
         s.head_dim_k <= 256;
}

int LaunchAttention(const float* q, const AttentionShape& shape, const KvLayout& kv, int layer,
                    const BatchDev& b, int32_t max_pos, float* scratch, int64_t scratch_floats,
                    int32_t* counters, const int32_t* tiles, int64_t n_tiles, int n_sms, float* out,
                    cudaStream_t s, int act_group, const ActQ& act) {
  Ctx c{q, shape, kv, layer, b};
  const int64_t group = shape.n_heads / shape.n_kv_heads;
  const size_t smem = static_cast<size_t>(group * shape.head_dim_k +
                                          kTile * (shape.head_dim_k + 1 + shape.head_dim_v)) *
                      sizeof(float);
  static bool configured = false;
  if (!configured) {
    cudaFuncSetAttribute(AttentionChunkKernel<false>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         160 << 10);
    cudaFuncSetAttribute(AttentionChunkKernel<true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         160 << 10);
    cudaFuncSetAttribute(AttentionSerialKernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         160 << 10);
    configured = true;
  }
  const int64_t chunks = AttentionGridChunks(max_pos);
  const bool few_blocks = b.n * shape.n_kv_heads < 2 * n_sms;
  // Prefill with query tiles: whenever the batch has tiles of more than one
  // token (the tiles cover every token; a lone decode token is a tile of one).
  if (tiles != nullptr && n_tiles < b.n && !(chunks > 1 && few_blocks)) {
    LaunchPrefillTiles(c, tiles, n_tiles, out, s);
    return 0;
  }
  const int64_t need = AttentionScratchFloats(shape, b.n, max_pos);
  if (chunks > 1 && few_blocks && scratch != nullptr && need <= scratch_floats &&
      counters != nullptr) {
    const dim3 grid(static_cast<unsigned>(b.n), static_cast<unsigned>(shape.n_kv_heads),
                    static_cast<unsigned>(chunks));
    const bool last_merges = LastMergesOn();
    if (AttentionFuseOn()) {
      c.act_group = act_group;
      c.act = act;
    }
    const int fused =
        LaunchChunk(c, grid, smem, chunks, scratch, last_merges ? counters : nullptr, out, s);
    if (!last_merges) {
      const int64_t threads = b.n * shape.n_heads * 32;
      AttentionMergeKernel<<<static_cast<unsigned>((threads + 127) / 128), 128, 0, s>>>(
          c, chunks, scratch, out);
    }
    return fused;
  }
  const dim3 grid(static_cast<unsigned>(b.n), static_cast<unsigned>(shape.n_kv_heads));
  AttentionSerialKernel<<<grid, kThreads, smem, s>>>(c, out);
  return 0;
}

}  // namespace reprise::kernels::cuda