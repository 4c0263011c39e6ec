// Prometheus metrics: the engine's counters and gauges (read from an
// EngineStats snapshot at scrape time) plus what only the HTTP layer sees
// (latency histograms fed by finished requests, responses by status code).
// Thread-safe: any HTTP thread may observe or render.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace reprise::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);  // ascending; +Inf is implicit
  void Observe(double value);
  // Appends # HELP, # TYPE, cumulative name_bucket{le="..."}, name_sum, name_count.
  void AppendTo(std::string* out, const char* name, const char* help) const;

 private:
  mutable std::mutex mu_;
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // [bounds_.size() + 1], per bucket (not cumulative)
  double sum_ = 0.0;
  uint64_t count_ = 0;
};

class ServerMetrics {
 public:
  ServerMetrics();
  // A request that produced output (its usage at kDone).
  void ObserveFinished(const engine::Usage& usage);
  void CountResponse(int http_status);
  // A generation whose final engine event the HTTP layer has received. Once
  // the engine's requests_total has caught up with this count, its stats
  // snapshot includes every answered request (a barrier for tests).
  void CountGenerationFinished() { ++generations_finished_; }
  // The whole exposition text.
  std::string Render(const engine::EngineStats& stats, bool healthy) const;

 private:
  Histogram ttft_seconds_;
  Histogram tpot_seconds_;
  mutable std::mutex mu_;
  std::map<int, int64_t> responses_;  // by HTTP status
  std::atomic<int64_t> generations_finished_{0};
};

}  // namespace reprise::server
