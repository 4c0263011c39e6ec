// The CUDA backend: kernels::Backend on one NVIDIA GPU. Weights are uploaded
// once at load (matrices repacked into row-interleaved groups, embedding
// tables as they are in the file), activations and the KV pool live in device
// memory, and every op is a kernel launch on one stream, so ops run in call
// order and CopyToHost waits for them. The only host round trip inside a
// forward is MoE routing (the expert lists are built on the host).
//
// Memory accounting: every cudaMalloc goes through Alloc (or the matrix upload)
// and is counted in HeldBytes(); FreeMemoryBytes() is cudaMemGetInfo's.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/check.h"
#include "core/log.h"
#include "kernels/alloc_ledger.h"
#include "kernels/backend.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_act_fusion.h"
#include "kernels/cuda/cuda_copy_queue.h"
#include "kernels/cuda/cuda_graphs.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/cuda_tiles.h"
#include "kernels/cuda/cuda_profile.h"
#include "kernels/cuda/path_switch.h"

namespace reprise::kernels {

Result<std::unique_ptr<Backend>> CreateCudaBackend(int device);

namespace cuda {

namespace {

std::string Bytes(int64_t b) {
  char buf[64];
  if (b >= (int64_t{1} << 30)) {
    std::snprintf(buf, sizeof(buf), "%.2f GiB", static_cast<double>(b) / (1 << 30));
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f MiB", static_cast<double>(b) / (1 << 20));
  }
  return buf;
}

// A device buffer that grows (never shrinks) on demand.
template <typename T>
struct Scratch {
  T* ptr = nullptr;
  int64_t cap = 0;
};

class CudaBackend final : public Backend {
 public:
  static Result<std::unique_ptr<Backend>> Create(int device) {
    std::unique_ptr<CudaBackend> b(new CudaBackend());
    b->device_ = device;
    REPRISE_CUDA_RETURN(cudaSetDevice(device), "cudaSetDevice");
    REPRISE_CUDA_RETURN(cudaGetDeviceProperties(&b->prop_, device), "cudaGetDeviceProperties");
    if (b->prop_.major < 8) {
      return Errorf("GPU %d (%s) has compute capability %d.%d; reprise's CUDA kernels need 8.0 "
                    "or newer (use --device cpu)",
                    device, b->prop_.name, b->prop_.major, b->prop_.minor);
    }
    REPRISE_CUDA_RETURN(cudaStreamCreateWithFlags(&b->stream_, cudaStreamNonBlocking),
                        "cudaStreamCreate");
    return std::unique_ptr<Backend>(std::move(b));
  }

  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
    profiler_.Collect();
    profiler_.Report();
    copies_.Drain();
    allocs_.ForEach([](void* p) { cudaFree(p); });
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  DeviceType type() const override { return DeviceType::kCuda; }
  std::string Describe() const override {
    char buf[256];
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    std::snprintf(buf, sizeof(buf), "cuda: %s (sm_%d%d, %d SMs, %s)", prop_.name, prop_.major,
                  prop_.minor, prop_.multiProcessorCount,
                  Bytes(static_cast<int64_t>(total_b)).c_str());
    return buf;
  }
  bool host_memory() const override { return false; }

  int64_t FreeMemoryBytes() const override {
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) return 0;
    return static_cast<int64_t>(free_b);
  }
  int64_t HeldBytes() const override { return allocs_.held(); }

