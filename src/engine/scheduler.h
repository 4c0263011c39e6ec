// The scheduler: the single-threaded core of the engine. It owns the KV block
// pool, the prompt cache and the in-flight sequences, and advances them one
// batch per Step(): admission (cached prefix from the cache, a block
// reservation), chunked prefill mixed with decode tokens of other sequences
// (continuous batching), sampling, streaming events, and the end of a
// sequence (insert prompt + generated tokens into the cache, release blocks).
// It owns the optional tier below the pool (a kv::BlockStore) that the cache
// demotes evicted blocks to and promotes them back from. Blocks of a tier
// readable off the engine thread (the disk) are read by a kv::Promoter
// thread: their sequence is admitted "loading" and joins the batches when
// its reads end, while every other sequence keeps running.
// It knows nothing of threads or of the model: it runs batches through a
// ForwardFn, so tests drive it with a fake model.
//
// Invariants:
//  - KV is reserved as a sequence grows, not for its worst case: admission
//    reserves blocks_for(prompt + 1) (what its prefill and first decode
//    write), and a sequence reserves one more block each time its decode
//    crosses a block boundary. The sum of reservations of in-flight sequences
//    never exceeds the pool's capacity, so a block can always be found for a
//    reservation (by evicting cache-only blocks);
//  - when a growing sequence finds the pool fully reserved, the newest
//    in-flight sequence is preempted (possibly the growing one itself): its
//    computed KV goes into the prompt cache like a finished conversation's
//    (cache-only now, so evictable, and demoted to the lower tier when
//    evicted), its reservation is released and it returns to the front of
//    the queue. Readmitted, it reuses what is still cached and recomputes the
//    rest; per-token determinism makes the continuation bit-identical, and
//    its sampler state is kept, so the client sees a pause, never an error.
//    The oldest sequence always progresses: Validate clamps every request to
//    what the pool holds alone;
//  - a sequence's KV covers positions [0, blocks.n_tokens) of its tokens; the
//    last sampled token has no KV yet and is never inserted into the cache;
//  - requests sharing a prompt prefix with an in-flight one compute it once:
//    a queued request waits while a running sequence computes more full
//    blocks of its prefix than the cache holds, and those blocks go into the
//    cache as soon as they are computed (the sequence only ever writes past
//    them), so the waiting request hits them (DeferForSharedPrefix);
//  - a loading sequence is never in a batch, and never leaves active_ (end,
//    cancellation, preemption) before its reads are settled: the reader
//    thread writes only blocks of jobs not yet settled;
//  - after every sequence has ended, pool.used_blocks() == cache.cached_blocks().
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <unordered_set>
#include <vector>

#include "core/thread_pool.h"
#include "engine/engine.h"
#include "kv/block_pool.h"
#include "kv/promoter.h"
#include "kv/prompt_cache.h"
#include "model/model.h"

namespace reprise::engine {

// What the engine thread and a RequestHandle share: the event queue (engine
// thread produces, caller consumes) and the cancel flag (the other way).
struct RequestHandle::State {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Event> events;
  bool final_taken = false;
  std::atomic<bool> cancel{false};

