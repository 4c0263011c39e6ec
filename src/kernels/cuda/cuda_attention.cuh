// Internal to cuda_attention*.cu: what the decode, serial and tiled
// attention shapes share — the tile and chunk sizes of the canonical order
// (cuda_attention.cu's header comment), the K/V row loads, the staging of a
// tile as floats, ScoreDot (the one score arithmetic) and the launch context.
// Invariant: every shape computes a (token, head)'s scores only through
// ScoreDot and its online-softmax updates tile by tile in position order, so
// which shape runs never changes a bit.
#pragma once

#include <cuda_fp16.h>

#include <cfloat>
#include <cstdint>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/cuda_subblock.cuh"

namespace reprise::kernels::cuda::attn {

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
  const float d =
      __half2float(__ushort_as_half(static_cast<unsigned short>(grp[0] | (grp[1] << 8))));
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
                                          int tbl_first, int64_t kvh, int64_t p0, int rows, int hk,
                                          int hv, int n_warps, float* k_sh, float* v_sh) {
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

struct Ctx {
  const float* q;
  AttentionShape s;
  KvLayout kv;
  int layer;
  BatchDev b;
  // > 0: the split shape's merging block also writes the output's int8
  // activations for this group into act (QuantizeMerged).
  int act_group = 0;
  ActQ act;
  // The tensor-core chunk kernel only: block row r serves batch token sub[r]
  // (its scratch states and counters are indexed by r); null: token r.
  const int32_t* sub = nullptr;
};

// ---- raw F16 rows (the blocked prefill shape and the raw decode shape) ----
// K/V rows copied as they are stored (F16) into shared memory by cp.async,
// converted to float where they are read: no registers held during the copy,
// one round trip for a whole tile or chunk.
constexpr int kKPad = 8;  // halves after each staged K row: 8 consecutive rows' 16-byte
                          // loads fall in 8 different bank groups

// The raw shapes' requirements: F16 rows in 16-byte pieces, 16-byte aligned.
inline bool RawRowsFit(const Ctx& c) {
  const KvLayout& kv = c.kv;
  const auto a16 = [](int64_t v) { return v % 16 == 0; };
  return kv.type == DType::kF16 && c.s.head_dim_k % 8 == 0 && c.s.head_dim_v % 8 == 0 &&
         c.s.head_dim_k <= 256 && c.s.head_dim_v <= 256 && a16(kv.k_row_bytes) &&
         a16(kv.v_row_bytes) && a16(kv.block_bytes) && a16(kv.k_layer_bytes) &&
         a16(kv.v_layer_bytes) && reinterpret_cast<uintptr_t>(kv.base) % 16 == 0;
}

// 8 halves (one 16-byte load) as floats.
__device__ __forceinline__ void Halves8(const uint4& r, float* f) {
  const __half2* h = reinterpret_cast<const __half2*>(&r);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 v = __half22float2(h[i]);
    f[2 * i] = v.x;
    f[2 * i + 1] = v.y;
  }
}

// Issues the cp.async copies of rows [p0, p0 + rows) of kv head kvh (K then
// V, raw F16) into kd (row stride hk + kKPad halves) and vd (stride hv); the
// caller commits. kNThreads threads take consecutive 16-byte pieces.
template <int kNThreads>
__device__ __forceinline__ void StageRawRows(const Ctx& c, const int32_t* table, int kvh, int p0,
                                             int rows, __half* kd, __half* vd) {
  const int hk = static_cast<int>(c.s.head_dim_k), hv = static_cast<int>(c.s.head_dim_v);
  const int kc = hk / 8, per_row = kc + hv / 8, bt = c.kv.block_tokens;
  for (int i = threadIdx.x; i < rows * per_row; i += kNThreads) {
    const int j = i / per_row, piece = i % per_row, p = p0 + j;
    const int32_t block = table[p / bt];
    const int64_t row = static_cast<int64_t>(kvh) * bt + p % bt;
    if (piece < kc) {
      CpAsync16(kd + j * (hk + kKPad) + piece * 8,
                KvK(c.kv, block, c.layer) + row * c.kv.k_row_bytes + piece * 16, true);
    } else {
      CpAsync16(vd + j * hv + (piece - kc) * 8,
                KvV(c.kv, block, c.layer) + row * c.kv.v_row_bytes + (piece - kc) * 16, true);
    }
  }
}

