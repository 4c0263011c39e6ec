// Engine: the scheduler thread around Scheduler, the submission queue, and
// the snapshots (stats, cache entries, heartbeat) other threads read.
#include "engine/engine.h"

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>

#include "core/log.h"
#include "core/timer.h"
#include "engine/scheduler.h"
#include "kv/disk_block_store.h"
#include "kv/tiered_block_store.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace reprise::engine {

const char* ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk:
      return "ok";
    case ErrorCode::kInvalidRequest:
      return "invalid_request";
    case ErrorCode::kContextLengthExceeded:
      return "context_length_exceeded";
    case ErrorCode::kExceedsKvBudget:
      return "kv_budget_exceeded";
    case ErrorCode::kOverloaded:
      return "overloaded";
    case ErrorCode::kShuttingDown:
      return "shutting_down";
    case ErrorCode::kInternal:
      return "internal_error";
  }
  return "unknown";
}

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone:
      return "none";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

// ---- RequestHandle ----

RequestHandle::RequestHandle(std::shared_ptr<State> state) : state_(std::move(state)) {}

RequestHandle::~RequestHandle() { Cancel(); }  // nobody can read the stream any more

bool RequestHandle::Next(Event* event) {
  std::unique_lock<std::mutex> lock(state_->mu);
  state_->cv.wait(lock, [&] { return !state_->events.empty() || state_->final_taken; });
  if (state_->events.empty()) return false;
  *event = std::move(state_->events.front());
  state_->events.pop_front();
  if (event->kind != Event::Kind::kToken) state_->final_taken = true;
  return true;
}

bool RequestHandle::NextFor(Event* event, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(state_->mu);
  state_->cv.wait_for(lock, timeout,
                      [&] { return !state_->events.empty() || state_->final_taken; });
  if (state_->events.empty()) return false;
  *event = std::move(state_->events.front());
  state_->events.pop_front();
  if (event->kind != Event::Kind::kToken) state_->final_taken = true;
  return true;
}

void RequestHandle::Cancel() { state_->cancel.store(true); }
bool RequestHandle::cancelled() const { return state_->cancel.load(); }
bool RequestHandle::finished() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->final_taken;
}

// ---- Engine ----

struct Engine::Impl {
  EngineConfig config;
  std::unique_ptr<Scheduler> scheduler;

  std::mutex mu;  // guards pending and stop
  std::condition_variable cv;
  std::deque<std::pair<Request, std::shared_ptr<RequestHandle::State>>> pending;
  bool stop = false;

  mutable std::mutex snapshot_mu;  // guards stats and entries
  EngineStats stats;
  std::vector<kv::CacheEntryInfo> entries;
  uint64_t entries_version = ~0ull;

  std::atomic<bool> alive{false};
  std::atomic<int64_t> heartbeat_us{0};
  std::thread thread;

  void Loop();
  void Publish();
};

void Engine::Impl::Publish() {
  const Scheduler& s = *scheduler;
  EngineStats st;
  const SchedulerCounters& c = s.counters();
  st.requests_total = c.requests_total;
  st.requests_failed = c.requests_failed;
  st.prompt_tokens_total = c.prompt_tokens_total;
  st.prompt_tokens_cached_total = c.prompt_tokens_cached_total;
  st.generated_tokens_total = c.generated_tokens_total;
  st.preemptions_total = c.preemptions_total;
  st.shared_prefix_waits_total = c.shared_prefix_waits_total;
  st.batch_steps.assign(std::begin(c.batch_steps), std::end(c.batch_steps));
  st.batch_bucket_bounds.assign(std::begin(SchedulerCounters::kBatchBuckets),
                                std::end(SchedulerCounters::kBatchBuckets));
  st.batch_sequences_sum = c.batch_sequences_sum;
  st.batch_tokens_sum = c.batch_tokens_sum;
  if (const kernels::Backend* dev = s.pool().device(); dev != nullptr && !dev->host_memory()) {
    st.device_memory_held = dev->HeldBytes();
    st.device_memory_free = dev->FreeMemoryBytes();
  }
  st.active = s.active();
  st.queued = s.waiting();
  st.kv_bytes_in_use = s.pool().bytes_in_use();
  st.kv_bytes_limit = s.pool().capacity_bytes();
  st.kv_bytes_per_token = s.pool().bytes_per_token();
  st.kv_used_blocks = s.pool().used_blocks();
  st.kv_capacity_blocks = s.pool().capacity_blocks();
  st.block_tokens = s.pool().block_tokens();
  st.ctx_size = config.ctx_size;
  st.cache = s.cache().Stats();
  st.pool_tier =
      s.pool().device() != nullptr && !s.pool().device()->host_memory() ? "device" : "ram";
  if (const kv::BlockStore* lower = s.lower_tier()) {
    st.lower = lower->Stats();
    st.lower_name = std::string(lower->name());
    for (int i = 0; i < lower->tier_count(); ++i) {
      const kv::BlockStore* t = lower->tier(i);
      EngineStats::Tier tier;
      tier.name = std::string(t->name());
      if (tier.name == "disk") tier.dir = config.disk_dir;
      tier.stats = t->Stats();
      if (i < kv::PromptCacheStats::kMaxTiers) {
        tier.hit_tokens = st.cache.tier_hit_tokens[i];
        tier.promotions = st.cache.tier_promotions[i];
      }
      st.lower_tiers.push_back(std::move(tier));
    }
  }
  const uint64_t version = s.cache().version();
  std::vector<kv::CacheEntryInfo> fresh;
  const bool refresh = version != entries_version;
  if (refresh) fresh = s.cache().Entries();
  std::lock_guard<std::mutex> lock(snapshot_mu);
  {
    std::lock_guard<std::mutex> qlock(mu);
    st.queued += static_cast<int32_t>(pending.size());
  }
  stats = st;
  if (refresh) {
    entries = std::move(fresh);
    entries_version = version;
  }
}

