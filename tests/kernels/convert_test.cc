// DequantizeRow / QuantizeRow: the ggml block layouts decoded bit for bit from
// hand-built blocks, and quantize -> dequantize round trips within the error
// each format allows.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "kernel_test_util.h"
#include "kernels/ops.h"
#include "kernels/quant_blocks.h"

namespace reprise::kernels {
namespace {

using testing::RandomFloats;

TEST(DequantizeTest, Q8_0BlockIsScaleTimesInt8) {
  BlockQ8_0 b;
  b.d = Fp32ToFp16(0.25f);
  for (int i = 0; i < 32; ++i) b.qs[i] = static_cast<int8_t>(i * 8 - 128);
  float out[32];
  DequantizeRow(DType::kQ8_0, &b, out, 32);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(out[i], (i * 8 - 128) * 0.25f) << i;
}

TEST(DequantizeTest, Q4_0LowNibblesAreFirstHalfHighNibblesSecondHalf) {
  BlockQ4_0 b;
  b.d = Fp32ToFp16(0.5f);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  float out[32];
  DequantizeRow(DType::kQ4_0, &b, out, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(out[j], (j - 8) * 0.5f) << j;
    EXPECT_EQ(out[j + 16], (7 - j) * 0.5f) << j;
  }
}

// Packs 8 six-bit scales and mins the way ggml's get_scale_min_k4 reads them.
void PackScalesK4(const int* sc, const int* m, uint8_t* out) {
  std::memset(out, 0, 12);
  for (int j = 0; j < 4; ++j) {
    out[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    out[j + 4] = static_cast<uint8_t>(m[j] | ((m[j + 4] >> 4) << 6));
    out[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
  }
}

TEST(DequantizeTest, Q4KDecodesSixBitScalesAndNibbleOrder) {
  const int sc[8] = {1, 63, 17, 32, 48, 5, 60, 33};
  const int m[8] = {0, 7, 63, 20, 41, 62, 16, 1};
  BlockQ4K b;
  b.d = Fp32ToFp16(0.125f);
  b.dmin = Fp32ToFp16(0.0625f);
  PackScalesK4(sc, m, b.scales);
  int q[256];
  for (int i = 0; i < 256; ++i) q[i] = (i * 7 + i / 13) & 15;
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      b.qs[32 * c + l] = static_cast<uint8_t>(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
    }
  }
  float out[256];
  DequantizeRow(DType::kQ4_K, &b, out, 256);
  for (int i = 0; i < 256; ++i) {
    const int j = i / 32;
    const float expected = 0.125f * sc[j] * q[i] - 0.0625f * m[j];
    EXPECT_EQ(out[i], expected) << i;
  }
}

TEST(DequantizeTest, Q6KCombinesLowAndHighBitsPerSixteenValueScales) {
  BlockQ6K b;
  b.d = Fp32ToFp16(0.5f);
  for (int j = 0; j < 16; ++j) b.scales[j] = static_cast<int8_t>(j * 9 - 70);
  int q[256];  // 0..63
  for (int i = 0; i < 256; ++i) q[i] = (i * 37 + 11) & 63;
  std::memset(b.ql, 0, sizeof(b.ql));
  std::memset(b.qh, 0, sizeof(b.qh));
  for (int h = 0; h < 2; ++h) {
    for (int l = 0; l < 32; ++l) {
      for (int k = 0; k < 4; ++k) {  // values l + 32k of this half
        const int v = q[128 * h + l + 32 * k];
        const int ql_index = 64 * h + l + (k & 1) * 32;
        b.ql[ql_index] |= static_cast<uint8_t>((v & 0xF) << ((k >> 1) * 4));
        b.qh[32 * h + l] |= static_cast<uint8_t>((v >> 4) << (2 * k));
      }
    }
  }
  float out[256];
  DequantizeRow(DType::kQ6_K, &b, out, 256);
  for (int i = 0; i < 256; ++i) {
    const float expected = 0.5f * static_cast<float>(b.scales[i / 16]) * (q[i] - 32);
    EXPECT_EQ(out[i], expected) << i;
  }
}

TEST(DequantizeTest, F16AndBF16UsePortableConversions) {
  const uint16_t h[4] = {0x3c00, 0xc000, 0x0001, 0x7bff};
  float out[4];
  DequantizeRow(DType::kF16, h, out, 4);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -2.0f);
  EXPECT_EQ(out[2], std::ldexp(1.0f, -24));
  EXPECT_EQ(out[3], 65504.0f);
  const uint16_t bf[2] = {0x3f80, 0xc040};
  DequantizeRow(DType::kBF16, bf, out, 2);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -3.0f);
}

// Relative RMS error of quantize -> dequantize on Gaussian data.
double RoundTripRelRms(DType type, int64_t n, uint32_t seed) {
  const std::vector<float> x = RandomFloats(n, seed);
  std::vector<uint8_t> q(RowBytes(type, n));
  std::vector<float> y(n);
  QuantizeRow(type, x.data(), q.data(), n);
  DequantizeRow(type, q.data(), y.data(), n);
  double err = 0, ref = 0;
  for (int64_t i = 0; i < n; ++i) {
    err += double(x[i] - y[i]) * (x[i] - y[i]);
    ref += double(x[i]) * x[i];
  }
  return std::sqrt(err / ref);
}

TEST(QuantizeTest, RoundTripErrorMatchesEachFormatsPrecision) {
  const int64_t n = 256 * 12;
  EXPECT_EQ(RoundTripRelRms(DType::kF32, n, 1), 0.0);
  EXPECT_LT(RoundTripRelRms(DType::kF16, n, 2), 4e-4);
  EXPECT_LT(RoundTripRelRms(DType::kBF16, n, 3), 3e-3);
  EXPECT_LT(RoundTripRelRms(DType::kQ8_0, n, 4), 0.01);
  EXPECT_LT(RoundTripRelRms(DType::kQ6_K, n, 5), 0.03);
  EXPECT_LT(RoundTripRelRms(DType::kQ4_K, n, 6), 0.12);
  EXPECT_LT(RoundTripRelRms(DType::kQ4_0, n, 7), 0.15);
  // Ordered by bits per weight.
  EXPECT_LT(RoundTripRelRms(DType::kQ6_K, n, 8), RoundTripRelRms(DType::kQ4_K, n, 8));
}

TEST(QuantizeTest, QuantizeOfDequantizedIsStableForQ8_0AndQ4_0) {
  for (DType type : {DType::kQ8_0, DType::kQ4_0}) {
    const int64_t n = 32 * 9;
    const std::vector<float> x = RandomFloats(n, 11);
    std::vector<uint8_t> q1(RowBytes(type, n)), q2(RowBytes(type, n));
    std::vector<float> y(n);
    QuantizeRow(type, x.data(), q1.data(), n);
    DequantizeRow(type, q1.data(), y.data(), n);
    QuantizeRow(type, y.data(), q2.data(), n);
    EXPECT_EQ(q1, q2) << DTypeName(type);
  }
}

TEST(QuantizeTest, AllZeroInputGivesZeros) {
  for (DType type : testing::kAllWeightTypes) {
    std::vector<float> x(256, 0.0f), y(256, 1.0f);
    std::vector<uint8_t> q(RowBytes(type, 256));
    QuantizeRow(type, x.data(), q.data(), 256);
    DequantizeRow(type, q.data(), y.data(), 256);
    for (float v : y) ASSERT_EQ(v, 0.0f) << DTypeName(type);
  }
}

}  // namespace
}  // namespace reprise::kernels