  Result<void*> Alloc(size_t bytes, const char* what) override {
    void* p = nullptr;
    const cudaError_t err = cudaMalloc(&p, std::max<size_t>(bytes, 1));
    if (err != cudaSuccess) {
      cudaGetLastError();  // clear the (non-sticky) allocation error
      return Errorf("cannot allocate %s of GPU memory for %s: %s free on %s",
                    Bytes(static_cast<int64_t>(bytes)).c_str(), what,
                    Bytes(FreeMemoryBytes()).c_str(), prop_.name);
    }
    allocs_.Add(p, bytes);
    graphs_.NoteMemoryChange();  // captured graphs may hold pointers into freed memory now
    return p;
  }
  void Free(void* p) override {
    if (p == nullptr) return;
    graphs_.NoteMemoryChange();
    allocs_.Remove(p);
    cudaStreamSynchronize(stream_);
    copies_.Drain();
    cudaFree(p);
  }
  Result<void*> AllocHost(size_t bytes, const char* what) override {
    void* p = nullptr;
    const cudaError_t err = cudaHostAlloc(&p, std::max<size_t>(bytes, 1), cudaHostAllocDefault);
    if (err != cudaSuccess) {
      cudaGetLastError();
      return Errorf("cannot allocate %s of pinned host memory for %s: %s",
                    Bytes(static_cast<int64_t>(bytes)).c_str(), what, cudaGetErrorString(err));
    }
    return p;
  }
  void FreeHost(void* p) override {
    if (p == nullptr) return;
    cudaStreamSynchronize(stream_);
    copies_.Drain();
    cudaFreeHost(p);
  }
  void CopyToDevice(void* dst, const void* src, size_t bytes) override {
    Note(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "copy to device");
    Note(cudaStreamSynchronize(stream_), "copy to device");
  }
  void CopyToHost(void* dst, const void* src, size_t bytes) override {
    if (graphs_.active()) FinishGraph();
    Note(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "copy to host");
    Note(cudaStreamSynchronize(stream_), "copy to host");
  }
  // Promotions: copies beside the compute stream (CopyQueue).
  void CopyToDeviceAsync(void* dst, const void* src, size_t bytes) override {
    if (!copies_.Copy(dst, src, bytes)) CopyToDevice(dst, src, bytes);  // no second stream
  }
  uint64_t CopyFence() override { return copies_.Fence(); }
  bool CopyDone(uint64_t ticket) override { return copies_.Done(ticket); }
  void WaitCopy(uint64_t ticket) override { copies_.Wait(ticket); }
  void CopyOnDevice(void* dst, const void* src, size_t bytes) override {
    Note(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_), "device copy");
  }
  Status Synchronize() override {
    if (graphs_.active()) FinishGraph();
    Note(cudaStreamSynchronize(stream_), "a kernel");
    Note(cudaGetLastError(), "a kernel launch");
    profiler_.Collect();
    Status s = first_error_;
    first_error_ = Status::Ok();
    return s;
  }

  Status ReserveWeights(int64_t bytes) override {
    const int64_t free_b = FreeMemoryBytes();
    // The repack pads rows to groups of 32 and units to whole blocks: allow 2%.
    const int64_t need = bytes + bytes / 50 + (int64_t{64} << 20);
    if (need > free_b) {
      return Errorf("the model does not fit on the GPU: its weights need about %s of GPU memory "
                    "(%lld bytes), but only %s (%lld bytes) are free on %s; use a smaller "
                    "quantization or --device cpu",
                    Bytes(need).c_str(), static_cast<long long>(need), Bytes(free_b).c_str(),
                    static_cast<long long>(free_b), prop_.name);
    }
    return Status::Ok();
  }

  Result<Matrix> PrepareMatrix(const MatrixView& view) override {
    if (!IsSupportedWeightType(view.type)) {
      return Errorf("type %s is not supported", DTypeName(view.type));
    }
    if (IsQuantType(view.type) && view.cols % 32 != 0) {
      return Errorf("%lld columns are not a multiple of 32", static_cast<long long>(view.cols));
    }
    int64_t n_units = 0;
    int unit_bytes = 0;
    const bool half = HalfTensorCores(view.type);
    std::vector<uint8_t> host =
        half ? RepackHalf(view, &n_units) : RepackInterleaved(view, &n_units, &unit_bytes);
    ASSIGN_OR_RETURN(void* dev, Upload(host.data(), host.size(), "weights"));
    MatrixView v = view;
    matrix_units_[dev] = n_units;
    return Matrix::FromBackend(v, Owned(dev), host.size(),
                               half ? kLayoutHalfFragments : kLayoutInterleaved);
  }

  Result<Matrix> PrepareTable(const MatrixView& view) override {
    if (!IsSupportedWeightType(view.type)) {
      return Errorf("type %s is not supported", DTypeName(view.type));
    }
    const size_t bytes = static_cast<size_t>(view.rows * view.row_bytes());
    ASSIGN_OR_RETURN(void* dev, Upload(view.data, bytes, "the token embedding"));
    return Matrix::FromBackend(view, Owned(dev), bytes, kLayoutRaw);
  }

  Result<const float*> UploadVector(std::span<const float> host) override {
    ASSIGN_OR_RETURN(void* dev, Upload(host.data(), host.size() * sizeof(float), "weights"));
    return static_cast<const float*>(dev);
  }

