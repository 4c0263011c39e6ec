#include "golden_util.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

namespace reprise::testing {

GoldenModel LoadGoldenModel(const std::string& path, int n_threads) {
  GoldenModel g;
  auto file = gguf::File::Open(path);
  if (!file.ok()) {
    ADD_FAILURE() << file.status().message();
    return g;
  }
  g.file = std::move(file).value();
  model::ModelOptions opts;
  opts.n_threads = n_threads;
  auto m = model::Model::Load(g.file, opts);
  if (!m.ok()) {
    ADD_FAILURE() << m.status().message();
    return g;
  }
  g.model = std::move(m).value();
  return g;
}

std::vector<float> ReadF32(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  std::vector<float> v;
  if (!in) return v;
  const auto size = static_cast<size_t>(in.tellg());
  v.resize(size / sizeof(float));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
  return v;
}

float MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

float MaxAbs(const std::vector<float>& a) {
  float m = 0;
  for (float x : a) m = std::max(m, std::fabs(x));
  return m;
}

int32_t Argmax(const float* v, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (v[i] > v[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

}  // namespace reprise::testing
