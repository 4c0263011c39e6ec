// The allocations a backend holds: pointer -> bytes, and their total (what
// Backend::HeldBytes reports). Not thread-safe: a backend is used by one
// thread at a time. A Remove of a pointer the ledger does not hold is a
// programmer error (CHECK).
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>

#include "core/check.h"

namespace reprise::kernels {

class AllocLedger {
 public:
  void Add(void* p, size_t bytes) {
    map_[p] = bytes;
    held_ += static_cast<int64_t>(bytes);
  }
  // Forgets p; returns its size.
  size_t Remove(void* p) {
    auto it = map_.find(p);
    CHECK_MSG(it != map_.end(), "free of memory this backend did not allocate");
    const size_t bytes = it->second;
    held_ -= static_cast<int64_t>(bytes);
    map_.erase(it);
    return bytes;
  }
  int64_t held() const { return held_; }
  // fn(pointer) for every allocation still held (for the backend's destructor).
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    for (const auto& [p, bytes] : map_) fn(p);
  }

 private:
  std::unordered_map<void*, size_t> map_;
  int64_t held_ = 0;
};

}  // namespace reprise::kernels
