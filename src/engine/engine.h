// The engine: one scheduler thread that owns the model's KV block pool and the
// prompt cache, and runs every request (continuous batching). Callers (the
// HTTP layer, tools) Submit token-level requests from any thread and read a
// stream of Events from the returned handle. The engine never sees JSON or
// text: prompts are token ids, stop strings are the caller's business (on a
// stop string, call Cancel(): what was computed still goes into the cache).
//
// Memory: the pool's capacity is config.cache_bytes and holds both cached
// entries and in-flight sequences, so KV memory never exceeds it. KV is
// reserved as sequences grow; when they outgrow the pool the newest is
// preempted (its KV kept in the cache) and resumes later, bit-identical
// (engine/scheduler.h). Only a prompt that could never fit is refused at
// Submit; an output budget past the context or the pool is clamped. With a disk
// tier (config.disk_dir) cached blocks evicted from the pool are demoted to
// files there (own byte bound, config.disk_bytes) and promoted back by a later
// hit; at shutdown the RAM cache is written out, so a restart finds it.
//
// Threading: every public method is thread-safe. Events of one request arrive
// in order; the last one is kDone or kError.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "engine/constraint.h"
#include "engine/sampler.h"
#include "kv/block_key.h"
#include "kv/block_store.h"
#include "kv/prompt_cache.h"

namespace reprise::model {
class Model;
}
namespace reprise::tokenizer {
class Tokenizer;
}

namespace reprise::engine {

// Which prefilling sequences a step's prefill_chunk tokens go to first:
// kArrival, the oldest admitted; kShortest, the one with the fewest prompt
// tokens left (a 200-token follow-up no longer waits behind a 2,000-token
// one), except that a sequence that got no prompt tokens in kPrefillAging
// steps in a row goes before every other (oldest first), so none starves.
// Either way a sequence's tokens and logits are the same (the determinism
// contract); only when they come changes.
enum class PrefillOrder { kArrival, kShortest };
constexpr int kPrefillAging = 16;

struct EngineConfig {
  int max_parallel = 4;        // --parallel: sequences decoded together
  int64_t cache_bytes = 0;     // --prompt-cache-bytes: all KV (cached + in flight)
  int max_cache_entries = 10;  // --prompt-cache-size: cached conversations; 0 disables
  int32_t ctx_size = 0;        // --ctx-size: per sequence; 0 = the model's training context
  int block_tokens = 32;       // positions per KV block
  DType kv_type = DType::kF16;
  int32_t prefill_chunk = 512;     // most prompt tokens run in one step
  PrefillOrder prefill_order = PrefillOrder::kArrival;  // --prefill-order
  int32_t default_max_tokens = 0;  // --max-tokens: when a request sets none; 0 = to the context end
  int max_queued = 1024;           // Submit fails with kOverloaded past this many waiting
  int64_t stall_timeout_ms = 120000;  // Healthy() is false when a step takes longer
  // The disk tier (--prompt-cache-dir, --prompt-cache-disk-bytes): evicted
  // cached blocks are demoted to files there and read back on a later hit;
  // empty dir = off. A dir that cannot be used is logged and the engine runs
  // without the tier.
  std::string disk_dir;
  int64_t disk_bytes = 0;
  bool disk_fsync = true;
  // The host-RAM tier (--prompt-cache-host-bytes) between the pool and the
  // disk tier: blocks evicted from the (GPU) pool are demoted to host memory
  // (pinned on CUDA) and promoted back by a copy; what it evicts sinks to
  // the disk tier. 0 = off.
  int64_t host_bytes = 0;
  // Identity of the model's weights and metadata (e.g. a hash of the GGUF's
  // tensor layout and metadata): part of every block's content address, so a
  // dir written by another model is never used.
  kv::BlockKey model_identity;
};

// Why a request failed; the HTTP layer maps these to status codes.
enum class ErrorCode {
  kOk = 0,
  kInvalidRequest,         // empty prompt, bad token id, bad sampling parameter (400)
  kContextLengthExceeded,  // prompt + max_tokens > ctx_size (400 context_length_exceeded)
  kExceedsKvBudget,  // could never fit in --prompt-cache-bytes, even with the cache empty (400)
  kOverloaded,       // queue full (503 / 429)
  kShuttingDown,     // the engine is stopping (503)
  kInternal,         // the model failed; the engine keeps serving others (500)
};
const char* ErrorCodeName(ErrorCode code);  // "context_length_exceeded", ...

enum class FinishReason { kNone, kStop, kLength, kCancelled };
const char* FinishReasonName(FinishReason reason);  // "stop", "length", "cancelled"

struct Request {
  std::vector<int32_t> prompt;  // token ids, non-empty
  // Most tokens to generate; <= 0 = config.default_max_tokens, or up to the
  // context end (and what fits in the KV budget) when that is 0 as well. An
  // explicit value that does not fit the context is an error.
  int32_t max_tokens = 0;
  SamplingParams sampling;  // sampling.n_top_logprobs selects log-probabilities
  bool ignore_eos = false;  // keep going past end-of-generation tokens
  // The prompt-cache namespace (tenant): cached KV is reused only between
  // requests of the same namespace. The server derives it from the API key and
  // the request's cache_salt; "" is the default namespace.
  std::string cache_namespace;
  // Optional: which tokens may come next (engine/constraint.h). The sequence
  // ends (kStop) as soon as it is Done; a token it cannot place fails the
  // request (kInvalidRequest). Used only on the scheduler thread once
  // submitted; kept across a preemption.
  std::shared_ptr<Constraint> constraint;
};

// Totals of one finished request (also given for kCancelled).
struct Usage {
  int32_t prompt_tokens = 0;
  int32_t cached_tokens = 0;      // prompt tokens whose KV came from the cache
  int32_t cached_tokens_lower_tier = 0;  // of those, read back from a tier below the pool
  int32_t cached_tokens_host = 0;        // of those, from the host-RAM tier
  int32_t cached_tokens_disk = 0;        // of those, from the disk tier
  int32_t completion_tokens = 0;  // tokens streamed as kToken events
  double queue_ms = 0;            // Submit -> admitted
  double ttft_ms = 0;             // Submit -> first token
  double decode_ms = 0;           // first token -> last token
  double TimePerOutputTokenMs() const {
    return completion_tokens > 1 ? decode_ms / (completion_tokens - 1) : 0.0;
  }
};

struct Event {
  enum class Kind { kToken, kDone, kError };
  Kind kind = Kind::kToken;
  // kToken:
  int32_t token = -1;
  float logprob = 0.0f;                                 // when sampling.n_top_logprobs >= 0
  std::vector<std::pair<int32_t, float>> top_logprobs;  // n_top_logprobs > 0
  // kDone (and kError, with what was done before the failure):
  FinishReason finish = FinishReason::kNone;
  Usage usage;
  // kError:
  ErrorCode code = ErrorCode::kOk;
  Status error;
};

class RequestHandle {
 public:
  ~RequestHandle();
  // Blocks for the next event; false once the final (kDone/kError) event has
  // been returned.
  bool Next(Event* event);
  // As Next, giving up after `timeout` (returns false; then check finished()).
  bool NextFor(Event* event, std::chrono::milliseconds timeout);
  // Stops generation (idempotent, any thread). The engine releases the
  // sequence's blocks at its next step, inserts what it computed into the
  // cache, and ends the stream with kDone / FinishReason::kCancelled.
  void Cancel();
  bool cancelled() const;
  // True once the final event has been returned by Next.
  bool finished() const;