// ---- the split shape's chunk states (cuda_attention.cu, cuda_attention_split.cu) ----

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

__device__ __forceinline__ void LoadQ(const Ctx& c, int64_t t, int64_t kvh, float* q_sh) {
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

// After a split-shape block wrote its chunk states: whether it is the last
// block of its (token, kv head) to finish (*ctr counts them; that block
// resets it to zero for the next launch), its states and everyone else's
// visible to it. Every thread of the block calls it; `flag` is a shared int.
// *ctr counts chunks: a block that wrote `mine` chunks' states adds mine.
__device__ __forceinline__ bool LastChunkBlock(int32_t* ctr, int64_t n_chunks, int* flag,
                                               int mine = 1) {
  __threadfence();  // this block's states are visible before its count is
  __syncthreads();
  if (threadIdx.x == 0) {
    const bool last = atomicAdd(ctr, mine) == static_cast<int32_t>(n_chunks - mine);
    if (last) *ctr = 0;  // every other block of the group has counted
    *flag = last;
  }
  __syncthreads();
  if (!*flag) return false;
  __threadfence();
  return true;
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
__device__ __forceinline__ void QuantizeMerged(const Ctx& c, int64_t t, int64_t kvh,
                                               const float* merged) {
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

// The split shape's faster kernels (cuda_attention_split.cu): the raw chunk
// kernel (any head shape RawRowsFit allows, GQA group <= 2 kWarps) and the
// wide merge of long contexts (more than kWideMergeMinChunks grid chunks).
constexpr int64_t kWideMergeMinChunks = 32;
void LaunchChunkRawAny(const Ctx& c, dim3 grid, int64_t chunks, float* scratch, int32_t* counters,
                       float* out, cudaStream_t s);
void LaunchWideMerge(const Ctx& c, int64_t chunks, const float* scratch, float* out,
                     cudaStream_t s);

// The tiled prefill shapes: one block of kTiledWarps warps per (query tile,
// kv head).
constexpr int kTiledWarps = 8;
constexpr int kTiledThreads = kTiledWarps * 32;

// Runs the tiled prefill shape (cuda_attention_tiled.cu) over n_tiles query
// tiles (tiles[2 i] = first batch index, tiles[2 i + 1] = token count).
void LaunchPrefillTiles(const Ctx& c, const int32_t* tiles, int64_t n_tiles, float* out,
                        cudaStream_t s);

// ---- the tensor-core order (cuda_attention_mma.cu; the default, AttentionMmaOn) ----
// Rows ((token, head) pairs) of one block of the prefill tile kernel (at
// most).
constexpr int kMmaTileRows = 128;
// Whether the tensor-core kernels take this shape and KV layout (F16 rows as
// RawRowsFit wants them, head dims 64 or 128, K and V alike).
bool MmaFits(const AttentionShape& s, const KvLayout& kv);
// Tokens per query tile of the tile kernel (kMmaTileRows / group; 1..64).
int64_t MmaTileTokens(const AttentionShape& s);
// The chunk kernel for rows (tokens) x n_kv_heads x chunks (grid chunks):
// chunk states into scratch; with counters, the last block of a (token, kv
// head) merges them. Each block takes several chunks when there are more
// than about two blocks an SM (n_sms) could hold at once.
void LaunchMmaChunks(const Ctx& c, int64_t rows, int64_t chunks, int n_sms, float* scratch,
                     int32_t* counters, float* out, cudaStream_t s);
// The tile kernel over n_blocks query tiles of up to tile_tokens tokens
// (tiles as LaunchPrefillTiles takes them), or with tiles == nullptr one
// token a block (n_blocks = n, tile_tokens = 1). only: 0 every tile, 1 the
// tiles of several tokens, 2 the one-token tiles (tile_tokens = 1).
void LaunchMmaTiles(const Ctx& c, const int32_t* tiles, int64_t n_blocks, int64_t tile_tokens,
                    int only, float* out, cudaStream_t s);

}  // namespace reprise::kernels::cuda::attn
