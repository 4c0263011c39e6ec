#include "engine/scheduler.h"

#include <algorithm>
#include <thread>

#include "core/check.h"
#include "core/log.h"
#include "core/timer.h"

namespace reprise::engine {

void RequestHandle::State::Push(Event event) {
  {
    std::lock_guard<std::mutex> lock(mu);
    events.push_back(std::move(event));
  }
  cv.notify_all();
}

struct Scheduler::Sequence {
  int64_t id = 0;
  Request request;  // max_tokens resolved by Validate (> 0)
  std::shared_ptr<RequestHandle::State> state;
  std::vector<int32_t> tokens;  // the prompt, then every sampled token
  kv::SeqBlocks kv;             // KV of tokens[0, kv.n_tokens)
  int32_t n_prompt = 0;
  int32_t n_fill = 0;  // tokens to prefill before decoding: the prompt, or all
                       // tokens so far when readmitted after a preemption
  int32_t n_cached = 0;
  int32_t n_cached_lower = 0;   // of n_cached, read back from the lower tier
  int32_t n_cached_host = 0, n_cached_disk = 0;  // of n_cached_lower, per tier kind
  int32_t n_generated = 0;      // tokens streamed (end-of-generation excluded)
  int32_t reserved_blocks = 0;  // 0 until admitted (and while preempted)
  bool admitted_once = false;
  bool hit_counted = false;  // n_cached* hold the first admission's hit
  // Admitted, waiting for the reads of its cached prefix (promoter_): not
  // run until they end; `hit` is the match being read.
  bool loading = false;
  int64_t promotion_job = 0;
  kv::CacheHit hit;
  std::unique_ptr<Sampler> sampler;
  int64_t submit_us = 0, admit_us = 0, first_token_us = 0, last_token_us = 0;
  int32_t step_first = 0, step_count = 0;  // positions run in the current batch
  int32_t prefill_grant = 0;  // kShortest: prompt tokens this step may run
  int32_t prefill_waits = 0;  // kShortest: steps in a row it got none while prefilling
  bool ended = false;
  bool preempted = false;  // in active_, to be moved back to waiting_ by Reap
  // Queued while in-flight sequence defer_leader computes the first
  // defer_tokens tokens of this prompt (DeferForSharedPrefix).
  int64_t defer_leader = 0;
  int32_t defer_tokens = 0;
  bool waited_for_prefix = false;  // counted in shared_prefix_waits_total
};

Result<std::unique_ptr<Scheduler>> Scheduler::Create(const SchedulerConfig& config,
                                                     const kv::BlockPoolConfig& pool_config,
                                                     ForwardFn forward,
                                                     std::unique_ptr<kv::BlockStore> lower_tier) {
  if (config.max_parallel < 1)
    return Errorf("parallel must be at least 1, got %d", config.max_parallel);
  if (config.max_cache_entries < 0) {
    return Errorf("prompt cache size must be >= 0, got %d", config.max_cache_entries);
  }
  if (config.ctx_size < 2)
    return Errorf("context size must be at least 2, got %d", config.ctx_size);
  if (config.prefill_chunk < 1) {
    return Errorf("prefill chunk must be at least 1, got %d", config.prefill_chunk);
  }
  if (config.sample_threads < 0) {
    return Errorf("sample threads must be >= 0, got %d", config.sample_threads);
  }
  if (config.default_max_tokens < 0) {
    return Errorf("max tokens must be >= 0, got %d", config.default_max_tokens);
  }
  CHECK(config.n_vocab > 0 && forward != nullptr);
  std::unique_ptr<Scheduler> s(new Scheduler());
  s->config_ = config;
  s->forward_ = std::move(forward);
  ASSIGN_OR_RETURN(s->pool_, kv::BlockPool::Create(pool_config, config.kv_device));
  if (lower_tier != nullptr && lower_tier->block_bytes() != s->pool_->block_bytes()) {
    return Errorf("the %.*s tier stores %lld-byte blocks, the KV pool's are %lld bytes",
                  static_cast<int>(lower_tier->name().size()), lower_tier->name().data(),
                  static_cast<long long>(lower_tier->block_bytes()),
                  static_cast<long long>(s->pool_->block_bytes()));
  }
  s->lower_ = std::move(lower_tier);
  kv::PromptCacheConfig cc;
  cc.max_entries = config.max_cache_entries;
  cc.layout = config.kv_layout;
  cc.lower = s->lower_.get();
  s->cache_ = std::make_unique<kv::PromptCache>(*s->pool_, cc);
  if (s->lower_ != nullptr && config.overlap_promotions) {
    s->promoter_ = std::make_unique<kv::Promoter>(*s->pool_);
  }
  s->logits_ = std::make_unique<kernels::HostFloats>(
      config.kv_device, static_cast<size_t>(config.max_parallel) * config.n_vocab, "the logits");
  int threads = config.sample_threads;
  if (threads == 0) {
    const int cores = static_cast<int>(std::thread::hardware_concurrency());
    const bool gpu = config.kv_device != nullptr && !config.kv_device->host_memory();
    threads = gpu ? std::clamp(std::min(cores / 2, config.max_parallel), 1, 8) : 1;
  }
  if (threads > 1) s->sample_pool_ = std::make_unique<ThreadPool>(threads);
  s->sample_results_.resize(static_cast<size_t>(config.max_parallel));
  return s;
}

Scheduler::~Scheduler() {
  FailAll(ErrorCode::kShuttingDown, Status::Error("the engine is shutting down"));
}

int32_t Scheduler::BlocksFor(int64_t positions) const {
  const int64_t bt = pool_->block_tokens();
  return static_cast<int32_t>((positions + bt - 1) / bt);
}

ErrorCode Scheduler::Validate(Request* r, Status* status) const {
  const int64_t n = static_cast<int64_t>(r->prompt.size());
  if (n == 0) {
    *status = Errorf("the prompt must contain at least one token");
    return ErrorCode::kInvalidRequest;
  }
  for (int32_t t : r->prompt) {
    if (t < 0 || t >= config_.n_vocab) {
      *status = Errorf("prompt token id %d is out of range [0, %d)", t, config_.n_vocab);
      return ErrorCode::kInvalidRequest;
    }
  }
  if (Status s = ValidateSamplingParams(r->sampling, config_.n_vocab); !s.ok()) {
    *status = s;
    return ErrorCode::kInvalidRequest;
  }
  const int64_t ctx = config_.ctx_size;
  const int64_t cap_positions =
      static_cast<int64_t>(pool_->capacity_blocks()) * pool_->block_tokens();
  // Only a prompt that does not fit is refused; an output budget (max_tokens)
  // that would pass the context or the KV budget is clamped to what is left,
  // and the request ends with finish reason "length" there (agents ask for
  // 32000 output tokens whatever the context).
  if (n >= ctx) {
    *status = Errorf(
        "This model's maximum context length is %lld tokens. However, your prompt has %lld "
        "tokens, which leaves no room for a completion.",
        static_cast<long long>(ctx), static_cast<long long>(n));
    return ErrorCode::kContextLengthExceeded;
  }
  if (n > cap_positions) {
    *status = Errorf(
        "the prompt (%lld tokens) needs more KV cache than the --prompt-cache-bytes budget of "
        "%lld bytes holds (%lld tokens); raise --prompt-cache-bytes",
        static_cast<long long>(n), static_cast<long long>(pool_->capacity_bytes()),
        static_cast<long long>(cap_positions));
    return ErrorCode::kExceedsKvBudget;
  }
  int64_t max_tokens = ctx - n;
  if (r->max_tokens > 0) {
    max_tokens = std::min<int64_t>(max_tokens, r->max_tokens);
  } else if (config_.default_max_tokens > 0) {
    max_tokens = std::min<int64_t>(max_tokens, config_.default_max_tokens);
  }
  max_tokens = std::min<int64_t>(max_tokens, cap_positions - n + 1);
  r->max_tokens = static_cast<int32_t>(max_tokens);
  return ErrorCode::kOk;
}

void Scheduler::Enqueue(Request request, std::shared_ptr<RequestHandle::State> state) {
  auto seq = std::make_unique<Sequence>();
  CHECK(!request.prompt.empty() && request.max_tokens > 0);
  seq->id = next_id_++;
  seq->tokens = request.prompt;
  seq->n_prompt = static_cast<int32_t>(request.prompt.size());
  seq->n_fill = seq->n_prompt;
  seq->request = std::move(request);
  seq->state = std::move(state);
  seq->submit_us = NowMicros();
  waiting_.push_back(std::move(seq));
}

bool Scheduler::DeferForSharedPrefix(Sequence& s) {
  if (config_.max_cache_entries <= 0 || s.n_fill < 2) return false;
  const int32_t bt = pool_->block_tokens();
  const int32_t limit = s.n_fill - 1;  // Acquire's bound: the last prompt token is recomputed
  const std::span<const int32_t> mine(s.tokens.data(), static_cast<size_t>(limit));
  const std::string& ns = s.request.cache_namespace;
  const auto can_lead = [&](const Sequence& l) {
    return !l.ended && !l.preempted && !l.loading && l.request.cache_namespace == ns;
  };
  Sequence* leader = nullptr;
  int32_t shared = 0;
  for (auto& lp : active_) {  // the leader chosen before, while it runs
    if (lp->id == s.defer_leader && can_lead(*lp)) leader = lp.get(), shared = s.defer_tokens;
  }
  if (leader == nullptr) {
    // The in-flight sequence sharing the most full blocks with s, counting
    // the tokens it holds KV for now or will once its prefill ends.
    for (auto& lp : active_) {
      Sequence& l = *lp;
      if (!can_lead(l)) continue;
      const int32_t n = std::min(limit, std::max(l.n_fill, l.kv.n_tokens));
      int32_t k = 0;
      while (k < n && mine[k] == l.tokens[k]) ++k;
      k = k / bt * bt;
      if (k > shared) leader = &l, shared = k;
    }
  }
  s.defer_leader = 0;
  s.defer_tokens = 0;
  if (leader == nullptr || cache_->SharedPrefixTokens(mine, limit, ns) >= shared) return false;
  if (leader->kv.n_tokens >= shared) {
    // Computed: published for s (and any later request) to find. The
    // leader never writes these blocks again: it writes past kv.n_tokens.
    cache_->Insert(std::span<const int32_t>(leader->tokens.data(), static_cast<size_t>(shared)),
                   leader->kv, ns);
    return false;
  }
  s.defer_leader = leader->id;
  s.defer_tokens = shared;
  if (!s.waited_for_prefix) {
    s.waited_for_prefix = true;
    ++counters_.shared_prefix_waits_total;
  }
  return true;
}

void Scheduler::Admit() {
  for (size_t i = 0;
       i < waiting_.size() && static_cast<int>(active_.size()) < config_.max_parallel;) {
    Sequence& s = *waiting_[i];
    // The positions this admission writes before it must grow: the tokens
    // to prefill and the first decode's (never past the request's last).
    const int64_t last_position = static_cast<int64_t>(s.n_prompt) + s.request.max_tokens - 1;
    const int32_t need = BlocksFor(std::min<int64_t>(s.n_fill + 1, last_position));
    CHECK(need <= pool_->capacity_blocks());  // Validate refuses what can never fit
    if (reserved_blocks_ + need > pool_->capacity_blocks()) break;  // wait for memory (FIFO)
    if (DeferForSharedPrefix(s)) {  // an in-flight prefill is computing its prefix
      ++i;
      continue;
    }
    kv::CacheHit hit = cache_->Acquire(s.tokens, s.n_fill - 1, s.request.cache_namespace,
                                       promoter_ != nullptr);
    s.reserved_blocks = need;
    reserved_blocks_ += need;
    if (!hit.pending.empty()) {
      s.promotion_job = promoter_->Submit(hit.pending);
      s.loading = true;
      s.hit = std::move(hit);
    } else {
      UseHit(s, std::move(hit));
    }
    if (!s.admitted_once) {
      s.admitted_once = true;
      s.sampler = std::make_unique<Sampler>(s.request.sampling, config_.n_vocab);
      for (int32_t t : s.tokens) s.sampler->Accept(t, /*is_prompt=*/true);
      s.admit_us = NowMicros();
    }
    active_.push_back(std::move(waiting_[i]));
    waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(i));
  }
}

