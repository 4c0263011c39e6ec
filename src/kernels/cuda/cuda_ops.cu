// CUDA per-row ops of the forward pass: embedding lookup, RoPE angles,
// elementwise adds, SwiGLU, the q/k norm + RoPE + KV store, and row gathers
// (RMSNorm: cuda_norm.cu). One thread block per row where a row needs a
// reduction (fixed tree: BlockSum), so every row's bits depend only on that
// row. For decode, SwiGLU can also quantize its output for the next matmul
// (SiluMulQuant): the same int8 activations LaunchQuantizeAct makes from the
// same floats, one kernel fewer.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/cuda_subblock.cuh"

namespace reprise::kernels::cuda {
namespace {

constexpr int kRowThreads = 256;

unsigned Blocks(int64_t count, int threads) {
  return static_cast<unsigned>((count + threads - 1) / threads);
}

// One block per token; thread i dequantizes 32-value sub-blocks i, i + blockDim, ...
template <int kType, int kSubs, int kUnitBytes>
__global__ void EmbedQuantKernel(const uint8_t* table, int64_t row_bytes, int64_t d,
                                 const int32_t* tokens, float* x) {
  const int64_t t = blockIdx.x;
  const uint8_t* row = table + static_cast<int64_t>(tokens[t]) * row_bytes;
  for (int64_t b = threadIdx.x; b < d / 32; b += blockDim.x) {
    const int64_t u = b / kSubs;
    DequantSub<kType>(row + u * kUnitBytes, static_cast<int>(b % kSubs), x + t * d + b * 32);
  }
}

template <int kElem>  // 0: F32, 1: F16, 2: BF16
__global__ void EmbedFloatKernel(const uint8_t* table, int64_t row_bytes, int64_t d,
                                 const int32_t* tokens, float* x) {
  const int64_t t = blockIdx.x;
  const uint8_t* row = table + static_cast<int64_t>(tokens[t]) * row_bytes;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    float v;
    if constexpr (kElem == 0) {
      v = reinterpret_cast<const float*>(row)[i];
    } else if constexpr (kElem == 1) {
      v = HalfBitsToFloat(reinterpret_cast<const uint16_t*>(row)[i]);
    } else {
      v = Bf16BitsToFloat(reinterpret_cast<const uint16_t*>(row)[i]);
    }
    x[t * d + i] = v;
  }
}

__global__ void RopeTableKernel(const int32_t* pos, int64_t n, const float* inv_freq,
                                int64_t half, float* rope) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * half) return;
  const int64_t t = i / half, k = i % half;
  const float angle = __fmul_rn(static_cast<float>(pos[t]), inv_freq[k]);
  rope[t * 2 * half + 2 * k] = cosf(angle);
  rope[t * 2 * half + 2 * k + 1] = sinf(angle);
}

// Quantizes the G-value group g of row x (G = 32 or 256) as
// QuantizeActKernel does, one warp for the group: amax = the largest |x| (a
// max: exact in any order), d = ActScale(amax), q = round(x * ActInvScale(d))
// clamped to [-127, 127], per 32 values the scale and the sum of q.
template <int G>
__device__ __forceinline__ void QuantizeGroupWarp(const float* x, int64_t g, int8_t* q, float* d,
                                                  int32_t* sum) {
  const int lane = threadIdx.x % 32;
  float v[G / 32];
  float amax = 0.0f;
#pragma unroll
  for (int k = 0; k < G / 32; ++k) {  // QuantizeActKernel's order: warp 0's max, then the others'
    v[k] = x[g * G + k * 32 + lane];
    const float m = WarpMax(fabsf(v[k]));
    amax = k == 0 ? m : fmaxf(amax, m);
  }
  const float scale = ActScale(amax);
  const float inv = ActInvScale(scale);
#pragma unroll
  for (int k = 0; k < G / 32; ++k) {
    StoreActSubBlock(ActQuant(v[k], inv), scale, g * (G / 32) + k, q, d, sum);
  }
}

