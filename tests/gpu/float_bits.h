// The GPU tests' bit-for-bit comparisons of float outputs: where two vectors
// first differ in their bits, and the largest magnitude (a comparison of
// all-zero outputs proves nothing).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <vector>

namespace reprise::testing {

// The index of the first float whose bits differ (a.size() when none do).
inline size_t FirstDifference(const std::vector<float>& a, const std::vector<float>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && std::memcmp(&a[i], &b[i], sizeof(float)) == 0) ++i;
  return i;
}

inline double MaxMagnitude(const std::vector<float>& v) {
  double mag = 0;
  for (const float x : v) mag = std::max(mag, static_cast<double>(std::fabs(x)));
  return mag;
}

}  // namespace reprise::testing