  Status BeginBatch(const BatchDesc& bd) override {
    n_ = bd.n;
    n_out_ = bd.n_out;
    RETURN_IF_ERROR(Grow(&tokens_, bd.n));
    RETURN_IF_ERROR(Grow(&pos_, bd.n));
    RETURN_IF_ERROR(Grow(&seq_, bd.n));
    // With graphs the block table's row stride only grows, so a decode
    // step's kernel arguments stay the same as its context grows; the values
    // the kernels read are the same either way.
    const bool graphs = graphs_.enabled();
    const int32_t stride = graphs ? graphs_.TableStride(bd.max_blocks) : bd.max_blocks;
    const int64_t table = static_cast<int64_t>(bd.n_seqs) * stride;
    RETURN_IF_ERROR(Grow(&table_, std::max<int64_t>(table, 1)));
    RETURN_IF_ERROR(Grow(&out_rows_, std::max<int64_t>(bd.n_out, 1)));
    UploadAsync(tokens_.ptr, bd.tokens, bd.n);
    UploadAsync(pos_.ptr, bd.pos, bd.n);
    UploadAsync(seq_.ptr, bd.seq, bd.n);
    if (stride == bd.max_blocks) {
      UploadAsync(table_.ptr, bd.block_table, table);
    } else {
      host_table_.assign(static_cast<size_t>(table), -1);
      for (int32_t q = 0; q < bd.n_seqs; ++q) {
        std::copy(bd.block_table + static_cast<int64_t>(q) * bd.max_blocks,
                  bd.block_table + static_cast<int64_t>(q + 1) * bd.max_blocks,
                  host_table_.begin() + static_cast<int64_t>(q) * stride);
      }
      UploadAsync(table_.ptr, host_table_.data(), table);
    }
    UploadAsync(out_rows_.ptr, bd.out_rows, bd.n_out);
    batch_.n = bd.n;
    batch_.tokens = tokens_.ptr;
    batch_.pos = pos_.ptr;
    batch_.seq = seq_.ptr;
    batch_.block_table = table_.ptr;
    batch_.max_blocks = stride;
    max_pos_ = 0;
    for (int64_t i = 0; i < bd.n; ++i) max_pos_ = std::max(max_pos_, bd.pos[i]);
    host_pos_.assign(bd.pos, bd.pos + bd.n);
    host_seq_.assign(bd.seq, bd.seq + bd.n);
    tile_tokens_ = 0;  // query tiles are cut at the first Attention
    RETURN_IF_ERROR(first_error_);
    // Everything a step's kernel arguments depend on besides stable pointers.
    if (graphs) {
      graphs_.Start(bd, {bd.n, bd.n_seqs, AttentionGridChunks(max_pos_), batch_.max_blocks},
                    stream_);
    }
    return first_error_;
  }

  bool Replaying() const { return graphs_.replaying(); }
  // Every op's entry: one more op in sequence (ActFusion), and whether the
  // step replays a graph (then the op launches nothing).
  bool Enter() {
    fusion_.NextOp();
    return Replaying();
  }
  // The activation group a decode op of n rows of d values should also
  // quantize its output for, with the buffers grown; 0: produce floats only.
  int FusedGroup(int64_t n, int64_t d) {
    static const bool on = EnvSwitchOn("REPRISE_CUDA_FUSE");
    const int g = fusion_.group();
    if (!on || g == 0 || n <= 0 || n >= kGemvMaxTokens || d % g != 0) return 0;
    if (!Grow(&act_q_, n * d).ok() || !Grow(&act_d_, n * d / 32).ok() ||
        !Grow(&act_sum_, n * d / 32).ok()) {
      return 0;
    }
    return g;
  }
  ActQ ActBuffers() const { return {act_q_.ptr, act_d_.ptr, act_sum_.ptr}; }
  // The staged GEMV's split over K for these targets (GemvSplitOn), with its
  // scratch and counters grown (counters zeroed when allocated); no split if
  // they cannot be.
  GemvSplit StagedSplit(DType type, const GemvTarget* targets, int count, int64_t cols,
                        int64_t n) {
    if (!GemvSplitOn(type)) return {};
    int64_t groups = 0;
    for (int m = 0; m < count; ++m) groups += (targets[m].rows + kRowGroup - 1) / kRowGroup;
    const int split = GemvSplitFactor(groups, cols, prop_.multiProcessorCount);
    if (split < 2 || !Grow(&gemv_scratch_, GemvSplitScratchFloats(groups, cols, n)).ok()) return {};
    int32_t* counters = ZeroedCounters(&gemv_counters_, groups, "GEMV counters");
    if (counters == nullptr) return {};
    return {gemv_scratch_.ptr, counters, split};
  }
  // Counters that are zero between launches (a launch's last block resets
  // each it used): grown, and zeroed when newly allocated; null if they
  // cannot be.
  int32_t* ZeroedCounters(Scratch<int32_t>* c, int64_t count, const char* what) {
    const int32_t* had = c->ptr;
    if (!Grow(c, count).ok()) return nullptr;
    if (c->ptr != had) {
      Note(cudaMemsetAsync(c->ptr, 0, static_cast<size_t>(c->cap) * sizeof(int32_t), stream_), what);
    }
    return c->ptr;
  }
  void FinishGraph() {
    const Status st = graphs_.Finish(stream_);
    if (!st.ok() && first_error_.ok()) first_error_ = st;
  }