  struct State;  // shared with the engine thread

 private:
  friend class Engine;
  explicit RequestHandle(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

struct SubmitResult {
  std::shared_ptr<RequestHandle> handle;  // null on error
  ErrorCode code = ErrorCode::kOk;
  Status status;
  bool ok() const { return handle != nullptr; }
};

struct EngineStats {
  // Requests
  int64_t requests_total = 0;  // admitted and finished or failed
  int64_t requests_failed = 0;
  int64_t prompt_tokens_total = 0;
  int64_t prompt_tokens_cached_total = 0;
  int64_t generated_tokens_total = 0;
  int64_t preemptions_total = 0;
  int64_t shared_prefix_waits_total = 0;  // SchedulerCounters' count
  // Forward steps by sequences advanced (engine/scheduler.h's buckets).
  std::vector<int64_t> batch_steps;  // per bucket, not cumulative
  std::vector<int> batch_bucket_bounds;  // upper bound of each bucket but the last
  int64_t batch_sequences_sum = 0, batch_tokens_sum = 0;
  // The compute device's memory (GPU only; 0 on the CPU).
  int64_t device_memory_held = 0;  // weights, scratch and the KV pool
  int64_t device_memory_free = 0;
  int32_t active = 0;  // sequences being prefilled or decoded
  int32_t queued = 0;  // waiting for admission
  // KV memory (exact: allocated blocks)
  int64_t kv_bytes_in_use = 0;  // cached + in flight
  int64_t kv_bytes_limit = 0;   // pool capacity (<= cache_bytes)
  int64_t kv_bytes_per_token = 0;
  int32_t kv_used_blocks = 0;
  int32_t kv_capacity_blocks = 0;
  int32_t block_tokens = 0;
  int32_t ctx_size = 0;
  // The prompt cache (entries, bytes, hits, misses, evictions, ...)
  kv::PromptCacheStats cache;
  // The pool's own tier name: "device" when the KV lives in GPU memory,
  // else "ram".
  std::string pool_tier = "ram";
  // The tiers below the pool, fastest first ("host", "disk"); empty when
  // there is none.
  struct Tier {
    std::string name;
    std::string dir;  // the disk tier's directory
    kv::BlockStoreStats stats;
    int64_t hit_tokens = 0;   // prompt tokens served from this tier
    int64_t promotions = 0;   // blocks read back from it into the pool
  };
  std::vector<Tier> lower_tiers;
  std::string lower_name;  // the lower store as a whole: "disk", "host", "host+disk"
  kv::BlockStoreStats lower;  // summed over lower_tiers
};

class Engine {
 public:
  // Starts the scheduler thread. `model` and `tok` must outlive the engine.
  // Errors: a budget smaller than one block, bad config values.
  static Result<std::unique_ptr<Engine>> Create(model::Model& model,
                                                const tokenizer::Tokenizer& tok,
                                                const EngineConfig& config);
  ~Engine();  // stops the thread; pending requests end with kShuttingDown
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Validates and queues a request (see ErrorCode for what is refused).
  SubmitResult Submit(Request request);

  // Thread-safe snapshots, refreshed by the scheduler after every step.
  EngineStats Stats() const;
  std::vector<kv::CacheEntryInfo> CacheEntries() const;
  // The scheduler thread is alive and has made progress recently (it ticks
  // while idle, and after every step).
  bool Healthy() const;
  const EngineConfig& config() const;  // with ctx_size resolved

  struct Impl;

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace reprise::engine
