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
// loads are shared. REPRISE_CUDA_ATTN_TILES=0 turns it off.
#include <algorithm>
#include <cfloat>

#include "core/check.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"

namespace reprise::kernels::cuda {
namespace {

constexpr int kTile = 32;
constexpr int kChunk = kAttentionChunk;  // positions per chunk (2 tiles)
constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxDimPerLane = 8;  // head_dim_v <= 256
// Heads of a GQA group per warp (group <= 32). The loops over them are
// unrolled to this bound so every state stays in registers.
constexpr int kMaxHeadsPerWarp = 8;

// Element i of a KV row of `n` values (kernels/kv_format.h's formats; for
// Q8_0 the same d * q the CPU's LoadKvRow computes).
__device__ __forceinline__ float LoadKv(const uint8_t* p, int i, DType type, int n) {
  if (type == DType::kF16) return __half2float(reinterpret_cast<const __half*>(p)[i]);
  if (type == DType::kF32) return reinterpret_cast<const float*>(p)[i];
  const int g = n < 32 ? n : 32;
  const uint8_t* grp = p + (i / g) * (2 + g);
  const float d = __half2float(__ushort_as_half(static_cast<unsigned short>(grp[0] | (grp[1] << 8))));
  return __fmul_rn(d, static_cast<float>(reinterpret_cast<const int8_t*>(grp + 2)[i % g]));
}

// Rows [p0, p0 + rows) of kv head kvh's K and V into k_sh (row stride
// hk + 1) and v_sh (row stride hv), as floats: warp w of n_warps copies rows
// w, w + n_warps, ..., kBatch rows at a time whose block-table lookups and
// then K/V loads are all issued before any is used (one row at a time, each
// row waited for a table load and then its K/V loads: ~8 round trips to
// memory per warp per tile). 32-bit index math, lanes on consecutive values.
// Values only: the arithmetic that reads them is unchanged.
__device__ __forceinline__ void StageTile(const KvLayout& kv, int layer, const int32_t* table,
                                          int tbl_first, int64_t kvh, int64_t p0, int rows,
                                          int hk, int hv, int n_warps, float* k_sh, float* v_sh) {
  constexpr int kBatch = 4;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int bt = static_cast<int>(kv.block_tokens);
  // F16 rows of up to 256 values: lane pairs of values 2 * lane + 64 k.
  const bool fast = kv.type == DType::kF16 && hk <= 256 && hv <= 256 && hk % 2 == 0 && hv % 2 == 0;
  for (int j0 = warp; j0 < rows; j0 += kBatch * n_warps) {
    const uint8_t* kp[kBatch];
    const uint8_t* vp[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int j = j0 + u * n_warps;
      kp[u] = vp[u] = nullptr;
      if (j < rows) {
        const int p = static_cast<int>(p0) + j;
        const int32_t block = table[p / bt - tbl_first];
        const int64_t row = kvh * bt + p % bt;
        kp[u] = KvK(kv, block, layer) + row * kv.k_row_bytes;
        vp[u] = KvV(kv, block, layer) + row * kv.v_row_bytes;
      }
    }
    if (fast) {
      __half2 kx[kBatch][4], vx[kBatch][4];
#pragma unroll
      for (int u = 0; u < kBatch; ++u) {
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          const int e = 2 * lane + 64 * k;
          kx[u][k] = kp[u] != nullptr && e < hk ? reinterpret_cast<const __half2*>(kp[u])[e / 2]
                                                : __half2();
          vx[u][k] = vp[u] != nullptr && e < hv ? reinterpret_cast<const __half2*>(vp[u])[e / 2]
                                                : __half2();
        }
      }
#pragma unroll
      for (int u = 0; u < kBatch; ++u) {
        if (kp[u] == nullptr) continue;
        float* kd = k_sh + (j0 + u * n_warps) * (hk + 1);
        float* vd = v_sh + (j0 + u * n_warps) * hv;
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          const int e = 2 * lane + 64 * k;
          if (e < hk) {
            kd[e] = __low2float(kx[u][k]);
            kd[e + 1] = __high2float(kx[u][k]);
          }
          if (e < hv) {
            vd[e] = __low2float(vx[u][k]);
            vd[e + 1] = __high2float(vx[u][k]);
          }
        }
      }
      continue;
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      if (kp[u] == nullptr) continue;
      float* kd = k_sh + (j0 + u * n_warps) * (hk + 1);
      float* vd = v_sh + (j0 + u * n_warps) * hv;
      for (int e = lane; e < hk; e += 32) kd[e] = LoadKv(kp[u], e, kv.type, hk);
      for (int e = lane; e < hv; e += 32) vd[e] = LoadKv(vp[u], e, kv.type, hv);
    }
  }
}

