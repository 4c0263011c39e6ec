// The GPU tests' random quantized weights: rows x cols values drawn from
// 0.05 * N(0, 1) in row order, quantized row by row to `type` as the GGUF
// writer does (kernels::QuantizeRow). Returns the rows' bytes (RowBytes each).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "kernels/ops.h"

namespace reprise::testing {

inline std::vector<uint8_t> RandomQuantRows(DType type, int64_t rows, int64_t cols,
                                            std::mt19937* rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> wf(static_cast<size_t>(rows * cols));
  for (auto& v : wf) v = 0.05f * dist(*rng);
  const int64_t rb = RowBytes(type, cols);
  std::vector<uint8_t> wq(static_cast<size_t>(rows * rb));
  for (int64_t r = 0; r < rows; ++r) {
    kernels::QuantizeRow(type, wf.data() + r * cols, wq.data() + r * rb, cols);
  }
  return wq;
}

}  // namespace reprise::testing
