// Helpers shared by the kernels tests: random data, quantized matrices.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "kernels/ops.h"

namespace reprise::kernels::testing {

inline std::vector<float> RandomFloats(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

// A [rows, cols] matrix of `type` quantized from random floats.
struct TestMatrix {
  DType type;
  int64_t rows, cols;
  std::vector<float> source;  // [rows, cols] the floats it was quantized from
  std::vector<uint8_t> data;  // [rows, RowBytes(type, cols)]
  MatrixView view() const { return MatrixView{type, rows, cols, data.data()}; }
};

inline TestMatrix MakeTestMatrix(DType type, int64_t rows, int64_t cols, uint32_t seed) {
  TestMatrix m{type, rows, cols, RandomFloats(rows * cols, seed, 0.05f), {}};
  const int64_t rb = RowBytes(type, cols);
  m.data.resize(rows * rb + 64);
  for (int64_t r = 0; r < rows; ++r) {
    QuantizeRow(type, m.source.data() + r * cols, m.data.data() + r * rb, cols);
  }
  return m;
}

inline const DType kAllWeightTypes[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ8_0,
                                        DType::kQ4_0, DType::kQ4_K, DType::kQ6_K};

}  // namespace reprise::kernels::testing