  // Query tiles for the tiled prefill attention: runs of consecutive batch
  // entries of one sequence at consecutive positions, at most `tt` tokens.
  void BuildTiles(int64_t tt) {
    n_tiles_ = CutQueryTiles(host_pos_, host_seq_, tt, &host_tiles_, &n_singles_);
    if (n_tiles_ == n_) {  // one token a tile: the tiled shape does not run
      n_singles_ = 0;
      tile_tokens_ = tt;
      return;
    }
    // The tiles, then the one-token tiles' indices (LaunchAttention's `singles`).
    if (Grow(&tiles_, std::max<int64_t>(1, static_cast<int64_t>(host_tiles_.size()))).ok()) {
      UploadAsync(tiles_.ptr, host_tiles_.data(), static_cast<int64_t>(host_tiles_.size()));
      tile_tokens_ = tt;
    } else {
      n_tiles_ = n_singles_ = 0;
    }
  }

  void Embed(const Matrix& table, float* x) override {
    if (Enter()) return;
    OpScope op(&profiler_, "embed", stream_);
    CHECK(table.backend_layout() == kLayoutRaw);
    LaunchEmbed(table.type(), static_cast<const uint8_t*>(table.backend_data()),
                table.view().row_bytes(), table.cols(), batch_.tokens, n_, x, stream_);
  }
  void RopeTable(const float* inv_freq, int64_t rope_dims, float* rope) override {
    if (Enter()) return;
    OpScope op(&profiler_, "rope table", stream_);
    LaunchRopeTable(batch_.pos, n_, inv_freq, rope_dims, rope, stream_);
  }
  void RmsNorm(const float* x, const float* w, int64_t n, int64_t d, float eps,
               float* out) override {
    if (Enter()) return;
    OpScope op(&profiler_, "rms norm", stream_);
    if (const int g = FusedGroup(n, d); g > 0 && RmsNormQuantFits(d, g)) {
      LaunchRmsNormQuant(x, w, n, d, eps, out, g, ActBuffers(), stream_);
      fusion_.Produced(out, n, d, g);
    } else if (n > 0) {
      LaunchRmsNorm(x, w, n, d, eps, out, stream_);
    }
  }
  void AddRmsNorm(float* x, const float* y, const float* w, int64_t n, int64_t d, float eps,
                  float* out) override {
    if (Enter()) return;
    OpScope op(&profiler_, "add + rms norm", stream_);
    if (const int g = FusedGroup(n, d); g > 0 && RmsNormQuantFits(d, g)) {
      LaunchAddRmsNormQuant(x, y, w, n, d, eps, out, g, ActBuffers(), stream_);
      fusion_.Produced(out, n, d, g);
    } else if (n > 0) {
      LaunchAddRmsNorm(x, y, w, n, d, eps, out, stream_);
    }
  }
  void Add(float* x, const float* y, int64_t n, int64_t d) override {
    if (Enter()) return;
    OpScope op(&profiler_, "add", stream_);
    if (n * d > 0) LaunchAdd(x, y, n * d, stream_);
  }
  void AddBias(float* y, const float* b, int64_t n, int64_t d) override {
    if (Enter()) return;
    OpScope op(&profiler_, "add bias", stream_);
    if (n * d > 0) LaunchAddBias(y, b, n, d, stream_);
  }
  void SiluMul(float* gate, const float* up, int64_t n, int64_t d) override {
    if (Enter()) return;
    OpScope op(&profiler_, "silu mul", stream_);
    if (const int g = FusedGroup(n, d); g > 0) {
      LaunchSiluMulQuant(gate, up, n, d, g, ActBuffers(), stream_);
      fusion_.Produced(gate, n, d, g);
    } else if (n * d > 0) {
      LaunchSiluMul(gate, up, n * d, stream_);
    }
  }

