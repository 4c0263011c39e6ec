// MatMul: the scalar reference against double precision, every kernel level
// the CPU offers against the reference on awkward sizes, and the determinism
// contract (a token's result is bitwise independent of batch size, the other
// tokens and the thread count).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "core/fp16.h"
#include "core/thread_pool.h"
#include "kernel_test_util.h"
#include "kernels/matmul_internal.h"

namespace reprise::kernels {
namespace {

using testing::kAllWeightTypes;
using testing::MakeTestMatrix;
using testing::RandomFloats;
using testing::TestMatrix;

bool IsQuantized(DType t) { return ActBlockSize(t) != 0; }

// Quantized activations of x [n, cols] exactly as MatMul builds them.
struct QuantizedActs {
  ActRowLayout layout;
  std::vector<uint8_t> data;
  const uint8_t* row(int64_t t) const { return data.data() + t * layout.stride; }
};

QuantizedActs QuantizeActs(DType type, const float* x, int64_t n, int64_t cols) {
  QuantizedActs q;
  const int block = ActBlockSize(type);
  q.layout = MakeActRowLayout(cols, block);
  q.data.resize(n * q.layout.stride);
  for (int64_t t = 0; t < n; ++t) {
    if (block == kQK) {
      QuantizeAct32(x + t * cols, cols, q.layout, q.data.data() + t * q.layout.stride);
    } else {
      QuantizeAct256(x + t * cols, cols, q.layout, q.data.data() + t * q.layout.stride);
    }
  }
  return q;
}

// The float values the quantized activation row stands for.
std::vector<float> ActValues(const QuantizedActs& q, int64_t t, int64_t cols) {
  const int8_t* qs = reinterpret_cast<const int8_t*>(q.row(t) + q.layout.qs);
  const float* d = reinterpret_cast<const float*>(q.row(t) + q.layout.d);
  const int64_t block = cols / q.layout.n_blocks;
  std::vector<float> v(cols);
  for (int64_t c = 0; c < cols; ++c) v[c] = qs[c] * d[c / block];
  return v;
}

float RefDot(const TestMatrix& m, int64_t r, const float* x, const QuantizedActs* qa, int64_t t) {
  const uint8_t* w = m.data.data() + r * RowBytes(m.type, m.cols);
  switch (m.type) {
    case DType::kF32:
      return RefDotF32(reinterpret_cast<const float*>(w), x, m.cols);
    case DType::kF16:
      return RefDotF16(reinterpret_cast<const uint16_t*>(w), x, m.cols);
    case DType::kBF16:
      return RefDotBF16(reinterpret_cast<const uint16_t*>(w), x, m.cols);
    case DType::kQ8_0:
      return RefDotQ8_0(reinterpret_cast<const BlockQ8_0*>(w), qa->row(t), qa->layout);
    case DType::kQ4_0:
      return RefDotQ4_0(reinterpret_cast<const BlockQ4_0*>(w), qa->row(t), qa->layout);
    case DType::kQ4_K:
      return RefDotQ4K(reinterpret_cast<const BlockQ4K*>(w), qa->row(t), qa->layout);
    case DType::kQ6_K:
      return RefDotQ6K(reinterpret_cast<const BlockQ6K*>(w), qa->row(t), qa->layout);
    default:
      ADD_FAILURE();
      return 0;
  }
}

int64_t Block(DType t) { return GetDTypeInfo(static_cast<uint32_t>(t))->block_elems; }

TEST(MatMulReferenceTest, AgreesWithDoublePrecisionOnTheSameQuantizedInputs) {
  for (DType type : kAllWeightTypes) {
    const int64_t cols = Block(type) == 1 ? 517 : Block(type) * (Block(type) == 32 ? 37 : 5);
    const TestMatrix m = MakeTestMatrix(type, 5, cols, 100);
    const std::vector<float> x = RandomFloats(3 * cols, 101);
    QuantizedActs qa;
    if (IsQuantized(type)) qa = QuantizeActs(type, x.data(), 3, cols);
    std::vector<float> w(cols);
    for (int64_t t = 0; t < 3; ++t) {
      const std::vector<float> xv =
          IsQuantized(type) ? ActValues(qa, t, cols)
                            : std::vector<float>(x.begin() + t * cols, x.begin() + (t + 1) * cols);
      for (int64_t r = 0; r < 5; ++r) {
        GetRow(m.view(), r, w.data());
        double exact = 0, mag = 0;
        for (int64_t c = 0; c < cols; ++c) {
          exact += double(w[c]) * xv[c];
          mag += std::fabs(double(w[c]) * xv[c]);
        }
        const float got = RefDot(m, r, x.data() + t * cols, &qa, t);
        EXPECT_NEAR(got, exact, 2e-6 * mag) << DTypeName(type) << " r=" << r << " t=" << t;
      }
    }
  }
}

// Every level against the scalar reference, sizes chosen to hit every tail.
TEST(MatMulLevelsTest, EveryLevelMatchesTheScalarReferenceOnAwkwardSizes) {
  ThreadPool pool(2);
  Workspace ws;
  for (KernelLevel level : AvailableKernelLevels()) {
    for (DType type : kAllWeightTypes) {
      const int64_t b = Block(type);
      const std::vector<int64_t> col_options =
          b == 1 ? std::vector<int64_t>{1, 7, 33, 515}
                 : (b == 32 ? std::vector<int64_t>{32, 96, 416, 2144}
                            : std::vector<int64_t>{256, 768, 1280});
      for (int64_t cols : col_options) {
        for (int64_t rows : {1, 7, 37, 70}) {
          const TestMatrix m = MakeTestMatrix(type, rows, cols, uint32_t(rows * 131 + cols));
          const Result<Matrix> mat = Matrix::Prepare(m.view());
          ASSERT_TRUE(mat.ok()) << mat.status().message();
          for (int64_t n : {1, 3, 17, 70}) {
            const std::vector<float> x = RandomFloats(n * cols, uint32_t(n + cols));
            std::vector<float> y(n * rows, NAN);
            MatMulAtLevel(level, *mat, x.data(), n, y.data(), pool, ws);
            QuantizedActs qa;
            if (IsQuantized(type)) qa = QuantizeActs(type, x.data(), n, cols);
            std::vector<float> w(cols);
            for (int64_t r = 0; r < rows; ++r) {
              GetRow(m.view(), r, w.data());
              for (int64_t t = 0; t < n; ++t) {
                double mag = 0;
                for (int64_t c = 0; c < cols; ++c) mag += std::fabs(double(w[c]) * x[t * cols + c]);
                const float ref = RefDot(m, r, x.data() + t * cols, &qa, t);
                const float got = y[t * rows + r];
                ASSERT_NEAR(got, ref, 4e-6 * mag + 1e-6 * std::fabs(ref))
                    << KernelLevelName(level) << " " << DTypeName(type) << " rows=" << rows
                    << " cols=" << cols << " n=" << n << " r=" << r << " t=" << t;
              }
            }
          }
        }
      }
    }
  }
}

// Raw random blocks (any byte pattern a file may hold: Q8_0 -128, Q6_K scale
// -128, all-15 nibbles) against activations that hit +-127: no kernel may
// saturate an intermediate.
TEST(MatMulLevelsTest, ArbitraryBlockBytesMatchTheReference) {
  ThreadPool pool(2);
  Workspace ws;
  std::mt19937 rng(42);
  for (DType type : {DType::kQ8_0, DType::kQ4_0, DType::kQ4_K, DType::kQ6_K}) {
    const int64_t rows = 9, cols = 512, n = 5;
    const int64_t rb = RowBytes(type, cols);
    std::vector<uint8_t> data(rows * rb);
    for (uint8_t& b : data) b = static_cast<uint8_t>(rng());
    const uint16_t d = Fp32ToFp16(0.01f);
    for (int64_t r = 0; r < rows; ++r) {
      uint8_t* row = data.data() + r * rb;
      if (type == DType::kQ8_0 || type == DType::kQ4_0) {
        const int64_t bb = type == DType::kQ8_0 ? 34 : 18;
        for (int64_t b = 0; b < cols / 32; ++b) std::memcpy(row + b * bb, &d, 2);
        if (type == DType::kQ8_0 && r == 0) {  // a whole row of -128
          for (int64_t b = 0; b < cols / 32; ++b) std::memset(row + b * bb + 2, 0x80, 32);
        }
      } else if (type == DType::kQ4_K) {
        for (int64_t b = 0; b < cols / 256; ++b) {
          std::memcpy(row + b * 144, &d, 2);
          std::memcpy(row + b * 144 + 2, &d, 2);
        }
      } else {
        for (int64_t b = 0; b < cols / 256; ++b) {
          std::memcpy(row + b * 210 + 208, &d, 2);
          if (r == 0) std::memset(row + b * 210 + 192, 0x80, 16);  // scales -128
        }
      }
    }
    std::vector<float> x = RandomFloats(n * cols, 43);
    for (int64_t i = 0; i < n * cols; i += 3) x[i] = (i / 3) % 2 ? 5.0f : -5.0f;  // amax hits
    const Matrix mat = *Matrix::Prepare(MatrixView{type, rows, cols, data.data()});
    const QuantizedActs qa = QuantizeActs(type, x.data(), n, cols);
    TestMatrix m{type, rows, cols, {}, data};
    for (KernelLevel level : AvailableKernelLevels()) {
      std::vector<float> y(n * rows);
      MatMulAtLevel(level, mat, x.data(), n, y.data(), pool, ws);
      std::vector<float> w(cols);
      for (int64_t r = 0; r < rows; ++r) {
        GetRow(m.view(), r, w.data());
        for (int64_t t = 0; t < n; ++t) {
          double mag = 0;
          for (int64_t c = 0; c < cols; ++c) mag += std::fabs(double(w[c]) * x[t * cols + c]);
          const float ref = RefDot(m, r, x.data() + t * cols, &qa, t);
          ASSERT_NEAR(y[t * rows + r], ref, 4e-6 * mag + 1e-6 * std::fabs(ref))
              << KernelLevelName(level) << " " << DTypeName(type) << " r=" << r << " t=" << t;
        }
      }
    }
  }
}

// y[t, :] must not depend on n, on the other tokens or on the thread count.
TEST(MatMulDeterminismTest, TokenResultIsBitwiseIndependentOfBatchOthersAndThreads) {
  ThreadPool pool1(1), pool2(2);
  Workspace ws;
  const int64_t rows = 77, n = 512;
  for (KernelLevel level : AvailableKernelLevels()) {
    for (DType type : kAllWeightTypes) {
      const int64_t cols = Block(type) == 256 ? 512 : 416;
      const TestMatrix m = MakeTestMatrix(type, rows, cols, 7);
      const Matrix mat = *Matrix::Prepare(m.view());
      std::vector<float> x = RandomFloats(n * cols, 8);
      std::vector<float> full(n * rows);
      MatMulAtLevel(level, mat, x.data(), n, full.data(), pool2, ws);

      std::vector<float> part(n * rows);
      for (int64_t t = 0; t < n; ++t) {  // one token at a time, one thread
        MatMulAtLevel(level, mat, x.data() + t * cols, 1, part.data() + t * rows, pool1, ws);
      }
      EXPECT_EQ(0, std::memcmp(full.data(), part.data(), full.size() * 4))
          << KernelLevelName(level) << " " << DTypeName(type) << " n=1 vs n=512";
      for (int64_t t = 0; t < n; t += 37) {  // slices of 37, two threads
        const int64_t len = std::min<int64_t>(37, n - t);
        MatMulAtLevel(level, mat, x.data() + t * cols, len, part.data() + t * rows, pool2, ws);
      }
      EXPECT_EQ(0, std::memcmp(full.data(), part.data(), full.size() * 4))
          << KernelLevelName(level) << " " << DTypeName(type) << " n=37 vs n=512";

      // Change every other token: tokens 0, 2, 4, ... must keep their bits.
      std::vector<float> x2 = x;
      const std::vector<float> noise = RandomFloats(n * cols, 9, 3.0f);
      for (int64_t t = 1; t < n; t += 2) {
        std::copy(noise.begin() + t * cols, noise.begin() + (t + 1) * cols, x2.begin() + t * cols);
      }
      std::vector<float> other(n * rows);
      MatMulAtLevel(level, mat, x2.data(), n, other.data(), pool2, ws);
      for (int64_t t = 0; t < n; t += 2) {
        ASSERT_EQ(0, std::memcmp(full.data() + t * rows, other.data() + t * rows, rows * 4))
            << KernelLevelName(level) << " " << DTypeName(type) << " t=" << t;
      }
    }
  }
}

TEST(MatMulTest, ActivationQuantizationRoundsHalfToEven) {
  // amax 127 makes the scale exactly 1, so every x.5 is a tie.
  float x[256];
  for (int i = 0; i < 256; ++i) x[i] = static_cast<float>(i % 250 - 124) + (i % 2 ? 0.5f : 0.25f);
  x[255] = 127.0f;
  x[1] = 1.5f;
  x[2] = -0.5f;
  x[3] = 2.5f;
  x[4] = -2.5f;
  int8_t q[256];
  ASSERT_EQ(QuantizeBlock(x, 256, q), 1.0f);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(q[i], static_cast<int8_t>(std::nearbyint(x[i]))) << x[i];
  EXPECT_EQ(q[1], 2);
  EXPECT_EQ(q[2], 0);
  EXPECT_EQ(q[3], 2);
  EXPECT_EQ(q[4], -2);
}

TEST(MatMulTest, PrepareRejectsUnsupportedTypesAndRaggedColumns) {
  std::vector<uint8_t> buf(4096);
  EXPECT_FALSE(Matrix::Prepare(MatrixView{DType::kQ5_K, 2, 256, buf.data()}).ok());
  EXPECT_FALSE(Matrix::Prepare(MatrixView{DType::kQ8_0, 2, 48, buf.data()}).ok());
  EXPECT_FALSE(Matrix::Prepare(MatrixView{DType::kQ4_K, 2, 0, buf.data()}).ok());
  EXPECT_FALSE(Matrix::Prepare(MatrixView{DType::kF32, 2, 8, nullptr}).ok());
  EXPECT_TRUE(Matrix::Prepare(MatrixView{DType::kQ6_K, 2, 256, buf.data()}).ok());
}

TEST(MatMulTest, WorkspaceDoesNotReallocateAfterWarmUp) {
  ThreadPool pool(2);
  Workspace ws;
  const TestMatrix m = MakeTestMatrix(DType::kQ8_0, 64, 256, 3);
  const Matrix mat = *Matrix::Prepare(m.view());
  const std::vector<float> x = RandomFloats(8 * 256, 4);
  std::vector<float> y(8 * 64);
  MatMul(mat, x.data(), 8, y.data(), pool, ws);
  uint8_t* before = ws.Get(0, 1);
  for (int64_t n = 1; n <= 8; ++n) MatMul(mat, x.data(), n, y.data(), pool, ws);
  EXPECT_EQ(before, ws.Get(0, 1));
}

TEST(MatMulTest, GetRowDequantizesOneRow) {
  const TestMatrix m = MakeTestMatrix(DType::kQ4_K, 3, 512, 5);
  std::vector<float> row(512), expected(512);
  GetRow(m.view(), 2, row.data());
  DequantizeRow(DType::kQ4_K, m.data.data() + 2 * RowBytes(DType::kQ4_K, 512), expected.data(),
                512);
  EXPECT_EQ(row, expected);
}

TEST(MatMulTest, KernelNameNamesTheBestLevelWithAKernelForTheType) {
  for (DType type : kAllWeightTypes) {
    const std::string level = KernelLevelName(EffectiveLevel(BestKernelLevel(), type));
    const bool packed = PackedLayoutFor(type) != PackedLayout::kNone;
    EXPECT_EQ(KernelName(type), packed ? level + "+panels" : level);
    // A repacked matrix reports the bytes of its copy.
    const TestMatrix m = MakeTestMatrix(type, 3, 256, 1);
    EXPECT_EQ(Matrix::Prepare(m.view())->packed_bytes() > 0, packed) << DTypeName(type);
  }
  EXPECT_EQ(KernelName(DType::kQ5_K), "unsupported");
}

}  // namespace
}  // namespace reprise::kernels

