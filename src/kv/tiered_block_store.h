// TieredBlockStore: the tiers below the KV block pool, stacked behind the one
// BlockStore interface the prompt cache talks to. Tiers are ordered fastest
// first (host RAM, then disk). A block lives in the fastest tier that takes
// it; what a tier evicts for room spills into the next one
// (LruBlockStore::set_spill), so the cache demotes a block once and it sinks
// on its own, and a lookup finds it in whichever tier holds it.
//
// Invariants:
//  - each tier keeps its own exact byte bound and LRU order;
//  - content addressed across tiers: Put of a key any tier holds writes
//    nothing (it refreshes that tier's recency);
//  - Get reads from the fastest tier that holds the key; the tier that
//    served the last successful Get is last_get_tier() (per-tier metrics);
//  - a tier that turns itself off is skipped; the store is enabled while any
//    tier is;
//  - a concurrent read (BlockStore::ConcurrentReader) is served by the
//    fastest tier holding the key, the same tier Get would read.
// Not thread-safe: owned by the engine thread, like the pool.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kv/block_store.h"

namespace reprise::kv {

class TieredBlockStore : public BlockStore {
 public:
  // Tiers fastest first; at least one; equal block sizes.
  static Result<std::unique_ptr<TieredBlockStore>> Create(
      std::vector<std::unique_ptr<LruBlockStore>> tiers);

  std::string_view name() const override { return name_; }
  int64_t block_bytes() const override { return tiers_.front()->block_bytes(); }
  bool enabled() const override;
  bool Contains(const BlockKey& key) const override;
  bool Put(const BlockKey& key, std::span<const uint8_t> data) override;
  bool Get(const BlockKey& key, std::span<uint8_t> out) override;
  bool Touch(const BlockKey& key) override;
  bool Evict(const BlockKey& key) override;
  BlockStoreStats Stats() const override;  // summed over the tiers
  int last_get_tier() const override { return last_get_tier_; }
  int tier_count() const override { return static_cast<int>(tiers_.size()); }
  const BlockStore* tier(int i) const override { return tiers_[static_cast<size_t>(i)].get(); }

  // Writes what the faster tiers hold into the slowest one, where it lacks
  // them (at shutdown: the disk keeps it for the next start). Returns blocks
  // written.
  int64_t SpillAllToLowest() override;
  // The fastest tier holding the key, if it can be read off the owner
  // thread (the disk; the host tier's slots are reused, so it is read by
  // Get). FinishConcurrentRead goes to that tier and sets last_get_tier().
  const BlockStore* ConcurrentReader(const BlockKey& key) const override;
  bool FinishConcurrentRead(const BlockKey& key, const BlockStore* reader,
                            ReadOutcome outcome) override;
  // Pins in the fastest tier holding the key, if it keeps it in host memory.
  HostPin PinHost(const BlockKey& key) override;
  void UnpinHost(const BlockKey& key, const HostPin& pin, bool read) override;
  bool durable() const override { return tiers_.back()->durable(); }

 private:
  TieredBlockStore() = default;
  std::vector<std::unique_ptr<LruBlockStore>> tiers_;
  std::string name_;
  int last_get_tier_ = -1;
};

}  // namespace reprise::kv