// SwiGLU as SiluMulKernel computes it, a warp per G-value group, then the
// group quantized from the values in registers.
template <int G>
__global__ void SiluMulQuantKernel(float* gate, const float* up, int64_t n_groups, int64_t d,
                                   ActQ act) {
  PdlTrigger();  // the down projection may launch and start its weight copies
  PdlWait();     // launched with PdlLaunch: gate and up are written
  const int64_t gw = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  if (gw >= n_groups) return;  // whole warps: n_groups is exact per warp
  const int lane = threadIdx.x % 32;
  const int64_t t = gw / (d / G), g = gw % (d / G);
  float* row = gate + t * d;
  // Every load issued before the first store (gate and up may alias as far
  // as the compiler knows, so it would not hoist them itself).
  float gv[G / 32], uv[G / 32];
#pragma unroll
  for (int k = 0; k < G / 32; ++k) {
    gv[k] = row[g * G + k * 32 + lane];
    uv[k] = up[t * d + g * G + k * 32 + lane];
  }
#pragma unroll
  for (int k = 0; k < G / 32; ++k) {
    const float silu = __fdiv_rn(gv[k], __fadd_rn(1.0f, expf(-gv[k])));
    row[g * G + k * 32 + lane] = __fmul_rn(silu, uv[k]);
  }
  __syncwarp();
  QuantizeGroupWarp<G>(row, g, act.q + t * d, act.d + t * (d / 32), act.sum + t * (d / 32));
}

__global__ void AddKernel(float* x, const float* y, int64_t count) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) x[i] = __fadd_rn(x[i], y[i]);
}

__global__ void AddBiasKernel(float* y, const float* b, int64_t n, int64_t d) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n * d) y[i] = __fadd_rn(y[i], b[i % d]);
}

__global__ void SiluMulKernel(float* gate, const float* up, int64_t count) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const float g = gate[i];
  const float silu = __fdiv_rn(g, __fadd_rn(1.0f, expf(-g)));
  gate[i] = __fmul_rn(silu, up[i]);
}

__global__ void GatherRowsKernel(const float* x, const int32_t* rows, int64_t d, float* out) {
  const int64_t i = blockIdx.x;
  const float* src = x + static_cast<int64_t>(rows[i]) * d;
  for (int64_t k = threadIdx.x; k < d; k += blockDim.x) out[i * d + k] = src[k];
}

// One block; rows in i order so a row that appears several times accumulates
// its terms in a fixed order (each thread owns columns, rows run serially).
__global__ void ScatterAxpyKernel(const float* src, const int32_t* rows, const float* weights,
                                  int64_t n_rows, int64_t d, float* out) {
  for (int64_t i = 0; i < n_rows; ++i) {
    float* o = out + static_cast<int64_t>(rows[i]) * d;
    const float a = weights[i];
    for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < d;
         k += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      o[k] = __fmaf_rn(a, src[i * d + k], o[k]);
    }
  }
}

// RoPE of every head's first rope_dims values in place: thread i takes pairs
// i, i + blockDim.x, ..., kU at a time with all their loads issued before
// any store (the stores could alias the loads as far as the compiler knows,
// so it would not hoist them itself). Pairs are disjoint: any order is the
// same bits.
__device__ __forceinline__ void RopeHeads(float* v, int64_t n_heads, int64_t head_dim,
                                          int64_t rope_dims, const float* cs, bool neox) {
  constexpr int kU = 4;
  const int half = static_cast<int>(rope_dims / 2), hd = static_cast<int>(head_dim);
  const int total = static_cast<int>(n_heads) * half;
  const int step = static_cast<int>(blockDim.x);
  for (int p0 = threadIdx.x; p0 < total; p0 += kU * step) {
    float a[kU], b[kU], c[kU], sn[kU];
    int i0[kU], i1[kU];
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const int p = p0 + u * step;
      if (p < total) {
        const int h = p / half, i = p % half;
        i0[u] = h * hd + (neox ? i : 2 * i);
        i1[u] = h * hd + (neox ? i + half : 2 * i + 1);
        c[u] = cs[2 * i];
        sn[u] = cs[2 * i + 1];
        a[u] = v[i0[u]];
        b[u] = v[i1[u]];
      }
    }
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      if (p0 + u * step < total) {
        v[i0[u]] = __fsub_rn(__fmul_rn(a[u], c[u]), __fmul_rn(b[u], sn[u]));
        v[i1[u]] = __fadd_rn(__fmul_rn(a[u], sn[u]), __fmul_rn(b[u], c[u]));
      }
    }
  }
}

// Rows src[0..dim) (heads of hd values) into a KV block at token row `row`
// (head h's row at h * bt + row), F16 or F32: kU values per thread issued
// before their stores, as RopeHeads.
__device__ __forceinline__ void StoreKvRows(const float* src, uint8_t* base, int64_t dim,
                                            int64_t hd, int64_t bt, int64_t row, bool f16) {
  constexpr int kU = 4;
  const int n = static_cast<int>(dim), step = static_cast<int>(blockDim.x);
  for (int i0 = threadIdx.x; i0 < n; i0 += kU * step) {
    float v[kU];
#pragma unroll
    for (int u = 0; u < kU; ++u) v[u] = i0 + u * step < n ? src[i0 + u * step] : 0.0f;
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const int i = i0 + u * step;
      if (i >= n) continue;
      const int64_t h = i / static_cast<int>(hd), e = i % static_cast<int>(hd);
      const int64_t at = (h * bt + row) * hd + e;
      if (f16) {
        reinterpret_cast<__half*>(base)[at] = __float2half_rn(v[u]);
      } else {
        reinterpret_cast<float*>(base)[at] = v[u];
      }
    }
  }
}

