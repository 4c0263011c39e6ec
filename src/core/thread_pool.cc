#include "core/thread_pool.h"

#include <immintrin.h>
#include <sched.h>

#include <algorithm>

#include "core/check.h"

namespace reprise {
namespace {
constexpr int kSpinIterations = 4000;  // pause loops before yielding
constexpr int kYieldIterations = 64;   // sched_yield rounds before sleeping
}  // namespace

ThreadPool::ThreadPool(int n_threads)
    : n_threads_(std::max(1, n_threads)), parts_(static_cast<size_t>(n_threads_)) {
  workers_.reserve(n_threads_ - 1);
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_seq_cst);
  generation_.fetch_add(1, std::memory_order_seq_cst);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::Work(int thread) {
  for (int k = 0; k < n_threads_; ++k) {
    Part& part = parts_[(thread + k) % n_threads_];
    for (;;) {
      const int64_t begin = part.next.fetch_add(job_grain_, std::memory_order_relaxed);
      if (begin >= part.end) break;
      (*job_)(begin, std::min(part.end, begin + job_grain_), thread);
    }
  }
}

void ThreadPool::WorkerLoop(int index) {
  uint32_t seen = 0;
  for (;;) {
    uint32_t g = generation_.load(std::memory_order_acquire);
    for (int spin = 0; g == seen && spin < kSpinIterations; ++spin) {
      _mm_pause();
      g = generation_.load(std::memory_order_acquire);
    }
    for (int y = 0; g == seen && y < kYieldIterations; ++y) {
      sched_yield();
      g = generation_.load(std::memory_order_acquire);
    }
    while (g == seen) {
      generation_.wait(seen, std::memory_order_acquire);
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    if (stop_.load(std::memory_order_acquire)) return;
    // Enter, then check the job is still open (Dekker-style with the caller's
    // close-then-check-active): either the caller waits for us, or we skip.
    active_.fetch_add(1, std::memory_order_seq_cst);
    if (open_.load(std::memory_order_seq_cst)) Work(index);
    active_.fetch_sub(1, std::memory_order_seq_cst);
  }
}

void ThreadPool::ParallelFor(int64_t n, int64_t grain,
                             FunctionRef<void(int64_t, int64_t, int)> fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (n_threads_ == 1 || n <= grain) {
    fn(0, n, 0);
    return;
  }
  const bool was_busy = busy_.exchange(true);
  CHECK_MSG(!was_busy, "ThreadPool::ParallelFor is not re-entrant");
  job_ = &fn;
  job_grain_ = grain;
  // Part boundaries fall on multiples of the grain.
  const int64_t n_chunks = (n + grain - 1) / grain;
  for (int p = 0; p < n_threads_; ++p) {
    parts_[p].next.store(n_chunks * p / n_threads_ * grain, std::memory_order_relaxed);
    parts_[p].end = std::min(n, n_chunks * (p + 1) / n_threads_ * grain);
  }
  open_.store(true, std::memory_order_seq_cst);
  generation_.fetch_add(1, std::memory_order_seq_cst);
  generation_.notify_all();
  Work(0);
  open_.store(false, std::memory_order_seq_cst);
  // Only workers that entered the job are waited for.
  for (int spin = 0; active_.load(std::memory_order_seq_cst) != 0; ++spin) {
    if (spin < kSpinIterations) {
      _mm_pause();
    } else {
      sched_yield();
    }
  }
  job_ = nullptr;
  busy_.store(false);
}

}  // namespace reprise
