// Internal to the CUDA backend: host -> device copies that run beside the
// compute stream (promotions of KV blocks from the host tier), with fences.
//
// The copy stream is made on first use; where it cannot be, copies run at
// once on the compute stream (Fallback) and every fence counts as passed. A
// fence is an event recorded on the copy stream after the copies it covers;
// the stream runs them in order, so fences finish in ticket order.
//
// Invariants: tickets increase by one per Fence(); Done(t) never turns false
// again once true; an error seen on a fence is handed to the backend's
// error sink (the copy still counts as finished, so no caller waits forever).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <vector>

namespace reprise::kernels::cuda {

class CopyQueue {
 public:
  using ErrorSink = std::function<void(cudaError_t, const char*)>;
  explicit CopyQueue(ErrorSink note) : note_(std::move(note)) {}
  CopyQueue(const CopyQueue&) = delete;
  CopyQueue& operator=(const CopyQueue&) = delete;
  ~CopyQueue();

  // Queues the copy; false: no copy stream (the caller copies synchronously).
  bool Copy(void* dst, const void* src, size_t bytes);
  uint64_t Fence();
  bool Done(uint64_t ticket);
  void Wait(uint64_t ticket);
  // Waits for every queued copy (before memory they touch is freed).
  void Drain();

 private:
  struct Pending {
    uint64_t ticket;
    cudaEvent_t event;
  };
  ErrorSink note_;
  cudaStream_t stream_ = nullptr;
  bool no_stream_ = false;  // creating the stream failed once: copy synchronously
  std::deque<Pending> fences_;  // recorded, not yet seen finished (ticket order)
  std::vector<cudaEvent_t> spare_events_;
  uint64_t fence_ticket_ = 0;
  uint64_t done_ticket_ = 0;
};

}  // namespace reprise::kernels::cuda