  void Push(Event event);
};

// Runs one batch: writes K/V of every token into its sequence's blocks and the
// logits of want_logits tokens, in batch order, to logits [n_want, n_vocab].
using ForwardFn =
    std::function<Status(std::span<const model::BatchToken> batch,
                         std::span<kv::SeqBlocks* const> seqs, kv::BlockPool& pool, float* logits)>;

struct SchedulerConfig {
  // The backend whose memory holds the KV pool (the model's); null = host
  // memory (tests with a fake model).
  kernels::Backend* kv_device = nullptr;
  int max_parallel = 4;
  int max_cache_entries = 10;
  int32_t ctx_size = 0;
  int32_t prefill_chunk = 512;
  PrefillOrder prefill_order = PrefillOrder::kArrival;
  // Threads that sample a step's logits rows: 0 = automatic (with the KV on
  // a GPU, half the cores up to 8 and max_parallel; otherwise the engine
  // thread alone), n >= 1 = n.
  int sample_threads = 0;
  int32_t default_max_tokens = 0;
  int32_t n_vocab = 0;
  std::unordered_set<int32_t> eog_ids;  // end-of-generation tokens
  kv::BlockKey kv_layout;  // content-address seed of the cache's blocks (kv/block_key.h)
  // Blocks of a lower tier that can be read off the engine thread (the disk)
  // are read by a promoter thread while other sequences run; off: read
  // inside admission, stalling every sequence for the read.
  bool overlap_promotions = true;
};

struct SchedulerCounters {
  int64_t requests_total = 0;
  int64_t requests_failed = 0;
  int64_t prompt_tokens_total = 0;
  int64_t prompt_tokens_cached_total = 0;
  int64_t generated_tokens_total = 0;
  int64_t preemptions_total = 0;  // sequences sent back to the queue for memory
  // Requests that waited in the queue for an in-flight sequence to compute a
  // prompt prefix they share (DeferForSharedPrefix; each counted once).
  int64_t shared_prefix_waits_total = 0;
  // Forward steps by how many sequences they advanced: bucket i counts steps
  // of at most kBatchBuckets[i] sequences (the last: any number).
  static constexpr int kBatchBuckets[] = {1, 2, 4, 8, 16, 32, 64, 128};
  static constexpr int kNumBatchBuckets = 9;
  int64_t batch_steps[kNumBatchBuckets] = {};
  int64_t batch_sequences_sum = 0;
  int64_t batch_tokens_sum = 0;
};

class Scheduler {
 public:
  // `lower_tier` (optional) is the block store below the pool: the cache
  // demotes evicted blocks to it and promotes them back on a hit.
  static Result<std::unique_ptr<Scheduler>> Create(
      const SchedulerConfig& config, const kv::BlockPoolConfig& pool_config, ForwardFn forward,
      std::unique_ptr<kv::BlockStore> lower_tier = nullptr);
  ~Scheduler();  // ends every sequence (kShuttingDown) and releases its blocks

  // Checks a request against the model and the limits and resolves its
  // max_tokens (see Request). Thread-safe: reads only constant state.
  ErrorCode Validate(Request* request, Status* status) const;
  // Queues a validated request.
  void Enqueue(Request request, std::shared_ptr<RequestHandle::State> state);

  // Handles cancellations, admits what fits, runs one batch and streams its
  // tokens. Returns false when there was nothing to run.
  bool Step();

  // Ends every queued and in-flight request with an error.
  void FailAll(ErrorCode code, const Status& status);
  // Writes every cached block the lower tier lacks into it (at shutdown, so
  // the next start finds them). Returns blocks written.
  int64_t DemoteAllCached() { return cache_->DemoteAll(); }
  const kv::BlockStore* lower_tier() const { return lower_.get(); }
  kv::BlockStore* lower_tier_mut() { return lower_.get(); }

  // Called after a request's blocks went into the cache and were released,
  // right before its final event is sent: the engine publishes its stats
  // snapshot here, so a client that reads /metrics after its response sees
  // its own request counted.
  void SetBeforeFinalEventHook(std::function<void()> hook) { before_final_ = std::move(hook); }

  int32_t active() const { return static_cast<int32_t>(active_.size()); }
  int32_t waiting() const { return static_cast<int32_t>(waiting_.size()); }
  int32_t reserved_blocks() const { return reserved_blocks_; }
  const SchedulerConfig& config() const { return config_; }
  const SchedulerCounters& counters() const { return counters_; }
  kv::BlockPool& pool() { return *pool_; }
  const kv::BlockPool& pool() const { return *pool_; }
  kv::PromptCache& cache() { return *cache_; }
  const kv::PromptCache& cache() const { return *cache_; }