void Scheduler::UseHit(Sequence& s, kv::CacheHit hit) {
  CHECK(hit.pending.empty());
  s.kv = std::move(hit.seq);
  if (s.hit_counted) return;
  s.hit_counted = true;
  s.n_cached = hit.n_cached;
  s.n_cached_lower = hit.n_lower_tokens;
  for (int t = 0; lower_ != nullptr && t < lower_->tier_count() && t < 4; ++t) {
    const std::string_view name = lower_->tier(t)->name();
    if (name == "host") s.n_cached_host += hit.n_tier_tokens[t];
    if (name == "disk") s.n_cached_disk += hit.n_tier_tokens[t];
  }
}

void Scheduler::EndLoading(Sequence& s, const kv::PromotionJob& job) {
  CHECK(s.loading && job.id == s.promotion_job);
  const int32_t lost = cache_->CompletePromotions(&s.hit, job.reads);
  if (lost > 0) {
    LOG_DEBUG("engine", "request %lld: %d cached tokens could not be read back; recomputing them",
              static_cast<long long>(s.id), lost);
  }
  s.loading = false;
  s.promotion_job = 0;
  UseHit(s, std::move(s.hit));
  s.hit = kv::CacheHit();
}

void Scheduler::PollPromotions() {
  if (promoter_ == nullptr || promoter_->pending() == 0) return;
  for (const kv::PromotionJob& job : promoter_->Poll()) {
    Sequence* owner = nullptr;
    for (auto& s : active_) {
      if (s->loading && s->promotion_job == job.id) owner = s.get();
    }
    CHECK(owner != nullptr);  // a sequence leaving active_ waits for its job first
    EndLoading(*owner, job);
  }
}

