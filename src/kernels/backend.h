// The compute backend: where a model's weights, activations and KV blocks live,
// and the operations the forward pass is written in. The forward pass
// (model/model.cc) is defined once, against this interface; the CPU backend
// (cpu_backend.cc) runs the SIMD kernels of ops.h / attention.h on a thread
// pool, the CUDA backend (cuda/, compiled when REPRISE_CUDA is on) runs its own
// kernels on one GPU. No CUDA type or header appears here or above.
//
// Memory: every pointer an op takes is backend memory (host memory on the
// CPU, device memory on CUDA) from Alloc(), UploadVector() or a KV pool,
// unless its name starts with host_. Code above the kernels never dereferences
// backend memory; it moves bytes with CopyToDevice / CopyToHost.
//
// Ordering: ops run in call order (one stream); CopyToHost waits for every op
// issued before it. A backend is used by one thread at a time.
//
// Determinism contract (ops.h) on every backend: the bits of one token's
// result never depend on the other tokens or sequences in the batch, on how a
// prompt was chunked, or on a prompt-cache hit. Reductions have a fixed order
// and split points that depend only on the shapes of the weights and on the
// token's position, never on the batch size. Two backends agree with each
// other only within the tolerances documented in tests/gpu.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "kernels/ops.h"

namespace reprise::kernels {

enum class DeviceType { kCpu, kCuda };
const char* DeviceTypeName(DeviceType type);  // "cpu", "cuda"

// --device auto|cpu|cuda. kAuto picks CUDA when this build has it and a GPU is
// visible, else the CPU.
enum class DevicePreference { kAuto, kCpu, kCuda };
Result<DevicePreference> ParseDevicePreference(const std::string& text);

// How many CUDA GPUs are visible (0 when this build has no CUDA, or no driver
// or GPU is present); *why_none, when non-null and the count is 0, says why in
// one line ("this build has no CUDA support", "no CUDA driver: ...").
int CudaDeviceCount(std::string* why_none);

// The KV block pool's memory and layout (kv/block_pool.h owns it; this is the
// view the attention and KV-store ops need). Block b, layer l:
//   K at base + b * block_bytes + l * k_layer_bytes:
//     [n_kv_heads][block_tokens][head_dim_k] elements,
//   V at base + b * block_bytes + n_layers * k_layer_bytes + l * v_layer_bytes:
//     [n_kv_heads][block_tokens][head_dim_v] elements.
struct KvLayout {
  uint8_t* base = nullptr;  // backend memory
  int64_t block_bytes = 0;
  int64_t k_layer_bytes = 0;
  int64_t v_layer_bytes = 0;
  int n_layers = 0;
  int n_kv_heads = 0;
  int block_tokens = 0;
  int64_t head_dim_k = 0;
  int64_t head_dim_v = 0;
  DType type = DType::kF16;  // row format (kernels/kv_format.h): F16, F32 or Q8_0
  int64_t k_row_bytes = 0;   // one position of one KV head
  int64_t v_row_bytes = 0;
  uint8_t* K(int32_t block, int layer) const {
    return base + block * block_bytes + layer * k_layer_bytes;
  }
  uint8_t* V(int32_t block, int layer) const {
    return base + block * block_bytes + n_layers * k_layer_bytes + layer * v_layer_bytes;
  }
};

// One forward's batch, in host memory (the backend copies what it needs in
// BeginBatch; the arrays need not outlive that call).
struct BatchDesc {
  int64_t n = 0;                      // tokens in the batch
  const int32_t* tokens = nullptr;    // [n]
  const int32_t* pos = nullptr;       // [n] position within its sequence
  const int32_t* seq = nullptr;       // [n] sequence index (into the block table)
  int32_t n_seqs = 0;
  int32_t max_blocks = 0;             // block-table row length
  const int32_t* block_table = nullptr;  // [n_seqs, max_blocks] block ids (-1 past the end)
  int64_t n_out = 0;                  // rows that want logits
  const int32_t* out_rows = nullptr;  // [n_out] batch rows, ascending
};

// The per-layer attention shape.
struct AttentionShape {
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim_k = 0;
  int64_t head_dim_v = 0;
  float scale = 1.0f;  // 1/sqrt(head_dim_k)
};

// q/k normalisation before RoPE.
enum class QkNorm {
  kNone,
  kPerHead,  // RMSNorm of every head over head_dim_k with one [head_dim_k] weight (qwen3)
  kWhole,    // RMSNorm over the whole q (and k) projection (minimax-m2)
};

struct QkRopeStoreArgs {
  float* q = nullptr;        // [n, n_heads * head_dim_k], normalised and rotated in place
  float* k = nullptr;        // [n, n_kv_heads * head_dim_k], likewise
  const float* v = nullptr;  // [n, n_kv_heads * head_dim_v]
  const float* q_norm = nullptr;  // per QkNorm (null for kNone)
  const float* k_norm = nullptr;
  QkNorm norm = QkNorm::kNone;
  float eps = 1e-5f;
  const float* rope = nullptr;  // [n, rope_dims / 2, 2] cos, sin (from RopeTable)
  int64_t rope_dims = 0;
  bool neox = false;  // NEOX pairs (i, i + d/2) vs adjacent pairs (2i, 2i + 1)
  AttentionShape shape;
  const KvLayout* kv = nullptr;
  int layer = 0;
};

struct MoeArgs {
  const Matrix* router = nullptr;          // [n_experts, d]
  const float* router_bias = nullptr;      // [n_experts] or null (sigmoid gating's correction)
  std::span<const Matrix> gate, up, down;  // per expert
  int64_t n_experts = 0, n_used = 0, d = 0, ff = 0;
  bool sigmoid = false;   // sigmoid gating (minimax-m2) vs softmax
  bool norm_topk = true;  // renormalise the chosen weights to sum 1
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual DeviceType type() const = 0;
  // One line for logs: "cpu: avx512_vnni, 2 threads", "cuda: NVIDIA H200 (sm_90, ...)".
  virtual std::string Describe() const = 0;
  // True when backend memory is host memory (the CPU backend).
  virtual bool host_memory() const = 0;
  // Compute threads (CPU) or 0.
  virtual int threads() const { return 0; }

