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

// The tiled prefill shapes: one block of kTiledWarps warps per (query tile,
// kv head).
constexpr int kTiledWarps = 8;
constexpr int kTiledThreads = kTiledWarps * 32;

// Runs the tiled prefill shape (cuda_attention_tiled.cu) over n_tiles query
// tiles (tiles[2 i] = first batch index, tiles[2 i + 1] = token count).
void LaunchPrefillTiles(const Ctx& c, const int32_t* tiles, int64_t n_tiles, float* out,
                        cudaStream_t s);

}  // namespace reprise::kernels::cuda::attn
