// MatMul micro-benchmark: GEMV (n = 1) in GB/s of weights streamed, against
// this machine's read bandwidth measured in the same run, and GEMM (n = 512)
// in GOPS (2 * rows * cols * n / s), per weight type and kernel level.
// GEMV cycles through enough copies of the matrix to exceed the caches, as a
// model's decode step does. Reports medians.
//
//   kernels_bench [--threads N] [--reps R] [--types q8_0,q4_0,...] [--all-levels]
//                [--no-gemm] [--square-only] [--cpu-time]
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/matmul_internal.h"

namespace reprise::kernels {
namespace {

// Wall time, or this process's CPU time with --cpu-time (with --threads 1 it
// measures the kernel's own cost while other jobs share the machine).
bool g_cpu_time = false;

double Now() {
  if (g_cpu_time) {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Multi-threaded streaming read of `bytes`; returns GB/s (median of reps).
double ReadBandwidth(ThreadPool& pool, size_t bytes, int reps) {
  uint8_t* buf = static_cast<uint8_t*>(std::aligned_alloc(64, bytes));
  std::memset(buf, 1, bytes);
  std::vector<double> times;
  volatile int64_t sink = 0;
  for (int rep = 0; rep < reps + 1; ++rep) {
    const double t0 = Now();
    pool.ParallelFor(static_cast<int64_t>(bytes / 65536), 16, [&](int64_t b, int64_t e, int) {
      __m128i acc0 = _mm_setzero_si128(), acc1 = _mm_setzero_si128();
      for (const uint8_t* p = buf + b * 65536; p < buf + e * 65536; p += 64) {
        acc0 = _mm_add_epi64(acc0, _mm_load_si128(reinterpret_cast<const __m128i*>(p)));
        acc1 = _mm_add_epi64(acc1, _mm_load_si128(reinterpret_cast<const __m128i*>(p + 16)));
        acc0 = _mm_add_epi64(acc0, _mm_load_si128(reinterpret_cast<const __m128i*>(p + 32)));
        acc1 = _mm_add_epi64(acc1, _mm_load_si128(reinterpret_cast<const __m128i*>(p + 48)));
      }
      sink = sink + _mm_cvtsi128_si64(_mm_add_epi64(acc0, acc1));
    });
    if (rep > 0) times.push_back(Now() - t0);
  }
  std::free(buf);
  return bytes / Median(times) / 1e9;
}

struct Bench {
  DType type;
  int64_t rows, cols;
};

void Run(ThreadPool& pool, KernelLevel level, const Bench& b, int reps, double bw, bool gemm) {
  const int64_t rb = RowBytes(b.type, b.cols);
  const int64_t mat_bytes = rb * b.rows;
  const int n_copies = static_cast<int>(std::max<int64_t>(1, (512ll << 20) / mat_bytes));
  std::vector<std::vector<uint8_t>> copies(n_copies);
  std::vector<Matrix> mats;
  {
    std::mt19937 rng(1);
    std::normal_distribution<float> dist(0, 0.05f);
    std::vector<float> row(b.cols);
    copies[0].resize(mat_bytes);
    for (int64_t r = 0; r < b.rows; ++r) {
      for (float& f : row) f = dist(rng);
      QuantizeRow(b.type, row.data(), copies[0].data() + r * rb, b.cols);
    }
    for (int i = 1; i < n_copies; ++i) copies[i] = copies[0];
    for (auto& c : copies)
      mats.push_back(*Matrix::Prepare(MatrixView{b.type, b.rows, b.cols, c.data()}));
  }
  const int64_t n_big = 512;
  std::vector<float> x(n_big * b.cols), y(n_big * b.rows);
  std::mt19937 rng(2);
  std::normal_distribution<float> dist(0, 1);
  for (float& f : x) f = dist(rng);
  Workspace ws;

  // GEMV over rotating copies (cold weights).
  std::vector<double> t1;
  for (int rep = 0; rep < reps; ++rep) {
    const double t0 = Now();
    for (const Matrix& m : mats) MatMulAtLevel(level, m, x.data(), 1, y.data(), pool, ws);
    t1.push_back((Now() - t0) / n_copies);
  }
  // GEMV on one matrix (weights hot in cache where they fit).
  std::vector<double> th;
  for (int rep = 0; rep < reps * 20; ++rep) {
    const double t0 = Now();
    MatMulAtLevel(level, mats[0], x.data(), 1, y.data(), pool, ws);
    th.push_back(Now() - t0);
  }
  // GEMM n = 512.
  std::vector<double> t512;
  if (gemm) MatMulAtLevel(level, mats[0], x.data(), n_big, y.data(), pool, ws);
  for (int rep = 0; gemm && rep < std::max(3, reps / 2); ++rep) {
    const double t0 = Now();
    MatMulAtLevel(level, mats[0], x.data(), n_big, y.data(), pool, ws);
    t512.push_back(Now() - t0);
  }
  if (!gemm) t512.push_back(NAN);
  const double gbs = mat_bytes / Median(t1) / 1e9;
  std::printf(
      "%-6s %-12s %5lldx%-5lld  gemv %7.1f us %6.1f GB/s (%3.0f%% of read bw)  hot %6.1f GB/s"
      "  gemm512 %8.2f ms %7.1f GOPS\n",
      DTypeName(b.type), KernelLevelName(EffectiveLevel(level, b.type)),
      static_cast<long long>(b.rows), static_cast<long long>(b.cols), Median(t1) * 1e6, gbs,
      100 * gbs / bw, mat_bytes / Median(th) / 1e9, Median(t512) * 1e3,
      2.0 * b.rows * b.cols * n_big / Median(t512) / 1e9);
  std::fflush(stdout);
}

}  // namespace
}  // namespace reprise::kernels

int main(int argc, char** argv) {
  using namespace reprise;
  using namespace reprise::kernels;
  int threads = 2, reps = 7;
  bool all_levels = false, gemm = true, gemv = true;
  std::string types = "q8_0,q4_0,q4_k,q6_k,f16,f32";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc)
      threads = std::atoi(argv[++i]);
    else if (a == "--reps" && i + 1 < argc)
      reps = std::atoi(argv[++i]);
    else if (a == "--types" && i + 1 < argc)
      types = argv[++i];
    else if (a == "--all-levels")
      all_levels = true;
    else if (a == "--no-gemm")
      gemm = false;
    else if (a == "--cpu-time")
      g_cpu_time = true;
    else if (a == "--square-only")
      gemv = false;
    else {
      std::fprintf(stderr, "usage: %s [--threads N] [--reps R] [--types q8_0,...] [--all-levels]\n",
                   argv[0]);
      return 2;
    }
  }
  ThreadPool pool(threads);
  const double bw = ReadBandwidth(pool, size_t{1} << 30, 5);
  std::printf("threads %d, read bandwidth %.1f GB/s (1 GiB, median of 5)\n", threads, bw);
  std::vector<KernelLevel> levels = {BestKernelLevel()};
  if (all_levels) levels = AvailableKernelLevels();
  size_t pos = 0;
  while (pos <= types.size()) {
    const size_t end = std::min(types.find(',', pos), types.size());
    const auto type = ParseDType(types.substr(pos, end - pos));
    pos = end + 1;
    if (!type) continue;
    for (KernelLevel level : levels) {
      for (auto [rows, cols] :
           {std::pair<int64_t, int64_t>{2048, 2048}, {5632, 2048}, {2048, 5632}}) {
        if (!gemv && rows != cols) continue;
        Run(pool, level, {*type, rows, cols}, reps, bw, gemm);
      }
    }
  }
  return 0;
}
