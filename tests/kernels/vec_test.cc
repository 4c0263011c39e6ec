// The F16 store used for KV rows: the SIMD path is bit-identical to the
// portable rounding (nearest even), including subnormals, overflow and ties.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/fp16.h"
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

}  // namespace
}  // namespace reprise::kernels
