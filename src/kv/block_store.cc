#include "kv/block_store.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/check.h"
#include "core/log.h"
#include "kernels/backend.h"

namespace reprise::kv {

LruBlockStore::LruBlockStore(int64_t block_bytes, int64_t bytes_limit)
    : block_bytes_(block_bytes), bytes_limit_(bytes_limit) {
  CHECK(block_bytes > 0 && bytes_limit >= 0);
}

bool LruBlockStore::Contains(const BlockKey& key) const {
  return enabled() && index_.count(key) != 0;
}

// `key` by value: callers pass references into lru_ (MakeRoom passes
// lru_.front()), which the erase below frees before DeleteBlob reads the key.
void LruBlockStore::Drop(BlockKey key) {
  auto it = index_.find(key);
  CHECK(it != index_.end());
  CHECK(pins_.count(key) == 0);  // a pinned block's bytes are being copied
  lru_.erase(it->second);
  index_.erase(it);
  bytes_ -= stored_bytes();
  DeleteBlob(key);
}

bool LruBlockStore::MakeRoom(int64_t need) {
  if (need > bytes_limit_) return false;
  while (bytes_ + need > bytes_limit_) {
    CHECK(!lru_.empty());
    auto victim = lru_.begin();
    while (victim != lru_.end() && pins_.count(*victim) != 0) ++victim;
    if (victim == lru_.end()) return false;  // everything is pinned by a promotion
    const BlockKey key = *victim;
    SpillOne(key);
    Drop(key);
    ++stats_.evictions;
  }
  return true;
}

BlockStore::HostPin LruBlockStore::PinHost(const BlockKey& key) {
  if (!enabled() || index_.count(key) == 0) return {};
  const uint8_t* data = HostBytes(key);
  if (data == nullptr) return {};
  ++pins_[key];
  return HostPin{data, this};
}

void LruBlockStore::UnpinHost(const BlockKey& key, const HostPin& pin, bool read) {
  CHECK(pin.tier == this);
  auto p = pins_.find(key);
  CHECK(p != pins_.end());
  if (--p->second == 0) pins_.erase(p);
  if (read) FinishRead(key, ReadOutcome::kOk);
}

bool LruBlockStore::SpillOne(const BlockKey& key) {
  if (spill_ == nullptr || !spill_->enabled()) return false;
  if (spill_->Contains(key)) {
    spill_->Touch(key);
    return false;
  }
  spill_scratch_.resize(static_cast<size_t>(block_bytes_));
  if (ReadBlob(key, spill_scratch_) != ReadOutcome::kOk) return false;
  if (!spill_->Put(key, spill_scratch_)) return false;
  ++stats_.spills;
  return true;
}

int64_t LruBlockStore::SpillAll() {
  int64_t n = 0;
  if (!enabled()) return 0;
  for (const BlockKey& key : lru_) n += SpillOne(key) ? 1 : 0;
  return n;
}

bool LruBlockStore::Put(const BlockKey& key, std::span<const uint8_t> data) {
  CHECK(static_cast<int64_t>(data.size()) == block_bytes_);
  if (!enabled()) return false;
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
  if (!enabled()) return false;
  if (index_.count(key) == 0) {
    ++stats_.get_misses;
    return false;
  }
  return FinishRead(key, ReadBlob(key, out));
}

const BlockStore* LruBlockStore::ConcurrentReader(const BlockKey& key) const {
  return enabled() && reads_concurrently() && index_.count(key) != 0 ? this : nullptr;
}

BlockStore::ReadOutcome LruBlockStore::ReadConcurrently(const BlockKey& key,
                                                        std::span<uint8_t> out) const {
  CHECK(reads_concurrently() && static_cast<int64_t>(out.size()) == block_bytes_);
  return ReadBlob(key, out);
}

bool LruBlockStore::FinishConcurrentRead(const BlockKey& key, const BlockStore* reader,
                                         ReadOutcome outcome) {
  CHECK(reader == this);
  return FinishRead(key, outcome);
}

bool LruBlockStore::FinishRead(const BlockKey& key, ReadOutcome outcome) {
  auto it = index_.find(key);
  switch (outcome) {
    case ReadOutcome::kOk:
      // The bytes were read (even if the block was evicted since).
      if (it != index_.end()) lru_.splice(lru_.end(), lru_, it->second);
      ++stats_.gets;
      stats_.bytes_read += stored_bytes();
      return true;
    case ReadOutcome::kMissing:  // evicted while being read, or removed behind our back
      ++stats_.get_misses;
      if (it != index_.end()) Drop(key);
      return false;
    case ReadOutcome::kCorrupt:
      ++stats_.corrupt_discarded;
      LOG_WARN("kv", "%.*s tier: block %s failed validation; discarded", (int)name().size(),
               name().data(), key.Hex().c_str());
      if (it != index_.end()) Drop(key);
      return false;
    case ReadOutcome::kFailed:
      Disable(Errorf("reading block %s failed", key.Hex().c_str()));
      return false;
  }
  return false;
}

bool LruBlockStore::Touch(const BlockKey& key) {
  if (!enabled()) return false;
  auto it = index_.find(key);
  if (it == index_.end()) return false;
  lru_.splice(lru_.end(), lru_, it->second);
  return true;
}

bool LruBlockStore::Evict(const BlockKey& key) {
  if (index_.count(key) == 0 || pins_.count(key) != 0) return false;
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
  s.enabled = enabled();
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

BlockStore::ReadOutcome MemoryBlockStore::ReadBlob(const BlockKey& key,
                                                   std::span<uint8_t> out) const {
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

// ---- HostBlockStore ----

HostBlockStore::HostBlockStore(int64_t block_bytes, int64_t bytes_limit,
                               kernels::Backend* backend)
    : LruBlockStore(block_bytes, bytes_limit), backend_(backend) {
  // Chunks of about 256 MiB (at least one block): few pinned allocations,
  // and an empty tier holds nothing.
  blocks_per_chunk_ = std::max<int64_t>(1, (int64_t{256} << 20) / block_bytes);
}

HostBlockStore::~HostBlockStore() {
  for (uint8_t* c : chunks_) {
    if (backend_ != nullptr) {
      backend_->FreeHost(c);
    } else {
      std::free(c);
    }
  }
}

Status HostBlockStore::WriteBlob(const BlockKey& key, std::span<const uint8_t> data) {
  if (free_slots_.empty()) {
    // The bound counts blocks, not chunks: the last chunk is cut to it.
    const int64_t cap_blocks = bytes_limit() / block_bytes();
    const int64_t have = allocated_ / block_bytes();
    const int64_t n = std::min(blocks_per_chunk_, cap_blocks - have);
    if (n <= 0) return Errorf("host tier: no slot left (internal accounting error)");
    const size_t bytes = static_cast<size_t>(n * block_bytes());
    uint8_t* chunk = nullptr;
    if (backend_ != nullptr) {
      Result<void*> p = backend_->AllocHost(bytes, "the host KV tier");
      if (!p.ok()) return p.status();
      chunk = static_cast<uint8_t*>(*p);
    } else {
      chunk = static_cast<uint8_t*>(std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096));
      if (chunk == nullptr) return Errorf("cannot allocate %zu bytes for the host KV tier", bytes);
    }
    chunks_.push_back(chunk);
    allocated_ += static_cast<int64_t>(bytes);
    for (int64_t i = n - 1; i >= 0; --i) free_slots_.push_back(chunk + i * block_bytes());
  }
  uint8_t* slot = free_slots_.back();
  free_slots_.pop_back();
  std::memcpy(slot, data.data(), data.size());
  slots_[key] = slot;
  return Status::Ok();
}

BlockStore::ReadOutcome HostBlockStore::ReadBlob(const BlockKey& key,
                                                 std::span<uint8_t> out) const {
  auto it = slots_.find(key);
  if (it == slots_.end()) return ReadOutcome::kMissing;
  std::memcpy(out.data(), it->second, out.size());
  return ReadOutcome::kOk;
}

const uint8_t* HostBlockStore::HostBytes(const BlockKey& key) const {
  auto it = slots_.find(key);
  return it == slots_.end() ? nullptr : it->second;
}

void HostBlockStore::DeleteBlob(const BlockKey& key) {
  auto it = slots_.find(key);
  if (it == slots_.end()) return;
  free_slots_.push_back(it->second);
  slots_.erase(it);
}

}  // namespace reprise::kv
