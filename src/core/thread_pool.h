// A persistent pool of worker threads for the compute kernels. The calling
// thread takes part as thread 0, so a pool of N runs work on up to N threads
// with N-1 workers.
//
// ParallelFor splits [0, n) into one contiguous part per thread. Each thread
// takes chunks from its own part first (so row t of consecutive jobs of the
// same n lands on the same core, and data one op writes is read from that
// core's cache by the next), then steals chunks from the other parts. The
// caller never waits for a worker that has not started: a worker that wakes
// late finds no chunks left and goes back to sleep. So when the machine is
// oversubscribed (other processes, HTTP threads), a job costs what the caller
// can do alone instead of a scheduler time slice per dispatch. Workers spin briefly after each job
// (a decode step issues hundreds of jobs back to back), yield, then sleep on
// a futex, so an idle server uses no CPU.
// Not re-entrant: one caller at a time (the engine thread).
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "core/function_ref.h"

namespace reprise {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(begin, end, thread) for chunks of at most `grain` covering
  // [0, n), on the caller and whichever workers join in; returns when all are
  // done. Thread i starts on part i of size() contiguous parts.
  // `thread` is in [0, size()) and never used by two chunks at once, so it
  // can index per-thread scratch.
  void ParallelFor(int64_t n, int64_t grain,
                   FunctionRef<void(int64_t begin, int64_t end, int thread)> fn);

 private:
  void WorkerLoop(int index);
  void Work(int thread);

  int n_threads_;
  std::vector<std::thread> workers_;
  // The current job (valid while open_ is true).
  const FunctionRef<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_grain_ = 1;
  // Per part: its end, and the next index to hand out (own cache line each).
  struct alignas(64) Part {
    std::atomic<int64_t> next{0};
    int64_t end = 0;
  };
  std::vector<Part> parts_;
  std::atomic<bool> open_{false};
  std::atomic<int> active_{0};  // workers inside the current job
  std::atomic<uint32_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> busy_{false};
};

}  // namespace reprise