// q . k over hk dims: four partial sums (dim e goes to partial e % 4, in
// dim order; dims past the last multiple of 4 go to partial 0), then
// (p0 + p1) + (p2 + p3). Four independent chains instead of one: every shape
// computes scores only through this function.
__device__ __forceinline__ float ScoreDot(const float* q, const float* k, int hk) {
  float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
  int e = 0;
  for (; e + 4 <= hk; e += 4) {
    a0 = FFma(q[e], k[e], a0);
    a1 = FFma(q[e + 1], k[e + 1], a1);
    a2 = FFma(q[e + 2], k[e + 2], a2);
    a3 = FFma(q[e + 3], k[e + 3], a3);
  }
  for (; e < hk; ++e) a0 = FFma(q[e], k[e], a0);
  return FAdd(FAdd(a0, a1), FAdd(a2, a3));
}

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

struct Ctx {
  const float* q;
  AttentionShape s;
  KvLayout kv;
  int layer;
  BatchDev b;
};

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
__device__ __forceinline__ void MergeHead(const float* src, int64_t n_chunks, int64_t hv,
                                          float* dst) {
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
    if (e < hv) dst[e] = FDiv(st.o[k], st.l);
  }
}

// Decode shape: block (token, kv head, chunk) -> chunk states.
// part: [(t * n_heads + h) * max_chunks + chunk] of (m, l, o[hv]). The
// block's block-table entries are copied to shared memory with q, so staging
// a tile waits for one round trip (the K/V loads), not two. The last block of
// a (token, kv head) to finish (counters[t * n_kv_heads + kvh], zero between
// launches: that block resets it) merges the chunk states in chunk order, as
// a separate merge kernel would, one launch fewer.
// At most 168 registers (3 blocks of 128 threads an SM): at 178, two blocks
// fit and a 32k context took 1.3x as long (more waves of chunk blocks).
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
  for (int64_t gh = warp; gh < group; gh += kWarps) {
    const int64_t h = kvh * group + gh;
    MergeHead(part + (t * c.s.n_heads + h) * max_chunks * stride, n_chunks, hv,
              out + t * c.s.n_heads * hv + h * hv);
  }
}

// Prefill shape: block (token, kv head) runs its chunks in order, merging as
// it goes (the same MergeState sequence as AttentionMergeKernel).
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

// ---- the tiled prefill shape ----

constexpr int kTiledWarps = 8;
constexpr int kTiledThreads = kTiledWarps * 32;

// The online-softmax state of one (token, head) pair, kDims dims per lane.
template <int kDims>
struct PairState {
  float m, l;
  float o[kDims];
};

template <int kDims>
__device__ __forceinline__ void ResetPair(PairState<kDims>* s) {
  s->m = -FLT_MAX;
  s->l = 0.0f;
  for (int k = 0; k < kDims; ++k) s->o[k] = 0.0f;
}

// MergeState's arithmetic on a PairState (dims past kDims * 32 are zero in
// the serial shape's state and never written out).
template <int kDims>
__device__ __forceinline__ void MergePair(PairState<kDims>* a, const PairState<kDims>& b) {
  const float m = fmaxf(a->m, b.m);
  const float ca = expf(FSub(a->m, m)), cb = expf(FSub(b.m, m));
  a->l = FAdd(FMul(a->l, ca), FMul(b.l, cb));
  for (int k = 0; k < kDims; ++k) a->o[k] = FAdd(FMul(a->o[k], ca), FMul(b.o[k], cb));
  a->m = m;
}

