// Backend-neutral compute operations the model files call. The CPU backend
// chooses its SIMD implementation once at start-up (core/cpu_features.h);
// every fast kernel has a scalar reference in ref/ that is its oracle.
//
// Determinism contract (the prompt cache relies on it): the result for one
// token never depends on how many other tokens are in the call, on their
// values, or on the thread count. Work is split across rows/tokens, never
// across the reduction dimension, and every token's reduction uses the same
// order whatever the batch size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "core/dtype.h"
#include "core/status.h"
#include "core/thread_pool.h"

namespace reprise::kernels {

// A row-major weight matrix [rows, cols]; each row is RowBytes(type, cols)
// bytes. Usually points into the mmapped GGUF file.
struct MatrixView {
  DType type = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  const uint8_t* data = nullptr;
  int64_t row_bytes() const { return RowBytes(type, cols); }
};

// Weight types MatMul/GetRow support: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K.
bool IsSupportedWeightType(DType t);

// A weight prepared for MatMul: uses the view in place, or holds a repacked
// copy in a layout that feeds wide registers. Built once at load; cheap to
// copy (shares the repacked data). On CPUs with AVX-512 VNNI, Q8_0, Q4_0,
// Q4_K and Q6_K are repacked into panels of 8 rows (kernels/packed.h; the copy
// is the size of the original plus the padding of rows to 16 blocks and of the
// row count to 8, and 3% more for Q4_K and Q6_K); on CPUs with AVX-512, F16 is
// repacked into panels of 8 rows too (same size, rows padded to 32 values);
// F32 and BF16 are used in place. The view's data must outlive the Matrix:
// GetRow and the lower kernel levels read it.
class Matrix {
 public:
  Matrix() = default;
  // Errors when the type is unsupported or cols is not a multiple of the block.
  static Result<Matrix> Prepare(const MatrixView& view);
  DType type() const { return view_.type; }
  int64_t rows() const { return view_.rows; }
  int64_t cols() const { return view_.cols; }
  const MatrixView& view() const { return view_; }
  // Bytes of memory held by a repacked copy (0 when used in place).
  size_t packed_bytes() const { return packed_bytes_; }
  // A matrix whose data a backend prepared itself (e.g. uploaded to a GPU in
  // its own layout): `data` (owned through the shared_ptr) and a layout tag
  // that only that backend interprets. CPU kernels never see such a matrix.
  static Matrix FromBackend(const MatrixView& view, std::shared_ptr<void> data, size_t bytes,
                            int layout);
  const void* backend_data() const { return packed_.get(); }
  int backend_layout() const { return layout_; }

 private:
  friend struct MatrixAccess;
  MatrixView view_{};
  std::shared_ptr<void> packed_;
  size_t packed_bytes_ = 0;
  int layout_ = 0;
};

// Scratch memory for MatMul (quantized activations, per-thread buffers). Grows
// on first use and is then reused: no allocation per token after warm-up.
// MatMul uses slot 0; slots 1-7 are free for callers.
class Workspace {
 public:
  Workspace();
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  // A buffer of at least `bytes` bytes, 64-byte aligned, for `slot`.
  uint8_t* Get(int slot, size_t bytes);

 private:
  struct Buffer {
    uint8_t* ptr = nullptr;
    size_t size = 0;
  };
  Buffer buffers_[8];
};

// y[t, r] = sum_c W[r, c] * x[t, c] for t < n.
// x: [n, w.cols()] float32 row-major; y: [n, w.rows()] float32 row-major.
// F32/F16/BF16 weights compute in float32 against float32 activations;
// quantized weights quantize the activations to 8 bits per block (the
// reference in ref/ does the same arithmetic).
void MatMul(const Matrix& w, const float* x, int64_t n, float* y, ThreadPool& pool,
            Workspace& ws);

// ys[m] = ws[m] x for every matrix m (at most 8), as one call: when the
// matrices share type, width and layout (Q/K/V, gate/up), the activations are
// quantized once and all rows are one dispatch; otherwise one MatMul each.
// Each result is bit-identical to MatMul(*ws[m], ...).
void MatMulMulti(std::span<const Matrix* const> ws, const float* x, int64_t n,
                 std::span<float* const> ys, ThreadPool& pool, Workspace& work);

// Dequantizes row `r` of `w` into out[w.cols()] (embedding lookup).
void GetRow(const MatrixView& w, int64_t r, float* out);

// Scalar reference conversions (also used by the GGUF model writer).
// n must be a multiple of the type's block size.
void DequantizeRow(DType type, const void* src, float* dst, int64_t n);
void QuantizeRow(DType type, const float* src, void* dst, int64_t n);

// Which implementation MatMul uses for a type on this CPU, e.g. "avx512_vnni",
// with "+panels" when Matrix::Prepare repacks that type (packed.h).
std::string KernelName(DType type);

// ---- Elementwise (float32) ----
// out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]; out may alias x. w may be null (no scale).
void RmsNorm(const float* x, const float* w, int64_t n, float eps, float* out);
// gate[i] = silu(gate[i]) * up[i]
void SiluMul(float* gate, const float* up, int64_t n);
// y[i] += x[i]
void AddInPlace(float* y, const float* x, int64_t n);
// y[i] += a * x[i]
void Axpy(float a, const float* x, float* y, int64_t n);
// x = softmax(x), numerically stable.
void SoftmaxInPlace(float* x, int64_t n);

}  // namespace reprise::kernels