  // ---- memory ----
  // Bytes of device memory free now (CPU: 0, meaning "host memory").
  virtual int64_t FreeMemoryBytes() const { return 0; }
  // Bytes this backend holds for weights and scratch.
  virtual int64_t HeldBytes() const = 0;
  // Aligned backend memory; errors name the bytes asked for and free.
  virtual Result<void*> Alloc(size_t bytes, const char* what) = 0;
  virtual void Free(void* p) = 0;
  // Host memory the backend copies to and from fastest (CUDA: pinned, so a
  // block moves by DMA at the link's speed; CPU: plain aligned memory), for
  // the host-RAM KV tier. Not counted in HeldBytes().
  virtual Result<void*> AllocHost(size_t bytes, const char* what);
  // Whether this backend's kernels read and write KV rows of `type`.
  virtual Status CheckKvType(DType type) const { return Status::Ok(); }
  virtual void FreeHost(void* p);
  virtual void CopyToDevice(void* dst, const void* host_src, size_t bytes) = 0;
  // Waits for every op issued before it.
  virtual void CopyToHost(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void CopyOnDevice(void* dst, const void* src, size_t bytes) = 0;
  // Asynchronous host -> device copies (KV promotions from the host tier):
  // queued on a copy stream of their own, so they overlap the kernels of the
  // compute stream. `host_src` must be AllocHost memory (pinned) and stay
  // unchanged, and `dst` unused by kernels, until the copy is done.
  // CopyFence() marks every copy queued so far and returns its ticket (> 0);
  // CopyDone(ticket) tells, without waiting, whether they have all finished;
  // WaitCopy(ticket) waits for them. Host-memory backends copy at once (every
  // ticket is done).
  virtual void CopyToDeviceAsync(void* dst, const void* host_src, size_t bytes) {
    CopyToDevice(dst, host_src, bytes);
  }
  virtual uint64_t CopyFence() { return ++copy_fences_; }
  virtual bool CopyDone(uint64_t ticket) { return true; }
  virtual void WaitCopy(uint64_t ticket) {}
  // Waits for every op issued so far; the first error of any of them.
  virtual Status Synchronize() = 0;

  // ---- weights (called at load) ----
  // Checks that `bytes` of weights fit before any is uploaded (CUDA: a clear
  // error naming the bytes needed and free).
  virtual Status ReserveWeights(int64_t bytes) { return Status::Ok(); }
  // A weight matrix in the layout this backend's kernels read fastest (CPU:
  // Matrix::Prepare; CUDA: uploaded, repacked).
  virtual Result<Matrix> PrepareMatrix(const MatrixView& view) = 0;
  // A table read one row at a time by Embed (CPU: used in place, never repacked).
  virtual Result<Matrix> PrepareTable(const MatrixView& view) = 0;
  // A float vector copied into backend memory owned by the backend.
  virtual Result<const float*> UploadVector(std::span<const float> host) = 0;

  // Errors when this backend's attention cannot run the shape (checked at load).
  virtual Status CheckAttentionShape(const AttentionShape& shape) const { return Status::Ok(); }

  // ---- the forward pass's ops (n = batch rows, d = row width) ----
  virtual Status BeginBatch(const BatchDesc& batch) = 0;
  // x[t] = row tokens[t] of table (any weight type), t < n.
  virtual void Embed(const Matrix& table, float* x) = 0;
  // rope[t] = cos, sin of pos[t] * inv_freq[i], i < rope_dims / 2.
  virtual void RopeTable(const float* inv_freq, int64_t rope_dims, float* rope) = 0;
  // out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w (out may alias x).
  virtual void RmsNorm(const float* x, const float* w, int64_t n, int64_t d, float eps,
                       float* out) = 0;
  // x[t] += y[t]; out[t] = RmsNorm(x[t]).
  virtual void AddRmsNorm(float* x, const float* y, const float* w, int64_t n, int64_t d,
                          float eps, float* out) = 0;
  // x[t] += y[t].
  virtual void Add(float* x, const float* y, int64_t n, int64_t d) = 0;
  // y[t] += b.
  virtual void AddBias(float* y, const float* b, int64_t n, int64_t d) = 0;
  // gate[t] = silu(gate[t]) * up[t].
  virtual void SiluMul(float* gate, const float* up, int64_t n, int64_t d) = 0;
  // ys[m][t] = ws[m] x[t] (at most 8 matrices of equal width).
  virtual void MatMul(std::span<const Matrix* const> ws, const float* x, int64_t n,
                      std::span<float* const> ys) = 0;
  // q/k norm, RoPE, and the store of every token's K/V row into its block.
  virtual void QkRopeStore(const QkRopeStoreArgs& a) = 0;
  // out[t, h] = causal attention of q[t, h] over positions 0..pos[t] of its
  // sequence, read back from the KV blocks of `layer`.
  virtual void Attention(const float* q, const AttentionShape& shape, const KvLayout& kv,
                         int layer, float* out) = 0;
  // out[t] = the routed experts' SwiGLU FFN of xn[t] (weights per MoeArgs).
  virtual Status Moe(const MoeArgs& a, const float* xn, int64_t n, float* out) = 0;
  // out[i] = x[out_rows[i]], i < n_out.
  virtual void GatherOutRows(const float* x, int64_t d, float* out) = 0;

 private:
  uint64_t copy_fences_ = 0;
};

// n floats of host memory a backend writes results into every step (the
// logits): its AllocHost memory (CUDA: pinned, so the copy runs at the bus's
// speed; into pageable memory it goes through the driver's bounce buffer at
// a fraction of it), or plain memory if that allocation fails. Owns it; the
// backend must outlive it.
class HostFloats {
 public:
  HostFloats(Backend* be, size_t n, const char* what);
  ~HostFloats();
  HostFloats(const HostFloats&) = delete;
  HostFloats& operator=(const HostFloats&) = delete;
  float* data() const { return p_; }

 private:
  Backend* be_ = nullptr;  // the owner of p_ when it is AllocHost memory
  float* p_ = nullptr;
  std::unique_ptr<float[]> plain_;
};

// The backend for `pref` (n_threads: CPU compute threads, 0 = physical
// cores). Errors: CUDA asked for but unavailable (names why).
Result<std::unique_ptr<Backend>> CreateBackend(DevicePreference pref, int n_threads);

// The CPU backend (always available).
std::unique_ptr<Backend> CreateCpuBackend(int n_threads);

}  // namespace reprise::kernels
