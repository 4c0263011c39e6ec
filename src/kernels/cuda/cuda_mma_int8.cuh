// Internal to the int8 tensor-core matmuls (cuda_matmul_quant.cu,
// cuda_matmul_q32_pipe.cu): their tile, the mma.sync wrappers and the exact
// small-integer conversion. Owns no state.
#pragma once

#include <cstdint>

#include "kernels/cuda/cuda_common.cuh"

namespace reprise::kernels::cuda {

constexpr int kMmaRows = 64, kMmaToks = 64;  // a block's tile: rows x tokens

// D = c + A B (every element of C is c), A 16 x 32 (row), B 32 x 8 (col): a0 /
// a1 rows g / g + 8 at k 4 q4 .., a2 / a3 the same rows at k 16 + 4 q4 ..; b0
// k 4 q4 .., b1 k 16 + 4 q4 .., token g. Integer sums: exact, in any order.
__device__ __forceinline__ void MmaS8K32(int a0, int a1, int a2, int a3, int b0, int b1,
                                         int (&d)[4], int c = 0) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "r"(c), "r"(c), "r"(c), "r"(c));
#else
  d[0] = d[1] = d[2] = d[3] = 0;
  __trap();
#endif
}

__device__ __forceinline__ void MmaS8K16(int a0, int a1, int b0, int (&d)[4]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5}, {%6}, "
      "{%7,%8,%9,%10};\n"
      : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
      : "r"(a0), "r"(a1), "r"(b0), "r"(0), "r"(0), "r"(0), "r"(0));
#else
  d[0] = d[1] = d[2] = d[3] = 0;
  __trap();
#endif
}

// static_cast<float>(x) for |x| < 2^22, bit for bit (kSmallIntBias,
// cuda_common.cuh): subtracting 1.5 * 2^23 from x's biased bits is exact.
__device__ __forceinline__ float SmallIntToFloat(int x) {
  return __fsub_rn(BiasedBits(x + kSmallIntBias), kSmallIntBiasF);
}

// The pipelined Q8_0 / Q4_0 prefill kernel (cuda_matmul_q32_pipe.cu, opt-in:
// MmaPipe32On): MatMulQuantMmaKernel's arithmetic with each 256-column
// stage's raw units, activations and scales copied a stage ahead.
void LaunchMatMulQ32Pipe(DType type, const uint8_t* w, int64_t rows, int64_t n_units,
                         const int8_t* xq, const float* xd, int64_t cols, int64_t n, float* y,
                         int64_t ldy, cudaStream_t s);

}  // namespace reprise::kernels::cuda
