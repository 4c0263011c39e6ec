// The CUDA backend's arithmetic, checked on the CPU (no GPU needed): the
// block decoders and per-block matmul arithmetic in kernels/cuda/ are
// __host__ __device__, and HostDequantizeRow / HostDot run that same code on
// the host. Dequantization must equal the CPU reference bit for bit; the
// matmul arithmetic must stay within the error of 8-bit activations of the
// exact dot product, and agree with the CPU's scalar reference to float
// rounding (it quantizes activations exactly as the CPU does, so only the
// order of the float sums differs). The row repack must put
// every unit where the kernels read it. Built when the CUDA backend is.
#ifdef REPRISE_HAVE_CUDA
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/cuda_tiles.h"
#include "kernels/cuda/path_switch.h"
#include "core/fp16.h"
#include "core/thread_pool.h"
#include "kernels/matmul_internal.h"
#include "kernels/ops.h"

namespace reprise::kernels::cuda {
namespace {

std::vector<float> RandomFloats(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

std::vector<uint8_t> QuantizedRow(DType type, const std::vector<float>& v) {
  std::vector<uint8_t> row(RowBytes(type, static_cast<int64_t>(v.size())));
  QuantizeRow(type, v.data(), row.data(), static_cast<int64_t>(v.size()));
  return row;
}

class CudaHostDequant : public ::testing::TestWithParam<DType> {};
class CudaHostArithmetic : public ::testing::TestWithParam<DType> {};

TEST_P(CudaHostDequant, MatchesTheCpuReferenceBitForBit) {
  const DType type = GetParam();
  for (uint32_t seed = 1; seed <= 4; ++seed) {
    const int64_t cols = 1024;
    const auto row = QuantizedRow(type, RandomFloats(cols, seed, 0.02f * seed));
    std::vector<float> want(cols), got(cols);
    DequantizeRow(type, row.data(), want.data(), cols);
    HostDequantizeRow(type, row.data(), cols, got.data());
    for (int64_t i = 0; i < cols; ++i) {
      ASSERT_EQ(std::memcmp(&want[i], &got[i], 4), 0)
          << DTypeName(type) << " value " << i << ": " << want[i] << " vs " << got[i];
    }
  }
}

TEST_P(CudaHostArithmetic, DotIsWithinTheErrorOfItsActivations) {
  const DType type = GetParam();
  const bool quant = type != DType::kF32 && type != DType::kF16 && type != DType::kBF16;
  for (uint32_t seed = 1; seed <= 8; ++seed) {
    const int64_t cols = 2048;
    const auto w = QuantizedRow(type, RandomFloats(cols, seed, 0.05f));
    const auto x = RandomFloats(cols, 100 + seed);
    std::vector<float> wd(cols);
    DequantizeRow(type, w.data(), wd.data(), cols);
    double exact = 0, mag = 0;
    for (int64_t i = 0; i < cols; ++i) {
      exact += static_cast<double>(wd[i]) * x[i];
      mag += std::fabs(static_cast<double>(wd[i]) * x[i]);
    }
    const float got = HostDot(type, w.data(), cols, x.data());
    // 8-bit activations: each product off by at most half a step of its
    // block's scale (amax / 254), far less on average; float weights: rounding.
    const double tol = quant ? 1e-2 * mag : 1e-4 * mag;
    EXPECT_NEAR(got, exact, tol) << DTypeName(type) << " seed " << seed;
    if (quant) {
      EXPECT_NE(got, 0.0f);
    }
  }
}

TEST_P(CudaHostArithmetic, DotAgreesWithTheCpuReferenceToFloatRounding) {
  // Same int8 activations as the CPU (per 32 values for Q8_0/Q4_0, per 256
  // for the K-quants): any difference in quantization would show as ~1e-3
  // of the magnitude; float summation order alone stays near 1e-6.
  const DType type = GetParam();
  ThreadPool pool(1);
  Workspace ws;
  for (uint32_t seed = 1; seed <= 8; ++seed) {
    const int64_t cols = 2048;
    const auto w = QuantizedRow(type, RandomFloats(cols, seed, 0.05f));
    auto x = RandomFloats(cols, 200 + seed);
    if (seed % 2 == 0) {
      for (int64_t i = 0; i < cols; i += 97) x[i] *= 40.0f;  // outliers: blocks of very different scale
    }
    const Result<Matrix> m = Matrix::Prepare(MatrixView{type, 1, cols, w.data()});
    ASSERT_TRUE(m.ok()) << m.status().message();
    float want = 0.0f;
    MatMulAtLevel(KernelLevel::kScalar, *m, x.data(), 1, &want, pool, ws);
    double mag = 0;
    std::vector<float> wd(cols);
    DequantizeRow(type, w.data(), wd.data(), cols);
    for (int64_t i = 0; i < cols; ++i) mag += std::fabs(static_cast<double>(wd[i]) * x[i]);
    const float got = HostDot(type, w.data(), cols, x.data());
    EXPECT_NEAR(got, want, 2e-6 * mag) << DTypeName(type) << " seed " << seed;
  }
}

TEST_P(CudaHostArithmetic, RepackPutsEveryUnitWhereTheKernelsReadIt) {
  const DType type = GetParam();
  const int64_t rows = 70, cols = 512;  // rows not a multiple of the 32-row group
  std::vector<uint8_t> data;
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<uint8_t> row;
    if (type == DType::kF32 || type == DType::kF16 || type == DType::kBF16) {
      row.resize(RowBytes(type, cols));
      for (size_t i = 0; i < row.size(); ++i) row[i] = static_cast<uint8_t>(r * 31 + i * 7 + 1);
    } else {
      row = QuantizedRow(type, RandomFloats(cols, static_cast<uint32_t>(r + 1)));
    }
    data.insert(data.end(), row.begin(), row.end());
  }
  MatrixView v{type, rows, cols, data.data()};
  int64_t units = 0;
  int ub = 0;
  const std::vector<uint8_t> packed = RepackInterleaved(v, &units, &ub);
  ASSERT_EQ(units * ub, v.row_bytes()) << "units must tile a row exactly at this width";
  ASSERT_EQ(static_cast<int64_t>(packed.size()), 96 * units * ub);  // 3 groups of 32 rows
  for (int64_t r = 0; r < 96; ++r) {
    for (int64_t u = 0; u < units; ++u) {
      const uint8_t* got = packed.data() + (((r / 32) * units + u) * 32 + r % 32) * ub;
      if (r < rows) {
        ASSERT_EQ(std::memcmp(got, data.data() + r * v.row_bytes() + u * ub, ub), 0) << r << "," << u;
      } else {
        for (int i = 0; i < ub; ++i) ASSERT_EQ(got[i], 0) << "padding row " << r;
      }
    }
  }
}

auto TypeName = [](const ::testing::TestParamInfo<DType>& info) {
  return std::string(DTypeName(info.param));
};

INSTANTIATE_TEST_SUITE_P(Types, CudaHostDequant,
                         ::testing::Values(DType::kQ8_0, DType::kQ4_0, DType::kQ4_K, DType::kQ6_K),
                         TypeName);

INSTANTIATE_TEST_SUITE_P(Types, CudaHostArithmetic,
                         ::testing::Values(DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0,
                                           DType::kQ4_0, DType::kQ4_K, DType::kQ6_K),
                         TypeName);

class CudaHostHalf : public ::testing::TestWithParam<DType> {};

// The tensor-core layout: every weight of a 37 x 45 matrix (partial 16-row
// tile and 16-column chunk) sits in the register and half of the lane that
// mma.sync m16n8k16 reads it from (A fragment: rows g and g + 8, columns 2q,
// 2q + 1 and 2q + 8, 2q + 9 of the chunk), and the padding is +0.
TEST_P(CudaHostHalf, RepackPutsEveryWeightInItsFragmentSlot) {
  const DType type = GetParam();
  const int64_t rows = 37, cols = 45;
  std::vector<uint16_t> w(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<uint16_t>(1 + i * 13);
  const MatrixView v{type, rows, cols, reinterpret_cast<const uint8_t*>(w.data())};
  int64_t n_kc = 0;
  const std::vector<uint8_t> packed = RepackHalf(v, &n_kc);
  ASSERT_EQ(n_kc, 3);
  ASSERT_EQ(packed.size(), size_t{3 * 3 * 512});  // 3 row tiles x 3 chunks
  std::vector<uint16_t> half(packed.size() / 2);
  std::memcpy(half.data(), packed.data(), packed.size());
  for (int64_t rt = 0; rt < 3; ++rt) {
    for (int64_t kc = 0; kc < n_kc; ++kc) {
      for (int lane = 0; lane < 32; ++lane) {
        const int g = lane / 4, q = lane % 4;
        for (int reg = 0; reg < 4; ++reg) {
          for (int e = 0; e < 2; ++e) {
            const int64_t r = rt * 16 + g + 8 * (reg % 2);
            const int64_t c = kc * 16 + 2 * q + 8 * (reg / 2) + e;
            const uint16_t want = r < rows && c < cols ? w[r * cols + c] : 0;
            const uint16_t got = half[(((rt * n_kc + kc) * 32 + lane) * 4 + reg) * 2 + e];
            ASSERT_EQ(got, want) << "row " << r << " col " << c;
          }
        }
      }
    }
  }
}

// Activations round to nearest; f16 saturates at +-65504 instead of inf.
TEST_P(CudaHostHalf, ActivationsRoundToNearestAndF16Saturates) {
  const DType type = GetParam();
  const auto value = [&](float v) {
    const uint16_t h = HostHalfActivation(type, v);
    return type == DType::kBF16 ? Bf16ToFp32(h) : Fp16ToFp32(h);
  };
  EXPECT_EQ(value(1.0f), 1.0f);
  EXPECT_EQ(value(-0.375f), -0.375f);
  const float step = type == DType::kBF16 ? 1.0f / 128 : 1.0f / 1024;  // spacing above 1
  EXPECT_EQ(value(1.0f + 0.49f * step), 1.0f);
  EXPECT_EQ(value(1.0f + 0.51f * step), 1.0f + step);
  if (type == DType::kF16) {
    EXPECT_EQ(value(1e6f), 65504.0f);
    EXPECT_EQ(value(-1e30f), -65504.0f);
  } else {
    EXPECT_NEAR(value(1e30f), 1e30f, 1e28f);
  }
  EXPECT_TRUE(std::isnan(value(std::nanf(""))));
  EXPECT_EQ(HalfActCols(45), 48);
  EXPECT_EQ(HalfActCols(4096), 4096);
}

INSTANTIATE_TEST_SUITE_P(Types, CudaHostHalf, ::testing::Values(DType::kF16, DType::kBF16),
                         TypeName);

class CudaHostQuantPaths : public ::testing::TestWithParam<DType> {};

// The decode GEMV reads a sub-block as 32-bit words (SubW), prefill and the
// host emulation through SubBlock: for every sub-block of random blocks
// (including the extreme activations -127 and 127) both give the same bits.
TEST_P(CudaHostQuantPaths, WordPathEqualsTheSubBlockPathBitForBit) {
  const DType type = GetParam();
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> q8(-127, 127);
  std::uniform_real_distribution<float> scale(1e-4f, 3.0f);
  const int64_t cols = 512;
  const int values = type == DType::kQ4_K || type == DType::kQ6_K ? 256 : 32;
  const size_t unit_bytes = RowBytes(type, values);
  int checked = 0;
  for (uint32_t seed = 1; seed <= 16; ++seed) {
    const auto row = QuantizedRow(type, RandomFloats(cols, seed, 0.01f * seed));
    for (int64_t u = 0; u < cols / values; ++u) {
      for (int j = 0; j < values / 32; ++j) {
        alignas(16) int8_t xq[32];
        int32_t sx = 0;
        for (int i = 0; i < 32; ++i) {
          xq[i] = static_cast<int8_t>(seed % 4 == 0 ? (i % 2 ? 127 : -127) : q8(rng));
          sx += xq[i];
        }
        float slow = 0, fast = 0;
        // The segment sum the term joins: +0 (a segment's first), or any.
        const float acc = j % 3 == 0 ? 0.0f : scale(rng) * (j % 2 ? -1.0f : 1.0f);
        HostSubAdd(type, row.data() + u * unit_bytes, j, xq, scale(rng), sx, acc, &slow, &fast);
        ASSERT_EQ(std::memcmp(&slow, &fast, 4), 0)
            << DTypeName(type) << " seed " << seed << " unit " << u << " sub-block " << j << ": "
            << slow << " vs " << fast;
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 16 * cols / 32);
}

// Q8_0 / Q4_0's round(d * x) in one fused multiply-add from x's biased bits
// (the tensor-core kernels' epilogue) is the rounded product d * float(x) for
// every finite f16 scale d and integer x a sub-block can give (|x| <=
// 32 * 128 * 127), extremes included; where the product is zero (x or d
// zero) both are zeros (the fused one +0 whatever the signs; every path
// computes it the same way).
TEST(CudaHostQ32, ScaledSumIsTheRoundedProductForEveryHalfScale) {
  std::vector<int> xs = {0, 1, -1, 2, -3, 127, -127, 4095, -4096, 516128, -516128, 520192,
                         -520192, 262143, -262145, 1 << 21, -(1 << 21)};
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> any(-520192, 520192);
  for (int i = 0; i < 48; ++i) xs.push_back(any(rng));
  int64_t checked = 0;
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float d = Fp16ToFp32(static_cast<uint16_t>(h));
    if (!std::isfinite(d)) continue;
    for (const int x : xs) {
      const float want = d * static_cast<float>(x);
      const float got = HostQ32Round(d, x);
      if (want == 0.0f) {
        ASSERT_EQ(got, 0.0f) << "d " << d << " x " << x;
      } else {
        ASSERT_EQ(std::memcmp(&want, &got, 4), 0) << "d " << d << " x " << x << ": " << want
                                                  << " vs " << got;
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, int64_t{63488} * static_cast<int64_t>(xs.size()));  // finite halves
}

INSTANTIATE_TEST_SUITE_P(Types, CudaHostQuantPaths,
                         ::testing::Values(DType::kQ8_0, DType::kQ4_0, DType::kQ4_K, DType::kQ6_K),
                         TypeName);

// The MoE step's per-expert lists (host side of the CUDA backend's Moe):
// experts in id order, each expert's tokens in token order, with the
// weight the router gave that token; experts nobody chose are empty.
TEST(CudaHostMoe, ExpertListsAreInExpertThenTokenOrder) {
  // 3 tokens, 2 experts each, 4 experts (expert 3 unused).
  const int32_t ids[] = {2, 0, 0, 1, 2, 1};
  const float weights[] = {0.6f, 0.4f, 0.7f, 0.3f, 0.55f, 0.45f};
  std::vector<int32_t> rows;
  std::vector<float> wts;
  std::vector<int64_t> begin;
  BuildExpertLists(ids, weights, 3, 2, 4, &rows, &wts, &begin);
  EXPECT_EQ(begin, (std::vector<int64_t>{0, 2, 4, 6, 6}));
  EXPECT_EQ(rows, (std::vector<int32_t>{0, 1, 1, 2, 0, 2}));
  EXPECT_EQ(wts, (std::vector<float>{0.4f, 0.7f, 0.3f, 0.45f, 0.6f, 0.55f}));
  // Called again, the lists are rebuilt, not appended to.
  BuildExpertLists(ids, weights, 1, 2, 4, &rows, &wts, &begin);
  EXPECT_EQ(begin, (std::vector<int64_t>{0, 1, 1, 2, 2}));
  EXPECT_EQ(rows, (std::vector<int32_t>{0, 0}));
}

// Query tiles: runs of one sequence at consecutive positions, cut at
// tile_tokens, at a sequence change and at a position gap; then the
// one-token tiles' first indices.
TEST(CudaTiles, RunsAreCutAtTheTileSizeASequenceChangeAndAGap) {
  //                               seq 0: 10..14        seq 1: 3    seq 2: 7, 8, then 20 (gap)
  const std::vector<int32_t> pos = {10, 11, 12, 13, 14, 3, 7, 8, 20};
  const std::vector<int32_t> seq = {0, 0, 0, 0, 0, 1, 2, 2, 2};
  std::vector<int32_t> out;
  int64_t singles = -1;
  const int64_t n = CutQueryTiles(pos, seq, 3, &out, &singles);
  ASSERT_EQ(n, 5);
  EXPECT_EQ(out, (std::vector<int32_t>{0, 3, 3, 2, 5, 1, 6, 2, 8, 1, 5, 8}));
  EXPECT_EQ(singles, 2);
  // Decode only: every token its own tile.
  const std::vector<int32_t> dpos = {100, 7}, dseq = {0, 1};
  EXPECT_EQ(CutQueryTiles(dpos, dseq, 32, &out, &singles), 2);
  EXPECT_EQ(singles, 2);
  // One long prompt chunk: full tiles and a remainder, no one-token tile.
  std::vector<int32_t> ppos(70), pseq(70, 4);
  for (int i = 0; i < 70; ++i) ppos[i] = 500 + i;
  EXPECT_EQ(CutQueryTiles(ppos, pseq, 32, &out, &singles), 3);
  EXPECT_EQ(out, (std::vector<int32_t>{0, 32, 32, 32, 64, 6}));
  EXPECT_EQ(singles, 0);
}

// The staged GEMV's split over K (host side): only launches of more than
// one round of segments and too few row groups for two blocks an SM are
// split, every part gets the same number of rounds but the last, and the
// scratch holds every group's segment sums for up to 16 tokens.
TEST(CudaGemvSplit, SplitsOnlyFewGroupsOfManyRoundsAndEvenly) {
  // Llama-3-8B on 132 SMs: down (4096 x 14336: 128 groups, 28 segments,
  // 4 rounds) split in two parts of two rounds; Q/K/V and O (4096 columns:
  // one round) and gate/up (896 groups) not at all.
  EXPECT_EQ(GemvSplitFactor(128, 14336, 132), 2);
  EXPECT_EQ(GemvSplitFactor(192, 4096, 132), 1);
  EXPECT_EQ(GemvSplitFactor(128, 4096, 132), 1);
  EXPECT_EQ(GemvSplitFactor(896, 14336, 132), 1);
  EXPECT_EQ(GemvSplitFactor(32, 14336, 132), 4);   // one round a part
  EXPECT_EQ(GemvSplitFactor(7, 4608, 132), 2);     // 9 segments: rounds of 8 and 1
  EXPECT_EQ(GemvSplitFactor(1, 65536, 132), 8);    // 16 rounds: at most 8 parts
  EXPECT_EQ(GemvSplitFactor(0, 14336, 132), 1);
  for (int64_t groups = 1; groups <= 300; groups += 7) {
    for (const int64_t cols : {int64_t{4096}, int64_t{8192}, int64_t{14336}, int64_t{28672}}) {
      const int split = GemvSplitFactor(groups, cols, 132);
      const int64_t rounds = (cols / 512 + 7) / 8;
      ASSERT_GE(split, 1);
      ASSERT_LE(split, rounds) << groups << " groups, " << cols << " columns";
      if (split > 1) {
        const int64_t per = (rounds + split - 1) / split;
        EXPECT_GT(rounds, per * (split - 1)) << "the last part has a round";
      }
    }
  }
  EXPECT_EQ(GemvSplitScratchFloats(128, 14336, 1), 128 * 28 * 32);
  EXPECT_EQ(GemvSplitScratchFloats(128, 14336, 40), 128 * 28 * 16 * 32);
}

// A path switch reads its variable once, at its first use: default-on
// switches are off only for "0", default-off ones on only for "1"; a test's
// override wins while set and -1 hands back to the environment.
TEST(CudaPathSwitch, EnvironmentReadOnceAndOverrideWins) {
  const auto first_on = [](const char* value, PathDefault d) {
    const char* name = "REPRISE_TEST_PATH_SWITCH";
    if (value == nullptr) {
      unsetenv(name);
    } else {
      setenv(name, value, 1);
    }
    PathSwitch sw(name, d);
    const bool on = sw.On();
    unsetenv(name);
    return on;
  };
  EXPECT_TRUE(first_on(nullptr, PathDefault::kOn));
  EXPECT_FALSE(first_on("0", PathDefault::kOn));
  EXPECT_TRUE(first_on("1", PathDefault::kOn));
  EXPECT_TRUE(first_on("no", PathDefault::kOn));
  EXPECT_FALSE(first_on(nullptr, PathDefault::kOff));
  EXPECT_TRUE(first_on("1", PathDefault::kOff));
  EXPECT_FALSE(first_on("0", PathDefault::kOff));
  EXPECT_FALSE(first_on("yes", PathDefault::kOff));

  setenv("REPRISE_TEST_PATH_SWITCH_2", "0", 1);
  PathSwitch sw("REPRISE_TEST_PATH_SWITCH_2", PathDefault::kOn);
  EXPECT_FALSE(sw.On());
  setenv("REPRISE_TEST_PATH_SWITCH_2", "1", 1);
  EXPECT_FALSE(sw.On()) << "the environment is read once";
  sw.SetForTest(1);
  EXPECT_TRUE(sw.On());
  sw.SetForTest(0);
  EXPECT_FALSE(sw.On());
  sw.SetForTest(7);
  EXPECT_TRUE(sw.On());
  sw.SetForTest(-1);
  EXPECT_FALSE(sw.On()) << "-1: as the environment said at the first use";
  unsetenv("REPRISE_TEST_PATH_SWITCH_2");
}

}  // namespace
}  // namespace reprise::kernels::cuda
#endif  // REPRISE_HAVE_CUDA