void Engine::Impl::Loop() {
  constexpr auto kIdleTick = std::chrono::milliseconds(50);
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu);
      if (stop) break;
      while (!pending.empty()) {
        scheduler->Enqueue(std::move(pending.front().first), std::move(pending.front().second));
        pending.pop_front();
      }
    }
    heartbeat_us.store(NowMicros());
    const bool worked = scheduler->Step();
    heartbeat_us.store(NowMicros());
    Publish();
    if (!worked) {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait_for(lock, kIdleTick, [&] { return stop || !pending.empty(); });
    }
  }
  // Shutdown: everything queued or running ends with kShuttingDown.
  const Status bye = Status::Error("the engine is shutting down");
  {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& p : pending) scheduler->Enqueue(std::move(p.first), std::move(p.second));
    pending.clear();
  }
  scheduler->FailAll(ErrorCode::kShuttingDown, bye);
  // What is cached in the pool (and the host tier) goes to the disk tier, so
  // a restart finds it.
  if (kv::BlockStore* lower = scheduler->lower_tier_mut();
      lower != nullptr && lower->enabled() && lower->durable()) {
    const int64_t t0 = NowMicros();
    int64_t n = scheduler->DemoteAllCached();
    n += lower->SpillAllToLowest();
    LOG_INFO("engine", "wrote %lld cached KV blocks to the %.*s tier at shutdown (%.1f ms)",
             static_cast<long long>(n), static_cast<int>(lower->name().size()),
             lower->name().data(), (NowMicros() - t0) / 1000.0);
  }
  scheduler->SetBeforeFinalEventHook(nullptr);  // Impl is going away
  Publish();
  alive.store(false);
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<Engine>> Engine::Create(model::Model& model, const tokenizer::Tokenizer& tok,
                                               const EngineConfig& config) {
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  const model::ModelConfig& mc = model.config();
  if (impl->config.ctx_size <= 0) impl->config.ctx_size = static_cast<int32_t>(mc.n_ctx_train);
  if (config.block_tokens < 1)
    return Errorf("block tokens must be >= 1, got %d", config.block_tokens);
  if (config.max_queued < 1) return Errorf("max queued must be >= 1, got %d", config.max_queued);

  SchedulerConfig sc;
  sc.kv_device = &model.backend();
  sc.max_parallel = config.max_parallel;
  sc.max_cache_entries = config.max_cache_entries;
  sc.ctx_size = impl->config.ctx_size;
  sc.prefill_chunk = config.prefill_chunk;
  sc.prefill_order = config.prefill_order;
  sc.default_max_tokens = config.default_max_tokens;
  sc.n_vocab = static_cast<int32_t>(mc.n_vocab);
  for (int32_t id : tok.eog_ids()) sc.eog_ids.insert(id);
  // REPRISE_OVERLAP_PROMOTIONS=0 reads demoted blocks inside admission (the
  // baseline of the promotion benchmark).
  if (const char* v = std::getenv("REPRISE_OVERLAP_PROMOTIONS"); v != nullptr && std::string(v) == "0") {
    sc.overlap_promotions = false;
  }

  const kv::BlockPoolConfig pc =
      model.KvPoolConfig(config.kv_type, config.block_tokens, config.cache_bytes);
  {
    // Content addresses cover the model, the KV type and the block shape.
    const int64_t shape[] = {static_cast<int64_t>(config.kv_type), pc.block_tokens, pc.n_layers,
                             pc.k_dim, pc.v_dim, pc.n_heads};
    sc.kv_layout = kv::ChainKey(
        config.model_identity,
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(shape), sizeof(shape)));
  }
  std::vector<std::unique_ptr<kv::LruBlockStore>> tiers;  // below the pool, fastest first
  if (config.host_bytes > 0 && config.max_cache_entries > 0) {
    const int64_t block_bytes = kv::BlockPool::BlockBytesOf(pc);
    if (config.host_bytes < block_bytes) {
      LOG_WARN("engine", "host tier off: --prompt-cache-host-bytes %lld is less than one KV block "
               "(%lld bytes)", static_cast<long long>(config.host_bytes),
               static_cast<long long>(block_bytes));
    } else {
      tiers.push_back(
          std::make_unique<kv::HostBlockStore>(block_bytes, config.host_bytes, &model.backend()));
      LOG_INFO("engine", "host tier: bound %lld bytes (%lld blocks of %lld bytes), %s memory",
               static_cast<long long>(config.host_bytes),
               static_cast<long long>(config.host_bytes / block_bytes),
               static_cast<long long>(block_bytes),
               model.backend().host_memory() ? "plain" : "pinned");
    }
  }
  if (!config.disk_dir.empty() && config.max_cache_entries > 0) {
    kv::DiskBlockStoreConfig dc;
    dc.dir = config.disk_dir;
    dc.layout = sc.kv_layout;
    dc.block_bytes = kv::BlockPool::BlockBytesOf(pc);
    dc.bytes_limit = config.disk_bytes;
    dc.fsync = config.disk_fsync;
    auto store = kv::DiskBlockStore::Open(dc);
    if (!store.ok()) {
      LOG_ERROR("engine", "disk tier off: %s; serving goes on with the RAM cache only",
                store.status().message().c_str());
    } else {
      const kv::DiskScanReport& r = (*store)->scan_report();
      LOG_INFO("engine",
               "disk tier %s: bound %lld bytes (%lld blocks of %lld bytes + a %lld-byte header); "
               "found %lld blocks of this model (%lld bytes), discarded %lld corrupt files, "
               "ignored %lld files of another model or KV layout",
               dc.dir.c_str(), static_cast<long long>(dc.bytes_limit),
               static_cast<long long>(dc.bytes_limit /
                                      (dc.block_bytes + kv::DiskBlockStore::kHeaderBytes)),
               static_cast<long long>(dc.block_bytes),
               static_cast<long long>(kv::DiskBlockStore::kHeaderBytes),
               static_cast<long long>(r.loaded), static_cast<long long>((*store)->bytes()),
               static_cast<long long>(r.discarded), static_cast<long long>(r.foreign));
      tiers.push_back(std::move(store).value());
    }
  }
  std::unique_ptr<kv::BlockStore> lower;
  if (!tiers.empty()) {
    ASSIGN_OR_RETURN(lower, kv::TieredBlockStore::Create(std::move(tiers)));
  }

  model::Model* m = &model;
  ForwardFn forward = [m](std::span<const model::BatchToken> batch,
                          std::span<kv::SeqBlocks* const> seqs, kv::BlockPool& pool,
                          float* logits) { return m->Forward(batch, seqs, pool, logits); };
  ASSIGN_OR_RETURN(impl->scheduler, Scheduler::Create(sc, pc, std::move(forward), std::move(lower)));
  const kv::BlockPool& pool = impl->scheduler->pool();
  LOG_INFO("engine",
           "context %d tokens, KV %lld bytes/token (%s), budget %lld bytes = %d blocks of %d "
           "tokens (%lld tokens), prompt cache size %d, parallel %d",
           impl->config.ctx_size, static_cast<long long>(pool.bytes_per_token()),
           DTypeName(config.kv_type), static_cast<long long>(pool.capacity_bytes()),
           pool.capacity_blocks(), pool.block_tokens(),
           static_cast<long long>(pool.capacity_blocks()) * pool.block_tokens(),
           config.max_cache_entries, config.max_parallel);
  impl->scheduler->SetBeforeFinalEventHook([raw_impl = impl.get()] { raw_impl->Publish(); });
  impl->Publish();
  impl->alive.store(true);
  impl->heartbeat_us.store(NowMicros());
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->Loop(); });
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

