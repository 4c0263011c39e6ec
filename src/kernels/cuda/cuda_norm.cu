// CUDA RMSNorm, plain and fused with the residual add, optionally writing its
// output's int8 activations for the next decode matmul.
//
// One thread block per row, so a row's bits depend only on that row. Two
// shapes, picked by d alone (RmsRowWarps), so every batch of one model runs
// the same arithmetic:
//  - the row shape, for d = 128 * W * K (W <= 16 warps, K <= 8): warp w owns
//    the values [w S, (w + 1) S), S = d / W, lane l the float4s l, l + 32,
//    ... of that run (each load instruction reads 512 contiguous bytes). The
//    row is read once into registers (x, y and w issued together), reduced,
//    and written once: one memory round trip where the loop shape below
//    makes three. Sum of squares: each lane over its values in (float4,
//    component) order with fused multiply-adds, the warp's butterfly
//    (WarpSum), then the warps' sums in warp order.
//  - the loop shape, for any other d: thread i adds elements i, i + 256, ...
//    in order, then BlockSum's fixed tree.
// The row shape can also quantize its output from registers (G = 32 or 256
// values per scale; a group never straddles two warps): amax is a max and the
// per-32 sums are integers, so the bytes are LaunchQuantizeAct's for the
// same floats, in any lane order.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/cuda_subblock.cuh"

namespace reprise::kernels::cuda {
namespace {

constexpr int kLoopThreads = 256;
constexpr int kRowMaxK = 8;
constexpr int kRowMaxWarps = 16;

__global__ void RmsNormLoopKernel(const float* x, const float* w, int64_t d, float eps,
                                  float* out) {
  __shared__ float red[kLoopThreads];
  const int64_t t = blockIdx.x;
  const float* xr = x + t * d;
  const float scale = RmsScale(BlockSumSq(xr, d, red), d, eps);
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    const float v = __fmul_rn(xr[i], scale);
    out[t * d + i] = w != nullptr ? __fmul_rn(v, w[i]) : v;
  }
}

__global__ void AddRmsNormLoopKernel(float* x, const float* y, const float* w, int64_t d,
                                     float eps, float* out) {
  __shared__ float red[kLoopThreads];
  const int64_t t = blockIdx.x;
  float* xr = x + t * d;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) xr[i] = __fadd_rn(xr[i], y[t * d + i]);
  __syncthreads();
  const float scale = RmsScale(BlockSumSq(xr, d, red), d, eps);
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    out[t * d + i] = __fmul_rn(__fmul_rn(xr[i], scale), w[i]);
  }
}

__device__ __forceinline__ float4 Add4(float4 a, float4 b) {
  return make_float4(__fadd_rn(a.x, b.x), __fadd_rn(a.y, b.y), __fadd_rn(a.z, b.z),
                     __fadd_rn(a.w, b.w));
}