// RMSNorm of v[0..n) in place with weight w (block-wide).
__device__ __forceinline__ void NormInPlace(float* v, int64_t n, const float* w, float eps,
                                            float* red) {
  const float scale = RmsScale(BlockSumSq(v, n, red), n, eps);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) v[i] = __fmul_rn(__fmul_rn(v[i], scale), w[i]);
  __syncthreads();
}

// One block per token: q/k norm, RoPE of q and k, then K/V rows into the
// token's block (head-major: head h's row at h * block_tokens + row).
__global__ void QkRopeStoreKernel(QkRopeStoreArgs a, KvLayout kv, BatchDev b) {
  __shared__ float red[kRowThreads];
  PdlTrigger();  // attention may launch (it waits for this kernel's K/V rows)
  PdlWait();     // launched with PdlLaunch: q, k, v are written
  const int64_t t = blockIdx.x;
  const AttentionShape& s = a.shape;
  const int64_t q_dim = s.n_heads * s.head_dim_k;
  const int64_t kd = s.n_kv_heads * s.head_dim_k, vd = s.n_kv_heads * s.head_dim_v;
  float* qt = a.q + t * q_dim;
  float* kt = a.k + t * kd;
  if (a.norm == QkNorm::kWhole) {
    NormInPlace(qt, q_dim, a.q_norm, a.eps, red);
    NormInPlace(kt, kd, a.k_norm, a.eps, red);
  } else if (a.norm == QkNorm::kPerHead) {
    for (int64_t h = 0; h < s.n_heads; ++h) NormInPlace(qt + h * s.head_dim_k, s.head_dim_k, a.q_norm, a.eps, red);
    for (int64_t h = 0; h < s.n_kv_heads; ++h) NormInPlace(kt + h * s.head_dim_k, s.head_dim_k, a.k_norm, a.eps, red);
  }
  const float* cs = a.rope + t * a.rope_dims;
  RopeHeads(qt, s.n_heads, s.head_dim_k, a.rope_dims, cs, a.neox);
  RopeHeads(kt, s.n_kv_heads, s.head_dim_k, a.rope_dims, cs, a.neox);
  __syncthreads();
  const int64_t bt = kv.block_tokens;
  const int32_t pos = b.pos[t];
  const int32_t block = b.block_table[static_cast<int64_t>(b.seq[t]) * b.max_blocks + pos / bt];
  const int64_t row = pos % bt;
  uint8_t* kb = KvK(kv, block, a.layer);
  uint8_t* vb = KvV(kv, block, a.layer);
  const float* vt = a.v + t * vd;
  if (kv.type == DType::kQ8_0) {
    // One thread per group of a row: the CPU's StoreKvRow arithmetic.
    const int64_t gk = s.head_dim_k < 32 ? s.head_dim_k : 32;
    const int64_t gv = s.head_dim_v < 32 ? s.head_dim_v : 32;
    for (int64_t i = threadIdx.x; i < kd / gk + vd / gv; i += blockDim.x) {
      const bool is_k = i < kd / gk;
      const int64_t gi = is_k ? i : i - kd / gk;
      const int64_t g = is_k ? gk : gv, hd = is_k ? s.head_dim_k : s.head_dim_v;
      const int64_t h = gi * g / hd, within = gi * g % hd;
      const float* x = (is_k ? kt : vt) + gi * g;
      uint8_t* dst = (is_k ? kb : vb) + (h * bt + row) * (is_k ? kv.k_row_bytes : kv.v_row_bytes) +
                     (within / g) * (2 + g);
      float amax = 0.0f;
      for (int64_t e = 0; e < g; ++e) amax = fmaxf(amax, fabsf(x[e]));
      const __half dh = __float2half_rn(__fdiv_rn(amax, 127.0f));
      const float d = __half2float(dh);
      const float id = d != 0.0f ? __fdiv_rn(1.0f, d) : 0.0f;
      const unsigned short bits = __half_as_ushort(dh);
      dst[0] = static_cast<uint8_t>(bits & 0xFF);
      dst[1] = static_cast<uint8_t>(bits >> 8);
      for (int64_t e = 0; e < g; ++e) {
        float v = rintf(__fmul_rn(x[e], id));
        v = fminf(127.0f, fmaxf(-127.0f, v));
        reinterpret_cast<int8_t*>(dst + 2)[e] = static_cast<int8_t>(v);
      }
    }
    return;
  }
  const bool f16 = kv.type == DType::kF16;
  StoreKvRows(kt, kb, kd, s.head_dim_k, bt, row, f16);
  StoreKvRows(vt, vb, vd, s.head_dim_v, bt, row, f16);
}

}  // namespace

