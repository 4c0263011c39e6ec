#include "engine/session.h"

#include <algorithm>

namespace reprise::engine {

Result<std::unique_ptr<Session>> Session::Create(model::Model& model, const SessionConfig& config) {
  std::unique_ptr<Session> s(new Session(model));
  s->config_ = config;
  const model::ModelConfig& c = model.config();
  s->ctx_size_ = config.ctx_size > 0 ? config.ctx_size : static_cast<int32_t>(c.n_ctx_train);
  if (s->ctx_size_ <= 0) return Errorf("invalid context size %d", s->ctx_size_);
  const int64_t n_blocks = (s->ctx_size_ + config.block_tokens - 1) / config.block_tokens;
  const kv::BlockPoolConfig pc = model.KvPoolConfig(
      config.kv_type, config.block_tokens,
      n_blocks * model.KvBytesPerToken(config.kv_type) * config.block_tokens);
  ASSIGN_OR_RETURN(s->pool_, kv::BlockPool::Create(pc, &model.backend()));
  s->batch_.reserve(std::max(1, config.prefill_chunk));
  return s;
}

void Session::Reset() {
  for (int32_t b : seq_.blocks) pool_->Unref(b);
  seq_.blocks.clear();
  seq_.n_tokens = 0;
}

Status Session::Append(std::span<const int32_t> tokens, float* last_logits) {
  return Run(tokens, false, last_logits);
}

Status Session::AppendAll(std::span<const int32_t> tokens, float* all_logits) {
  return Run(tokens, true, all_logits);
}

Status Session::Run(std::span<const int32_t> tokens, bool all_logits, float* logits) {
  if (tokens.empty()) return Status::Ok();
  const int64_t total = static_cast<int64_t>(seq_.n_tokens) + static_cast<int64_t>(tokens.size());
  if (total > ctx_size_) {
    return Errorf("%lld tokens exceed the context size of %d", static_cast<long long>(total),
                  ctx_size_);
  }
  const int bt = pool_->block_tokens();
  while (static_cast<int64_t>(seq_.blocks.size()) * bt < total) {
    const int32_t b = pool_->Allocate();
    if (b < 0) return Errorf("KV cache is full");
    seq_.blocks.push_back(b);
  }
  const int64_t n_vocab = model_.config().n_vocab;
  const int32_t chunk = std::max(1, config_.prefill_chunk);
  kv::SeqBlocks* seqs[1] = {&seq_};
  size_t done = 0;
  while (done < tokens.size()) {
    const size_t n = std::min(tokens.size() - done, static_cast<size_t>(chunk));
    batch_.clear();
    for (size_t i = 0; i < n; ++i) {
      model::BatchToken t;
      t.token = tokens[done + i];
      t.pos = seq_.n_tokens + static_cast<int32_t>(i);
      t.seq = 0;
      const bool last = done + i + 1 == tokens.size();
      t.want_logits = logits != nullptr && (all_logits || last);
      batch_.push_back(t);
    }
    float* out = nullptr;
    if (logits != nullptr) out = all_logits ? logits + done * n_vocab : logits;
    RETURN_IF_ERROR(model_.Forward(batch_, seqs, *pool_, out));
    seq_.n_tokens += static_cast<int32_t>(n);
    done += n;
  }
  return Status::Ok();
}

}  // namespace reprise::engine
