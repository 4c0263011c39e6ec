// Internal to the CUDA backend: error checks, the weight block formats as the
// device reads them, and reductions with a fixed order. Every float operation
// that decides a result's bits is written with explicit round-to-nearest
// operations (FMul, FAdd, FSub, FFma, FDiv: the __f*_rn intrinsics on the
// device) so nvcc's FMA contraction can never make two kernels that share a
// device function disagree. The block decoders and the per-block arithmetic
// are __host__ __device__: the host emulation in cuda_matmul.cu runs the very
// same code, so CPU-only machines test it against the CPU reference.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/fp16.h"
#include "core/status.h"
#include "kernels/backend.h"

#define REPRISE_HD __host__ __device__ __forceinline__

namespace reprise::kernels::cuda {

// A Status from a CUDA runtime error code, naming what failed.
Status CudaStatus(cudaError_t err, const char* what);

// A kernel switch from the environment: on unless `name` is set to "0"
// (REPRISE_CUDA_MMA, REPRISE_CUDA_FLOAT_TILES: to measure a fast path or
// rule it out; either way the bits are the same).
bool EnvSwitchOn(const char* name);
// An opt-in switch: on only when `name` is set to "1" (kernels not yet
// validated on a GPU, or measured slower).
bool EnvIsOne(const char* name);

// Programmatic dependent launch (sm_90 and up; REPRISE_CUDA_PDL=0: off). A
// kernel launched with PdlLaunch may start while the kernel before it on the
// stream still runs, so it calls PdlWait() before it reads anything an
// earlier kernel wrote or writes anything one may still read; what it does
// before (the staged GEMV's first weight copies: weights never change) then
// overlaps the kernel before. PdlTrigger() in a kernel lets the next one
// start once every block of this one has called it or exited. Both are
// no-ops below sm_90 and in a kernel launched without the attribute; a
// kernel that never calls PdlWait must be launched the plain way.
__device__ __forceinline__ void PdlWait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void PdlTrigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
// Whether PdlLaunch sets the attribute (the switch, and compute capability 9+).
bool PdlOn();
template <typename... KArgs, typename... Args>
void PdlLaunch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t s,
               Args... args) {
  if (!PdlOn()) {
    kernel<<<grid, block, smem, s>>>(args...);
    return;
  }
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  cudaLaunchKernelEx(&cfg, kernel, args...);  // an error is the stream's last error, as for <<<>>>
}

#define REPRISE_CUDA_RETURN(expr, what)                        \
  do {                                                         \
    cudaError_t err_ = (expr);                                 \
    if (err_ != cudaSuccess) return CudaStatus(err_, (what));  \
  } while (0)

// Element counts of the weight blocks (GGUF / ggml layouts, quant_blocks.h).
constexpr int kQ8_0Bytes = 34;   // f16 d, int8 qs[32]
constexpr int kQ4_0Bytes = 18;   // f16 d, uint8 qs[16]
constexpr int kQ4KBytes = 144;   // f16 d, f16 dmin, uint8 scales[12], uint8 qs[128]
constexpr int kQ6KBytes = 210;   // uint8 ql[128], uint8 qh[64], int8 scales[16], f16 d

// Rows interleaved per group by the weight repack (cuda_matmul.cu): a warp's
// 32 lanes read 32 rows' blocks from consecutive bytes.
constexpr int kRowGroup = 32;
// Tokens one thread accumulates in the matmul kernels.
constexpr int kTokTile = 8;
// Columns per matmul segment (cuda_matmul.cu's canonical order): a multiple
// of every unit's values (32, 256, 4, 8).
constexpr int64_t kSegCols = 512;

// cp.async (sm_80 and later): 16 bytes global -> shared without registers;
// valid false zero-fills the 16 bytes and reads nothing.
__device__ __forceinline__ void CpAsync16(void* smem, const void* gmem, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int bytes = valid ? 16 : 0;  // 0: the 16 bytes are zero-filled, nothing is read
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(bytes));
#else
  (void)smem, (void)gmem, (void)valid;
  __trap();
#endif
}
// cp.async of 4 bytes (any 4-byte aligned address; through L1); valid
// false zero-fills the 4 bytes and reads nothing.
__device__ __forceinline__ void CpAsync4(void* smem, const void* gmem, bool valid = true) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(s), "l"(gmem),
               "r"(valid ? 4 : 0));
#else
  (void)smem, (void)gmem, (void)valid;
  __trap();
#endif
}
__device__ __forceinline__ void CpAsyncCommit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}
template <int kPending>
__device__ __forceinline__ void CpAsyncWait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
#endif
}