  void MatMul(std::span<const Matrix* const> ws, const float* x, int64_t n,
              std::span<float* const> ys) override {
    if (Enter() || n == 0) return;
    const std::string op_name =
        profiler_.on() ? std::string("matmul ") + DTypeName(ws[0]->type()) +
                             (n < kGemvMaxTokens ? " (decode)" : " (prefill)")
                       : std::string();
    OpScope op(&profiler_, op_name.c_str(), stream_);
    bool quantized = false;
    for (const Matrix* w : ws) quantized |= IsQuantType(w->type());
    ActQ act;
    if (quantized) {
      const int64_t cols = ws[0]->cols();
      for (const Matrix* w : ws) CHECK(w->cols() == cols);
      if (!Grow(&act_q_, n * cols).ok() || !Grow(&act_d_, n * cols / 32).ok() ||
          !Grow(&act_sum_, n * cols / 32).ok()) {
        return;  // the error is recorded; Synchronize reports it
      }
      act = {act_q_.ptr, act_d_.ptr, act_sum_.ptr};
    }
    int64_t half_cols = 0;
    for (const Matrix* w : ws) {
      if (w->backend_layout() == kLayoutHalfFragments) {
        CHECK(w->cols() == ws[0]->cols());  // one activation buffer for all of them
        half_cols = HalfActCols(w->cols());
      }
    }
    if (half_cols > 0 && !Grow(&act_h_, n * half_cols).ok()) return;
    int64_t part = 1;
    for (const Matrix* w : ws) {
      part = std::max(part, MatMulScratchFloats(w->type(), w->rows(), w->cols(), n));
    }
    if (!Grow(&partials_, part).ok()) return;
    // the block size the activations are quantized with now: made by the op
    // before this one when it could (ActFusion)
    int act_group = quantized ? fusion_.ReadyGroup(x, n, ws[0]->cols()) : 0;
    if (quantized && n < kGemvMaxTokens) {
      for (const Matrix* w : ws) {
        if (IsQuantType(w->type())) {
          fusion_.Learn(ActGroup(w->type()));
          break;
        }
      }
    }
    DType half_act = DType::kF32;  // the half type the activations are rounded to now
    const bool staged = n < QuantGemvTokens() && GemvStagedOn();
    for (size_t m = 0; m < ws.size(); ++m) {
      const Matrix& w = *ws[m];
      const uint8_t* data = static_cast<const uint8_t*>(w.backend_data());
      const int64_t units = matrix_units_.at(const_cast<uint8_t*>(data));
      if (IsQuantType(w.type()) && ActGroup(w.type()) != act_group) {
        act_group = ActGroup(w.type());  // stream order: earlier matmuls have read the old ones
        LaunchQuantizeAct(w.type(), x, n, w.cols(), act, stream_);
      }
      if (staged && IsQuantType(w.type())) {  // this and the next matrices of its type: one launch
        GemvTarget targets[kGemvMaxTargets];
        int count = 0;
        while (count < kGemvMaxTargets && m + count < ws.size() &&
               ws[m + count]->type() == w.type()) {
          const Matrix& wm = *ws[m + count];
          targets[count] = {static_cast<const uint8_t*>(wm.backend_data()), wm.rows(),
                            ys[m + count], wm.rows()};
          ++count;
        }
        LaunchGemvStaged(w.type(), targets, count, w.cols(), units, act, n, stream_,
                         StagedSplit(w.type(), targets, count, w.cols(), n));
        m += count - 1;
        continue;
      }
      if (w.backend_layout() == kLayoutHalfFragments) {
        if (w.type() != half_act) {  // stream order: earlier matmuls have read the old ones
          half_act = w.type();
          LaunchHalfAct(w.type(), x, n, w.cols(), act_h_.ptr, stream_);
        }
        const bool multi = n < kGemvMaxTokens ? HalfMultiOn() : HalfPrefillMultiOn();
        if (multi) {  // this and the next such matrices: one launch
          GemvTarget targets[kGemvMaxTargets];
          int count = 0;
          while (count < kGemvMaxTargets && m + count < ws.size() &&
                 ws[m + count]->type() == w.type() &&
                 ws[m + count]->backend_layout() == kLayoutHalfFragments &&
                 ws[m + count]->cols() == w.cols()) {
            const Matrix& wm = *ws[m + count];
            targets[count] = {static_cast<const uint8_t*>(wm.backend_data()), wm.rows(),
                              ys[m + count], wm.rows()};
            ++count;
          }
          if (n < kGemvMaxTokens) {
            LaunchGemvHalf(w.type(), targets, count, units, act_h_.ptr, n, stream_);
          } else {
            LaunchMatMulHalfMulti(w.type(), targets, count, units, act_h_.ptr, n, stream_);
          }
          m += count - 1;
          continue;
        }
        LaunchMatMulHalf(w.type(), data, w.rows(), units, act_h_.ptr, n, ys[m], w.rows(), stream_);
        continue;
      }
      CHECK(w.backend_layout() == kLayoutInterleaved);
      LaunchMatMul(w.type(), data, w.rows(), w.cols(), units, x, act, n, partials_.ptr, ys[m],
                   w.rows(), stream_);
    }
  }

