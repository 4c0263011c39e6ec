// Internal: the contract between the MatMul driver (matmul.cc) and the
// per-instruction-set kernels (ref/, cpu/*_avx2.cc, *_avx512.cc, *_vnni.cc).
//
// A GemmFn computes y[t, r] for r in [r0, r1), t in [t0, t1). Determinism
// contract: the bits of y[t, r] depend only on row r of the weights and row t
// of the activations -- never on the ranges, the tiling or the thread -- so
// each kernel runs the same per-(row, token) operation sequence whether it is
// called for one token (GEMV) or inside a multi-token tile (GEMM).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/ops.h"
#include "kernels/packed.h"
#include "kernels/quant_blocks.h"

namespace reprise::kernels {

enum class KernelLevel { kScalar = 0, kAvx2 = 1, kAvx512 = 2, kAvx512Vnni = 3 };
const char* KernelLevelName(KernelLevel level);
// Levels this CPU can run, lowest first (always includes kScalar).
std::vector<KernelLevel> AvailableKernelLevels();
// The best available level (detected once).
KernelLevel BestKernelLevel();

struct GemmArgs {
  // [rows] rows of w_stride bytes (GGUF row layout); for packed kernels the
  // packed matrix, w_stride bytes per panel of kPanelRows rows (packed.h).
  const uint8_t* w = nullptr;
  int64_t w_stride = 0;
  int64_t cols = 0;
  const float* x = nullptr;      // float weights: [n, cols] activations
  const uint8_t* act = nullptr;  // quantized weights: [n] rows of act_layout.stride bytes
  ActRowLayout act_layout;
  float* y = nullptr;  // [n, ldy]
  int64_t ldy = 0;
  int threads = 1;  // threads sharing the call (tunes software prefetch only)
  // Fewer than 16 tokens (a decode step of a few streams): the weights are
  // read from memory for them once, not reused from cache across token
  // tiles as in prefill, so the kernels prefetch them as they do for a
  // single token. A prefetch hint only: never a result.
  bool stream_weights = false;
};
using GemmFn = void (*)(const GemmArgs& a, int64_t r0, int64_t r1, int64_t t0, int64_t t1);

// Per weight type; nullptr means "use the level below".
struct KernelTable {
  GemmFn f32 = nullptr;
  GemmFn f16 = nullptr;
  GemmFn bf16 = nullptr;
  GemmFn q8_0 = nullptr;
  GemmFn q4_0 = nullptr;
  GemmFn q4_k = nullptr;
  GemmFn q6_k = nullptr;
  // Kernels for repacked weights (packed.h); GemmArgs.w is then the packed
  // data and act_layout an ActX16 layout.
  GemmFn q8_0_x16 = nullptr;
  GemmFn q4_0_x16 = nullptr;
  GemmFn q4_k_x16 = nullptr;
  GemmFn q6_k_x16 = nullptr;
  // F16 in 8-row panels (kF16x8): GemmArgs.w is the packed data, x the floats.
  GemmFn f16_x8 = nullptr;
};
const KernelTable& ScalarKernels();      // ref/matmul_ref.cc
const KernelTable& Avx2Kernels();        // cpu/matmul_avx2.cc
const KernelTable& Avx512Kernels();      // cpu/matmul_avx512.cc
const KernelTable& Avx512VnniKernels();  // cpu/matmul_vnni.cc

// QuantizeActX16 (packed.h) with AVX-512 (cpu/matmul_vnni.cc): the same bytes.
// Call only on CPUs with the kAvx512Vnni level.
void QuantizeActX16Vnni(PackedLayout layout, const float* x, int64_t cols, const ActRowLayout& l,
                        uint8_t* row);

// The repacked layout Matrix::Prepare builds for `type` on this CPU (kNone:
// used in place).
PackedLayout PackedLayoutFor(DType type);

struct MatrixAccess {
  static PackedLayout layout(const Matrix& m) { return static_cast<PackedLayout>(m.layout_); }
  static const uint8_t* packed(const Matrix& m) {
    return static_cast<const uint8_t*>(m.packed_.get());
  }
};

// MatMul with an explicit kernel level (tests force every level; MatMul uses
// BestKernelLevel()). CHECKs that the CPU supports `level`.
void MatMulAtLevel(KernelLevel level, const Matrix& w, const float* x, int64_t n, float* y,
                   ThreadPool& pool, Workspace& ws);
// MatMulMulti at an explicit level; CHECKs that the matrices share type,
// width and layout.
void MatMulMultiAtLevel(KernelLevel level, std::span<const Matrix* const> ws, const float* x,
                        int64_t n, std::span<float* const> ys, ThreadPool& pool, Workspace& work);
// The level whose kernel actually runs for `type` when `level` is asked for.
KernelLevel EffectiveLevel(KernelLevel level, DType type);

// ---- Scalar reference dot products (ref/matmul_ref.cc) ----
// Float weights against float activations; fixed order (8 partial sums).
float RefDotF32(const float* w, const float* x, int64_t n);
float RefDotF16(const uint16_t* w, const float* x, int64_t n);
float RefDotBF16(const uint16_t* w, const float* x, int64_t n);
// Quantized weight row against one quantized activation row (`act` points at
// the token's row, laid out by `l`). Integer block dot products are exact;
// the float accumulation runs block by block in order.
float RefDotQ8_0(const BlockQ8_0* w, const uint8_t* act, const ActRowLayout& l);
float RefDotQ4_0(const BlockQ4_0* w, const uint8_t* act, const ActRowLayout& l);
float RefDotQ4K(const BlockQ4K* w, const uint8_t* act, const ActRowLayout& l);
float RefDotQ6K(const BlockQ6K* w, const uint8_t* act, const ActRowLayout& l);

// Activation block size the quantized path of `type` uses (32 or 256), 0 for float types.
int ActBlockSize(DType type);

}  // namespace reprise::kernels