// One (query tile, kv head). tiles[2 * i] = the tile's first batch index,
// tiles[2 * i + 1] = its token count: consecutive batch entries of one
// sequence at consecutive positions. Warp w owns pairs w, w + kTiledWarps, ...
// (pair = token * group + head within the group), kPairsPerWarp at most.
// Shared memory: q_sh [tokens][group][hk], k_sh [kTile][hk + 1], v_sh [kTile][hv].
template <int kDims, int kPairsPerWarp>
__global__ void __launch_bounds__(kTiledThreads)
    AttentionTiledKernel(Ctx c, const int32_t* tiles, float* out) {
  extern __shared__ float sh[];
  const int64_t t0 = tiles[2 * blockIdx.x], nt = tiles[2 * blockIdx.x + 1];
  const int64_t kvh = blockIdx.y;
  const int64_t hk = c.s.head_dim_k, hv = c.s.head_dim_v;
  const int64_t group = c.s.n_heads / c.s.n_kv_heads;
  const int64_t n_pairs = nt * group;
  float* q_sh = sh;
  float* k_sh = q_sh + n_pairs * hk;
  float* v_sh = k_sh + kTile * (hk + 1);
  for (int64_t i = threadIdx.x; i < n_pairs * hk; i += blockDim.x) {
    const int64_t tok = i / (group * hk), rest = i % (group * hk);
    q_sh[i] = c.q[(t0 + tok) * c.s.n_heads * hk + kvh * group * hk + rest];
  }
  const int32_t* table = c.b.block_table + static_cast<int64_t>(c.b.seq[t0]) * c.b.max_blocks;
  const int64_t max_pos = c.b.pos[t0 + nt - 1];  // positions increase along the tile
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  // Every chunk runs into `part`, which becomes `total` after chunk 0 and is
  // merged into it after the others: the serial shape's sequence (there
  // chunk 0 runs into the total directly: the same values). All indexing of
  // these arrays is unrolled, so they live in registers.
  PairState<kDims> total[kPairsPerWarp], part[kPairsPerWarp];
  int32_t my_pos[kPairsPerWarp];
#pragma unroll
  for (int k = 0; k < kPairsPerWarp; ++k) {
    const int64_t pi = warp + static_cast<int64_t>(k) * kTiledWarps;
    my_pos[k] = pi < n_pairs ? c.b.pos[t0 + pi / group] : -1;
  }
  for (int64_t chunk = 0; chunk * kChunk <= max_pos; ++chunk) {
    const int64_t c_begin = chunk * kChunk, c_end = c_begin + kChunk - 1;
#pragma unroll
    for (int k = 0; k < kPairsPerWarp; ++k) {
      if (my_pos[k] >= c_begin) ResetPair(&part[k]);
    }
    const int64_t tile_end = min(max_pos, c_end);
    for (int64_t p0 = c_begin; p0 <= tile_end; p0 += kTile) {
      const int rows = static_cast<int>(tile_end - p0 + 1 < kTile ? tile_end - p0 + 1 : kTile);
      __syncthreads();  // the previous tile is no longer read (and q_sh is written)
      StageTile(c.kv, c.layer, table, 0, kvh, p0, rows, static_cast<int>(hk),
                static_cast<int>(hv), kTiledWarps, k_sh, v_sh);
      __syncthreads();
#pragma unroll
      for (int k = 0; k < kPairsPerWarp; ++k) {
        if (p0 > my_pos[k]) continue;  // warp-uniform: past this pair's position
        const int64_t pi = warp + static_cast<int64_t>(k) * kTiledWarps;
        PairState<kDims>& st = part[k];
        const int64_t p_end = min(static_cast<int64_t>(my_pos[k]), c_end);
        const int valid = static_cast<int>(p_end - p0 + 1 < kTile ? p_end - p0 + 1 : kTile);
        const float* qh = q_sh + pi * hk;
        float sc = -FLT_MAX;
        if (lane < valid) {
          sc = FMul(ScoreDot(qh, k_sh + lane * (hk + 1), static_cast<int>(hk)), c.s.scale);
        }
        const float m_new = fmaxf(st.m, WarpMax(sc));
        const float corr = expf(FSub(st.m, m_new));
        const float p = lane < valid ? expf(FSub(sc, m_new)) : 0.0f;
        st.l = FAdd(FMul(st.l, corr), WarpSum(p));
#pragma unroll
        for (int d = 0; d < kDims; ++d) st.o[d] = FMul(st.o[d], corr);
        for (int j = 0; j < valid; ++j) {
          const float pj = __shfl_sync(0xffffffffu, p, j);
#pragma unroll
          for (int d = 0; d < kDims; ++d) {
            const int64_t e = lane + 32 * d;
            if (e < hv) st.o[d] = FFma(pj, v_sh[j * hv + e], st.o[d]);
          }
        }
        st.m = m_new;
      }
    }
#pragma unroll
    for (int k = 0; k < kPairsPerWarp; ++k) {
      if (my_pos[k] < c_begin) continue;
      if (chunk == 0) {
        total[k] = part[k];
      } else {
        MergePair(&total[k], part[k]);
      }
    }
  }
#pragma unroll
  for (int k = 0; k < kPairsPerWarp; ++k) {
    if (my_pos[k] < 0) continue;
    const int64_t pi = warp + static_cast<int64_t>(k) * kTiledWarps;
    const int64_t t = t0 + pi / group, h = kvh * group + pi % group;
    float* dst = out + t * c.s.n_heads * hv + h * hv;
#pragma unroll
    for (int d = 0; d < kDims; ++d) {
      const int64_t e = lane + 32 * d;
      if (e < hv) dst[e] = FDiv(total[k].o[d], total[k].l);
    }
  }
}