  void QkRopeStore(const QkRopeStoreArgs& a) override {
    if (Enter()) return;
    OpScope op(&profiler_, "qk norm, rope, kv store", stream_);
    if (n_ > 0) LaunchQkRopeStore(a, batch_, stream_);
  }

  Status CheckAttentionShape(const AttentionShape& shape) const override {
    if (!AttentionShapeSupported(shape)) {
      return Errorf("the CUDA attention kernels support GQA groups of up to 32 heads and head "
                    "sizes up to 256 (this model: %lld heads per KV head, sizes %lld / %lld); "
                    "use --device cpu",
                    static_cast<long long>(shape.n_heads / std::max<int64_t>(1, shape.n_kv_heads)),
                    static_cast<long long>(shape.head_dim_k), static_cast<long long>(shape.head_dim_v));
    }
    return Status::Ok();
  }

  void Attention(const float* q, const AttentionShape& shape, const KvLayout& kv, int layer,
                 float* out) override {
    if (Enter() || n_ == 0) return;
    OpScope op(&profiler_, n_ < kGemvMaxTokens ? "attention (decode)" : "attention (prefill)",
               stream_);
    // The split (decode) shape's chunk states, up to 256 MiB; past that the
    // serial shape runs, with the same bits.
    constexpr int64_t kMaxScratchFloats = int64_t{64} << 20;
    const int64_t need = AttentionScratchFloats(shape, n_, max_pos_);
    float* scratch = nullptr;
    if (need <= kMaxScratchFloats && Grow(&attn_scratch_, need).ok()) scratch = attn_scratch_.ptr;
    // The split shape's per-(token, kv head) counters.
    int32_t* counters =
        ZeroedCounters(&attn_counters_, n_ * shape.n_kv_heads, "attention counters");
    const int32_t* tiles = nullptr;
    if (AttentionTilesOn()) {
      const int64_t tt = AttentionTileTokens(shape, kv);
      if (tt > 1 && tile_tokens_ != tt) BuildTiles(tt);
      if (tt > 1 && tile_tokens_ == tt) tiles = tiles_.ptr;
    }
    // Decode: the merging attention block may quantize the output for the O
    // projection too (opt-in, AttentionFuseOn): one kernel fewer a layer.
    const int64_t d = shape.n_heads * shape.head_dim_v;
    const int g = AttentionFuseOn() ? FusedGroup(n_, d) : 0;
    const int fused = LaunchAttention(q, shape, kv, layer, batch_, max_pos_, scratch,
                                      attn_scratch_.cap, counters, tiles,
                                      tiles != nullptr ? n_tiles_ : 0, prop_.multiProcessorCount,
                                      out, stream_, g, ActBuffers(),
                                      tiles != nullptr ? tiles_.ptr + 2 * n_tiles_ : nullptr,
                                      tiles != nullptr ? n_singles_ : 0);
    if (fused > 0) fusion_.Produced(out, n_, d, fused);
  }