SubmitResult Engine::Submit(Request request) {
  SubmitResult r;
  r.code = impl_->scheduler->Validate(&request, &r.status);
  if (r.code != ErrorCode::kOk) return r;
  auto state = std::make_shared<RequestHandle::State>();
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stop || !impl_->alive.load()) {
      r.code = ErrorCode::kShuttingDown;
      r.status = Status::Error("the engine is not running");
      return r;
    }
    if (static_cast<int>(impl_->pending.size()) >= impl_->config.max_queued) {
      r.code = ErrorCode::kOverloaded;
      r.status = Errorf("too many requests queued (%d); try again later", impl_->config.max_queued);
      return r;
    }
    impl_->pending.emplace_back(std::move(request), state);
  }
  impl_->cv.notify_all();
  r.handle = std::shared_ptr<RequestHandle>(new RequestHandle(std::move(state)));
  return r;
}

EngineStats Engine::Stats() const {
  std::lock_guard<std::mutex> lock(impl_->snapshot_mu);
  return impl_->stats;
}

std::vector<kv::CacheEntryInfo> Engine::CacheEntries() const {
  std::lock_guard<std::mutex> lock(impl_->snapshot_mu);
  return impl_->entries;
}

bool Engine::Healthy() const {
  if (!impl_->alive.load()) return false;
  const int64_t idle_us = NowMicros() - impl_->heartbeat_us.load();
  return idle_us < impl_->config.stall_timeout_ms * 1000;
}

const EngineConfig& Engine::config() const { return impl_->config; }

}  // namespace reprise::engine
