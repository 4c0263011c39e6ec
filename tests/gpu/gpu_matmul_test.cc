// GPU matmul tests (the CUDA backend's kernels, run by scripts/gpu_check.sh
// on a GPU machine): every weight type and path against the host emulation
// of the canonical order (HostDot) and the CPU backend, several matrices in
// one call against each alone, and every opt-in kernel against the default
// one bit for bit, switched in-process (GpuMatMulPipe.*). Where no GPU is
// usable every test skips with a one-line reason.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

#include "float_bits.h"
#include "quant_rows.h"
#include "require_gpu.h"
#include "core/fp16.h"
#include "kernels/backend.h"
#include "kernels/ops.h"
#ifdef REPRISE_HAVE_CUDA
#include "kernels/cuda/cuda_kernels.h"
#endif

namespace reprise::testing {
namespace {

#ifdef REPRISE_HAVE_CUDA
constexpr kernels::DevicePreference kCuda = kernels::DevicePreference::kCuda;
constexpr kernels::DevicePreference kCpu = kernels::DevicePreference::kCpu;

class GpuMatMul : public ::testing::TestWithParam<DType> {};

// Every weight type, rows not a multiple of any tile, widths with a partial
// last segment and window, n from 1 (the decode GEMV) to 70 (the tensor-core
// tiles, a partial last tile): each output equals the host emulation of the
// canonical order bit for bit (HostDot, the kernels' specification), the same
// token gives the same bits whatever n, and the result agrees with the CPU
// backend on the same inputs to float rounding (it quantizes activations the
// same way, so only the order of float sums differs). F16 / BF16 on the tensor
// cores have no bit-exact host emulation (cuda_matmul_half.cu): each output is
// held to the exact dot product of its rounded operands instead, and to the
// CPU within the activations' rounding bound.
TEST_P(GpuMatMul, EqualsTheHostEmulationAndTheCpuOnEveryPath) {
  REQUIRE_GPU();
  const DType type = GetParam();
  const bool half = kernels::cuda::HalfTensorCores(type);
  auto gpu = kernels::CreateBackend(kCuda, 1);
  auto cpu = kernels::CreateBackend(kCpu, 2);
  ASSERT_TRUE(gpu.ok() && cpu.ok());
  // 1000: a width that is no multiple of 32 (F32 / F16 / BF16 only); 1280:
  // five K-quant units, so the last segment holds one unit.
  for (const int64_t cols : {int64_t{1000}, int64_t{1280}, int64_t{1536}, int64_t{4608}}) {
    if (cols % 32 != 0 && kernels::cuda::IsQuantType(type)) continue;
    const int64_t rows = 200;
    std::mt19937 rng(static_cast<uint32_t>(cols) + static_cast<uint32_t>(type));
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> wf(static_cast<size_t>(rows * cols));
    for (auto& v : wf) v = 0.05f * dist(rng);
    const int64_t rb = RowBytes(type, cols);
    std::vector<uint8_t> wq(static_cast<size_t>(rows * rb));
    for (int64_t r = 0; r < rows; ++r) {
      kernels::QuantizeRow(type, wf.data() + r * cols, wq.data() + r * rb, cols);
    }
    const kernels::MatrixView view{type, rows, cols, wq.data()};
    auto gm = (*gpu)->PrepareMatrix(view);
    auto cm = (*cpu)->PrepareMatrix(view);
    ASSERT_TRUE(gm.ok() && cm.ok());
    const int64_t max_n = 70;
    std::vector<float> x(static_cast<size_t>(max_n * cols));
    for (int64_t i = 0; i < max_n * cols; ++i) {
      x[i] = dist(rng) * (i % 97 == 0 ? 20.0f : 1.0f);  // outliers: blocks of different scale
    }
    auto xd = (*gpu)->Alloc(x.size() * sizeof(float), "test x");
    auto yd = (*gpu)->Alloc(static_cast<size_t>(max_n * rows) * sizeof(float), "test y");
    ASSERT_TRUE(xd.ok() && yd.ok());
    (*gpu)->CopyToDevice(*xd, x.data(), x.size() * sizeof(float));
    std::vector<float> first;  // n = 1's token 0, the reference for every other n
    std::vector<float> wd(static_cast<size_t>(cols));
    for (const int64_t n : {int64_t{1}, int64_t{3}, int64_t{15}, int64_t{16}, int64_t{20},
                            int64_t{31}, int64_t{40}, int64_t{70}}) {
      const kernels::Matrix* gw[1] = {&*gm};
      float* gy[1] = {static_cast<float*>(*yd)};
      (*gpu)->MatMul(gw, static_cast<const float*>(*xd), n, gy);
      std::vector<float> yg(static_cast<size_t>(n * rows)), yc(yg.size());
      (*gpu)->CopyToHost(yg.data(), *yd, yg.size() * sizeof(float));
      ASSERT_TRUE((*gpu)->Synchronize().ok());
      const kernels::Matrix* cw[1] = {&*cm};
      float* cy[1] = {yc.data()};
      (*cpu)->MatMul(cw, x.data(), n, cy);
      if (first.empty()) first.assign(yg.begin(), yg.begin() + rows);
      for (int64_t r = 0; r < rows; ++r) {
        ASSERT_EQ(std::memcmp(&yg[r], &first[r], 4), 0)
            << DTypeName(type) << " cols " << cols << " n " << n << " row " << r
            << ": token 0 changed with n (" << yg[r] << " vs " << first[r] << ")";
      }
      double worst = 0;
      if (half) {
        // The tensor-core order: within 1e-5 of sum |w x~| of the exact dot
        // product of the weights and the rounded activations x~, and within
        // the rounding's own bound (u sum |w x|, u = 2^-11 or 2^-8) of the CPU.
        const double u = type == DType::kBF16 ? 1.0 / 256 : 1.0 / 2048;
        double worst_exact = 0;
        for (int64_t t = 0; t < n; ++t) {
          const float* xt = x.data() + t * cols;
          std::vector<double> xr(static_cast<size_t>(cols));
          for (int64_t c = 0; c < cols; ++c) {
            const uint16_t h = kernels::cuda::HostHalfActivation(type, xt[c]);
            xr[c] = type == DType::kBF16 ? Bf16ToFp32(h) : Fp16ToFp32(h);
          }
          for (int64_t r = 0; r < rows; ++r) {
            kernels::DequantizeRow(type, wq.data() + r * rb, wd.data(), cols);
            double exact = 0, mag_r = 0, mag = 0;
            for (int64_t c = 0; c < cols; ++c) {
              exact += wd[c] * xr[c];
              mag_r += std::fabs(wd[c] * xr[c]);
              mag += std::fabs(static_cast<double>(wd[c]) * xt[c]);
            }
            const float got = yg[t * rows + r];
            const double e = std::fabs(got - exact) / mag_r;
            worst_exact = std::max(worst_exact, e);
            ASSERT_LE(e, 1e-5) << DTypeName(type) << " cols " << cols << " n " << n << " token "
                               << t << " row " << r << ": GPU " << got << " vs exact " << exact;
            const double rel = std::fabs(static_cast<double>(got) - yc[t * rows + r]) / mag;
            worst = std::max(worst, rel);
            ASSERT_LE(rel, u + 1e-5) << DTypeName(type) << " cols " << cols << " n " << n
                                     << " token " << t << " row " << r << ": GPU " << got
                                     << " vs CPU " << yc[t * rows + r];
          }
        }
        std::printf("[ matmul ] %s cols %lld n %lld (tensor cores): |GPU - exact| / sum|w x~| <= "
                    "%.2g, |GPU - CPU| / sum|w x| <= %.2g (bound %.2g)\n",
                    DTypeName(type), static_cast<long long>(cols), static_cast<long long>(n),
                    worst_exact, worst, u + 1e-5);
        continue;
      }
      for (int64_t t = 0; t < n; ++t) {
        for (int64_t r = 0; r < rows; ++r) {
          const float* xt = x.data() + t * cols;
          const float want = kernels::cuda::HostDot(type, wq.data() + r * rb, cols, xt);
          const float got = yg[t * rows + r];
          if (t < 4 || r % 17 == 0) {  // the emulation is slow: a sample of every n
            ASSERT_EQ(std::memcmp(&want, &got, 4), 0)
                << DTypeName(type) << " cols " << cols << " n " << n << " token " << t << " row "
                << r << ": GPU " << got << " vs host emulation " << want;
          }
          if (r % 29 == 0) {
            kernels::DequantizeRow(type, wq.data() + r * rb, wd.data(), cols);
            double mag = 0;
            for (int64_t c = 0; c < cols; ++c) mag += std::fabs(static_cast<double>(wd[c]) * xt[c]);
            const double rel = std::fabs(static_cast<double>(got) - yc[t * rows + r]) / mag;
            worst = std::max(worst, rel);
            ASSERT_LE(rel, 2e-6) << DTypeName(type) << " cols " << cols << " n " << n << " token "
                                 << t << " row " << r << ": GPU " << got << " vs CPU "
                                 << yc[t * rows + r];
          }
        }
      }
      std::printf("[ matmul ] %s cols %lld n %lld: bit-exact with the emulation, |GPU - CPU| / "
                  "sum|w x| <= %.2g\n",
                  DTypeName(type), static_cast<long long>(cols), static_cast<long long>(n), worst);
    }
    (*gpu)->Free(*xd);
    (*gpu)->Free(*yd);
  }
}

// Several matrices in one MatMul call (the forward pass's Q/K/V and
// gate/up): the staged GEMV serves consecutive quantized matrices of one type
// in one launch, blocks mapped to matrices by their row groups. Each output
// must be the bits of the same matrix multiplied alone, whatever its
// neighbours' shapes, for decode and prefill widths alike.
TEST_P(GpuMatMul, SeveralMatricesInOneCallEqualEachAlone) {
  REQUIRE_GPU();
  const DType type = GetParam();
  auto gpu = kernels::CreateBackend(kCuda, 1);
  ASSERT_TRUE(gpu.ok());
  const int64_t cols = 4608;  // 9 segments: a partial round of the staged GEMV
  const int64_t rows_of[5] = {200, 33, 1024, 64, 7};  // 5: more than one launch holds
  std::mt19937 rng(1234u + static_cast<uint32_t>(type));
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<std::vector<uint8_t>> wq(5);
  std::vector<kernels::Matrix> mats;
  const int64_t rb = RowBytes(type, cols);
  for (int m = 0; m < 5; ++m) {
    std::vector<float> wf(static_cast<size_t>(rows_of[m] * cols));
    for (auto& v : wf) v = 0.05f * dist(rng);
    wq[m].resize(static_cast<size_t>(rows_of[m] * rb));
    for (int64_t r = 0; r < rows_of[m]; ++r) {
      kernels::QuantizeRow(type, wf.data() + r * cols, wq[m].data() + r * rb, cols);
    }
    auto pm = (*gpu)->PrepareMatrix({type, rows_of[m], cols, wq[m].data()});
    ASSERT_TRUE(pm.ok());
    mats.push_back(std::move(*pm));
  }
  const int64_t max_n = 20;
  std::vector<float> x(static_cast<size_t>(max_n * cols));
  for (auto& v : x) v = dist(rng);
  auto xd = (*gpu)->Alloc(x.size() * sizeof(float), "test x");
  ASSERT_TRUE(xd.ok());
  (*gpu)->CopyToDevice(*xd, x.data(), x.size() * sizeof(float));
  std::vector<void*> yd(5), yd1(5);
  for (int m = 0; m < 5; ++m) {
    auto a = (*gpu)->Alloc(static_cast<size_t>(max_n * rows_of[m]) * sizeof(float), "y");
    auto b = (*gpu)->Alloc(static_cast<size_t>(max_n * rows_of[m]) * sizeof(float), "y1");
    ASSERT_TRUE(a.ok() && b.ok());
    yd[m] = *a;
    yd1[m] = *b;
  }
  for (const int64_t n : {int64_t{1}, int64_t{2}, int64_t{5}, int64_t{15}, int64_t{20}}) {
    const kernels::Matrix* all[5] = {&mats[0], &mats[1], &mats[2], &mats[3], &mats[4]};
    float* ys[5];
    for (int m = 0; m < 5; ++m) ys[m] = static_cast<float*>(yd[m]);
    (*gpu)->MatMul(all, static_cast<const float*>(*xd), n, ys);
    for (int m = 0; m < 5; ++m) {
      const kernels::Matrix* one[1] = {&mats[m]};
      float* y1[1] = {static_cast<float*>(yd1[m])};
      (*gpu)->MatMul(one, static_cast<const float*>(*xd), n, y1);
    }
    for (int m = 0; m < 5; ++m) {
      std::vector<float> got(static_cast<size_t>(n * rows_of[m])), alone(got.size());
      (*gpu)->CopyToHost(got.data(), yd[m], got.size() * sizeof(float));
      (*gpu)->CopyToHost(alone.data(), yd1[m], alone.size() * sizeof(float));
      ASSERT_TRUE((*gpu)->Synchronize().ok());
      ASSERT_EQ(std::memcmp(got.data(), alone.data(), got.size() * sizeof(float)), 0)
          << DTypeName(type) << " n " << n << " matrix " << m << " (" << rows_of[m]
          << " rows): several in one call differ from the matrix alone";
      double mag = 0;
      for (const float v : got) mag = std::max(mag, static_cast<double>(std::fabs(v)));
      ASSERT_GT(mag, 0.0) << "an all-zero output proves nothing";
    }
  }
  (*gpu)->Free(*xd);
  for (int m = 0; m < 5; ++m) {
    (*gpu)->Free(yd[m]);
    (*gpu)->Free(yd1[m]);
  }
}

INSTANTIATE_TEST_SUITE_P(Types, GpuMatMul,
                         ::testing::Values(DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0,
                                           DType::kQ4_0, DType::kQ4_K, DType::kQ6_K),
                         [](const ::testing::TestParamInfo<DType>& info) {
                           return std::string(DTypeName(info.param));
                         });

// `type` matmuls (random weights, rows x cols, n tokens) with a kernel
// switch off and on (`set`, a test override): the same bits, not all zero.
void ExpectSwitchKeepsBits(kernels::Backend* be, DType type, void (*set)(int), const char* what,
                           const std::vector<std::pair<int64_t, int64_t>>& shapes,
                           const std::vector<int64_t>& ns, std::mt19937* rng) {
  struct Restore {
    void (*set)(int);
    ~Restore() { set(-1); }
  } restore{set};
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const int64_t max_n = *std::max_element(ns.begin(), ns.end());
  for (const auto& [rows, cols] : shapes) {
    const std::vector<uint8_t> wq = RandomQuantRows(type, rows, cols, rng);
    auto m = be->PrepareMatrix({type, rows, cols, wq.data()});
    ASSERT_TRUE(m.ok());
    std::vector<float> x(static_cast<size_t>(max_n * cols));
    for (int64_t i = 0; i < max_n * cols; ++i) x[i] = dist(*rng) * (i % 97 == 0 ? 20.0f : 1.0f);
    auto xd = be->Alloc(x.size() * sizeof(float), "test x");
    auto yd = be->Alloc(static_cast<size_t>(max_n * rows) * sizeof(float), "test y");
    ASSERT_TRUE(xd.ok() && yd.ok());
    be->CopyToDevice(*xd, x.data(), x.size() * sizeof(float));
    for (const int64_t n : ns) {
      std::vector<float> got[2];
      for (int on = 0; on < 2; ++on) {
        set(on);
        const kernels::Matrix* ws[1] = {&*m};
        float* ys[1] = {static_cast<float*>(*yd)};
        be->MatMul(ws, static_cast<const float*>(*xd), n, ys);
        got[on].resize(static_cast<size_t>(n * rows));
        be->CopyToHost(got[on].data(), *yd, got[on].size() * sizeof(float));
        ASSERT_TRUE(be->Synchronize().ok());
      }
      const size_t first = FirstDifference(got[0], got[1]);
      ASSERT_EQ(first, got[0].size())
          << DTypeName(type) << " cols " << cols << " rows " << rows << " n " << n << ": token "
          << first / rows << " row " << first % rows << ": " << what << " " << got[1][first]
          << " vs default " << got[0][first];
      ASSERT_GT(MaxMagnitude(got[1]), 0.0) << "an all-zero output proves nothing";
    }
    be->Free(*xd);
    be->Free(*yd);
  }
}

// The pipelined Q4_K prefill kernel (the default; off and on here
// in-process) against the unpipelined tensor-core kernel, which GpuMatMul
// holds to the host emulation: the same bits for every output, over widths
// of 6, 16 and 18 units, row counts that are no multiple of the tile (a
// partial last row group) and token counts with a partial last tile.
TEST(GpuMatMulPipe, PipelinedQ4KGivesTheDefaultKernelsBits) {
  REQUIRE_GPU();
  auto gpu = kernels::CreateBackend(kCuda, 1);
  ASSERT_TRUE(gpu.ok());
  std::mt19937 rng(31);
  ExpectSwitchKeepsBits(gpu->get(), DType::kQ4_K, kernels::cuda::SetMmaPipeForTest, "pipelined",
                        {{200, 1536}, {1000, 1536}, {200, 4096}, {1000, 4096}, {200, 4608},
                         {1000, 4608}},
                        {17, 40, 130}, &rng);
}

// The pipelined Q8_0 / Q4_0 prefill kernel (the default;
// REPRISE_CUDA_MMA_PIPE32=0 is off) against the unpipelined one: widths whose last stage is partial (1056 columns:
// 33 sub-blocks, activation scales not 16-byte aligned) or whole.
TEST(GpuMatMulPipe, PipelinedQ8_0AndQ4_0GiveTheDefaultKernelsBits) {
  REQUIRE_GPU();
  auto gpu = kernels::CreateBackend(kCuda, 1);
  ASSERT_TRUE(gpu.ok());
  std::mt19937 rng(47);
  for (const DType type : {DType::kQ8_0, DType::kQ4_0}) {
    ExpectSwitchKeepsBits(gpu->get(), type, kernels::cuda::SetMmaPipe32ForTest, "pipelined",
                          {{200, 1056}, {1000, 4096}, {200, 4608}}, {17, 40, 130}, &rng);
  }
}

// Decode batches of 16 tokens on the staged GEMV (the default) against the
// int8 tensor cores (REPRISE_CUDA_GEMV_WIDE=0): the same bits for every
// quantized type, widths with a partial last segment (1056) or stage, row
// counts no multiple of a group. (17 tokens and more take the tensor cores
// either way; 15 and fewer the GEMV.)
TEST(GpuMatMulPipe, WideDecodeBatchesOnTheGemvGiveTheTensorCoresBits) {
  REQUIRE_GPU();
  auto gpu = kernels::CreateBackend(kCuda, 1);
  ASSERT_TRUE(gpu.ok());
  std::mt19937 rng(53);
  for (const DType type : {DType::kQ8_0, DType::kQ4_0, DType::kQ4_K, DType::kQ6_K}) {
    const int64_t narrow = type == DType::kQ8_0 || type == DType::kQ4_0 ? 1056 : 1536;
    ExpectSwitchKeepsBits(gpu->get(), type, kernels::cuda::SetGemvWideForTest, "GEMV",
                          {{200, narrow}, {1000, 4608}}, {16}, &rng);
  }
}

// Batches of fewer tokens than one tensor-core tile (REPRISE_CUDA_MMA_SKIP_TILES=1,
// opt-in): warps skip their column tiles past the last token; the same bits
// as the whole tile, for the quantized kernels' 64-token tile (17-63 tokens:
// a warp column empty or partial) and the F16 / BF16 128-token tile (16-127).
TEST(GpuMatMulPipe, PartialTilesThatSkipEmptyColumnsGiveTheSameBits) {
  REQUIRE_GPU();
  auto gpu = kernels::CreateBackend(kCuda, 1);
  ASSERT_TRUE(gpu.ok());
  std::mt19937 rng(61);
  for (const DType type : {DType::kQ8_0, DType::kQ4_0, DType::kQ4_K}) {
    const int64_t narrow = type == DType::kQ4_K ? 1536 : 1056;
    ExpectSwitchKeepsBits(gpu->get(), type, kernels::cuda::SetMmaSkipTilesForTest, "skip",
                          {{200, narrow}, {1000, 4608}}, {17, 24, 33, 40, 63, 64, 100}, &rng);
  }
  for (const DType type : {DType::kF16, DType::kBF16}) {
    ExpectSwitchKeepsBits(gpu->get(), type, kernels::cuda::SetMmaSkipTilesForTest, "skip",
                          {{200, 1000}, {1000, 4096}}, {16, 17, 40, 100, 127, 130}, &rng);
  }
}

// The staged GEMV split over K (by default for Q8_0 and Q4_0; forced for
// every type here, REPRISE_CUDA_GEMV_SPLIT=1, against none, =0): few row
// groups over many segments (the down projection's 4096 x 14336; 1000 rows,
// a partial last row group; 4608 columns, a last round of one segment), one
// token and several: the bits of one block per row group.
TEST(GpuMatMulPipe, GemvSplitOverKGivesTheSameBits) {
  REQUIRE_GPU();
  auto gpu = kernels::CreateBackend(kCuda, 1);
  ASSERT_TRUE(gpu.ok());
  std::mt19937 rng(59);
  for (const DType type : {DType::kQ8_0, DType::kQ4_0, DType::kQ4_K, DType::kQ6_K}) {
    ExpectSwitchKeepsBits(gpu->get(), type, kernels::cuda::SetGemvSplitForTest, "split",
                          {{4096, 14336}, {1000, 14336}, {200, 4608}}, {1, 3, 15}, &rng);
  }
}

// Q/K/V-like F16 / BF16 matrices (one width, rows[] rows each) in one MatMul
// call of each n: variant 0 (set(0): one launch each) against every other
// variant v (set(v)), bit for bit.
void ExpectHalfVariantsKeepBits(kernels::Backend* be, const std::vector<int64_t>& rows,
                                int64_t cols, const std::vector<int64_t>& ns, int variants,
                                void (*set)(int), const char* what) {
  struct Restore {
    void (*set)(int);
    ~Restore() { set(-1); }
  } restore{set};
  std::mt19937 rng(53);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const size_t m_count = rows.size();
  ASSERT_LE(m_count, 4u);
  for (const DType type : {DType::kF16, DType::kBF16}) {
    std::vector<kernels::Matrix> ms;
    int64_t total_rows = 0;
    for (const int64_t r : rows) {
      const std::vector<uint8_t> wq = RandomQuantRows(type, r, cols, &rng);
      auto m = be->PrepareMatrix({type, r, cols, wq.data()});
      ASSERT_TRUE(m.ok());
      ms.push_back(std::move(*m));
      total_rows += r;
    }
    const int64_t max_n = *std::max_element(ns.begin(), ns.end());
    std::vector<float> x(static_cast<size_t>(max_n * cols));
    for (auto& v : x) v = dist(rng);
    auto xd = be->Alloc(x.size() * sizeof(float), "test x");
    auto yd = be->Alloc(static_cast<size_t>(max_n * total_rows) * sizeof(float), "test y");
    ASSERT_TRUE(xd.ok() && yd.ok());
    be->CopyToDevice(*xd, x.data(), x.size() * sizeof(float));
    for (const int64_t n : ns) {
      std::vector<std::vector<float>> got(static_cast<size_t>(variants));
      for (int v = 0; v < variants; ++v) {
        set(v);
        std::vector<const kernels::Matrix*> ws;
        std::vector<float*> ys;
        float* at = static_cast<float*>(*yd);
        for (size_t k = 0; k < m_count; ++k) {
          ws.push_back(&ms[k]);
          ys.push_back(at);
          at += n * rows[k];
        }
        be->MatMul(ws, static_cast<const float*>(*xd), n, ys);
        got[v].resize(static_cast<size_t>(n * total_rows));
        be->CopyToHost(got[v].data(), *yd, got[v].size() * sizeof(float));
        ASSERT_TRUE(be->Synchronize().ok());
      }
      for (int v = 1; v < variants; ++v) {
        const size_t first = FirstDifference(got[0], got[v]);
        ASSERT_EQ(first, got[0].size()) << DTypeName(type) << " n " << n << ", " << what
                                        << " variant " << v << ": output float " << first
                                        << ": " << got[v][first] << " vs one launch each "
                                        << got[0][first];
      }
      ASSERT_GT(MaxMagnitude(got[0]), 0.0) << "an all-zero output proves nothing";
    }
    be->Free(*xd);
    be->Free(*yd);
  }
}

// Decode: with the shared launch (the default; REPRISE_CUDA_HALF_MULTI=0
// off) the bits of one launch each.
TEST(GpuMatMulPipe, HalfGemvOfSeveralMatricesInOneLaunchGivesTheSameBits) {
  REQUIRE_GPU();
  auto gpu = kernels::CreateBackend(kCuda, 1);
  ASSERT_TRUE(gpu.ok());
  ExpectHalfVariantsKeepBits(gpu->get(), {512, 136, 200}, 1000, {1, 3, 8, 15}, 2,
                             kernels::cuda::SetHalfMultiForTest, "one launch");
}

// Prefill (opt-in, REPRISE_CUDA_HALF_PREFILL_MULTI / _SMEM): the matrices in
// one launch with the totals in registers (variant 1) or shared memory
// (variant 2), against one launch each; row counts no multiple of the
// 128-row block (200, 136), a width of an odd number of 16-column chunks
// (1008 = 63 chunks) and one of whole segments (2048), token counts no
// multiple of the 128-token tile.
TEST(GpuMatMulPipe, HalfPrefillOfSeveralMatricesInOneLaunchGivesTheSameBits) {
  REQUIRE_GPU();
  auto gpu = kernels::CreateBackend(kCuda, 1);
  ASSERT_TRUE(gpu.ok());
  const auto set = [](int v) {
    if (v < 0) {
      kernels::cuda::SetHalfPrefillForTest(-1, -1);
    } else {
      kernels::cuda::SetHalfPrefillForTest(v >= 1 ? 1 : 0, v == 2 ? 1 : 0);
    }
  };
  for (const int64_t cols : {int64_t{1008}, int64_t{2048}}) {
    ExpectHalfVariantsKeepBits(gpu->get(), {512, 136, 200}, cols, {16, 130, 300}, 3, set,
                               "prefill in one launch");
  }
}

#endif  // REPRISE_HAVE_CUDA

}  // namespace
}  // namespace reprise::testing
