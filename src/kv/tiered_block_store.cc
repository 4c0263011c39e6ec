#include "kv/tiered_block_store.h"

#include "core/check.h"

namespace reprise::kv {

Result<std::unique_ptr<TieredBlockStore>> TieredBlockStore::Create(
    std::vector<std::unique_ptr<LruBlockStore>> tiers) {
  if (tiers.empty()) return Errorf("a tiered block store needs at least one tier");
  for (const auto& t : tiers) {
    if (t->block_bytes() != tiers.front()->block_bytes()) {
      return Errorf("the %.*s tier stores %lld-byte blocks, the %.*s tier %lld-byte blocks",
                    static_cast<int>(t->name().size()), t->name().data(),
                    static_cast<long long>(t->block_bytes()),
                    static_cast<int>(tiers.front()->name().size()), tiers.front()->name().data(),
                    static_cast<long long>(tiers.front()->block_bytes()));
    }
  }
  std::unique_ptr<TieredBlockStore> s(new TieredBlockStore());
  for (size_t i = 0; i + 1 < tiers.size(); ++i) tiers[i]->set_spill(tiers[i + 1].get());
  for (const auto& t : tiers) {
    if (!s->name_.empty()) s->name_ += "+";
    s->name_ += std::string(t->name());
  }
  s->tiers_ = std::move(tiers);
  return s;
}

bool TieredBlockStore::enabled() const {
  for (const auto& t : tiers_) {
    if (t->enabled()) return true;
  }
  return false;
}

bool TieredBlockStore::Contains(const BlockKey& key) const {
  for (const auto& t : tiers_) {
    if (t->Contains(key)) return true;
  }
  return false;
}

bool TieredBlockStore::Put(const BlockKey& key, std::span<const uint8_t> data) {
  for (const auto& t : tiers_) {
    if (t->Touch(key)) return true;  // held already: never rewritten
  }
  for (const auto& t : tiers_) {
    if (t->enabled() && t->Put(key, data)) return true;
  }
  return false;
}

bool TieredBlockStore::Get(const BlockKey& key, std::span<uint8_t> out) {
  for (size_t i = 0; i < tiers_.size(); ++i) {
    if (tiers_[i]->Contains(key) && tiers_[i]->Get(key, out)) {
      last_get_tier_ = static_cast<int>(i);
      return true;
    }
  }
  return false;
}

const BlockStore* TieredBlockStore::ConcurrentReader(const BlockKey& key) const {
  for (const auto& t : tiers_) {
    if (t->Contains(key)) return t->ConcurrentReader(key);
  }
  return nullptr;
}

bool TieredBlockStore::FinishConcurrentRead(const BlockKey& key, const BlockStore* reader,
                                            ReadOutcome outcome) {
  for (size_t i = 0; i < tiers_.size(); ++i) {
    if (tiers_[i].get() != reader) continue;
    const bool ok = tiers_[i]->FinishConcurrentRead(key, reader, outcome);
    if (ok) last_get_tier_ = static_cast<int>(i);
    return ok;
  }
  CHECK(false && "FinishConcurrentRead: the reader is not a tier of this store");
  return false;
}

BlockStore::HostPin TieredBlockStore::PinHost(const BlockKey& key) {
  for (const auto& t : tiers_) {
    if (t->Contains(key)) return t->PinHost(key);
  }
  return {};
}

void TieredBlockStore::UnpinHost(const BlockKey& key, const HostPin& pin, bool read) {
  for (size_t i = 0; i < tiers_.size(); ++i) {
    if (tiers_[i].get() != pin.tier) continue;
    tiers_[i]->UnpinHost(key, pin, read);
    if (read) last_get_tier_ = static_cast<int>(i);
    return;
  }
  CHECK(false && "UnpinHost: the pin is not from a tier of this store");
}

bool TieredBlockStore::Touch(const BlockKey& key) {
  for (const auto& t : tiers_) {
    if (t->Touch(key)) return true;
  }
  return false;
}

bool TieredBlockStore::Evict(const BlockKey& key) {
  bool any = false;
  for (const auto& t : tiers_) any |= t->Evict(key);
  return any;
}

BlockStoreStats TieredBlockStore::Stats() const {
  BlockStoreStats sum;
  for (const auto& t : tiers_) {
    const BlockStoreStats s = t->Stats();
    sum.enabled |= s.enabled;
    sum.bytes += s.bytes;
    sum.bytes_limit += s.bytes_limit;
    sum.blocks += s.blocks;
    sum.puts += s.puts;
    sum.put_dedups += s.put_dedups;
    sum.gets += s.gets;
    sum.get_misses += s.get_misses;
    sum.evictions += s.evictions;
    sum.corrupt_discarded += s.corrupt_discarded;
    sum.bytes_written += s.bytes_written;
    sum.bytes_read += s.bytes_read;
    sum.spills += s.spills;
  }
  return sum;
}

int64_t TieredBlockStore::SpillAllToLowest() {
  int64_t n = 0;
  // Top down: each tier's blocks (those from above included) sink one
  // level, so everything reaches the slowest tier (which keeps what fits its
  // bound, most recently used last).
  for (size_t j = 0; j + 1 < tiers_.size(); ++j) n += tiers_[j]->SpillAll();
  return n;
}

}  // namespace reprise::kv