// The row shape. x is written (x += y) only when kAdd; in place is fine
// (out == x or out == y): the whole row is read before anything is written.
template <int K, bool kAdd, int G>
__global__ void __launch_bounds__(kRowMaxWarps * 32)
    RmsRowKernel(float* x, const float* y, const float* w, int64_t d, float eps, float* out,
                 ActQ act) {
  __shared__ float red[kRowMaxWarps];
  PdlTrigger();  // the matmul after it may launch and start its weight copies
  PdlWait();     // launched with PdlLaunch: x and y are written, out's last readers done
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, n_warps = blockDim.x / 32;
  const int64_t t = blockIdx.x;
  const int64_t seg = static_cast<int64_t>(warp) * (128 * K);  // this warp's first value
  float4* xr = reinterpret_cast<float4*>(x + t * d + seg);
  float4 v[K], wv[K];
#pragma unroll
  for (int k = 0; k < K; ++k) v[k] = xr[lane + 32 * k];
  if constexpr (kAdd) {
    const float4* yr = reinterpret_cast<const float4*>(y + t * d + seg);
    float4 yv[K];
#pragma unroll
    for (int k = 0; k < K; ++k) yv[k] = yr[lane + 32 * k];
#pragma unroll
    for (int k = 0; k < K; ++k) v[k] = Add4(v[k], yv[k]);
  }
  if (w != nullptr) {
    const float4* wr = reinterpret_cast<const float4*>(w + seg);
#pragma unroll
    for (int k = 0; k < K; ++k) wv[k] = wr[lane + 32 * k];
  }
  float acc = 0.0f;
#pragma unroll
  for (int k = 0; k < K; ++k) {
    acc = __fmaf_rn(v[k].x, v[k].x, acc);
    acc = __fmaf_rn(v[k].y, v[k].y, acc);
    acc = __fmaf_rn(v[k].z, v[k].z, acc);
    acc = __fmaf_rn(v[k].w, v[k].w, acc);
  }
  acc = WarpSum(acc);
  if (lane == 0) red[warp] = acc;
  __syncthreads();  // also: every warp has read its x and y
  float sum = red[0];
  for (int i = 1; i < n_warps; ++i) sum = __fadd_rn(sum, red[i]);
  const float scale = RmsScale(sum, d, eps);
  if constexpr (kAdd) {
#pragma unroll
    for (int k = 0; k < K; ++k) xr[lane + 32 * k] = v[k];
  }
  float4* outr = reinterpret_cast<float4*>(out + t * d + seg);
#pragma unroll
  for (int k = 0; k < K; ++k) {
    float4 o = make_float4(__fmul_rn(v[k].x, scale), __fmul_rn(v[k].y, scale),
                           __fmul_rn(v[k].z, scale), __fmul_rn(v[k].w, scale));
    if (w != nullptr) {
      o = make_float4(__fmul_rn(o.x, wv[k].x), __fmul_rn(o.y, wv[k].y), __fmul_rn(o.z, wv[k].z),
                      __fmul_rn(o.w, wv[k].w));
    }
    outr[lane + 32 * k] = o;
    v[k] = o;  // what gets quantized
  }
  if constexpr (G > 0) {
    // Group of float4 (lane, k): G = 256: k / 2 (all lanes of k = 2m, 2m + 1);
    // G = 32: lanes 8j .. 8j + 7 of one k. Sub-block (32 values): those 8 lanes.
    float amax[K];
#pragma unroll
    for (int k = 0; k < K; ++k) {
      amax[k] = fmaxf(fmaxf(fabsf(v[k].x), fabsf(v[k].y)), fmaxf(fabsf(v[k].z), fabsf(v[k].w)));
    }
    if constexpr (G == 256) {
      static_assert(K % 2 == 0, "a 256-value group is two float4 per lane");
#pragma unroll
      for (int k = 0; k < K; k += 2) amax[k] = amax[k + 1] = WarpMax(fmaxf(amax[k], amax[k + 1]));
    } else {
#pragma unroll
      for (int k = 0; k < K; ++k) {
        for (int o = 1; o < 8; o <<= 1) amax[k] = fmaxf(amax[k], __shfl_xor_sync(0xffffffffu, amax[k], o));
      }
    }
    const int64_t sub0 = (t * d + seg) / 32;  // the warp's first sub-block in act.d / act.sum
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const float sc = ActScale(amax[k]);
      const float inv = ActInvScale(sc);
      const int q0 = ActQuant(v[k].x, inv), q1 = ActQuant(v[k].y, inv);
      const int q2 = ActQuant(v[k].z, inv), q3 = ActQuant(v[k].w, inv);
      const uint32_t packed = (static_cast<uint32_t>(q0) & 0xFFu) |
                              ((static_cast<uint32_t>(q1) & 0xFFu) << 8) |
                              ((static_cast<uint32_t>(q2) & 0xFFu) << 16) |
                              ((static_cast<uint32_t>(q3) & 0xFFu) << 24);
      reinterpret_cast<uint32_t*>(act.q + t * d + seg)[lane + 32 * k] = packed;
      int s = q0 + q1 + q2 + q3;
      for (int o = 1; o < 8; o <<= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
      if (lane % 8 == 0) {
        const int64_t b = sub0 + (lane + 32 * k) / 8;
        act.d[b] = sc;
        act.sum[b] = s;
      }
    }
  }
}

// Warps of the row shape for d (0: the loop shape). K = d / (128 W) in
// [1, 8]: an even K first (a 256-value group then stays in one warp), then K
// nearest 4 (loads in flight per lane), then more warps.
int RmsRowWarps(int64_t d) {
  if (d <= 0 || d % 128 != 0) return 0;
  const int64_t units = d / 128;
  int best = 0;
  int64_t best_key = 0;
  for (int wn = 1; wn <= kRowMaxWarps; ++wn) {
    if (units % wn != 0 || units / wn > kRowMaxK) continue;
    const int64_t k = units / wn;
    const int64_t key = (k % 2) * 1000 + (k > 4 ? k - 4 : 4 - k) * 100 + (kRowMaxWarps - wn);
    if (best == 0 || key < best_key) {
      best = wn;
      best_key = key;
    }
  }
  return best;
}