bool Scheduler::Reserve(Sequence& s, int32_t blocks) {
  while (s.reserved_blocks < blocks) {
    if (reserved_blocks_ < pool_->capacity_blocks()) {
      ++s.reserved_blocks;
      ++reserved_blocks_;
      continue;
    }
    Sequence* victim = nullptr;
    for (auto it = active_.rbegin(); it != active_.rend(); ++it) {
      Sequence& v = **it;
      if (!v.ended && !v.preempted && v.reserved_blocks > 0) {
        victim = &v;
        break;
      }
    }
    CHECK(victim != nullptr);  // s itself holds a reservation
    Preempt(*victim);
    if (victim == &s) return false;
  }
  return true;
}

void Scheduler::ReleaseKv(Sequence& seq) {
  // Its blocks are being read into: wait for the reads (bounded by one
  // prefix's I/O; only a preemption of a loading sequence or the shutdown
  // gets here: a cancelled one ends after its reads), then the promoted
  // prefix goes into the cache like any KV.
  if (seq.loading) EndLoading(seq, promoter_->Wait(seq.promotion_job));
  if (seq.kv.n_tokens > 0) {
    cache_->Insert(std::span<const int32_t>(seq.tokens).first(seq.kv.n_tokens), seq.kv,
                   seq.request.cache_namespace);
  }
  for (int32_t b : seq.kv.blocks) pool_->Unref(b);
  seq.kv = kv::SeqBlocks();
  reserved_blocks_ -= seq.reserved_blocks;
  seq.reserved_blocks = 0;
}

