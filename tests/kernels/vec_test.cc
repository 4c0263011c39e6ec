// The F16 store used for KV rows: the SIMD path is bit-identical to the
// portable rounding (nearest even), including subnormals, overflow and ties.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/cpu_features.h"
#include "core/fp16.h"
#include "kernels/ops.h"
#include "kernels/vec.h"

namespace reprise::kernels {
namespace {

TEST(Vec, ConvertToF16MatchesPortableRoundingBitForBit) {
  std::mt19937 rng(7);
  std::vector<float> src;
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = Fp16ToFp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    src.push_back(f);
    // Halfway and near-halfway points between neighbouring halves.
    src.push_back(std::nextafter(f, std::numeric_limits<float>::infinity()));
    src.push_back(std::nextafter(f, -std::numeric_limits<float>::infinity()));
  }
  std::uniform_real_distribution<float> u(-70000.0f, 70000.0f);
  for (int i = 0; i < 10000; ++i) src.push_back(u(rng));
  for (int i = 0; i < 10000; ++i) src.push_back(u(rng) * 1e-9f);
  src.push_back(1e30f);
  src.push_back(-1e30f);
  for (size_t n : {src.size(), size_t{7}, size_t{1}}) {
    std::vector<uint16_t> fast(n), want(n);
    ConvertToF16(src.data(), fast.data(), static_cast<int64_t>(n));
    ref::ConvertToF16(src.data(), want.data(), static_cast<int64_t>(n));
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(fast[i], want[i]) << src[i];
  }
}

// SiluMul (SIMD exp where the CPU has it) against the libm formula, over
// [-100, 100] and the extremes, for every tail length; and the result of one
// element never depends on the length of the call (the prompt cache relies on
// batch-independent arithmetic).
TEST(Vec, SiluMulMatchesTheLibmFormulaAndIgnoresCallLength) {
  std::vector<float> g, u;
  for (int i = -20000; i <= 20000; ++i) {
    g.push_back(i * 0.005f);
    u.push_back(1.0f + (i % 7) * 0.25f);
  }
  for (float v : {-1e30f, -200.0f, -88.0f, -87.5f, 87.5f, 88.5f, 200.0f, 1e30f, 0.0f, -0.0f}) {
    g.push_back(v);
    u.push_back(3.0f);
  }
  std::vector<float> got = g;
  SiluMul(got.data(), u.data(), static_cast<int64_t>(g.size()));
  for (size_t i = 0; i < g.size(); ++i) {
    const double want = g[i] / (1.0 + std::exp(-static_cast<double>(g[i]))) * u[i];
    // Absolute floor: exp saturates to +inf from 88.38 (true: 88.72), so
    // silu(g) for g in (-88.72, -88.38] is -0 instead of about -3e-37.
    ASSERT_NEAR(got[i], want, 4e-7 * std::fabs(want) + 1e-36) << "g=" << g[i];
  }
  for (int64_t n = 1; n <= 17; ++n) {
    std::vector<float> part(g.begin() + 19990, g.begin() + 19990 + n);
    SiluMul(part.data(), u.data() + 19990, n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(part[i], got[19990 + i]) << n << " " << i;
  }
}

// The AVX-512 SiluMul gives the AVX2 version's bits (same exp, lane by lane).
TEST(Vec, SiluMulAvx512MatchesAvx2BitForBit) {
  if (!GetCpuFeatures().avx512) GTEST_SKIP() << "CPU lacks AVX-512";
  std::vector<float> g, u;
  for (int i = -30000; i <= 30000; ++i) {
    g.push_back(i * 0.0037f);
    u.push_back(0.5f + (i % 11) * 0.3f);
  }
  for (float v : {-1e30f, -100.0f, -88.6f, -87.2f, 88.5f, 100.0f, 1e30f}) {
    g.push_back(v);
    u.push_back(2.0f);
  }
  for (size_t n : {g.size(), size_t{1}, size_t{15}, size_t{17}}) {
    std::vector<float> a(g.begin(), g.begin() + n), b = a;
    avx2::SiluMul(a.data(), u.data(), static_cast<int64_t>(n));
    avx512::SiluMul(b.data(), u.data(), static_cast<int64_t>(n));
    ASSERT_EQ(0, std::memcmp(a.data(), b.data(), n * sizeof(float))) << n;
  }
}

// RmsNorm (AVX2 where available) against a float64 evaluation, with and
// without a weight, in place and not, for widths on and off the vector path.
TEST(Vec, RmsNormMatchesFloat64) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  for (int64_t n : {8, 64, 2048, 4, 13, 100}) {
    std::vector<float> x(n), w(n);
    for (float& v : x) v = nd(rng);
    for (float& v : w) v = 1.0f + 0.1f * nd(rng);
    double ss = 0;
    for (float v : x) ss += static_cast<double>(v) * v;
    const double scale = 1.0 / std::sqrt(ss / n + 1e-5);
    std::vector<float> out(n), in_place = x;
    RmsNorm(x.data(), w.data(), n, 1e-5f, out.data());
    RmsNorm(in_place.data(), w.data(), n, 1e-5f, in_place.data());
    for (int64_t i = 0; i < n; ++i) {
      const double want = x[i] * scale * w[i];
      ASSERT_NEAR(out[i], want, 1e-6 * std::fabs(want) + 1e-7) << n << " " << i;
      ASSERT_EQ(out[i], in_place[i]);
    }
    RmsNorm(x.data(), nullptr, n, 1e-5f, out.data());
    for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(out[i], x[i] * scale, 1e-6 * std::fabs(x[i] * scale) + 1e-7);
  }
}

}  // namespace
}  // namespace reprise::kernels
