// Prometheus text exposition (see metrics.h).
#include "server/metrics.h"

#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace reprise::server {
namespace {

void Metric(std::string* out, const char* name, const char* type, const char* help, double value) {
  *out += StrFormat("# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, value);
}

std::string FormatBound(double b) { return StrFormat("%g", b); }

// One metric with a sample per KV tier: {tier="ram"} and, when there is one,
// the lower tier's.
void TierMetric(std::string* out, const char* name, const char* type, const char* help,
                const std::vector<std::pair<std::string, double>>& samples) {
  *out += StrFormat("# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
  for (const auto& [tier, value] : samples)
    *out += StrFormat("%s{tier=\"%s\"} %.17g\n", name, tier.c_str(), value);
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += value;
  ++count_;
}

void Histogram::AppendTo(std::string* out, const char* name, const char* help) const {
  std::lock_guard<std::mutex> lock(mu_);
  *out += StrFormat("# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    *out += StrFormat("%s_bucket{le=\"%s\"} %llu\n", name, FormatBound(bounds_[i]).c_str(),
                      static_cast<unsigned long long>(cumulative));
  }
  *out += StrFormat("%s_bucket{le=\"+Inf\"} %llu\n", name, static_cast<unsigned long long>(count_));
  *out += StrFormat("%s_sum %.17g\n%s_count %llu\n", name, sum_, name,
                    static_cast<unsigned long long>(count_));
}

ServerMetrics::ServerMetrics()
    : ttft_seconds_({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}),
      tpot_seconds_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}) {}

void ServerMetrics::ObserveFinished(const engine::Usage& usage) {
  if (usage.completion_tokens > 0) ttft_seconds_.Observe(usage.ttft_ms / 1000.0);
  if (usage.completion_tokens > 1) tpot_seconds_.Observe(usage.TimePerOutputTokenMs() / 1000.0);
}

void ServerMetrics::CountResponse(int http_status) {
  std::lock_guard<std::mutex> lock(mu_);
  ++responses_[http_status];
}

std::string ServerMetrics::Render(const engine::EngineStats& s, bool healthy) const {
  std::string out;
  out.reserve(8192);
  const kv::PromptCacheStats& c = s.cache;
  Metric(&out, "reprise_requests_total", "counter",
         "Generation requests finished (or failed) by the engine.", s.requests_total);
  Metric(&out, "reprise_requests_failed_total", "counter",
         "Generation requests that failed in the engine.", s.requests_failed);
  Metric(&out, "reprise_prompt_tokens_total", "counter", "Prompt tokens of all requests.",
         s.prompt_tokens_total);
  Metric(&out, "reprise_prompt_tokens_cached_total", "counter",
         "Prompt tokens whose KV came from the prompt cache.", s.prompt_tokens_cached_total);
  Metric(&out, "reprise_generated_tokens_total", "counter", "Tokens generated.",
         s.generated_tokens_total);
  Metric(&out, "reprise_preemptions_total", "counter",
         "Sequences sent back to the queue because the KV budget ran short mid-generation "
         "(their KV is kept in the prompt cache and they resume where they were).",
         s.preemptions_total);
  Metric(&out, "reprise_shared_prefix_waits_total", "counter",
         "Requests that waited in the queue while an in-flight request computed the prompt "
         "prefix they share, then reused it from the prompt cache instead of computing it again.",
         s.shared_prefix_waits_total);
  Metric(&out, "reprise_http_generations_finished_total", "counter",
         "Generations whose final engine event the HTTP layer has received.",
         static_cast<double>(generations_finished_.load()));
  Metric(&out, "reprise_requests_active", "gauge", "Sequences being prefilled or decoded.",
         s.active);
  Metric(&out, "reprise_requests_queued", "gauge", "Requests waiting for admission.", s.queued);
  Metric(&out, "reprise_prompt_cache_entries", "gauge", "Cached conversations (leaf entries).",
         c.entries);
  Metric(&out, "reprise_prompt_cache_bytes", "gauge", "KV bytes held by the prompt cache.",
         c.cached_bytes);
  Metric(&out, "reprise_prompt_cache_bytes_limit", "gauge",
         "KV byte budget shared by cached entries and in-flight requests.", s.kv_bytes_limit);
  Metric(&out, "reprise_prompt_cache_blocks", "gauge", "KV blocks held by the prompt cache.",
         c.cached_blocks);
  Metric(&out, "reprise_prompt_cache_tokens", "gauge", "Distinct token positions cached.",
         c.cached_tokens);
  Metric(&out, "reprise_prompt_cache_hits_total", "counter",
         "Lookups that reused at least one token.", c.hits);
  Metric(&out, "reprise_prompt_cache_misses_total", "counter", "Lookups that reused nothing.",
         c.misses);
  Metric(&out, "reprise_prompt_cache_evictions_total", "counter", "Cached entries evicted.",
         c.evictions);
  Metric(&out, "reprise_kv_bytes_in_use", "gauge", "KV bytes allocated (cache + in flight).",
         s.kv_bytes_in_use);
  Metric(&out, "reprise_kv_blocks_in_use", "gauge", "KV blocks allocated (cache + in flight).",
         s.kv_used_blocks);
  Metric(&out, "reprise_kv_blocks_capacity", "gauge", "KV blocks the budget allows.",
         s.kv_capacity_blocks);
  Metric(&out, "reprise_kv_bytes_per_token", "gauge", "KV bytes one token position takes.",
         s.kv_bytes_per_token);
  // KV tiers: the pool's cached part ("ram", or "device" when the KV lives
  // in GPU memory), then the tiers below it ("host", "disk").
  {
    using Series = std::vector<std::pair<std::string, double>>;
    auto tiers = [&](double pool, auto lower_value) {
      Series v = {{s.pool_tier, pool}};
      for (const auto& t : s.lower_tiers) v.emplace_back(t.name, lower_value(t));
      return v;
    };
    auto lower_only = [&](auto lower_value) {
      Series v;
      for (const auto& t : s.lower_tiers) v.emplace_back(t.name, lower_value(t));
      return v;
    };
    using Tier = engine::EngineStats::Tier;
    TierMetric(&out, "reprise_kv_tier_bytes", "gauge", "KV bytes held by each cache tier.",
               tiers(static_cast<double>(c.cached_bytes),
                     [](const Tier& t) { return static_cast<double>(t.stats.bytes); }));
    TierMetric(&out, "reprise_kv_tier_bytes_limit", "gauge", "Byte bound of each cache tier.",
               tiers(static_cast<double>(s.kv_bytes_limit),
                     [](const Tier& t) { return static_cast<double>(t.stats.bytes_limit); }));
    TierMetric(&out, "reprise_kv_tier_blocks", "gauge", "KV blocks held by each cache tier.",
               tiers(static_cast<double>(c.cached_blocks),
                     [](const Tier& t) { return static_cast<double>(t.stats.blocks); }));
    TierMetric(&out, "reprise_kv_tier_hits_total", "counter",
               "Prompt tokens whose KV was served from each tier.",
               tiers(static_cast<double>(c.hit_tokens - c.lower_hit_tokens),
                     [](const Tier& t) { return static_cast<double>(t.hit_tokens); }));
    if (!s.lower_tiers.empty()) {
      TierMetric(&out, "reprise_kv_tier_promotions_total", "counter",
                 "KV blocks read back from a tier into the pool.",
                 lower_only([](const Tier& t) { return static_cast<double>(t.promotions); }));
      TierMetric(&out, "reprise_kv_tier_demotions_total", "counter",
                 "KV blocks written to a tier: evicted from the pool, or sunk from the tier "
                 "above (blocks it already held are not rewritten).",
                 lower_only([](const Tier& t) { return static_cast<double>(t.stats.puts); }));
      TierMetric(&out, "reprise_kv_tier_evictions_total", "counter",
                 "KV blocks a tier dropped (after demoting them to the tier below, if any) to "
                 "stay inside its bound.",
                 lower_only([](const Tier& t) { return static_cast<double>(t.stats.evictions); }));
      TierMetric(&out, "reprise_kv_tier_enabled", "gauge",
                 "1 while a tier works; 0 after a storage failure turned it off.",
                 lower_only([](const Tier& t) { return t.stats.enabled ? 1.0 : 0.0; }));
      for (const auto& t : s.lower_tiers) {
        if (t.name != "disk") continue;
        const kv::BlockStoreStats& d = t.stats;
        Metric(&out, "reprise_kv_disk_bytes_written_total", "counter",
               "Bytes written to the disk tier (files, headers included).",
               static_cast<double>(d.bytes_written));
        Metric(&out, "reprise_kv_disk_bytes_read_total", "counter",
               "Bytes read back from the disk tier.", static_cast<double>(d.bytes_read));
        Metric(&out, "reprise_kv_disk_corrupt_files_discarded_total", "counter",
               "Disk tier files that were torn, truncated or failed their checksum: discarded, "
               "never loaded.",
               static_cast<double>(d.corrupt_discarded));
      }
    }
  }
  {
    // Sequences advanced per forward step (continuous batching at work).
    const char* name = "reprise_batch_sequences";
    out += StrFormat("# HELP %s Forward steps by the number of sequences they advanced.\n"
                     "# TYPE %s histogram\n", name, name);
    int64_t cumulative = 0, steps = 0;
    for (int64_t n : s.batch_steps) steps += n;
    for (size_t i = 0; i + 1 < s.batch_steps.size() && i < s.batch_bucket_bounds.size(); ++i) {
      cumulative += s.batch_steps[i];
      out += StrFormat("%s_bucket{le=\"%d\"} %lld\n", name,
                       s.batch_bucket_bounds[i],
                       static_cast<long long>(cumulative));
    }
    out += StrFormat("%s_bucket{le=\"+Inf\"} %lld\n%s_sum %lld\n%s_count %lld\n", name,
                     static_cast<long long>(steps), name,
                     static_cast<long long>(s.batch_sequences_sum), name,
                     static_cast<long long>(steps));
    Metric(&out, "reprise_batch_tokens_total", "counter",
           "Tokens run through forward steps (prefill chunks and decode tokens).",
           static_cast<double>(s.batch_tokens_sum));
  }
  if (s.device_memory_held > 0) {
    Metric(&out, "reprise_gpu_memory_used_bytes", "gauge",
           "GPU memory this server holds: weights, scratch and the KV pool.",
           static_cast<double>(s.device_memory_held));
    Metric(&out, "reprise_gpu_memory_free_bytes", "gauge", "GPU memory free now.",
           static_cast<double>(s.device_memory_free));
  }
  Metric(&out, "reprise_engine_healthy", "gauge",
         "1 when the engine thread is alive and progressing.", healthy ? 1 : 0);
  ttft_seconds_.AppendTo(&out, "reprise_time_to_first_token_seconds",
                         "Time from request submission to the first generated token.");
  tpot_seconds_.AppendTo(&out, "reprise_time_per_output_token_seconds",
                         "Mean time between generated tokens of a request.");
  std::lock_guard<std::mutex> lock(mu_);
  out +=
      "# HELP reprise_http_responses_total HTTP responses by status code.\n"
      "# TYPE reprise_http_responses_total counter\n";
  for (const auto& [code, n] : responses_) {
    out += StrFormat("reprise_http_responses_total{code=\"%d\"} %lld\n", code,
                     static_cast<long long>(n));
  }
  return out;
}

}  // namespace reprise::server
