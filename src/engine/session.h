// Session: one sequence on a model with its own KV block pool — the simple,
// synchronous path the CLI (generate, logits, bench) and golden tests use.
// The server uses the scheduler (engine.h) instead, which batches sequences
// and shares the prompt cache; both run the same Model::Forward.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "core/status.h"
#include "kv/block_pool.h"
#include "model/model.h"

namespace reprise::engine {

struct SessionConfig {
  int32_t ctx_size = 0;  // 0 = the model's training context
  DType kv_type = DType::kF16;
  int block_tokens = 32;
  int32_t prefill_chunk = 512;  // tokens per Forward during prefill
};

class Session {
 public:
  static Result<std::unique_ptr<Session>> Create(model::Model& model, const SessionConfig& config);

  int32_t ctx_size() const { return ctx_size_; }
  int32_t n_tokens() const { return seq_.n_tokens; }
  const model::Model& model() const { return model_; }
  kv::BlockPool& pool() { return *pool_; }

  // Appends tokens (in chunks); writes the logits of the last one to
  // last_logits [n_vocab] when non-null. Errors beyond the context.
  Status Append(std::span<const int32_t> tokens, float* last_logits);
  // Appends tokens and writes logits for every one of them: [n, n_vocab].
  Status AppendAll(std::span<const int32_t> tokens, float* all_logits);
  // Forgets every token (keeps the memory).
  void Reset();

 private:
  Session(model::Model& model) : model_(model) {}
  Status Run(std::span<const int32_t> tokens, bool all_logits, float* logits);

  model::Model& model_;
  SessionConfig config_;
  int32_t ctx_size_ = 0;
  std::unique_ptr<kv::BlockPool> pool_;
  kv::SeqBlocks seq_;
  std::vector<model::BatchToken> batch_;
};

}  // namespace reprise::engine
