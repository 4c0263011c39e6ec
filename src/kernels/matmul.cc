// The MatMul driver: weight preparation, the workspace, run-time kernel
// selection and the split of work across threads. Work is split over
// (row chunk, token chunk) items, never over the reduction dimension, and the
// kernels keep each (row, token) result independent of the split (see
// matmul_internal.h), which gives the determinism contract of ops.h.
#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>

#include "core/check.h"
#include "core/cpu_features.h"
#include "kernels/matmul_internal.h"

namespace reprise::kernels {

bool IsSupportedWeightType(DType t) {
  switch (t) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kQ4_K:
    case DType::kQ6_K:
      return true;
    default:
      return false;
  }
}

namespace {

constexpr size_t kHugePage = size_t{2} << 20;

size_t MappedBytes(size_t bytes) { return (bytes + 4095) & ~size_t{4095}; }

// Zeroed memory for a packed matrix, 2 MiB-aligned and advised as huge pages:
// a decode step streams ~1 GB of weights, and with 4 KiB pages every 4 KiB
// of it costs a TLB miss (the L2 TLB covers ~12 MB). nullptr when out of
// memory.
uint8_t* AllocPacked(size_t bytes) {
  const size_t len = MappedBytes(bytes);
  void* p = mmap(nullptr, len + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
  if (p == MAP_FAILED) return nullptr;
  const uintptr_t base = reinterpret_cast<uintptr_t>(p);
  const uintptr_t aligned = (base + kHugePage - 1) & ~uintptr_t{kHugePage - 1};
  if (aligned > base) munmap(p, aligned - base);
  const size_t tail = base + kHugePage - aligned;  // mapped past aligned + len
  if (tail > 0) munmap(reinterpret_cast<void*>(aligned + len), tail);
  madvise(reinterpret_cast<void*>(aligned), len, MADV_HUGEPAGE);  // advice only
  return reinterpret_cast<uint8_t*>(aligned);
}

void FreePacked(void* p, size_t bytes) { munmap(p, MappedBytes(bytes)); }

}  // namespace

Matrix Matrix::FromBackend(const MatrixView& view, std::shared_ptr<void> data, size_t bytes,
                           int layout) {
  Matrix m;
  m.view_ = view;
  m.packed_ = std::move(data);
  m.packed_bytes_ = bytes;
  m.layout_ = layout;
  return m;
}

Result<Matrix> Matrix::Prepare(const MatrixView& view) {
  if (!IsSupportedWeightType(view.type)) {
    return Errorf(
        "weight type %s is not supported for matrix multiplication (supported: F32, "
        "F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K)",
        DTypeName(view.type));
  }
  const int64_t block = GetDTypeInfo(static_cast<uint32_t>(view.type))->block_elems;
  if (view.rows <= 0 || view.cols <= 0 || view.cols % block != 0) {
    return Errorf("matrix [%lld, %lld] of type %s: cols must be a positive multiple of %lld",
                  static_cast<long long>(view.rows), static_cast<long long>(view.cols),
                  DTypeName(view.type), static_cast<long long>(block));
  }
  if (view.data == nullptr) return Errorf("matrix of type %s has no data", DTypeName(view.type));
  Matrix m;
  m.view_ = view;
  const PackedLayout layout = PackedLayoutFor(view.type);
  if (layout != PackedLayout::kNone) {
    const PackedMatrixLayout pl = MakePackedMatrixLayout(layout, view.rows, view.cols);
    const size_t bytes = static_cast<size_t>(pl.bytes);
    uint8_t* data = AllocPacked(bytes);
    if (data == nullptr) return Errorf("out of memory repacking a %zu-byte weight", bytes);
    const int64_t src_stride = view.row_bytes();
    for (int64_t r = 0; r < view.rows; ++r) {
      PackRow(layout, view.data + r * src_stride, view.cols, r, data);
    }
    m.packed_ = std::shared_ptr<void>(data, [bytes](void* p) { FreePacked(p, bytes); });
    m.packed_bytes_ = bytes;
    m.layout_ = static_cast<int>(layout);
  }
  return m;
}

Workspace::Workspace() = default;
Workspace::~Workspace() {
  for (Buffer& b : buffers_) std::free(b.ptr);
}

uint8_t* Workspace::Get(int slot, size_t bytes) {
  CHECK(slot >= 0 && slot < static_cast<int>(std::size(buffers_)));
  Buffer& b = buffers_[slot];
  if (b.size < bytes) {
    std::free(b.ptr);
    const size_t size = (std::max<size_t>(bytes, 4096) + 63) & ~size_t{63};
    b.ptr = static_cast<uint8_t*>(std::aligned_alloc(64, size));
    CHECK_MSG(b.ptr != nullptr, "out of memory allocating %zu bytes of workspace", size);
    b.size = size;
  }
  return b.ptr;
}

const char* KernelLevelName(KernelLevel level) {
  switch (level) {
    case KernelLevel::kScalar:
      return "scalar";
    case KernelLevel::kAvx2:
      return "avx2";
    case KernelLevel::kAvx512:
      return "avx512";
    case KernelLevel::kAvx512Vnni:
      return "avx512_vnni";
  }
  return "unknown";
}

std::vector<KernelLevel> AvailableKernelLevels() {
  const CpuFeatures& f = GetCpuFeatures();
  std::vector<KernelLevel> levels = {KernelLevel::kScalar};
  if (f.avx2) levels.push_back(KernelLevel::kAvx2);
  if (f.avx2 && f.avx512) levels.push_back(KernelLevel::kAvx512);
  if (f.avx2 && f.avx512 && f.avx512_vnni) levels.push_back(KernelLevel::kAvx512Vnni);
  return levels;
}

KernelLevel BestKernelLevel() {
  static const KernelLevel best = AvailableKernelLevels().back();
  return best;
}

namespace {

GemmFn PackedFn(const KernelTable& t, PackedLayout layout) {
  switch (layout) {
    case PackedLayout::kQ8_0x16:
      return t.q8_0_x16;
    case PackedLayout::kQ4_0x16:
      return t.q4_0_x16;
    case PackedLayout::kQ4_Kx16:
      return t.q4_k_x16;
    case PackedLayout::kQ6_Kx16:
      return t.q6_k_x16;
    case PackedLayout::kF16x8:
      return t.f16_x8;
    default:
      return nullptr;
  }
}

const KernelTable& TableFor(KernelLevel level) {
  switch (level) {
    case KernelLevel::kAvx2:
      return Avx2Kernels();
    case KernelLevel::kAvx512:
      return Avx512Kernels();
    case KernelLevel::kAvx512Vnni:
      return Avx512VnniKernels();
    default:
      return ScalarKernels();
  }
}

GemmFn FnFor(const KernelTable& t, DType type) {
  switch (type) {
    case DType::kF32:
      return t.f32;
    case DType::kF16:
      return t.f16;
    case DType::kBF16:
      return t.bf16;
    case DType::kQ8_0:
      return t.q8_0;
    case DType::kQ4_0:
      return t.q4_0;
    case DType::kQ4_K:
      return t.q4_k;
    case DType::kQ6_K:
      return t.q6_k;
    default:
      return nullptr;
  }
}

// Rows per work item for GEMV-like calls (few tokens): enough items for load
// balance, a multiple of 16 so kernels see whole row tiles (and whole panels
// of packed weights: packed kernels rely on it).
int64_t RowChunk(int64_t rows, int n_threads, int64_t n) {
  if (n >= 16) return 64;
  const int64_t target_items = 8 * n_threads;
  int64_t chunk = (rows + target_items - 1) / target_items;
  chunk = (chunk + 15) / 16 * 16;
  return std::clamp<int64_t>(chunk, 16, 256);
}

}  // namespace

PackedLayout PackedLayoutFor(DType type) {
  static const KernelLevel best = BestKernelLevel();
  const KernelTable& t = TableFor(best);
  if (type == DType::kQ8_0 && t.q8_0_x16 != nullptr) return PackedLayout::kQ8_0x16;
  if (type == DType::kQ4_0 && t.q4_0_x16 != nullptr) return PackedLayout::kQ4_0x16;
  if (type == DType::kQ4_K && t.q4_k_x16 != nullptr) return PackedLayout::kQ4_Kx16;
  if (type == DType::kQ6_K && t.q6_k_x16 != nullptr) return PackedLayout::kQ6_Kx16;
  if (type == DType::kF16 && t.f16_x8 != nullptr) return PackedLayout::kF16x8;
  return PackedLayout::kNone;
}

KernelLevel EffectiveLevel(KernelLevel level, DType type) {
  for (int l = static_cast<int>(level); l > 0; --l) {
    if (FnFor(TableFor(static_cast<KernelLevel>(l)), type) != nullptr) {
      return static_cast<KernelLevel>(l);
    }
  }
  return KernelLevel::kScalar;
}

namespace {

// Most matrices one MatMulMulti call takes.
constexpr size_t kMaxMatrices = 8;

// True when every matrix can share the first one's quantized activations and
// kernel (and there are few enough for one call).
bool OneKernelInput(std::span<const Matrix* const> ws) {
  return ws.size() <= kMaxMatrices &&
         std::all_of(ws.begin(), ws.end(), [&](const Matrix* w) {
           return w->type() == ws[0]->type() && w->cols() == ws[0]->cols() &&
                  MatrixAccess::layout(*w) == MatrixAccess::layout(*ws[0]);
         });
}

}  // namespace

void MatMulMultiAtLevel(KernelLevel level, std::span<const Matrix* const> ws, const float* x,
                        int64_t n, std::span<float* const> ys, ThreadPool& pool, Workspace& work) {
  CHECK(ws.size() == ys.size());
  if (n <= 0 || ws.empty()) return;
  const std::vector<KernelLevel> levels = AvailableKernelLevels();
  CHECK_MSG(std::find(levels.begin(), levels.end(), level) != levels.end(),
            "kernel level %s not supported by this CPU", KernelLevelName(level));
  const Matrix& w0 = *ws[0];
  for (const Matrix* w : ws) CHECK_MSG(w->view().data != nullptr, "MatMul on an unprepared Matrix");
  CHECK_MSG(OneKernelInput(ws), "MatMulMulti needs at most %zu matrices of one type, width and layout",
            kMaxMatrices);
  const MatrixView& v = w0.view();
  GemmFn fn = FnFor(TableFor(EffectiveLevel(level, v.type)), v.type);
  CHECK(fn != nullptr);

  GemmArgs a;  // the fields shared by every matrix
  a.w_stride = v.row_bytes();
  a.cols = v.cols;
  a.x = x;
  a.threads = pool.size();
  // A repacked matrix runs the packed kernel of the level that owns it; lower
  // levels (tests) use the original rows, which the view still points to.
  const PackedLayout layout = MatrixAccess::layout(w0);
  const GemmFn packed_fn = PackedFn(TableFor(level), layout);
  const int block = ActBlockSize(v.type);
  if (packed_fn != nullptr) {
    fn = packed_fn;
    // F16 panels take the float activations as they are; the other packed
    // layouts exist only at the VNNI level, so its quantizer applies.
    if (PackedQuantizesActivations(layout)) {
      a.act_layout = MakeActX16Layout(layout, v.cols);
      const ActRowLayout al = a.act_layout;
      uint8_t* act = work.Get(0, static_cast<size_t>(n * al.stride));
      a.act = act;
      pool.ParallelFor(n, 16, [&](int64_t t0, int64_t t1, int) {
        for (int64_t t = t0; t < t1; ++t) {
          QuantizeActX16Vnni(layout, x + t * v.cols, v.cols, al, act + t * al.stride);
        }
      });
    }
  } else if (block != 0) {
    // Quantize the activations once per call: [n] rows of act_layout.stride bytes.
    a.act_layout = MakeActRowLayout(v.cols, block);
    const ActRowLayout al = a.act_layout;
    uint8_t* act = work.Get(0, static_cast<size_t>(n * al.stride));
    a.act = act;
    pool.ParallelFor(n, 16, [&](int64_t t0, int64_t t1, int) {
      for (int64_t t = t0; t < t1; ++t) {
        if (block == kQK) {
          QuantizeAct32(x + t * v.cols, v.cols, al, act + t * al.stride);
        } else {
          QuantizeAct256(x + t * v.cols, v.cols, al, act + t * al.stride);
        }
      }
    });
  }

  // Work items: (matrix, row chunk, token chunk), matrix by matrix, in one
  // dispatch (one wake-up and one join for all the matrices).
  GemmArgs args[kMaxMatrices];
  int64_t row_chunk[kMaxMatrices], first_item[kMaxMatrices + 1];
  const int64_t tok_chunk = n >= 16 ? 64 : n;
  a.stream_weights = n < 16;
  const int64_t n_tok_items = (n + tok_chunk - 1) / tok_chunk;
  first_item[0] = 0;
  for (size_t m = 0; m < ws.size(); ++m) {
    const Matrix& w = *ws[m];
    args[m] = a;
    args[m].w = packed_fn != nullptr ? MatrixAccess::packed(w) : w.view().data;
    if (packed_fn != nullptr) {
      args[m].w_stride = MakePackedMatrixLayout(layout, w.rows(), w.cols()).panel_stride;
    }
    args[m].y = ys[m];
    args[m].ldy = w.rows();
    row_chunk[m] = RowChunk(w.rows(), pool.size(), n);
    first_item[m + 1] = first_item[m] + (w.rows() + row_chunk[m] - 1) / row_chunk[m] * n_tok_items;
  }
  const int64_t n_items = first_item[ws.size()];
  pool.ParallelFor(n_items, 1, [&](int64_t i0, int64_t i1, int) {
    size_t m = 0;
    for (int64_t i = i0; i < i1; ++i) {
      while (i >= first_item[m + 1]) ++m;
      const int64_t j = i - first_item[m];
      const int64_t rows = ws[m]->rows();
      const int64_t r0 = (j / n_tok_items) * row_chunk[m];
      const int64_t t0 = (j % n_tok_items) * tok_chunk;
      fn(args[m], r0, std::min(rows, r0 + row_chunk[m]), t0, std::min(n, t0 + tok_chunk));
    }
  });
}

void MatMulAtLevel(KernelLevel level, const Matrix& w, const float* x, int64_t n, float* y,
                   ThreadPool& pool, Workspace& ws) {
  const Matrix* m[] = {&w};
  float* out[] = {y};
  MatMulMultiAtLevel(level, m, x, n, out, pool, ws);
}

void MatMul(const Matrix& w, const float* x, int64_t n, float* y, ThreadPool& pool, Workspace& ws) {
  MatMulAtLevel(BestKernelLevel(), w, x, n, y, pool, ws);
}

void MatMulMulti(std::span<const Matrix* const> ws, const float* x, int64_t n,
                 std::span<float* const> ys, ThreadPool& pool, Workspace& work) {
  CHECK(ws.size() == ys.size());
  if (OneKernelInput(ws)) return MatMulMultiAtLevel(BestKernelLevel(), ws, x, n, ys, pool, work);
  // Matrices that cannot share one quantization run one call each.
  for (size_t m = 0; m < ws.size(); ++m) MatMul(*ws[m], x, n, ys[m], pool, work);
}

void GetRow(const MatrixView& w, int64_t r, float* out) {
  CHECK_MSG(r >= 0 && r < w.rows, "GetRow: row %lld out of [0, %lld)", static_cast<long long>(r),
            static_cast<long long>(w.rows));
  DequantizeRow(w.type, w.data + r * w.row_bytes(), out, w.cols);
}

std::string KernelName(DType type) {
  if (!IsSupportedWeightType(type)) return "unsupported";
  std::string name = KernelLevelName(EffectiveLevel(BestKernelLevel(), type));
  if (PackedLayoutFor(type) != PackedLayout::kNone) name += "+panels";  // repacked at Prepare
  return name;
}

}  // namespace reprise::kernels
