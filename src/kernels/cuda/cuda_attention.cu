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
// computed together from raw rows copied ahead; the default since an H100
// run validated it, REPRISE_CUDA_ATTN_BLOCKED=0 turns it off);
// cuda_attention.cuh holds what the shapes share. The split (decode) shape
// has faster variants in cuda_attention_split.cu (the default, likewise): a raw
// chunk kernel for F16 KV (a chunk's rows copied in one cp.async burst;
// REPRISE_CUDA_ATTN_RAW=0 turns it off) and a wide merge for long contexts
// (REPRISE_CUDA_ATTN_WIDE_MERGE=0). Where the tensor-core order of
// cuda_attention_mma.cu fits (F16 KV, head dims 64 or 128: MmaFits) every
// shape follows it instead, unless REPRISE_CUDA_ATTN_MMA=0 (LaunchMma below
// makes the same choice of shape); the f32 order serves the other layouts.
#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cstdlib>
#include <cstring>

#include "core/check.h"
#include "kernels/cuda/cuda_attention.cuh"
#include "kernels/cuda/cuda_subblock.cuh"
#include "kernels/cuda/path_switch.h"

namespace reprise::kernels::cuda {
namespace {

using namespace attn;

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
  if (!LastChunkBlock(counters + t * c.s.n_kv_heads + kvh, n_chunks, &last_sh)) return;
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
    LaunchChunkRawAny(c, grid, chunks, scratch, counters, out, s);
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

int64_t AttentionTileTokens(const AttentionShape& s, const KvLayout& kv) {
  if (AttentionMmaOn() && MmaFits(s, kv)) return MmaTileTokens(s);
  const int64_t group = s.n_kv_heads > 0 ? s.n_heads / s.n_kv_heads : 1;
  const int64_t pairs = kTiledWarps * (s.head_dim_v <= 128 ? 8 : 4);
  return std::max<int64_t>(1, std::min<int64_t>(32, pairs / group));
}

namespace {
// On unless =0: BLOCKED, RAW and WIDE_MERGE were written without a GPU and
// validated on an H100 on 2026-12-05 (GpuAttention.OptInShapes* and every
// GPU test with them on; BENCHMARKS.md, "Sixth GPU run"); ATTN_MMA on
// 2026-12-06 (its shapes agreed bit for bit, every GPU test passed; Q4_K
// pp8192 3,639 -> 7,856 tok/s, tg128 346 -> 390: "Eighth GPU run").
PathSwitch g_blocked("REPRISE_CUDA_ATTN_BLOCKED", PathDefault::kOn);
PathSwitch g_raw("REPRISE_CUDA_ATTN_RAW", PathDefault::kOn);
PathSwitch g_wide("REPRISE_CUDA_ATTN_WIDE_MERGE", PathDefault::kOn);
PathSwitch g_mma("REPRISE_CUDA_ATTN_MMA", PathDefault::kOn);
// Off unless =1: FUSE_ATTN gave the same bits on an H100, but tg128 went
// 301.5 -> 293.8 tok/s with it (the merging block's extra work costs more
// than the kernel it saves).
PathSwitch g_fuse("REPRISE_CUDA_FUSE_ATTN", PathDefault::kOff);
// On unless =0: the same bits on an H100, and tg32 after 32,768 tokens
// 187.9 -> 204.5 tok/s (Q4_K, Llama-3-8B shape).
PathSwitch g_qregs("REPRISE_CUDA_ATTN_QREGS", PathDefault::kOn);
std::atomic<int> g_mma_shape{-1};
}  // namespace

bool AttentionMmaOn() { return g_mma.On(); }
bool AttentionBlockedOn() { return g_blocked.On(); }
bool AttentionRawOn() { return g_raw.On(); }
bool AttentionWideMergeOn() { return g_wide.On(); }
bool AttentionFuseOn() { return g_fuse.On(); }
bool AttentionQRegsOn() { return g_qregs.On(); }

void SetAttentionFuseForTest(int fuse) { g_fuse.SetForTest(fuse); }
void SetAttentionQRegsForTest(int on) { g_qregs.SetForTest(on); }

void SetAttentionMmaForTest(int on, int shape) {
  g_mma.SetForTest(on);
  g_mma_shape.store(shape, std::memory_order_relaxed);
}

void SetAttentionShapesForTest(int blocked, int raw, int wide_merge) {
  g_blocked.SetForTest(blocked);
  g_raw.SetForTest(raw);
  g_wide.SetForTest(wide_merge);
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

namespace {

// The tensor-core order's launch (cuda_attention_mma.cu): the same choice of
// shape as the f32 order's (tiles for prompt chunks, the split shape for few
// tokens at long contexts, else a token a block), or the one a test forces.
void LaunchMma(const Ctx& c, const int32_t* tiles, int64_t n_tiles, int64_t chunks,
               bool few_blocks, float* scratch, int64_t scratch_floats, int32_t* counters,
               const int32_t* singles, int64_t n_singles, int n_sms, float* out,
               cudaStream_t s) {
  const BatchDev& b = c.b;
  const bool can_split = scratch != nullptr && counters != nullptr &&
                         AttentionScratchFloats(c.s, b.n, chunks * kChunk - 1) <= scratch_floats;
  int shape = g_mma_shape.load(std::memory_order_relaxed);
  if (shape < 0) {
    shape = tiles != nullptr && n_tiles < b.n && !(chunks > 1 && few_blocks) ? 1
            : chunks > 1 && few_blocks && can_split                           ? 0
                                                                              : 2;
  }
  // (n_tiles == n: every token its own tile, and the backend uploads no tiles)
  if (shape == 1 && (tiles == nullptr || n_tiles <= 0 || n_tiles >= b.n)) shape = 2;
  if (shape == 0 && !can_split) shape = 2;
  if (shape == 1) {
    // The prompt chunks' tiles, then the one-token tiles (decode tokens
    // beside them): split over the context when they are few (each a block
    // per chunk, states merged by the last, as alone in a decode batch),
    // else in small blocks of their own. The same bits every way.
    LaunchMmaTiles(c, tiles, n_tiles, MmaTileTokens(c.s), 1, out, s);
    if (singles != nullptr && n_singles > 0 && chunks > 1 &&
        n_singles * c.s.n_kv_heads < 2 * n_sms && scratch != nullptr && counters != nullptr &&
        AttentionScratchFloats(c.s, n_singles, chunks * kChunk - 1) <= scratch_floats) {
      Ctx cs = c;
      cs.sub = singles;
      LaunchMmaChunks(cs, n_singles, chunks, n_sms, scratch, counters, out, s);
    } else {
      LaunchMmaTiles(c, tiles, n_tiles, 1, 2, out, s);
    }
  } else if (shape == 2) {
    LaunchMmaTiles(c, nullptr, b.n, 1, 0, out, s);
  } else {
    if (AttentionWideMergeOn() && chunks > kWideMergeMinChunks) {
      LaunchMmaChunks(c, b.n, chunks, n_sms, scratch, nullptr, out, s);
      LaunchWideMerge(c, chunks, scratch, out, s);
    } else if (LastMergesOn()) {
      LaunchMmaChunks(c, b.n, chunks, n_sms, scratch, counters, out, s);
    } else {
      LaunchMmaChunks(c, b.n, chunks, n_sms, scratch, nullptr, out, s);
      const int64_t threads = b.n * c.s.n_heads * 32;
      AttentionMergeKernel<<<static_cast<unsigned>((threads + 127) / 128), 128, 0, s>>>(
          c, chunks, scratch, out);
    }
  }
}

}  // namespace

int LaunchAttention(const float* q, const AttentionShape& shape, const KvLayout& kv, int layer,
                    const BatchDev& b, int32_t max_pos, float* scratch, int64_t scratch_floats,
                    int32_t* counters, const int32_t* tiles, int64_t n_tiles, int n_sms, float* out,
                    cudaStream_t s, int act_group, const ActQ& act, const int32_t* singles,
                    int64_t n_singles) {
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
  if (AttentionMmaOn() && MmaFits(shape, kv)) {
    LaunchMma(c, tiles, n_tiles, chunks, few_blocks, scratch, scratch_floats, counters, singles,
              n_singles, n_sms, out, s);
    return 0;
  }
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
    if (AttentionWideMergeOn() && chunks > kWideMergeMinChunks &&
        shape.head_dim_v <= 2 * kThreads) {
      LaunchChunk(c, grid, smem, chunks, scratch, nullptr, out, s);
      LaunchWideMerge(c, chunks, scratch, out, s);
      return 0;
    }
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