  // Router and routing on the GPU; the per-expert token lists on the host
  // (one copy of the choices), then for each expert in id order: gather its
  // tokens, gate/up, SwiGLU, down, and a weighted add into each token's row —
  // so a token sums its experts in id order, as on the CPU.
  Status Moe(const MoeArgs& a, const float* xn, int64_t n, float* out) override {
    // Host round trips inside the forward: never a graph (decided before any
    // capture: a shape is captured only on its second occurrence).
    if (Status st = graphs_.Abandon(stream_); !st.ok()) {
      if (first_error_.ok()) first_error_ = st;
      return first_error_;
    }
    const int64_t E = a.n_experts, K = a.n_used, d = a.d, F = a.ff;
    RETURN_IF_ERROR(Grow(&router_logits_, n * E));
    RETURN_IF_ERROR(Grow(&ids_, n * K));
    RETURN_IF_ERROR(Grow(&wts_, n * K));
    const Matrix* router[] = {a.router};
    float* rl[] = {router_logits_.ptr};
    MatMul(router, xn, n, rl);
    LaunchMoeRoute(router_logits_.ptr, a.router_bias, n, E, K, a.sigmoid, a.norm_topk, ids_.ptr,
                   wts_.ptr, stream_);
    host_ids_.resize(n * K);
    host_wts_.resize(n * K);
    CopyToHost(host_ids_.data(), ids_.ptr, n * K * sizeof(int32_t));
    CopyToHost(host_wts_.data(), wts_.ptr, n * K * sizeof(float));
    RETURN_IF_ERROR(first_error_);
    std::vector<int64_t> begin;
    BuildExpertLists(host_ids_.data(), host_wts_.data(), n, K, E, &list_rows_, &list_wts_, &begin);
    const int64_t total = begin[E];
    RETURN_IF_ERROR(Grow(&rows_dev_, std::max<int64_t>(total, 1)));
    RETURN_IF_ERROR(Grow(&wts_dev_, std::max<int64_t>(total, 1)));
    UploadAsync(rows_dev_.ptr, list_rows_.data(), total);
    UploadAsync(wts_dev_.ptr, list_wts_.data(), total);
    int64_t max_ne = 0;
    for (int64_t e = 0; e < E; ++e) max_ne = std::max(max_ne, begin[e + 1] - begin[e]);
    RETURN_IF_ERROR(Grow(&xin_, std::max<int64_t>(max_ne * d, 1)));
    RETURN_IF_ERROR(Grow(&hid_, std::max<int64_t>(max_ne * F, 1)));
    RETURN_IF_ERROR(Grow(&hid2_, std::max<int64_t>(max_ne * F, 1)));
    RETURN_IF_ERROR(Grow(&dout_, std::max<int64_t>(max_ne * d, 1)));
    Note(cudaMemsetAsync(out, 0, static_cast<size_t>(n * d) * sizeof(float), stream_), "memset");
    for (int64_t e = 0; e < E; ++e) {
      const int64_t ne = begin[e + 1] - begin[e];
      if (ne == 0) continue;
      const int32_t* rows = rows_dev_.ptr + begin[e];
      LaunchGatherRows(xn, rows, ne, d, xin_.ptr, stream_);
      const Matrix* gate[] = {&a.gate[e]};
      float* g_out[] = {hid2_.ptr};
      MatMul(gate, xin_.ptr, ne, g_out);
      const Matrix* up[] = {&a.up[e]};
      float* u_out[] = {hid_.ptr};
      MatMul(up, xin_.ptr, ne, u_out);
      LaunchSiluMul(hid2_.ptr, hid_.ptr, ne * F, stream_);
      const Matrix* down[] = {&a.down[e]};
      float* d_out[] = {dout_.ptr};
      MatMul(down, hid2_.ptr, ne, d_out);
      LaunchScatterAxpy(dout_.ptr, rows, wts_dev_.ptr + begin[e], ne, d, out, stream_);
    }
    return first_error_;
  }

  void GatherOutRows(const float* x, int64_t d, float* out) override {
    if (Enter()) return;
    OpScope op(&profiler_, "gather rows", stream_);
    LaunchGatherRows(x, out_rows_.ptr, n_out_, d, out, stream_);
  }