void Scheduler::Preempt(Sequence& seq) {
  CHECK(!seq.ended && !seq.preempted);
  ReleaseKv(seq);
  seq.n_fill = static_cast<int32_t>(seq.tokens.size());
  seq.step_count = 0;
  seq.preempted = true;
  ++counters_.preemptions_total;
  LOG_DEBUG("engine", "request %lld preempted at %d tokens (KV reserved %d of %d blocks)",
            static_cast<long long>(seq.id), seq.n_fill, reserved_blocks_,
            pool_->capacity_blocks());
}

void Scheduler::Finish(Sequence& seq, FinishReason reason, ErrorCode code, const Status& error) {
  if (seq.ended) return;
  seq.ended = true;
  ReleaseKv(seq);
  const bool admitted = seq.admitted_once;

  Event ev;
  ev.kind = code == ErrorCode::kOk ? Event::Kind::kDone : Event::Kind::kError;
  ev.finish = reason;
  ev.code = code;
  ev.error = error;
  Usage& u = ev.usage;
  u.prompt_tokens = seq.n_prompt;
  u.cached_tokens = seq.n_cached;
  u.cached_tokens_lower_tier = seq.n_cached_lower;
  u.cached_tokens_host = seq.n_cached_host;
  u.cached_tokens_disk = seq.n_cached_disk;
  u.completion_tokens = seq.n_generated;
  if (admitted) u.queue_ms = (seq.admit_us - seq.submit_us) / 1000.0;
  if (seq.first_token_us > 0) {
    u.ttft_ms = (seq.first_token_us - seq.submit_us) / 1000.0;
    u.decode_ms = (seq.last_token_us - seq.first_token_us) / 1000.0;
  }
  if (admitted) {
    ++counters_.requests_total;
    counters_.prompt_tokens_total += seq.n_prompt;
    counters_.prompt_tokens_cached_total += seq.n_cached;
  }
  if (code != ErrorCode::kOk) ++counters_.requests_failed;
  const double tps = u.decode_ms > 0 ? (u.completion_tokens - 1) * 1000.0 / u.decode_ms : 0.0;
  // The server logs its own line per request; this one is for debugging.
  LOG_DEBUG("engine",
           "request %lld %s: prompt %d tokens (%d cached), generated %d, ttft %.1f ms, "
           "%.1f tok/s%s%s",
           static_cast<long long>(seq.id),
           code == ErrorCode::kOk ? FinishReasonName(reason) : ErrorCodeName(code), u.prompt_tokens,
           u.cached_tokens, u.completion_tokens, u.ttft_ms, tps, error.ok() ? "" : ": ",
           error.ok() ? "" : error.message().c_str());
  if (before_final_) before_final_();
  seq.state->Push(std::move(ev));
}

