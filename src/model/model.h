// A loaded transformer: its configuration (from GGUF metadata only), its
// weights (prepared by the compute backend: used in place from the mmap or
// repacked on the CPU, uploaded once to a GPU), and the forward pass, written
// once against kernels::Backend for every backend and architecture. This
// header is the whole interface the engine sees.
//
// Forward() runs a batch of tokens that may belong to several sequences
// (continuous batching). Each token's K/V is written into its sequence's KV
// blocks at its position, and it attends to positions [0, pos] of its own
// sequence, reading them back from the KV blocks — so prefill in one pass,
// prefill in chunks and token-by-token decoding compute identical values.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "gguf/gguf.h"
#include "kernels/backend.h"
#include "kv/block_pool.h"

namespace reprise::model {

enum class Arch { kLlama, kQwen2, kQwen3, kQwen3Moe, kMiniMaxM2 };
const char* ArchName(Arch arch);

struct ModelConfig {
  Arch arch = Arch::kLlama;
  std::string arch_name;  // general.architecture
  std::string name;       // general.name (may be empty)
  int64_t n_vocab = 0;
  int64_t n_ctx_train = 0;
  int64_t n_embd = 0;
  int64_t n_layers = 0;
  int64_t n_ff = 0;  // dense FFN width
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim_k = 0;  // attention.key_length (default n_embd / n_heads)
  int64_t head_dim_v = 0;  // attention.value_length
  int64_t rope_dims = 0;   // rope.dimension_count (default head_dim_k)
  float rope_freq_base = 10000.0f;
  bool rope_neox = false;  // NEOX pairs (i, i+d/2) vs adjacent pairs (2i, 2i+1)
  float rms_eps = 1e-5f;
  // MoE
  int64_t n_experts = 0;
  int64_t n_experts_used = 0;
  int64_t n_ff_expert = 0;
  bool expert_sigmoid = false;  // sigmoid gating (minimax-m2) vs softmax
  bool expert_norm_topk = true;

  int64_t k_dim() const { return n_kv_heads * head_dim_k; }
  int64_t v_dim() const { return n_kv_heads * head_dim_v; }
};

// Reads and validates the configuration from metadata; errors name the key.
Result<ModelConfig> ReadConfig(const gguf::File& file);

struct ModelOptions {
  int n_threads = 0;  // CPU compute threads; 0 = physical cores
  kernels::DevicePreference device = kernels::DevicePreference::kCpu;  // --device
};

// One token of a batch.
struct BatchToken {
  int32_t token = 0;
  int32_t pos = 0;          // position within its sequence
  int32_t seq = 0;          // index into the `seqs` span of Forward()
  bool want_logits = false;
};

class ForwardState;  // scratch buffers, grown on first use (no per-token allocation)

class Model {
 public:
  // Loads weights from `file`, which must outlive the Model. Errors name the
  // missing or mis-shaped tensor, unsupported type or architecture.
  static Result<std::unique_ptr<Model>> Load(std::shared_ptr<const gguf::File> file,
                                             const ModelOptions& options);
  ~Model();

  const ModelConfig& config() const { return config_; }
  const gguf::File& file() const { return *file_; }
  // Where the weights live and the forward pass runs. KV pools for this model
  // must be created on it (kv::BlockPool::Create(config, &backend())).
  kernels::Backend& backend() { return *backend_; }
  // Bytes of KV memory one token occupies for the given KV element type.
  int64_t KvBytesPerToken(DType kv_type) const;
  // The KV block pool shape Forward expects (layers, widths, KV heads), with
  // the given element type, block size and byte budget.
  kv::BlockPoolConfig KvPoolConfig(DType kv_type, int block_tokens, int64_t max_bytes) const;
  // F32 for models whose token embedding is F32 (full-precision reference
  // models), F16 otherwise.
  DType DefaultKvType() const;
  // Bytes of weights read per decoded token (for GB/s reporting).
  int64_t WeightBytes() const;

  // Runs `tokens`. Every sequence's blocks must already cover the positions
  // written (pos < blocks.size() * block_tokens). Writes want_logits rows, in
  // batch order, to logits: [n_want, n_vocab]. Errors on token ids out of range.
  // `logits` is host memory.
  Status Forward(std::span<const BatchToken> tokens, std::span<kv::SeqBlocks* const> seqs,
                 kv::BlockPool& kv, float* logits);

 private:
  Model();
  Status Validate(std::span<const BatchToken> tokens, std::span<kv::SeqBlocks* const> seqs,
                  const kv::BlockPool& kv) const;

 public:
  struct Weights;  // defined in weights.h (internal)

 private:
  ModelConfig config_;
  std::shared_ptr<const gguf::File> file_;
  // Declared before the weights and scratch that live in its memory, so it is
  // destroyed after them.
  std::unique_ptr<kernels::Backend> backend_;
  std::unique_ptr<Weights> weights_;
  const float* inv_freq_ = nullptr;  // [rope_dims / 2] backend memory
  std::unique_ptr<ForwardState> state_;
};

}  // namespace reprise::model