 private:
  struct Sequence;
  Scheduler() = default;
  int32_t BlocksFor(int64_t positions) const;
  // Admits queued sequences in order while slots and memory last, passing
  // over those DeferForSharedPrefix holds back.
  void Admit();
  // Whether queued `s` should wait: an in-flight sequence of its namespace
  // (the leader) shares more full blocks of its prompt than the cache holds
  // and has not computed them yet, so admitting s now would compute them a
  // second time (32 agents starting at once on one system prompt). Once the
  // leader has computed them they are inserted into the cache (the leader
  // never writes them again) and s is admitted to hit them. A leader that
  // ends, is preempted or waits for reads releases s to choose again.
  bool DeferForSharedPrefix(Sequence& s);
  // Gives an admitted sequence its cached prefix (counted on its first
  // admission only).
  void UseHit(Sequence& s, kv::CacheHit hit);
  // A loading sequence's reads ended: settles its hit and lets it run.
  void EndLoading(Sequence& s, const kv::PromotionJob& job);
  // Settles the loading sequences whose reads ended.
  void PollPromotions();
  // kShortest: shares this step's prefill tokens among the prefilling
  // sequences (Sequence::prefill_grant) in PrefillOrder's order.
  void GrantPrefill();
  // Reserves blocks until `s` holds `blocks` of them, preempting the newest
  // in-flight sequences when the pool is fully reserved. False when `s`
  // itself was preempted.
  bool Reserve(Sequence& s, int32_t blocks);
  // Inserts the sequence's computed tokens into the cache, drops its block
  // references and releases its reservation (at its end or a preemption).
  void ReleaseKv(Sequence& seq);
  // Sends an in-flight sequence back to the front of the queue (see the
  // invariants); it is moved out of active_ by the next Reap.
  void Preempt(Sequence& seq);
  // Ends a sequence: inserts its computed tokens into the cache, releases
  // its blocks and reservation, sends the final event.
  void Finish(Sequence& seq, FinishReason reason, ErrorCode code, const Status& error);
  // Drops ended sequences from active_ and waiting_, and moves preempted
  // ones from active_ to the front of waiting_ (oldest first).
  void Reap();

  SchedulerConfig config_;
  ForwardFn forward_;
  std::unique_ptr<kv::BlockPool> pool_;
  std::unique_ptr<kv::BlockStore> lower_;  // outlives cache_
  std::unique_ptr<kv::PromptCache> cache_;
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::vector<std::unique_ptr<Sequence>> active_;  // admission order
  int32_t reserved_blocks_ = 0;
  SchedulerCounters counters_;
  std::function<void()> before_final_;
  int64_t next_id_ = 1;
  // Per-step scratch (reused: no per-token allocation once grown).
  std::vector<model::BatchToken> batch_;
  std::vector<kv::SeqBlocks*> batch_seqs_;
  std::vector<Sequence*> logit_owners_;  // the sequence of each logits row
  std::vector<Sequence*> prefill_order_;  // GrantPrefill's scratch
  // The forward's logits [max_parallel, n_vocab], in the KV device's host
  // memory (CUDA: pinned; 16 MB a step at 32 streams of a 128k vocabulary).
  std::unique_ptr<kernels::HostFloats> logits_;
  // With the model on a GPU the CPU is idle while a step runs, and sampling
  // a row of a 128k vocabulary takes 0.02 ms (greedy) to 1 ms (temperature
  // and top-p): the rows of a step are sampled in parallel on this pool
  // (null on the CPU backend, whose cores run the forward). Each row's
  // sampler and constraint belong to one sequence, so no two threads share
  // them; the results are the same as sampling the rows one by one.
  std::unique_ptr<ThreadPool> sample_pool_;
  std::vector<SampleResult> sample_results_;  // a step's, by logits row
  // Reads promotions off the engine thread (with a lower tier and
  // config.overlap_promotions); declared last: destroyed first, after every
  // sequence has waited for its reads.
  std::unique_ptr<kv::Promoter> promoter_;
};

}  // namespace reprise::engine
