// CUDA paged attention: each (token, query head) reads its sequence's K/V
// back from the KV blocks through the block table, in tiles of 32 positions,
// tile 0 first, with one online softmax (running max m, sum l, accumulator o).
//
// Determinism contract: one thread block computes one (token, head) with an
// operation order fixed by the position and the head size alone: scores are
// lane-strided dot products reduced by a fixed butterfly; m, l and o update
// over a tile's positions in order. Nothing depends on the batch, the other
// heads or the chunking of the prompt.
//
// This is the correctness-first version: it re-reads K/V for every query head
// of a GQA group and every token of a prefill. Flash-style tiles for prefill
// (K/V tiles in shared memory reused by a group's heads and a run of tokens)
// and a fixed split over the context for long decodes come next.
#include <cfloat>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"

namespace reprise::kernels::cuda {
namespace {

constexpr int kTile = 32;
constexpr int kThreads = 128;  // 4 warps, 8 positions of a tile each
constexpr int kMaxDimPerThread = 4;  // head_dim_v <= 512

__device__ __forceinline__ float LoadKv(const uint8_t* p, int64_t i, bool f16) {
  return f16 ? __half2float(reinterpret_cast<const __half*>(p)[i])
             : reinterpret_cast<const float*>(p)[i];
}

__global__ void AttentionKernel(const float* __restrict__ q, AttentionShape s, KvLayout kv,
                                int layer, BatchDev b, float* __restrict__ out) {
  __shared__ float scores[kTile];
  extern __shared__ float q_sh[];  // [head_dim_k]
  const int64_t t = blockIdx.x;
  const int64_t h = blockIdx.y;
  const int64_t group = s.n_heads / s.n_kv_heads;
  const int64_t kvh = h / group;
  const int64_t hk = s.head_dim_k, hv = s.head_dim_v;
  const int64_t bt = kv.block_tokens;
  const int32_t pos = b.pos[t];
  const int32_t* table = b.block_table + static_cast<int64_t>(b.seq[t]) * b.max_blocks;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  for (int64_t e = threadIdx.x; e < hk; e += blockDim.x) {
    q_sh[e] = q[t * s.n_heads * hk + h * hk + e];
  }
  __syncthreads();

  float m = -FLT_MAX, l = 0.0f;
  float o[kMaxDimPerThread];
  for (int k = 0; k < kMaxDimPerThread; ++k) o[k] = 0.0f;

  const int64_t n_tiles = pos / kTile + 1;
  for (int64_t tile = 0; tile < n_tiles; ++tile) {
    const int64_t p0 = tile * kTile;
    // Scores: warp w takes positions p0 + 8w .. p0 + 8w + 7.
    for (int j = warp * 8; j < warp * 8 + 8; ++j) {
      const int64_t p = p0 + j;
      float sc = -FLT_MAX;
      if (p <= pos) {
        const int32_t block = table[p / bt];
        const uint8_t* kp = KvK(kv, block, layer) + ((kvh * bt + p % bt) * hk) * (kv.f16 ? 2 : 4);
        float acc = 0.0f;
        for (int64_t e = lane; e < hk; e += 32) acc = __fmaf_rn(q_sh[e], LoadKv(kp, e, kv.f16), acc);
        sc = __fmul_rn(WarpSum(acc), s.scale);
      }
      if (lane == 0) scores[j] = sc;
    }
    __syncthreads();
    const int valid = static_cast<int>(pos - p0 + 1 < kTile ? pos - p0 + 1 : kTile);
    float tmax = m;
    for (int j = 0; j < valid; ++j) tmax = fmaxf(tmax, scores[j]);
    const float corr = expf(__fsub_rn(m, tmax));
    l = __fmul_rn(l, corr);
    for (int k = 0; k < kMaxDimPerThread; ++k) o[k] = __fmul_rn(o[k], corr);
    for (int j = 0; j < valid; ++j) {
      const float pj = expf(__fsub_rn(scores[j], tmax));
      l = __fadd_rn(l, pj);
      const int64_t p = p0 + j;
      const int32_t block = table[p / bt];
      const uint8_t* vp = KvV(kv, block, layer) + ((kvh * bt + p % bt) * hv) * (kv.f16 ? 2 : 4);
      for (int k = 0; k < kMaxDimPerThread; ++k) {
        const int64_t e = threadIdx.x + static_cast<int64_t>(k) * blockDim.x;
        if (e < hv) o[k] = __fmaf_rn(pj, LoadKv(vp, e, kv.f16), o[k]);
      }
    }
    m = tmax;
    __syncthreads();
  }
  float* ot = out + t * s.n_heads * hv + h * hv;
  for (int k = 0; k < kMaxDimPerThread; ++k) {
    const int64_t e = threadIdx.x + static_cast<int64_t>(k) * blockDim.x;
    if (e < hv) ot[e] = __fdiv_rn(o[k], l);
  }
}

}  // namespace

void LaunchAttention(const float* q, const AttentionShape& shape, const KvLayout& kv, int layer,
                     const BatchDev& b, float* out, cudaStream_t s) {
  const dim3 grid(static_cast<unsigned>(b.n), static_cast<unsigned>(shape.n_heads));
  const size_t smem = static_cast<size_t>(shape.head_dim_k) * sizeof(float);
  AttentionKernel<<<grid, kThreads, smem, s>>>(q, shape, kv, layer, b, out);
}

}  // namespace reprise::kernels::cuda
