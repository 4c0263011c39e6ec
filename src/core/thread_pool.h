// A persistent pool of worker threads for the compute kernels. The calling
// thread takes part as thread 0, so a pool of N runs work on N threads with
// N-1 workers. Workers spin briefly after each job (a decode step issues
// hundreds of jobs back to back) and then sleep on a futex, so an idle server
// uses no CPU. Not re-entrant: one caller at a time (the engine thread).
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

  // Runs fn(thread_index) once on each of the size() threads and waits for all.
  void Run(FunctionRef<void(int thread)> fn);

  // Hands out [0, n) in chunks of `grain` (dynamically, so uneven work
  // balances) and calls fn(begin, end, thread) for each chunk; waits for all.
  void ParallelFor(int64_t n, int64_t grain,
                   FunctionRef<void(int64_t begin, int64_t end, int thread)> fn);

 private:
  void WorkerLoop(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  const FunctionRef<void(int)>* job_ = nullptr;
  std::atomic<uint32_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> busy_{false};
};

}  // namespace reprise