namespace reprise::kernels {
namespace {

// The AVX-512 activation quantizer of the packed path writes exactly the
// bytes of the portable one (same scales, same rounding, same sums), for each
// layout, with whole and partial groups, zero blocks and large values.
TEST(MatMulTest, VnniActivationQuantizerMatchesThePortableOneByteForByte) {
  const std::vector<KernelLevel> levels = AvailableKernelLevels();
  if (levels.back() != KernelLevel::kAvx512Vnni) GTEST_SKIP() << "CPU lacks AVX-512 VNNI";
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (PackedLayout layout : {PackedLayout::kQ8_0x16, PackedLayout::kQ4_0x16,
                              PackedLayout::kQ4_Kx16, PackedLayout::kQ6_Kx16}) {
    for (int64_t cols : {256, 512, 768, 2048, 2304}) {
      if (cols % PackedActBlock(layout) != 0) continue;
      std::vector<float> x(cols);
      for (float& v : x) v = nd(rng);
      for (int64_t i = 0; i < std::min<int64_t>(cols, 256); ++i) x[i] = 0.0f;  // zero blocks
      x[cols - 1] = 1e6f;
      x[cols / 2] = -0.5f;  // ties of x * (1 / d) are likely with many magnitudes
      const ActRowLayout l = MakeActX16Layout(layout, cols);
      std::vector<uint8_t> want(l.stride, 0xAA), got(l.stride, 0x55);
      QuantizeActX16(layout, x.data(), cols, l, want.data());
      QuantizeActX16Vnni(layout, x.data(), cols, l, got.data());
      ASSERT_EQ(0, std::memcmp(want.data(), got.data(), l.stride))
          << "layout " << static_cast<int>(layout) << " cols " << cols;
    }
  }
}

}  // namespace
}  // namespace reprise::kernels