void Scheduler::Reap() {
  std::erase_if(active_, [](const std::unique_ptr<Sequence>& s) { return s->ended; });
  std::erase_if(waiting_, [](const std::unique_ptr<Sequence>& s) { return s->ended; });
  // Preempted sequences go back to the front of the queue, oldest first.
  for (auto it = active_.rbegin(); it != active_.rend(); ++it) {
    if ((*it)->preempted) {
      (*it)->preempted = false;
      waiting_.push_front(std::move(*it));
    }
  }
  std::erase_if(active_, [](const std::unique_ptr<Sequence>& s) { return s == nullptr; });
}

void Scheduler::FailAll(ErrorCode code, const Status& status) {
  for (auto& s : active_) Finish(*s, FinishReason::kNone, code, status);
  for (auto& s : waiting_) Finish(*s, FinishReason::kNone, code, status);
  Reap();
}

void Scheduler::GrantPrefill() {
  prefill_order_.clear();
  for (auto& sp : active_) {
    Sequence& s = *sp;
    s.prefill_grant = 0;
    if (s.ended || s.preempted || s.loading || s.kv.n_tokens >= s.n_fill) continue;
    prefill_order_.push_back(&s);
  }
  // Aged sequences first in admission order (a stable sort keeps it), then
  // the fewest prompt tokens left first, ties in admission order.
  std::stable_sort(prefill_order_.begin(), prefill_order_.end(),
                   [](const Sequence* a, const Sequence* b) {
                     const bool aged_a = a->prefill_waits >= kPrefillAging;
                     const bool aged_b = b->prefill_waits >= kPrefillAging;
                     if (aged_a != aged_b) return aged_a;
                     if (aged_a) return false;
                     return a->n_fill - a->kv.n_tokens < b->n_fill - b->kv.n_tokens;
                   });
  int32_t budget = config_.prefill_chunk;
  for (Sequence* s : prefill_order_) {
    s->prefill_grant = std::min(budget, s->n_fill - s->kv.n_tokens);
    budget -= s->prefill_grant;
    s->prefill_waits = s->prefill_grant > 0 ? 0 : s->prefill_waits + 1;
  }
}