REPRISE_HD float FMul(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
REPRISE_HD float FAdd(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
REPRISE_HD float FSub(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
REPRISE_HD float FDiv(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
REPRISE_HD float FFma(float a, float b, float c) {
#ifdef __CUDA_ARCH__
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

// Small integers as floats without the conversion unit (I2F issues at a
// fraction of the FP32 rate): 1.5 * 2^23 + x is a float whose ulp is 1 for
// |x| < 2^22, so the integer x added to its bits gives the float
// 1.5 * 2^23 + x exactly. Every Q8_0 / Q4_0 / Q4_K sub-block sum fits
// (|sum| <= 32 * 128 * 127); Q6_K's scaled sums may not and keep the cast.
constexpr int kSmallIntBias = 0x4B400000;  // the bits of 1.5 * 2^23
constexpr float kSmallIntBiasF = 12582912.0f;
// The float whose bits are u.
REPRISE_HD float BitsToFloat(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
#endif
}
// The float whose bits are `biased` (kSmallIntBias + x: 1.5 * 2^23 + x).
REPRISE_HD float BiasedBits(int biased) { return BitsToFloat(static_cast<uint32_t>(biased)); }

// How many of a warp's four 8-token column tiles hold a token, for a warp
// whose first token is `left` tokens before the end of the batch (<= 0:
// none). The MMA tile kernels skip the rest: outputs never stored.
__device__ __forceinline__ int ColumnTiles(int64_t left) {
  return left <= 0 ? 0 : left >= 32 ? 4 : static_cast<int>((left + 7) / 8);
}

// A warp's tensor-core accumulator tile (kI x kJ mma tiles of 4 values) at a
// segment's end, as the canonical order folds segments: the first segment's
// sums start the totals, each later one is added in order; the segment sums
// restart from +0.
template <int kI, int kJ>
__device__ __forceinline__ void FoldTileSegment(float (&acc)[kI][kJ][4],
                                                float (&total)[kI][kJ][4], bool first) {
#pragma unroll
  for (int i = 0; i < kI; ++i)
#pragma unroll
    for (int j = 0; j < kJ; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        total[i][j][e] = first ? acc[i][j][e] : FAdd(total[i][j][e], acc[i][j][e]);
        acc[i][j][e] = 0.0f;
      }
}

REPRISE_HD float HalfBitsToFloat(uint16_t h) {
#ifdef __CUDA_ARCH__
  return __half2float(__ushort_as_half(h));
#else
  return Fp16ToFp32(h);
#endif
}
REPRISE_HD float Bf16BitsToFloat(uint16_t h) { return BitsToFloat(static_cast<uint32_t>(h) << 16); }
REPRISE_HD uint16_t Ld16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}

// KvLayout::K / V for device code (the header's inline members are host-only).
__device__ __forceinline__ uint8_t* KvK(const KvLayout& kv, int32_t block, int layer) {
  return kv.base + block * kv.block_bytes + layer * kv.k_layer_bytes;
}
__device__ __forceinline__ uint8_t* KvV(const KvLayout& kv, int32_t block, int layer) {
  return kv.base + block * kv.block_bytes + kv.n_layers * kv.k_layer_bytes +
         layer * kv.v_layer_bytes;
}

// Sum over a thread block of per-thread values, in a fixed order (a tree over
// shared memory whose shape depends only on blockDim.x, a power of two <= 1024).
// `red` holds blockDim.x floats. Every thread gets the result.
__device__ __forceinline__ float BlockSum(float v, float* red) {
  const int tid = threadIdx.x;
  red[tid] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (tid < s) red[tid] = __fadd_rn(red[tid], red[tid + s]);
    __syncthreads();
  }
  const float r = red[0];
  __syncthreads();
  return r;
}

// Sum of squares of v[0..n) over the block: thread i adds elements i,
// i + blockDim.x, ... in order, then BlockSum.
__device__ __forceinline__ float BlockSumSq(const float* v, int64_t n, float* red) {
  float acc = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc = __fmaf_rn(v[i], v[i], acc);
  return BlockSum(acc, red);
}

// 1 / sqrt(mean of squares + eps), from a row's sum of squares (every RMSNorm).
__device__ __forceinline__ float RmsScale(float sumsq, int64_t d, float eps) {
  const float mean = __fdiv_rn(sumsq, static_cast<float>(d));
  return __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(mean, eps)));
}

// Warp sum with a fixed xor-butterfly order.
__device__ __forceinline__ float WarpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float WarpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// The integers of sub-block j (32 values) of a quantized weight block and the
// float terms that scale them; the same function serves every matmul kernel
// and the embedding lookup, so they read a block identically.
//   Q8_0 / Q4_0 (j = 0): value = d * q
//   Q4_K (j < 8):        value = d * sc * q - dmin * m   (q in [0, 15])
//   Q6_K (j < 8):        value = d * sc[i / 16] * q       (q in [-32, 31])
struct SubBlock {
  alignas(16) int8_t q[32];
  float d = 0.0f;
  float dmin = 0.0f;
  int sc0 = 1, sc1 = 1;  // Q6_K: the two 16-value scales; Q4_K: sc0 = scale
  int m = 0;             // Q4_K min
};

REPRISE_HD void LoadSubBlockQ8_0(const uint8_t* b, SubBlock* s) {
  s->d = HalfBitsToFloat(Ld16(b));
  for (int i = 0; i < 32; ++i) s->q[i] = static_cast<int8_t>(b[2 + i]);
}

REPRISE_HD void LoadSubBlockQ4_0(const uint8_t* b, SubBlock* s) {
  s->d = HalfBitsToFloat(Ld16(b));
  for (int i = 0; i < 16; ++i) {
    const uint8_t v = b[2 + i];
    s->q[i] = static_cast<int8_t>((v & 0xF) - 8);
    s->q[i + 16] = static_cast<int8_t>((v >> 4) - 8);
  }
}

// Sub-block j's 6-bit scale and min from the 12 scale bytes, q(i) giving
// byte i (a pointer read, or a byte of words already in registers).
template <class Byte>
REPRISE_HD void ScaleMinK4From(int j, const Byte& q, int* sc, int* m) {
  if (j < 4) {
    *sc = q(j) & 63;
    *m = q(j + 4) & 63;
  } else {
    *sc = (q(j + 4) & 0xF) | ((q(j - 4) >> 6) << 4);
    *m = (q(j + 4) >> 4) | ((q(j) >> 6) << 4);
  }
}
REPRISE_HD void ScaleMinK4(int j, const uint8_t* q, int* sc, int* m) {
  ScaleMinK4From(j, [q](int i) { return static_cast<int>(q[i]); }, sc, m);
}

REPRISE_HD void LoadSubBlockQ4K(const uint8_t* b, int j, SubBlock* s) {
  s->d = HalfBitsToFloat(Ld16(b));
  s->dmin = HalfBitsToFloat(Ld16(b + 2));
  ScaleMinK4(j, b + 4, &s->sc0, &s->m);
  const uint8_t* qs = b + 16 + 32 * (j / 2);
  const int shift = (j % 2) * 4;
  for (int i = 0; i < 32; ++i) s->q[i] = static_cast<int8_t>((qs[i] >> shift) & 0xF);
}

REPRISE_HD void LoadSubBlockQ6K(const uint8_t* b, int j, SubBlock* s) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  s->d = HalfBitsToFloat(Ld16(b + 208));
  const int half = j / 4, quarter = j % 4;
  ql += 64 * half;
  qh += 32 * half;
  sc += 8 * half;
  for (int l = 0; l < 32; ++l) {
    const int lo = quarter == 0 ? (ql[l] & 0xF)
                   : quarter == 1 ? (ql[l + 32] & 0xF)
                   : quarter == 2 ? (ql[l] >> 4)
                                  : (ql[l + 32] >> 4);
    const int hi = (qh[l] >> (2 * quarter)) & 3;
    s->q[l] = static_cast<int8_t>((lo | (hi << 4)) - 32);
  }
  s->sc0 = sc[2 * quarter];
  s->sc1 = sc[2 * quarter + 1];
}

