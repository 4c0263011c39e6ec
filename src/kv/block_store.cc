#include "kv/block_store.h"

#include "core/check.h"
#include "core/log.h"

namespace reprise::kv {

LruBlockStore::LruBlockStore(int64_t block_bytes, int64_t bytes_limit)
    : block_bytes_(block_bytes), bytes_limit_(bytes_limit) {
  CHECK(block_bytes > 0 && bytes_limit >= 0);
}

bool LruBlockStore::Contains(const BlockKey& key) const {
  return enabled_ && index_.count(key) != 0;
}

// `key` by value: callers pass references into lru_ (MakeRoom passes
// lru_.front()), which the erase below frees before DeleteBlob reads the key.
void LruBlockStore::Drop(BlockKey key) {
  auto it = index_.find(key);
  CHECK(it != index_.end());
  lru_.erase(it->second);
  index_.erase(it);
  bytes_ -= stored_bytes();
  DeleteBlob(key);
}

bool LruBlockStore::MakeRoom(int64_t need) {
  if (need > bytes_limit_) return false;
  while (bytes_ + need > bytes_limit_) {
    CHECK(!lru_.empty());
    Drop(lru_.front());
    ++stats_.evictions;
  }
  return true;
}

bool LruBlockStore::Put(const BlockKey& key, std::span<const uint8_t> data) {
  CHECK(static_cast<int64_t>(data.size()) == block_bytes_);
  if (!enabled_) return false;
  auto it = index_.find(key);
  if (it != index_.end()) {  // content addressed: the same bytes are held already
    lru_.splice(lru_.end(), lru_, it->second);
    ++stats_.put_dedups;
    return true;
  }
  if (!MakeRoom(stored_bytes())) return false;
  // Room is made before writing, so the storage never holds more than the
  // bound, the block being written included.
  bytes_ += stored_bytes();
  Status st = WriteBlob(key, data);
  if (!st.ok()) {
    bytes_ -= stored_bytes();
    Disable(st);
    return false;
  }
  lru_.push_back(key);
  index_.emplace(key, std::prev(lru_.end()));
  ++stats_.puts;
  stats_.bytes_written += stored_bytes();
  return true;
}

bool LruBlockStore::Get(const BlockKey& key, std::span<uint8_t> out) {
  CHECK(static_cast<int64_t>(out.size()) == block_bytes_);
  if (!enabled_) return false;
  auto it = index_.find(key);
  if (it == index_.end()) {
    ++stats_.get_misses;
    return false;
  }
  switch (ReadBlob(key, out)) {
    case ReadOutcome::kOk:
      lru_.splice(lru_.end(), lru_, it->second);
      ++stats_.gets;
      stats_.bytes_read += stored_bytes();
      return true;
    case ReadOutcome::kMissing:  // removed behind our back
      ++stats_.get_misses;
      Drop(key);
      return false;
    case ReadOutcome::kCorrupt:
      ++stats_.corrupt_discarded;
      LOG_WARN("kv", "%.*s tier: block %s failed validation; discarded", (int)name().size(),
               name().data(), key.Hex().c_str());
      Drop(key);
      return false;
    case ReadOutcome::kFailed:
      Disable(Errorf("reading block %s failed", key.Hex().c_str()));
      return false;
  }
  return false;
}

bool LruBlockStore::Touch(const BlockKey& key) {
  if (!enabled_) return false;
  auto it = index_.find(key);
  if (it == index_.end()) return false;
  lru_.splice(lru_.end(), lru_, it->second);
  return true;
}

bool LruBlockStore::Evict(const BlockKey& key) {
  if (index_.count(key) == 0) return false;
  Drop(key);
  ++stats_.evictions;
  return true;
}

bool LruBlockStore::IndexExisting(const BlockKey& key) {
  if (index_.count(key) != 0) return true;
  if (bytes_ + stored_bytes() > bytes_limit_) return false;
  bytes_ += stored_bytes();
  lru_.push_back(key);
  index_.emplace(key, std::prev(lru_.end()));
  return true;
}

void LruBlockStore::Disable(const Status& why) {
  if (!enabled_) return;
  enabled_ = false;
  LOG_ERROR("kv", "%.*s tier turned off: %s; serving goes on without it", (int)name().size(),
            name().data(), why.message().c_str());
}

BlockStoreStats LruBlockStore::Stats() const {
  BlockStoreStats s = stats_;
  s.enabled = enabled_;
  s.bytes = bytes_;
  s.bytes_limit = bytes_limit_;
  s.blocks = static_cast<int64_t>(index_.size());
  return s;
}

std::vector<BlockKey> LruBlockStore::KeysByRecency() const {
  return std::vector<BlockKey>(lru_.begin(), lru_.end());
}

// ---- MemoryBlockStore ----

Status MemoryBlockStore::WriteBlob(const BlockKey& key, std::span<const uint8_t> data) {
  if (fail_writes_) return Errorf("no space left on the (simulated) device");
  Blob& b = blobs_[key];
  b.data.assign(data.begin(), data.end());
  b.checksum = Checksum64(data);
  return Status::Ok();
}

LruBlockStore::ReadOutcome MemoryBlockStore::ReadBlob(const BlockKey& key,
                                                      std::span<uint8_t> out) {
  auto it = blobs_.find(key);
  if (it == blobs_.end()) return ReadOutcome::kMissing;
  if (Checksum64(it->second.data) != it->second.checksum) return ReadOutcome::kCorrupt;
  std::copy(it->second.data.begin(), it->second.data.end(), out.begin());
  return ReadOutcome::kOk;
}

void MemoryBlockStore::DeleteBlob(const BlockKey& key) { blobs_.erase(key); }

void MemoryBlockStore::CorruptForTest(const BlockKey& key) {
  auto it = blobs_.find(key);
  CHECK(it != blobs_.end() && !it->second.data.empty());
  it->second.data[it->second.data.size() / 2] ^= 0x5a;
}

}  // namespace reprise::kv