void LaunchEmbed(DType type, const uint8_t* table, int64_t row_bytes, int64_t d,
                 const int32_t* tokens, int64_t n, float* x, cudaStream_t s) {
  const unsigned grid = static_cast<unsigned>(n);
  switch (type) {
    case DType::kQ8_0:
      EmbedQuantKernel<static_cast<int>(DType::kQ8_0), 1, kQ8_0Bytes><<<grid, 128, 0, s>>>(table, row_bytes, d, tokens, x);
      break;
    case DType::kQ4_0:
      EmbedQuantKernel<static_cast<int>(DType::kQ4_0), 1, kQ4_0Bytes><<<grid, 128, 0, s>>>(table, row_bytes, d, tokens, x);
      break;
    case DType::kQ4_K:
      EmbedQuantKernel<static_cast<int>(DType::kQ4_K), 8, kQ4KBytes><<<grid, 128, 0, s>>>(table, row_bytes, d, tokens, x);
      break;
    case DType::kQ6_K:
      EmbedQuantKernel<static_cast<int>(DType::kQ6_K), 8, kQ6KBytes><<<grid, 128, 0, s>>>(table, row_bytes, d, tokens, x);
      break;
    case DType::kF32:
      EmbedFloatKernel<0><<<grid, 256, 0, s>>>(table, row_bytes, d, tokens, x);
      break;
    case DType::kF16:
      EmbedFloatKernel<1><<<grid, 256, 0, s>>>(table, row_bytes, d, tokens, x);
      break;
    default:
      EmbedFloatKernel<2><<<grid, 256, 0, s>>>(table, row_bytes, d, tokens, x);
      break;
  }
}

void LaunchRopeTable(const int32_t* pos, int64_t n, const float* inv_freq, int64_t rope_dims,
                     float* rope, cudaStream_t s) {
  const int64_t half = rope_dims / 2;
  if (n * half == 0) return;
  RopeTableKernel<<<Blocks(n * half, 256), 256, 0, s>>>(pos, n, inv_freq, half, rope);
}

void LaunchSiluMulQuant(float* gate, const float* up, int64_t n, int64_t d, int group,
                        const ActQ& act, cudaStream_t s) {
  const int64_t groups = n * (d / group);
  const unsigned blocks = Blocks(groups * 32, 256);
  if (group == 256) {
    PdlLaunch(SiluMulQuantKernel<256>, dim3(blocks), dim3(256), 0, s, gate, up, groups, d, act);
  } else {
    PdlLaunch(SiluMulQuantKernel<32>, dim3(blocks), dim3(256), 0, s, gate, up, groups, d, act);
  }
}

void LaunchAdd(float* x, const float* y, int64_t count, cudaStream_t s) {
  AddKernel<<<Blocks(count, 256), 256, 0, s>>>(x, y, count);
}

void LaunchAddBias(float* y, const float* b, int64_t n, int64_t d, cudaStream_t s) {
  AddBiasKernel<<<Blocks(n * d, 256), 256, 0, s>>>(y, b, n, d);
}

void LaunchSiluMul(float* gate, const float* up, int64_t count, cudaStream_t s) {
  SiluMulKernel<<<Blocks(count, 256), 256, 0, s>>>(gate, up, count);
}

void LaunchGatherRows(const float* x, const int32_t* rows, int64_t n_rows, int64_t d, float* out,
                      cudaStream_t s) {
  if (n_rows == 0) return;
  GatherRowsKernel<<<static_cast<unsigned>(n_rows), 256, 0, s>>>(x, rows, d, out);
}

void LaunchScatterAxpy(const float* src, const int32_t* rows, const float* weights,
                       int64_t n_rows, int64_t d, float* out, cudaStream_t s) {
  if (n_rows == 0) return;
  ScatterAxpyKernel<<<Blocks(d, 256), 256, 0, s>>>(src, rows, weights, n_rows, d, out);
}

void LaunchQkRopeStore(const QkRopeStoreArgs& a, const BatchDev& b, cudaStream_t s) {
  PdlLaunch(QkRopeStoreKernel, dim3(static_cast<unsigned>(b.n)), dim3(kRowThreads), 0, s, a,
            *a.kv, b);
}

}  // namespace reprise::kernels::cuda