 private:
  CudaBackend() = default;

  void Note(cudaError_t err, const char* what) {
    if (err != cudaSuccess && first_error_.ok()) first_error_ = CudaStatus(err, what);
  }

  Result<void*> Upload(const void* host, size_t bytes, const char* what) {
    ASSIGN_OR_RETURN(void* dev, Alloc(bytes, what));
    REPRISE_CUDA_RETURN(cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice), "weight upload");
    return dev;
  }

  // A shared owner for weight memory: frees through the backend (which must
  // outlive it: the model destroys its weights before its backend).
  std::shared_ptr<void> Owned(void* dev) {
    return std::shared_ptr<void>(dev, [this](void* p) {
      matrix_units_.erase(p);
      Free(p);
    });
  }

  template <typename T>
  Status Grow(Scratch<T>* s, int64_t count) {
    if (count <= s->cap) return Status::Ok();
    const int64_t cap = std::max<int64_t>(count, s->cap * 2);
    if (s->ptr != nullptr) Free(s->ptr);
    s->ptr = nullptr;
    s->cap = 0;
    auto p = Alloc(static_cast<size_t>(cap) * sizeof(T), "scratch");
    if (!p.ok()) {
      if (first_error_.ok()) first_error_ = p.status();
      return p.status();
    }
    s->ptr = static_cast<T*>(p.value());
    s->cap = cap;
    return Status::Ok();
  }

  template <typename T>
  void UploadAsync(T* dst, const T* src, int64_t count) {
    if (count <= 0) return;
    Note(cudaMemcpyAsync(dst, src, static_cast<size_t>(count) * sizeof(T), cudaMemcpyHostToDevice,
                         stream_),
         "batch upload");
  }

  int device_ = 0;
  cudaDeviceProp prop_{};
  cudaStream_t stream_ = nullptr;
  AllocLedger allocs_;
  std::unordered_map<void*, int64_t> matrix_units_;  // device data -> units per row
  Status first_error_;
  CopyQueue copies_{[this](cudaError_t err, const char* what) { Note(err, what); }};
  // REPRISE_CUDA_PROFILE=1 (graphs are off then): GPU time per op kind.
  OpProfiler profiler_{ProfileOn()};
  static bool ProfileOn() { return EnvIsOne("REPRISE_CUDA_PROFILE"); }
  // The current batch.
  int64_t n_ = 0, n_out_ = 0;
  int32_t max_pos_ = 0;
  BatchDev batch_;
  Scratch<float> attn_scratch_;  // the split attention's chunk states
  Scratch<int32_t> attn_counters_;  // and its finished-chunk counters (zero between launches)
  Scratch<float> gemv_scratch_;     // the split staged GEMV's segment sums (StagedSplit)
  Scratch<int32_t> gemv_counters_;  // and its per-row-group counters (zero between launches)
  // The batch's positions and sequences on the host, and its query tiles
  // (BuildTiles) for tile_tokens_ tokens a tile (0: not cut yet).
  std::vector<int32_t> host_pos_, host_seq_, host_tiles_;
  Scratch<int32_t> tiles_;
  int64_t n_tiles_ = 0, n_singles_ = 0, tile_tokens_ = 0;
  DecodeGraphs graphs_;
  ActFusion fusion_;  // which op output already has its int8 activations (decode)
  std::vector<int32_t> host_table_;
  Scratch<int32_t> tokens_, pos_, seq_, table_, out_rows_;
  // Matmul activations.
  Scratch<int8_t> act_q_;
  Scratch<uint16_t> act_h_;  // activations rounded for the half tensor-core path
  Scratch<float> act_d_;
  Scratch<int32_t> act_sum_;
  Scratch<float> partials_;  // matmul segment sums
  // MoE.
  Scratch<float> router_logits_, wts_, wts_dev_, xin_, hid_, hid2_, dout_;
  Scratch<int32_t> ids_, rows_dev_;
  std::vector<int32_t> host_ids_, list_rows_;
  std::vector<float> host_wts_, list_wts_;
};

}  // namespace
}  // namespace cuda

Result<std::unique_ptr<Backend>> CreateCudaBackend(int device) {
  return cuda::CudaBackend::Create(device);
}

}  // namespace reprise::kernels