template <bool kAdd, int G>
void LaunchRow(int k, int warps, float* x, const float* y, const float* w, int64_t n, int64_t d,
               float eps, float* out, const ActQ& act, cudaStream_t s) {
  const dim3 grid(static_cast<unsigned>(n)), block(static_cast<unsigned>(warps * 32));
#define REPRISE_ROW_CASE(KK)                                                  \
  case KK:                                                                    \
    if constexpr (G != 256 || KK % 2 == 0) {                                  \
      PdlLaunch(RmsRowKernel<KK, kAdd, G>, grid, block, 0, s, x, y, w, d, eps, out, act); \
    }                                                                         \
    break;
  switch (k) {
    REPRISE_ROW_CASE(1)
    REPRISE_ROW_CASE(2)
    REPRISE_ROW_CASE(3)
    REPRISE_ROW_CASE(4)
    REPRISE_ROW_CASE(5)
    REPRISE_ROW_CASE(6)
    REPRISE_ROW_CASE(7)
    REPRISE_ROW_CASE(8)
    default: CHECK_MSG(false, "row norm: K = %d", k);
  }
#undef REPRISE_ROW_CASE
}

template <bool kAdd>
void LaunchNorm(float* x, const float* y, const float* w, int64_t n, int64_t d, float eps,
                float* out, int group, const ActQ& act, cudaStream_t s) {
  if (n <= 0) return;
  const int warps = RmsRowWarps(d);
  if (warps == 0) {
    CHECK_MSG(group == 0, "a fused quantization needs the row shape (d = %lld)",
              static_cast<long long>(d));
    if constexpr (kAdd) {
      AddRmsNormLoopKernel<<<static_cast<unsigned>(n), kLoopThreads, 0, s>>>(x, y, w, d, eps, out);
    } else {
      RmsNormLoopKernel<<<static_cast<unsigned>(n), kLoopThreads, 0, s>>>(x, w, d, eps, out);
    }
    return;
  }
  const int k = static_cast<int>(d / (128 * warps));
  const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  CHECK_MSG(aligned(x) && aligned(y) && aligned(w) && aligned(out) && aligned(act.q),
            "row norm: buffers must be 16-byte aligned");
  CHECK_MSG(group == 0 || RmsNormQuantFits(d, group), "fused quantization: group %d, d = %lld",
            group, static_cast<long long>(d));
  if (group == 256) {
    LaunchRow<kAdd, 256>(k, warps, x, y, w, n, d, eps, out, act, s);
  } else if (group == 32) {
    LaunchRow<kAdd, 32>(k, warps, x, y, w, n, d, eps, out, act, s);
  } else {
    LaunchRow<kAdd, 0>(k, warps, x, y, w, n, d, eps, out, act, s);
  }
}

}  // namespace

bool RmsNormQuantFits(int64_t d, int group) {
  const int warps = RmsRowWarps(d);
  if (warps == 0) return false;
  const int64_t k = d / (128 * warps);
  return group == 32 || (group == 256 && k % 2 == 0);
}

void LaunchRmsNorm(const float* x, const float* w, int64_t n, int64_t d, float eps, float* out,
                   cudaStream_t s) {
  LaunchNorm<false>(const_cast<float*>(x), nullptr, w, n, d, eps, out, 0, ActQ{}, s);
}

void LaunchAddRmsNorm(float* x, const float* y, const float* w, int64_t n, int64_t d, float eps,
                      float* out, cudaStream_t s) {
  LaunchNorm<true>(x, y, w, n, d, eps, out, 0, ActQ{}, s);
}

void LaunchRmsNormQuant(const float* x, const float* w, int64_t n, int64_t d, float eps,
                        float* out, int group, const ActQ& act, cudaStream_t s) {
  LaunchNorm<false>(const_cast<float*>(x), nullptr, w, n, d, eps, out, group, act, s);
}

void LaunchAddRmsNormQuant(float* x, const float* y, const float* w, int64_t n, int64_t d,
                           float eps, float* out, int group, const ActQ& act, cudaStream_t s) {
  LaunchNorm<true>(x, y, w, n, d, eps, out, group, act, s);
}

}  // namespace reprise::kernels::cuda