// Sub-block j of a quantized unit as 32 floats: the value each weight stands
// for, computed as the CPU reference's DequantizeRow computes it.
template <int kType>
REPRISE_HD void DequantSub(const uint8_t* unit, int j, float* out) {
  SubBlock s;
  if constexpr (kType == static_cast<int>(DType::kQ8_0)) {
    LoadSubBlockQ8_0(unit, &s);
  } else if constexpr (kType == static_cast<int>(DType::kQ4_0)) {
    LoadSubBlockQ4_0(unit, &s);
  } else if constexpr (kType == static_cast<int>(DType::kQ4_K)) {
    LoadSubBlockQ4K(unit, j, &s);
  } else {
    LoadSubBlockQ6K(unit, j, &s);
  }
  for (int i = 0; i < 32; ++i) {
    const float q = static_cast<float>(s.q[i]);
    float v;
    if constexpr (kType == static_cast<int>(DType::kQ4_K)) {
      v = FSub(FMul(FMul(s.d, static_cast<float>(s.sc0)), q), FMul(s.dmin, static_cast<float>(s.m)));
    } else if constexpr (kType == static_cast<int>(DType::kQ6_K)) {
      v = FMul(FMul(s.d, static_cast<float>(i < 16 ? s.sc0 : s.sc1)), q);
    } else {
      v = FMul(q, s.d);
    }
    out[i] = v;
  }
}

// Run-time type dispatch of DequantSub (host emulation).
inline void DequantSub32(DType type, const uint8_t* unit, int j, float* out) {
  switch (type) {
    case DType::kQ8_0: DequantSub<static_cast<int>(DType::kQ8_0)>(unit, j, out); break;
    case DType::kQ4_0: DequantSub<static_cast<int>(DType::kQ4_0)>(unit, j, out); break;
    case DType::kQ4_K: DequantSub<static_cast<int>(DType::kQ4_K)>(unit, j, out); break;
    default: DequantSub<static_cast<int>(DType::kQ6_K)>(unit, j, out); break;
  }
}

}  // namespace reprise::kernels::cuda
