// The tiled prefill shape of paged attention (cuda_attention.cu's header
// comment gives the canonical order it keeps): one block per (query tile, kv
// head), a query tile being consecutive tokens of one sequence, so each K/V
// tile is loaded once for all of them.
#include <algorithm>
#include <cfloat>

#include "kernels/cuda/cuda_attention.cuh"

namespace reprise::kernels::cuda::attn {
namespace {

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
      StageTile(c.kv, c.layer, table, 0, kvh, p0, rows, static_cast<int>(hk), static_cast<int>(hv),
                kTiledWarps, k_sh, v_sh);
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

// ---- the blocked tiled shape (F16 KV) ----
// The tiled shape's arithmetic with a warp's kP pairs computed together, so a
// K row, a V row or a probability read from shared memory feeds kP pairs
// instead of one:
//  - K/V tiles arrive as raw F16 rows by cp.async into one of two buffers:
//    the next tile's copies are in flight while this one is computed;
//  - scores: lane j (position j) reads 8 dims of its K row in one 16-byte
//    load and the same 8 dims of every pair's q (broadcast), and feeds each
//    pair's four partials in ScoreDot's order (dim e into partial e % 4);
//  - P.V: lane owns dims 4 lane + 128 g (a dim's sum runs over positions in
//    order, as in every shape); the warp's probabilities go through shared
//    memory. A tile where some pair ends early runs the per-pair bound.
// Needs F16 rows with hk % 8 == 0, hv % 8 == 0 (16-byte pieces), hk, hv <=
// 256 and 16-byte aligned rows (RawRowsFit). The default (H100-validated;
// REPRISE_CUDA_ATTN_BLOCKED=0: off, AttentionBlockedOn); either shape gives
// the same bits.
template <int kVD>
struct BlockPair {
  float m, l;
  float o[kVD][4];  // dims 128 g + 4 lane + i
};

template <int kVD>
__device__ __forceinline__ void ResetBlockPair(BlockPair<kVD>* s) {
  s->m = -FLT_MAX;
  s->l = 0.0f;
#pragma unroll
  for (int g = 0; g < kVD; ++g)
#pragma unroll
    for (int i = 0; i < 4; ++i) s->o[g][i] = 0.0f;
}

// MergeState's arithmetic.
template <int kVD>
__device__ __forceinline__ void MergeBlockPair(BlockPair<kVD>* a, const BlockPair<kVD>& b) {
  const float m = fmaxf(a->m, b.m);
  const float ca = expf(FSub(a->m, m)), cb = expf(FSub(b.m, m));
  a->l = FAdd(FMul(a->l, ca), FMul(b.l, cb));
#pragma unroll
  for (int g = 0; g < kVD; ++g)
#pragma unroll
    for (int i = 0; i < 4; ++i) a->o[g][i] = FAdd(FMul(a->o[g][i], ca), FMul(b.o[g][i], cb));
  a->m = m;
}

// One (query tile, kv head), pairs as in AttentionTiledKernel (warp w owns
// pairs w, w + kTiledWarps, ...). Shared memory: q_sh [pairs][hk] floats,
// p_sh [kTiledWarps][kTile][kP] floats, then two raw buffers of
// K [kTile][hk + kKPad] and V [kTile][hv] halves.
template <int kVD, int kP>
__global__ void __launch_bounds__(kTiledThreads, 1)
    AttentionBlockedKernel(Ctx c, const int32_t* tiles, float* out) {
  extern __shared__ __align__(16) float sh[];
  const int t0 = tiles[2 * blockIdx.x], nt = tiles[2 * blockIdx.x + 1];
  const int kvh = blockIdx.y;
  const int hk = static_cast<int>(c.s.head_dim_k), hv = static_cast<int>(c.s.head_dim_v);
  const int group = static_cast<int>(c.s.n_heads / c.s.n_kv_heads);
  const int n_pairs = nt * group;
  float* q_sh = sh;
  float* p_sh = q_sh + n_pairs * hk;
  __half* raw = reinterpret_cast<__half*>(p_sh + kTiledWarps * kTile * kP);
  const int buf_halves = kTile * (hk + kKPad + hv);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int32_t* table = c.b.block_table + static_cast<int64_t>(c.b.seq[t0]) * c.b.max_blocks;
  const int max_pos = c.b.pos[t0 + nt - 1];  // positions increase along the tile
  const int n_tiles = max_pos / kTile + 1;
  StageRawRows<kTiledThreads>(c, table, kvh, 0, min(kTile, max_pos + 1), raw,
                              raw + kTile * (hk + kKPad));
  CpAsyncCommit();
  for (int i = threadIdx.x; i < n_pairs * hk; i += kTiledThreads) {
    const int tok = i / (group * hk), rest = i % (group * hk);
    q_sh[i] = c.q[(static_cast<int64_t>(t0) + tok) * c.s.n_heads * hk +
                  static_cast<int64_t>(kvh) * group * hk + rest];
  }
  BlockPair<kVD> total[kP], part[kP];
  int my_pos[kP], q_off[kP];
#pragma unroll
  for (int k = 0; k < kP; ++k) {
    const int pi = warp + k * kTiledWarps;
    my_pos[k] = pi < n_pairs ? c.b.pos[t0 + pi / group] : -1;
    q_off[k] = min(pi, n_pairs - 1) * hk;  // a missing pair computes pair n_pairs - 1's
                                           // scores and keeps none of them
    ResetBlockPair(&part[k]);
  }
  float* pw = p_sh + warp * kTile * kP;
  for (int it = 0; it < n_tiles; ++it) {
    const int p0 = it * kTile, rows = min(kTile, max_pos - p0 + 1);
    const int c_begin = p0 / kChunk * kChunk, c_end = c_begin + kChunk - 1;
    if (p0 == c_begin) {
#pragma unroll
      for (int k = 0; k < kP; ++k) {
        if (my_pos[k] >= c_begin) ResetBlockPair(&part[k]);
      }
    }
    __syncthreads();  // tile it - 1 is no longer read: its buffer may be refilled
    if (it + 1 < n_tiles) {
      const int nb = (it + 1) & 1;
      StageRawRows<kTiledThreads>(c, table, kvh, p0 + kTile, min(kTile, max_pos - p0 - kTile + 1),
                                  raw + nb * buf_halves,
                                  raw + nb * buf_halves + kTile * (hk + kKPad));
      CpAsyncCommit();
      CpAsyncWait<1>();
    } else {
      CpAsyncWait<0>();
    }
    __syncthreads();  // every thread's copies of tile it have landed
    // vk[k]: positions of this tile pair k attends to (<= 0: it ended before
    // p0; its state is left alone). Warp-uniform, like everything that
    // branches below.
    int vk[kP];
    bool any = false, full = true;
#pragma unroll
    for (int k = 0; k < kP; ++k) {
      vk[k] = min(min(my_pos[k], c_end) - p0 + 1, kTile);
      any = any || vk[k] > 0;
      full = full && vk[k] == rows;
    }
    if (any) {
      const __half* kb = raw + (it & 1) * buf_halves;
      const __half* vb = kb + kTile * (hk + kKPad);
      // Scores: position lane against every pair.
      float acc[kP][4];
#pragma unroll
      for (int k = 0; k < kP; ++k) acc[k][0] = acc[k][1] = acc[k][2] = acc[k][3] = 0.0f;
      const __half* krow = kb + lane * (hk + kKPad);
      for (int e = 0; e < hk; e += 8) {
        float kf[8];
        Halves8(*reinterpret_cast<const uint4*>(krow + e), kf);
#pragma unroll
        for (int k = 0; k < kP; ++k) {
          const float4 qa = *reinterpret_cast<const float4*>(q_sh + q_off[k] + e);
          const float4 qb = *reinterpret_cast<const float4*>(q_sh + q_off[k] + e + 4);
          acc[k][0] = FFma(qa.x, kf[0], acc[k][0]);
          acc[k][1] = FFma(qa.y, kf[1], acc[k][1]);
          acc[k][2] = FFma(qa.z, kf[2], acc[k][2]);
          acc[k][3] = FFma(qa.w, kf[3], acc[k][3]);
          acc[k][0] = FFma(qb.x, kf[4], acc[k][0]);
          acc[k][1] = FFma(qb.y, kf[5], acc[k][1]);
          acc[k][2] = FFma(qb.z, kf[6], acc[k][2]);
          acc[k][3] = FFma(qb.w, kf[7], acc[k][3]);
        }
      }
      // The online-softmax step of every pair (a pair past its end: m, l and o
      // stay as they are, bit for bit).
      BlockPair<kVD>* st = part;
      float pk[kP];
#pragma unroll
      for (int k = 0; k < kP; ++k) {
        const float dot = FAdd(FAdd(acc[k][0], acc[k][1]), FAdd(acc[k][2], acc[k][3]));
        const float sc = lane < vk[k] ? FMul(dot, c.s.scale) : -FLT_MAX;
        const float m_new = fmaxf(st[k].m, WarpMax(sc));
        const float corr = expf(FSub(st[k].m, m_new));
        const float p = lane < vk[k] ? expf(FSub(sc, m_new)) : 0.0f;
        st[k].l = FAdd(FMul(st[k].l, corr), WarpSum(p));
#pragma unroll
        for (int g = 0; g < kVD; ++g)
#pragma unroll
          for (int i = 0; i < 4; ++i) st[k].o[g][i] = FMul(st[k].o[g][i], corr);
        st[k].m = m_new;
        pk[k] = p;
      }
#pragma unroll
      for (int k = 0; k < kP; k += 4) {
        *reinterpret_cast<float4*>(pw + lane * kP + k) =
            make_float4(pk[k], pk[k + 1], pk[k + 2], pk[k + 3]);
      }
      __syncwarp();
      // P.V over the tile's rows in order.
      for (int j = 0; j < rows; ++j) {
        float pj[kP];
#pragma unroll
        for (int k = 0; k < kP; k += 4) {
          const float4 v4 = *reinterpret_cast<const float4*>(pw + j * kP + k);
          pj[k] = v4.x, pj[k + 1] = v4.y, pj[k + 2] = v4.z, pj[k + 3] = v4.w;
        }
#pragma unroll
        for (int g = 0; g < kVD; ++g) {
          const int e = 128 * g + 4 * lane;
          float vf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
          if (e < hv) {
            const uint2 r = *reinterpret_cast<const uint2*>(vb + j * hv + e);
            const float2 a = __half22float2(*reinterpret_cast<const __half2*>(&r.x));
            const float2 b = __half22float2(*reinterpret_cast<const __half2*>(&r.y));
            vf[0] = a.x, vf[1] = a.y, vf[2] = b.x, vf[3] = b.y;
          }
#pragma unroll
          for (int k = 0; k < kP; ++k) {
            if (!full && j >= vk[k]) continue;  // past this pair's end
#pragma unroll
            for (int i = 0; i < 4; ++i) st[k].o[g][i] = FFma(pj[k], vf[i], st[k].o[g][i]);
          }
        }
      }
      __syncwarp();  // pw is rewritten by the next tile
    }
    if (p0 + kTile > c_end || it + 1 == n_tiles) {  // the chunk ends with this tile
#pragma unroll
      for (int k = 0; k < kP; ++k) {
        if (my_pos[k] < c_begin) continue;
        if (c_begin == 0) {
          total[k] = part[k];
        } else {
          MergeBlockPair(&total[k], part[k]);
        }
      }
    }
  }
#pragma unroll
  for (int k = 0; k < kP; ++k) {
    if (my_pos[k] < 0) continue;
    const int pi = warp + k * kTiledWarps;
    const int64_t t = t0 + pi / group, h = static_cast<int64_t>(kvh) * group + pi % group;
    float* dst = out + t * c.s.n_heads * hv + h * hv;
#pragma unroll
    for (int g = 0; g < kVD; ++g) {
      const int e = 128 * g + 4 * lane;
      if (e >= hv) continue;
      float4 r;
      r.x = FDiv(total[k].o[g][0], total[k].l);
      r.y = FDiv(total[k].o[g][1], total[k].l);
      r.z = FDiv(total[k].o[g][2], total[k].l);
      r.w = FDiv(total[k].o[g][3], total[k].l);
      *reinterpret_cast<float4*>(dst + e) = r;
    }
  }
}

template <int kVD, int kP>
void LaunchBlocked(const Ctx& c, const int32_t* tiles, int64_t n_tiles, int64_t max_tile_tokens,
                   float* out, cudaStream_t s) {
  const int64_t group = c.s.n_heads / c.s.n_kv_heads;
  const int64_t hk = c.s.head_dim_k, hv = c.s.head_dim_v;
  const size_t smem =
      static_cast<size_t>(max_tile_tokens * group * hk + kTiledWarps * kTile * kP) * sizeof(float) +
      static_cast<size_t>(2 * kTile * (hk + kKPad + hv)) * sizeof(__half);
  static bool configured = false;
  if (!configured) {
    cudaFuncSetAttribute(AttentionBlockedKernel<kVD, kP>,
                         cudaFuncAttributeMaxDynamicSharedMemorySize, 160 << 10);
    configured = true;
  }
  const dim3 grid(static_cast<unsigned>(n_tiles), static_cast<unsigned>(c.s.n_kv_heads));
  AttentionBlockedKernel<kVD, kP><<<grid, kTiledThreads, smem, s>>>(c, tiles, out);
}

}  // namespace

void LaunchPrefillTiles(const Ctx& c, const int32_t* tiles, int64_t n_tiles, float* out,
                        cudaStream_t s) {
  const int64_t tt = AttentionTileTokens(c.s, c.kv);
  if (AttentionBlockedOn() && RawRowsFit(c)) {
    if (c.s.head_dim_v <= 128) {
      LaunchBlocked<1, 8>(c, tiles, n_tiles, tt, out, s);
    } else {
      LaunchBlocked<2, 4>(c, tiles, n_tiles, tt, out, s);
    }
    return;
  }
  if (c.s.head_dim_v <= 128) {
    LaunchTiled<4, 8>(c, tiles, n_tiles, tt, out, s);
  } else {
    LaunchTiled<8, 4>(c, tiles, n_tiles, tt, out, s);
  }
}

}  // namespace reprise::kernels::cuda::attn