bool Scheduler::Step() {
  for (auto& s : waiting_) {
    if (s->state->cancel.load()) Finish(*s, FinishReason::kCancelled, ErrorCode::kOk, Status());
  }
  for (auto& s : active_) {
    // A loading sequence ends once its reads have (the reader writes into
    // its blocks); waiting for them here would stall every other stream.
    if (s->state->cancel.load() && !s->loading) {
      Finish(*s, FinishReason::kCancelled, ErrorCode::kOk, Status());
    }
  }
  Reap();
  Admit();
  PollPromotions();
  if (active_.empty()) return false;

  // Plan the batch: one decode token per decoding sequence, plus up to
  // prefill_chunk prompt tokens of prefilling sequences (oldest first, or
  // as GrantPrefill shares them).
  batch_.clear();
  batch_seqs_.clear();
  logit_owners_.clear();
  int32_t prefill_budget = config_.prefill_chunk;
  const bool granted = config_.prefill_order == PrefillOrder::kShortest;
  if (granted) GrantPrefill();
  const int32_t bt = pool_->block_tokens();
  for (auto& sp : active_) {
    Sequence& s = *sp;
    s.step_count = 0;
    s.step_first = s.kv.n_tokens;
    if (s.ended || s.preempted) continue;  // preempted by an older sequence this step
    if (s.loading) continue;                // its prefix is still being read
    int32_t count;
    if (s.kv.n_tokens < s.n_fill) {
      if (granted) {
        count = s.prefill_grant;
        if (count == 0) continue;
      } else {
        if (prefill_budget == 0) continue;
        count = std::min(prefill_budget, s.n_fill - s.kv.n_tokens);
        prefill_budget -= count;
      }
    } else {
      CHECK(static_cast<int32_t>(s.tokens.size()) == s.kv.n_tokens + 1);
      count = 1;
    }
    // Blocks are allocated as positions are written, inside the sequence's
    // reservation (grown here, which may preempt newer sequences or this
    // one); the reservation guarantees the cache can free a block.
    const size_t need = static_cast<size_t>((s.step_first + count + bt - 1) / bt);
    if (!Reserve(s, static_cast<int32_t>(need))) continue;
    while (s.kv.blocks.size() < need) {
      const int32_t b = cache_->AllocateBlock();
      if (b < 0) break;
      s.kv.blocks.push_back(b);
    }
    if (s.kv.blocks.size() < need) {
      LOG_ERROR("engine", "KV pool exhausted for an admitted sequence (reserved %d of %d blocks)",
                reserved_blocks_, pool_->capacity_blocks());
      Finish(s, FinishReason::kNone, ErrorCode::kInternal,
             Status::Error("the KV cache ran out of blocks"));
      continue;
    }
    s.step_count = count;
    const int32_t seq_index = static_cast<int32_t>(batch_seqs_.size());
    batch_seqs_.push_back(&s.kv);
    const int32_t last = static_cast<int32_t>(s.tokens.size()) - 1;
    for (int32_t p = s.step_first; p < s.step_first + count; ++p) {
      model::BatchToken t;
      t.token = s.tokens[p];
      t.pos = p;
      t.seq = seq_index;
      t.want_logits = p == last;
      if (t.want_logits) logit_owners_.push_back(&s);
      batch_.push_back(t);
    }
  }
  if (batch_.empty()) {
    // Only sequences waiting for their reads: sleep until one ends (briefly,
    // so new requests are still admitted without delay).
    if (promoter_ != nullptr && promoter_->pending() > 0) {
      promoter_->WaitForProgress(std::chrono::milliseconds(2));
      PollPromotions();
    }
    Reap();
    return true;
  }

  {
    const int64_t n_seqs = static_cast<int64_t>(batch_seqs_.size());
    int bucket = 0;
    while (bucket < SchedulerCounters::kNumBatchBuckets - 1 &&
           n_seqs > SchedulerCounters::kBatchBuckets[bucket]) {
      ++bucket;
    }
    ++counters_.batch_steps[bucket];
    counters_.batch_sequences_sum += n_seqs;
    counters_.batch_tokens_sum += static_cast<int64_t>(batch_.size());
  }
  const Status st = forward_(batch_, batch_seqs_, *pool_, logits_->data());
  if (!st.ok()) {
    LOG_ERROR("engine", "forward pass failed: %s", st.message().c_str());
    for (auto& s : active_) {
      if (s->step_count > 0) Finish(*s, FinishReason::kNone, ErrorCode::kInternal, st);
    }
    Reap();
    return true;
  }
  for (auto& s : active_) {
    if (s->step_count > 0 && !s->ended) s->kv.n_tokens = s->step_first + s->step_count;
  }

  // Every row's token (in parallel on sample_pool_ when there is one), then,
  // row by row, what each token does to its sequence.
  const auto sample_rows = [&](int64_t begin, int64_t end, int /*thread*/) {
    for (int64_t row = begin; row < end; ++row) {
      Sequence& s = *logit_owners_[row];
      s.sampler->Sample(logits_->data() + row * static_cast<int64_t>(config_.n_vocab),
                        &sample_results_[row], s.request.constraint.get());
    }
  };
  const int64_t rows = static_cast<int64_t>(logit_owners_.size());
  CHECK(rows <= static_cast<int64_t>(sample_results_.size()));
  if (sample_pool_ != nullptr && rows > 1) {
    sample_pool_->ParallelFor(rows, 1, sample_rows);
  } else {
    sample_rows(0, rows, 0);
  }
  for (size_t row = 0; row < logit_owners_.size(); ++row) {
    Sequence& s = *logit_owners_[row];
    Constraint* constraint = s.request.constraint.get();
    SampleResult& result = sample_results_[row];
    if (result.token < 0) {
      Finish(s, FinishReason::kNone, ErrorCode::kInvalidRequest,
             Status::Error("the output constraint allows no token here: this vocabulary cannot "
                           "spell what the grammar needs next"));
      continue;
    }
    const int64_t now = NowMicros();
    if (s.first_token_us == 0) s.first_token_us = now;
    s.last_token_us = now;
    s.tokens.push_back(result.token);
    s.sampler->Accept(result.token, /*is_prompt=*/false);
    if (constraint != nullptr && !constraint->Accept(result.token)) {
      Finish(
          s, FinishReason::kNone, ErrorCode::kInternal,
          Errorf("token %d was sampled but the output constraint does not allow it", result.token));
      continue;
    }
    if (!s.request.ignore_eos && config_.eog_ids.count(result.token) != 0) {
      Finish(s, FinishReason::kStop, ErrorCode::kOk, Status());
      continue;
    }
    ++s.n_generated;
    ++counters_.generated_tokens_total;
    Event ev;
    ev.kind = Event::Kind::kToken;
    ev.token = result.token;
    ev.logprob = result.logprob;
    ev.top_logprobs = result.top_logprobs;
    s.state->Push(std::move(ev));
    if (constraint != nullptr && constraint->Done()) {
      Finish(s, FinishReason::kStop, ErrorCode::kOk, Status());
    } else if (s.n_generated >= s.request.max_tokens) {
      Finish(s, FinishReason::kLength, ErrorCode::kOk, Status());
    }
  }
  Reap();
  return true;
}

}  // namespace reprise::engine
