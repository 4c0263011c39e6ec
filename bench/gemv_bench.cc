// The decode matmul kernels alone on the GPU: each Llama-3-8B decode matmul
// (Q/K/V in one call, O, gate/up in one call, down, the output head) at
// n = 1 token, timed with CUDA events over many launches that cycle through
// enough copies of the weights to defeat the L2 cache, so the figure is the
// HBM bandwidth the kernel reaches (weight bytes / time). Compare with the
// device copy bandwidth (scripts/gpu_check.sh measures it in the same call).
// The forward pass's other ops are not included: this isolates the GEMV.
// Usage: gemv_bench [types=q4_k,q8_0,q4_0,q6_k,f16] [n=1] [iters=200]
// (REPRISE_CUDA_GEMV_STAGED=0: the warp-per-row quantized GEMV.) One JSON
// line per (type, call).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "core/dtype.h"
#ifdef REPRISE_HAVE_CUDA
#include "cuda_bench_util.h"
#include "kernels/cuda/cuda_kernels.h"
#endif

#ifndef REPRISE_HAVE_CUDA
int main() {
  std::fprintf(stderr, "gemv_bench: built without CUDA\n");
  return 1;
}
#else
namespace {

using namespace reprise;
using namespace reprise::kernels::cuda;
using reprise::bench::BenchValues;
using reprise::bench::DevAlloc;
using reprise::bench::HaveGpu;
using reprise::bench::TimeLaunchesUs;

struct Call {
  const char* name;
  std::vector<int64_t> rows;
  int64_t cols;
};

// Bytes of one matrix in the layout the kernels read.
int64_t LayoutBytes(DType t, int64_t rows, int64_t cols) {
  if (HalfTensorCores(t)) return (rows + 15) / 16 * 16 * HalfActCols(cols) * 2;
  const DTypeInfo* info = GetDTypeInfo(static_cast<uint32_t>(t));
  const int64_t units = cols / info->block_elems;
  constexpr int64_t kGroup = 32;  // the repack's row group (cuda_common.cuh kRowGroup)
  return (rows + kGroup - 1) / kGroup * units * kGroup * info->block_bytes;
}

}  // namespace

int main(int argc, char** argv) {
  std::string types = argc > 1 ? argv[1] : "q4_k,q8_0,q4_0,q6_k,f16";
  const int64_t n = argc > 2 ? std::atoll(argv[2]) : 1;
  const int iters = argc > 3 ? std::atoi(argv[3]) : 200;
  if (n < 1 || n >= kGemvMaxTokens || iters < 1) {
    std::fprintf(stderr, "gemv_bench: n must be 1..%d, iters >= 1\n", kGemvMaxTokens - 1);
    return 2;
  }
  if (!HaveGpu()) return 1;
  const std::vector<Call> calls = {{"qkv", {4096, 1024, 1024}, 4096},
                                   {"o", {4096}, 4096},
                                   {"gate_up", {14336, 14336}, 4096},
                                   {"down", {4096}, 14336},
                                   {"output", {128256}, 4096}};
  cudaStream_t s;
  BENCH_CUDA_CHECK(cudaStreamCreate(&s));
  std::stringstream ts(types);
  std::string tname;
  while (std::getline(ts, tname, ',')) {
    const std::optional<DType> parsed = ParseDType(tname);
    if (!parsed) {
      std::fprintf(stderr, "gemv_bench: unknown type %s\n", tname.c_str());
      return 2;
    }
    const DType t = *parsed;
    const bool half = HalfTensorCores(t);
    if (!half && !IsQuantType(t)) {
      std::fprintf(stderr, "gemv_bench: %s: quantized types, F16 and BF16 only\n", tname.c_str());
      return 2;
    }
    for (const Call& c : calls) {
      int64_t call_bytes = 0;
      for (const int64_t r : c.rows) call_bytes += LayoutBytes(t, r, c.cols);
      // Copies of the call's weights: at least 512 MiB in all (10x the L2).
      const int copies =
          static_cast<int>(std::max<int64_t>(2, (int64_t{512} << 20) / call_bytes + 1));
      std::vector<std::vector<uint8_t*> > w(copies);
      for (auto& set : w) {
        // Timing does not depend on the values.
        for (const int64_t r : c.rows)
          set.push_back(DevAlloc<uint8_t>(LayoutBytes(t, r, c.cols), 0x11));
      }
      float* x = DevAlloc<float>(n * c.cols);
      const std::vector<float> hx = BenchValues(n * c.cols);
      BENCH_CUDA_CHECK(cudaMemcpy(x, hx.data(), sizeof(float) * hx.size(), cudaMemcpyHostToDevice));
      ActQ act;
      uint16_t* xh = nullptr;
      if (half) {
        xh = DevAlloc<uint16_t>(n * HalfActCols(c.cols));
        LaunchHalfAct(t, x, n, c.cols, xh, s);
      } else {
        act = {DevAlloc<int8_t>(n * c.cols), DevAlloc<float>(n * c.cols / 32),
               DevAlloc<int32_t>(n * c.cols / 32)};
        LaunchQuantizeAct(t, x, n, c.cols, act, s);
      }
      std::vector<float*> y;
      for (const int64_t r : c.rows) y.push_back(DevAlloc<float>(n * r));
      auto launch = [&](int i) {
        const std::vector<uint8_t*>& ws = w[i % copies];
        if (half) {
          for (size_t m = 0; m < ws.size(); ++m) {
            LaunchMatMulHalf(t, ws[m], c.rows[m], HalfActCols(c.cols) / 16, xh, n, y[m], c.rows[m],
                             s);
          }
          return;
        }
        const int64_t units = c.cols / GetDTypeInfo(static_cast<uint32_t>(t))->block_elems;
        if (GemvStagedOn()) {
          GemvTarget tg[kGemvMaxTargets];
          for (size_t m = 0; m < ws.size(); ++m) tg[m] = {ws[m], c.rows[m], y[m], c.rows[m]};
          LaunchGemvStaged(t, tg, static_cast<int>(ws.size()), c.cols, units, act, n, s);
        } else {
          for (size_t m = 0; m < ws.size(); ++m) {
            LaunchGemv(t, ws[m], c.rows[m], c.cols, units, nullptr, act, n, y[m], c.rows[m], s);
          }
        }
      };
      const double us = TimeLaunchesUs(s, 2 * copies, iters, launch);
      std::printf(
          "{\"type\": \"%s\", \"call\": \"%s\", \"n\": %lld, \"staged\": %s, \"bytes\": %lld, "
          "\"us\": %.2f, \"gb_per_s\": %.1f}\n",
          DTypeName(t), c.name, static_cast<long long>(n),
          !half && GemvStagedOn() ? "true" : "false", static_cast<long long>(call_bytes), us,
          call_bytes / us / 1000.0);
      std::fflush(stdout);
      for (auto& set : w) {
        for (uint8_t* p : set) BENCH_CUDA_CHECK(cudaFree(p));
      }
      for (float* p : y) BENCH_CUDA_CHECK(cudaFree(p));
      BENCH_CUDA_CHECK(cudaFree(x));
      if (xh != nullptr) BENCH_CUDA_CHECK(cudaFree(xh));
      if (act.q != nullptr) {
        BENCH_CUDA_CHECK(cudaFree(act.q));
        BENCH_CUDA_CHECK(cudaFree(act.d));
        BENCH_CUDA_CHECK(cudaFree(act.sum));
      }
    }
  }
  BENCH_CUDA_CHECK(cudaStreamDestroy(s));
  return 0;
}
#endif
