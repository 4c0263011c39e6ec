// Shared by the GPU kernel benches (gemv_bench, decode_ops_bench), built
// only with REPRISE_HAVE_CUDA: a CUDA error check that ends the program,
// device buffers, reproducible input values, and the timing loop (launches
// back to back on one stream, CUDA events around them).
#pragma once

#include <cuda_runtime.h>
#include <errno.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

// Prints the failing call and CUDA's message, then exits 1.
#define BENCH_CUDA_CHECK(expr)                                                   \
  do {                                                                           \
    cudaError_t e_ = (expr);                                                     \
    if (e_ != cudaSuccess) {                                                     \
      std::fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, #expr, \
                   cudaGetErrorString(e_));                                      \
      std::exit(1);                                                              \
    }                                                                            \
  } while (0)

namespace reprise::bench {

// Whether a GPU is visible; if not, says so on stderr.
inline bool HaveGpu() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::fprintf(stderr, "%s: no GPU\n", program_invocation_short_name);
    return false;
  }
  return true;
}

// count T on the device, every byte fill_byte.
template <class T>
T* DevAlloc(int64_t count, int fill_byte = 0) {
  T* p = nullptr;
  BENCH_CUDA_CHECK(cudaMalloc(&p, sizeof(T) * static_cast<size_t>(count)));
  BENCH_CUDA_CHECK(cudaMemset(p, fill_byte, sizeof(T) * static_cast<size_t>(count)));
  return p;
}

// n values in [-1, 1), the same on every run.
inline std::vector<float> BenchValues(int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (size_t i = 0; i < v.size(); ++i) {
    v[i] = static_cast<float>((i * 2654435761u) % 1000) / 500.0f - 1.0f;
  }
  return v;
}

// Microseconds per launch: `warmup` launches, then `iters` timed back to back
// on s; launch(i) gets the launch's index (from 0 in each phase).
inline double TimeLaunchesUs(cudaStream_t s, int warmup, int iters,
                             const std::function<void(int)>& launch) {
  for (int i = 0; i < warmup; ++i) launch(i);
  cudaEvent_t e0, e1;
  BENCH_CUDA_CHECK(cudaEventCreate(&e0));
  BENCH_CUDA_CHECK(cudaEventCreate(&e1));
  BENCH_CUDA_CHECK(cudaEventRecord(e0, s));
  for (int i = 0; i < iters; ++i) launch(i);
  BENCH_CUDA_CHECK(cudaEventRecord(e1, s));
  BENCH_CUDA_CHECK(cudaEventSynchronize(e1));
  BENCH_CUDA_CHECK(cudaGetLastError());
  float ms = 0;
  BENCH_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
  BENCH_CUDA_CHECK(cudaEventDestroy(e0));
  BENCH_CUDA_CHECK(cudaEventDestroy(e1));
  return 1000.0 * ms / iters;
}

}  // namespace reprise::bench