template <int kDims, int kPairsPerWarp>
void LaunchTiled(const Ctx& c, const int32_t* tiles, int64_t n_tiles, int64_t max_tile_tokens,
                 float* out, cudaStream_t s) {
  const int64_t group = c.s.n_heads / c.s.n_kv_heads;
  const size_t smem = static_cast<size_t>(max_tile_tokens * group * c.s.head_dim_k +
                                          kTile * (c.s.head_dim_k + 1 + c.s.head_dim_v)) *
                      sizeof(float);
  static bool configured = false;
  if (!configured) {
    cudaFuncSetAttribute(AttentionTiledKernel<kDims, kPairsPerWarp>,
                         cudaFuncAttributeMaxDynamicSharedMemorySize, 160 << 10);
    configured = true;
  }
  const dim3 grid(static_cast<unsigned>(n_tiles), static_cast<unsigned>(c.s.n_kv_heads));
  AttentionTiledKernel<kDims, kPairsPerWarp><<<grid, kTiledThreads, smem, s>>>(c, tiles, out);
}

}  // namespace

int64_t AttentionTileTokens(const AttentionShape& s) {
  const int64_t group = s.n_kv_heads > 0 ? s.n_heads / s.n_kv_heads : 1;
  const int64_t pairs = kTiledWarps * (s.head_dim_v <= 128 ? 8 : 4);
  return std::max<int64_t>(1, std::min<int64_t>(32, pairs / group));
}

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

void LaunchAttention(const float* q, const AttentionShape& shape, const KvLayout& kv, int layer,
                     const BatchDev& b, int32_t max_pos, float* scratch, int64_t scratch_floats,
                     int32_t* counters, const int32_t* tiles, int64_t n_tiles, int n_sms,
                     float* out, cudaStream_t s) {
  const Ctx c{q, shape, kv, layer, b};
  const int64_t group = shape.n_heads / shape.n_kv_heads;
  const size_t smem =
      static_cast<size_t>(group * shape.head_dim_k +
                          kTile * (shape.head_dim_k + 1 + shape.head_dim_v)) *
      sizeof(float);
  static bool configured = false;
  if (!configured) {
    cudaFuncSetAttribute(AttentionChunkKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 160 << 10);
    cudaFuncSetAttribute(AttentionSerialKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 160 << 10);
    configured = true;
  }
  const int64_t chunks = AttentionGridChunks(max_pos);
  const bool few_blocks = b.n * shape.n_kv_heads < 2 * n_sms;
  // Prefill with query tiles: whenever the batch has tiles of more than one
  // token (the tiles cover every token; a lone decode token is a tile of one).
  if (tiles != nullptr && n_tiles < b.n && !(chunks > 1 && few_blocks)) {
    const int64_t tt = AttentionTileTokens(shape);
    if (shape.head_dim_v <= 128) {
      LaunchTiled<4, 8>(c, tiles, n_tiles, tt, out, s);
    } else {
      LaunchTiled<8, 4>(c, tiles, n_tiles, tt, out, s);
    }
    return;
  }
  const int64_t need = AttentionScratchFloats(shape, b.n, max_pos);
  if (chunks > 1 && few_blocks && scratch != nullptr && need <= scratch_floats &&
      counters != nullptr) {
    const dim3 grid(static_cast<unsigned>(b.n), static_cast<unsigned>(shape.n_kv_heads),
                    static_cast<unsigned>(chunks));
    PdlLaunch(AttentionChunkKernel, grid, dim3(kThreads), smem, s, c, chunks, scratch, counters,
              out);
  } else {
    const dim3 grid(static_cast<unsigned>(b.n), static_cast<unsigned>(shape.n_kv_heads));
    AttentionSerialKernel<<<grid, kThreads, smem, s>>>(c, out);
  }
}

}  // namespace reprise::kernels::cuda
