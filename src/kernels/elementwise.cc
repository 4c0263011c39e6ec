// Elementwise float32 ops (portable; the compiler vectorises these loops),
// except SiluMul and RmsNorm, which use SIMD versions (cpu/vec_*.cc) where
// the CPU has them: they are the costly parts of a prefill outside the
// matmuls. RmsNorm accumulates in double so the result matches float64
// references to well under 1e-6 relative.
#include <cmath>

#include "core/cpu_features.h"
#include "kernels/ops.h"
#include "kernels/vec.h"

namespace reprise::kernels {


void RmsNorm(const float* x, const float* w, int64_t n, float eps, float* out) {
  static const bool use_avx2 = GetCpuFeatures().avx2;
  if (use_avx2 && n % 8 == 0) return avx2::RmsNorm(x, w, n, eps, out);
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  if (w != nullptr) {
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * w[i];
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale;
  }
}

void SiluMul(float* gate, const float* up, int64_t n) {
  static const int level = GetCpuFeatures().avx512 ? 2 : GetCpuFeatures().avx2 ? 1 : 0;
  if (level == 2) return avx512::SiluMul(gate, up, n);
  if (level == 1) return avx2::SiluMul(gate, up, n);
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void AddInPlace(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void Axpy(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void SoftmaxInPlace(float* x, int64_t n) {
  if (n <= 0) return;
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

}  // namespace reprise::kernels
