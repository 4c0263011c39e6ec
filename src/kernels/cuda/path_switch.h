// A kernel path's switch (host side, no CUDA types): the environment
// variable that turns the path on or off, read once, and a test's in-process
// override. Every fast path of the CUDA backend that tests compare with the
// path it replaces is one of these (cuda_kernels.h lists them).
// Invariants: the environment is read at the first On() and never again; an
// override of -1 means "as the environment says", 0 off, 1 on, and takes
// effect at the next On(); both are atomics, so tests may switch a path
// while nothing else runs on the GPU.
#pragma once

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace reprise::kernels::cuda {

// Default on: off only when `name` is "0" (a validated path: =0 measures
// what it gives). Default off: on only when `name` is "1" (a path not yet
// validated on a GPU, or measured slower).
enum class PathDefault { kOn, kOff };

inline bool PathEnvOn(const char* name, PathDefault d) {
  const char* v = std::getenv(name);
  if (d == PathDefault::kOn) return v == nullptr || std::strcmp(v, "0") != 0;
  return v != nullptr && std::strcmp(v, "1") == 0;
}

class PathSwitch {
 public:
  constexpr PathSwitch(const char* env_name, PathDefault d) : name_(env_name), default_(d) {}
  PathSwitch(const PathSwitch&) = delete;
  PathSwitch& operator=(const PathSwitch&) = delete;

  bool On() const {
    const int o = override_.load(std::memory_order_relaxed);
    if (o >= 0) return o != 0;
    int e = env_.load(std::memory_order_relaxed);
    if (e < 0) {
      e = PathEnvOn(name_, default_) ? 1 : 0;
      env_.store(e, std::memory_order_relaxed);
    }
    return e != 0;
  }
  // -1: as the environment says; 0: off; 1: on.
  void SetForTest(int on) { override_.store(on < 0 ? -1 : on != 0, std::memory_order_relaxed); }
  const char* name() const { return name_; }

 private:
  const char* name_;
  PathDefault default_;
  mutable std::atomic<int> env_{-1};  // -1: not read yet
  std::atomic<int> override_{-1};
};

}  // namespace reprise::kernels::cuda
