// Internal to the CUDA backend: REPRISE_CUDA_PROFILE=1 times every op on the
// GPU (a pair of CUDA events around its launches) and prints, when the
// backend is destroyed, the GPU time per op kind: which kernel a benchmark
// should work on next. Off by default (no events are recorded); never on
// while decode steps replay as CUDA graphs (their ops launch nothing).
//
// Invariants: events are only read after the stream they were recorded on
// has been synchronized (Collect runs from Backend::Synchronize); a name is a
// string literal or a string the profiler keeps.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace reprise::kernels::cuda {

class OpProfiler {
 public:
  explicit OpProfiler(bool on) : on_(on) {}
  OpProfiler(const OpProfiler&) = delete;
  OpProfiler& operator=(const OpProfiler&) = delete;
  ~OpProfiler() {
    for (const Pending& p : pending_) Recycle(p);
    for (cudaEvent_t e : spare_) cudaEventDestroy(e);
  }

  bool on() const { return on_; }

  // Times the launches between Begin and End on `s` under `name`.
  int Begin(const std::string& name, cudaStream_t s) {
    if (!on_) return -1;
    Pending p{name, Event(), Event()};
    cudaEventRecord(p.start, s);
    pending_.push_back(p);
    return static_cast<int>(pending_.size()) - 1;
  }
  void End(int token, cudaStream_t s) {
    if (token < 0) return;
    cudaEventRecord(pending_[static_cast<size_t>(token)].stop, s);
  }

  // After the stream synchronized: adds the pending ops' times.
  void Collect() {
    for (const Pending& p : pending_) {
      float ms = 0.0f;
      if (cudaEventElapsedTime(&ms, p.start, p.stop) == cudaSuccess) {
        Totals& t = totals_[p.name];
        t.ms += ms;
        ++t.calls;
      }
      Recycle(p);
    }
    pending_.clear();
  }

  // The table, most expensive first, to stderr.
  void Report() const {
    if (!on_ || totals_.empty()) return;
    double all = 0;
    for (const auto& [name, t] : totals_) all += t.ms;
    std::vector<std::pair<std::string, Totals>> rows(totals_.begin(), totals_.end());
    std::sort(rows.begin(), rows.end(),
              [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
    std::fprintf(stderr, "[cuda profile] GPU time by op (%.1f ms in all)\n", all);
    for (const auto& [name, t] : rows) {
      std::fprintf(stderr, "[cuda profile] %-34s %8lld calls %10.2f ms %5.1f%%\n", name.c_str(),
                   static_cast<long long>(t.calls), t.ms, all > 0 ? 100.0 * t.ms / all : 0.0);
    }
  }

 private:
  struct Pending {
    std::string name;
    cudaEvent_t start, stop;
  };
  struct Totals {
    double ms = 0;
    int64_t calls = 0;
  };
  cudaEvent_t Event() {
    if (!spare_.empty()) {
      cudaEvent_t e = spare_.back();
      spare_.pop_back();
      return e;
    }
    cudaEvent_t e = nullptr;
    cudaEventCreate(&e);
    return e;
  }
  void Recycle(const Pending& p) {
    spare_.push_back(p.start);
    spare_.push_back(p.stop);
  }

  bool on_;
  std::vector<Pending> pending_;
  std::vector<cudaEvent_t> spare_;
  std::map<std::string, Totals> totals_;
};

// Begin/End around one scope. The name is only made into a string when the
// profiler is on: ops run this on every call.
class OpScope {
 public:
  OpScope(OpProfiler* p, const char* name, cudaStream_t s)
      : p_(p), s_(s), token_(p->on() ? p->Begin(name, s) : -1) {}
  ~OpScope() { p_->End(token_, s_); }
  OpScope(const OpScope&) = delete;
  OpScope& operator=(const OpScope&) = delete;

 private:
  OpProfiler* p_;
  cudaStream_t s_;
  int token_;
};

}  // namespace reprise::kernels::cuda
