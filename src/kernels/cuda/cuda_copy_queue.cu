// CopyQueue (cuda_copy_queue.h): the copy stream and its fences.
#include "kernels/cuda/cuda_copy_queue.h"

#include <algorithm>

namespace reprise::kernels::cuda {

CopyQueue::~CopyQueue() {
  Drain();
  for (const Pending& f : fences_) cudaEventDestroy(f.event);
  for (cudaEvent_t e : spare_events_) cudaEventDestroy(e);
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

bool CopyQueue::Copy(void* dst, const void* src, size_t bytes) {
  if (stream_ == nullptr && !no_stream_ &&
      cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking) != cudaSuccess) {
    cudaGetLastError();
    stream_ = nullptr;
    no_stream_ = true;
  }
  if (stream_ == nullptr) return false;
  note_(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_),
        "async copy to device");
  return true;
}

uint64_t CopyQueue::Fence() {
  const uint64_t ticket = ++fence_ticket_;
  if (stream_ == nullptr) {
    done_ticket_ = ticket;  // every copy so far ran synchronously
    return ticket;
  }
  cudaEvent_t ev = nullptr;
  if (!spare_events_.empty()) {
    ev = spare_events_.back();
    spare_events_.pop_back();
  } else if (cudaEventCreateWithFlags(&ev, cudaEventDisableTiming) != cudaSuccess) {
    cudaGetLastError();
    note_(cudaStreamSynchronize(stream_), "async copy to device");
    done_ticket_ = ticket;
    return ticket;
  }
  note_(cudaEventRecord(ev, stream_), "copy fence");
  fences_.push_back({ticket, ev});
  return ticket;
}

bool CopyQueue::Done(uint64_t ticket) {
  while (!fences_.empty() && done_ticket_ < ticket) {
    const cudaError_t e = cudaEventQuery(fences_.front().event);
    if (e == cudaErrorNotReady) {
      // Not an error, but it may be left as the last error (seen in other
      // runtimes): clear it, keeping any real one for Synchronize.
      const cudaError_t last = cudaGetLastError();
      if (last != cudaSuccess && last != cudaErrorNotReady) note_(last, "a kernel launch");
      break;
    }
    note_(e, "async copy to device");  // an error is recorded; the fence counts as passed
    done_ticket_ = fences_.front().ticket;
    spare_events_.push_back(fences_.front().event);
    fences_.pop_front();
  }
  if (fences_.empty()) done_ticket_ = std::max(done_ticket_, fence_ticket_);
  return done_ticket_ >= ticket;
}

void CopyQueue::Wait(uint64_t ticket) {
  while (!Done(ticket) && !fences_.empty()) {
    note_(cudaEventSynchronize(fences_.front().event), "copy fence");
  }
}

void CopyQueue::Drain() {
  if (stream_ != nullptr) cudaStreamSynchronize(stream_);
}

}  // namespace reprise::kernels::cuda
