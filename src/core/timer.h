// Monotonic clock helpers.
#pragma once

#include <chrono>
#include <cstdint>

namespace reprise {

inline int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class Stopwatch {
 public:
  Stopwatch() : start_(NowMicros()) {}
  void Reset() { start_ = NowMicros(); }
  double ElapsedMs() const { return (NowMicros() - start_) / 1000.0; }

 private:
  int64_t start_;
};

}  // namespace reprise