namespace reprise::kernels {
namespace {

// MatMulMulti (one quantization, one dispatch for Q/K/V or gate/up) gives
// the bits of separate MatMul calls, at every level, for every type, with
// matrices of different heights; a mixed set falls back to separate calls.
TEST(MatMulMultiTest, MatchesSeparateCallsBitForBit) {
  ThreadPool pool(2);
  Workspace ws;
  for (KernelLevel level : AvailableKernelLevels()) {
    for (DType type : kAllWeightTypes) {
      const int64_t cols = Block(type) == 256 ? 512 : 416;
      const TestMatrix ma = MakeTestMatrix(type, 70, cols, 21);
      const TestMatrix mb = MakeTestMatrix(type, 8, cols, 22);
      const TestMatrix mc = MakeTestMatrix(type, 33, cols, 23);
      const Matrix a = *Matrix::Prepare(ma.view()), b = *Matrix::Prepare(mb.view()),
                   c = *Matrix::Prepare(mc.view());
      for (int64_t n : {1, 5, 40}) {
        const std::vector<float> x = RandomFloats(n * cols, 24);
        std::vector<float> ya(n * 70), yb(n * 8), yc(n * 33);
        const Matrix* mats[] = {&a, &b, &c};
        float* ys[] = {ya.data(), yb.data(), yc.data()};
        MatMulMultiAtLevel(level, mats, x.data(), n, ys, pool, ws);
        std::vector<float> wa(n * 70), wb(n * 8), wc(n * 33);
        MatMulAtLevel(level, a, x.data(), n, wa.data(), pool, ws);
        MatMulAtLevel(level, b, x.data(), n, wb.data(), pool, ws);
        MatMulAtLevel(level, c, x.data(), n, wc.data(), pool, ws);
        const std::string what = std::string(KernelLevelName(level)) + " " + DTypeName(type) +
                                 " n=" + std::to_string(n);
        EXPECT_EQ(0, std::memcmp(ya.data(), wa.data(), ya.size() * 4)) << what;
        EXPECT_EQ(0, std::memcmp(yb.data(), wb.data(), yb.size() * 4)) << what;
        EXPECT_EQ(0, std::memcmp(yc.data(), wc.data(), yc.size() * 4)) << what;
      }
    }
  }
  // Mixed types: MatMulMulti runs them one by one, same bits as MatMul.
  const TestMatrix mq = MakeTestMatrix(DType::kQ8_0, 16, 256, 25);
  const TestMatrix mf = MakeTestMatrix(DType::kF16, 16, 256, 26);
  const Matrix q = *Matrix::Prepare(mq.view()), f = *Matrix::Prepare(mf.view());
  const std::vector<float> x = RandomFloats(3 * 256, 27);
  std::vector<float> yq(3 * 16), yf(3 * 16), wq(3 * 16), wf(3 * 16);
  const Matrix* mats[] = {&q, &f};
  float* ys[] = {yq.data(), yf.data()};
  MatMulMulti(mats, x.data(), 3, ys, pool, ws);
  MatMul(q, x.data(), 3, wq.data(), pool, ws);
  MatMul(f, x.data(), 3, wf.data(), pool, ws);
  EXPECT_EQ(0, std::memcmp(yq.data(), wq.data(), yq.size() * 4));
  EXPECT_EQ(0, std::memcmp(yf.data(), wf.data(), yf.size() * 4));
}

}  // namespace
}  // namespace reprise::kernels
