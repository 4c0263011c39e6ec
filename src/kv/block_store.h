// Block stores: the tiers below the KV block pool (disk today; host RAM for the
// GPU backend, a store shared by replicas later). A store keeps whole KV
// blocks (BlockPool::block_bytes() each, moved only through the pool's
// ReadBlock / WriteBlock) under their content address (kv/block_key.h).
//
// BlockStore is the interface the prompt cache talks to: Put, Get, Contains,
// Evict by key. LruBlockStore implements what every tier shares on top of a
// small storage backend: the index, its own LRU order and exact byte
// accounting, and spilling what it evicts into the tier below it.
// MemoryBlockStore keeps checksummed blocks in process memory (tests);
// HostBlockStore keeps them in the backend's host memory (pinned on CUDA: the
// host-RAM tier under GPU memory); DiskBlockStore (kv/disk_block_store.h)
// keeps one file a block. TieredBlockStore (kv/tiered_block_store.h) stacks
// them (host over disk) behind the one interface.
//
// Invariants (LruBlockStore):
//  - bytes() == sum of stored_bytes() over indexed blocks <= bytes_limit(),
//    after every call, counting a block being written (room is made first);
//  - content addressed: Put of a key already held writes nothing (it only
//    refreshes recency), so a block is never rewritten;
//  - Get returns exactly the bytes Put stored, or false: a block whose
//    storage fails its checksum is discarded (counted, logged), never loaded;
//  - a storage failure other than one bad block (disk full, unwritable,
//    I/O error) turns the tier off: every call then misses and stores
//    nothing, and the caller keeps serving from the tiers above;
//  - with a spill tier set, a block evicted for room is first put into the
//    spill tier (unless it holds it already): demoted, not forgotten;
//  - a pinned block (PinHost) is never evicted or dropped: room is made from
//    the least recently used unpinned blocks, Evict refuses it, and a Put
//    that only pinned blocks could make room for stores nothing.
// Not thread-safe: owned by the engine thread, like the pool.
#pragma once

#include <cstdint>
#include <list>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "kv/block_key.h"

namespace reprise::kernels {
class Backend;
}

namespace reprise::kv {

struct BlockStoreStats {
  bool enabled = false;
  int64_t bytes = 0;  // held now, exact (what the tier's storage holds)
  int64_t bytes_limit = 0;
  int64_t blocks = 0;
  int64_t puts = 0;          // blocks stored (demotions)
  int64_t put_dedups = 0;    // Puts of a key already held: nothing written
  int64_t gets = 0;          // blocks read back (promotions)
  int64_t get_misses = 0;    // Gets of an absent key
  int64_t evictions = 0;     // blocks dropped for room (LRU) or by Evict
  int64_t corrupt_discarded = 0;  // blocks that failed validation, dropped
  int64_t bytes_written = 0;      // payload + headers written to storage
  int64_t bytes_read = 0;
  int64_t spills = 0;             // evicted blocks written to the tier below
};

class BlockStore {
 public:
  // What reading one block found.
  enum class ReadOutcome { kOk, kMissing, kCorrupt, kFailed };

  virtual ~BlockStore() = default;
  virtual std::string_view name() const = 0;  // "disk", "host", "memory"
  virtual int64_t block_bytes() const = 0;    // bytes of every block's payload
  virtual bool enabled() const = 0;
  virtual bool Contains(const BlockKey& key) const = 0;
  // Stores `data` (block_bytes() bytes) under `key` unless it is held already
  // (then only refreshes its recency), evicting least recently used blocks to
  // stay inside the bound. True when the block is held afterwards.
  virtual bool Put(const BlockKey& key, std::span<const uint8_t> data) = 0;
  // Reads the block into `out` (block_bytes() bytes) and refreshes its
  // recency. False when absent or when it fails validation (then discarded);
  // `out` then holds unspecified bytes that the caller must not use.
  virtual bool Get(const BlockKey& key, std::span<uint8_t> out) = 0;
  // Makes the block the most recently used; false if absent.
  virtual bool Touch(const BlockKey& key) = 0;
  // Drops the block; false if absent.
  virtual bool Evict(const BlockKey& key) = 0;
  virtual BlockStoreStats Stats() const = 0;
  // A store made of tiers (TieredBlockStore) names them; a plain one is its
  // only tier. last_get_tier(): the tier that served the last successful Get.
  virtual int tier_count() const { return 1; }
  virtual const BlockStore* tier(int i) const { return this; }
  virtual int last_get_tier() const { return 0; }
  // True when the store survives a restart (the disk tier).
  virtual bool durable() const { return false; }
  // Moves what faster tiers hold into the slowest one (TieredBlockStore);
  // returns blocks written.
  virtual int64_t SpillAllToLowest() { return 0; }

  // Reads on another thread (kv/promoter.h: promotions overlapped with the
  // engine's work). A three-step Get:
  //  1. owner thread: ConcurrentReader(key) names the store (this one or one
  //     of its tiers) whose ReadConcurrently may read the block off the
  //     owner thread, or null (then only Get reads it);
  //  2. any thread: reader->ReadConcurrently(key, out) reads the block's
  //     storage and nothing else: no index, recency or counter, so the owner
  //     thread goes on using the store meanwhile. The block may be evicted
  //     meanwhile (then kMissing, or its bytes if the read won the race);
  //     storage must never show another block's bytes under the key;
  //  3. owner thread: FinishConcurrentRead(key, reader, outcome) does the rest
  //     of a Get: counts the read, refreshes recency on success, discards a
  //     corrupt block, turns a failing tier off. True when outcome is kOk.
  virtual const BlockStore* ConcurrentReader(const BlockKey& key) const { return nullptr; }
  virtual ReadOutcome ReadConcurrently(const BlockKey& key, std::span<uint8_t> out) const {
    return ReadOutcome::kFailed;
  }
  virtual bool FinishConcurrentRead(const BlockKey& key, const BlockStore* reader,
                                    ReadOutcome outcome) {
    return false;
  }

  // Zero-copy reads of blocks kept in host memory (the host tier), for an
  // asynchronous device copy (BlockPool::WriteBlockAsync). On the owner
  // thread, PinHost(key) returns the block's bytes in place and pins them:
  // the block is not evicted (eviction takes the next unpinned one) until
  // UnpinHost. Empty when no tier keeps the key in host memory. UnpinHost
  // with read == true counts the read as a Get (counters, recency).
  struct HostPin {
    const uint8_t* data = nullptr;
    BlockStore* tier = nullptr;  // the tier that pinned it
  };
  virtual HostPin PinHost(const BlockKey& key) { return {}; }
  virtual void UnpinHost(const BlockKey& key, const HostPin& pin, bool read) {}
};

class LruBlockStore : public BlockStore {
 public:
  int64_t block_bytes() const override { return block_bytes_; }
  // Every entry point checks this (a subclass may turn itself off from
  // another thread: the disk tier's writer).
  bool enabled() const override { return enabled_; }
  bool Contains(const BlockKey& key) const override;
  bool Put(const BlockKey& key, std::span<const uint8_t> data) override;
  bool Get(const BlockKey& key, std::span<uint8_t> out) override;
  bool Touch(const BlockKey& key) override;
  bool Evict(const BlockKey& key) override;
  BlockStoreStats Stats() const override;
  // A tier whose ReadBlob may run off the owner thread (reads_concurrently())
  // is its own ConcurrentReader for the blocks it holds.
  const BlockStore* ConcurrentReader(const BlockKey& key) const override;
  ReadOutcome ReadConcurrently(const BlockKey& key, std::span<uint8_t> out) const override;
  bool FinishConcurrentRead(const BlockKey& key, const BlockStore* reader,
                            ReadOutcome outcome) override;
  // For a tier whose storage is host memory (HostBytes()).
  HostPin PinHost(const BlockKey& key) override;
  void UnpinHost(const BlockKey& key, const HostPin& pin, bool read) override;
  bool pinned(const BlockKey& key) const { return pins_.count(key) != 0; }

  int64_t bytes() const { return bytes_; }
  int64_t bytes_limit() const { return bytes_limit_; }
  int64_t blocks() const { return static_cast<int64_t>(index_.size()); }
  // Keys from least to most recently used (tests, diagnostics).
  std::vector<BlockKey> KeysByRecency() const;
  // The tier that blocks evicted for room are demoted to (null: dropped).
  void set_spill(BlockStore* below) { spill_ = below; }
  BlockStore* spill() const { return spill_; }
  // Every held block the spill tier lacks is written into it, least recently
  // used first (at shutdown, so the tier below keeps them). Returns blocks
  // written.
  int64_t SpillAll();

 protected:
  LruBlockStore(int64_t block_bytes, int64_t bytes_limit);
  // What one block occupies in the storage (payload plus any header).
  virtual int64_t stored_bytes() const { return block_bytes_; }
  // Backend. Write must leave either the whole block or nothing under key;
  // an error turns the tier off. Read fills out (block_bytes()).
  virtual Status WriteBlob(const BlockKey& key, std::span<const uint8_t> data) = 0;
  // Const, and touching only the storage: where reads_concurrently(), it may
  // run on another thread while the owner thread writes and deletes other
  // blocks (and this one: see BlockStore::ReadConcurrently).
  virtual ReadOutcome ReadBlob(const BlockKey& key, std::span<uint8_t> out) const = 0;
  virtual void DeleteBlob(const BlockKey& key) = 0;
  // Whether ReadBlob is safe off the owner thread (the disk: a block's file
  // is written under a temporary name and renamed, never rewritten, and an
  // open file stays readable when deleted). False for memory slots that are
  // reused once their block is evicted.
  virtual bool reads_concurrently() const { return false; }
  // The block's bytes in place when the storage is host memory (the host
  // tier), else null.
  virtual const uint8_t* HostBytes(const BlockKey& key) const { return nullptr; }
  // Adds a block the backend already holds (a store reopened on existing
  // storage), as the most recently used. False if it does not fit the bound.
  bool IndexExisting(const BlockKey& key);
  // Turns the tier off after a storage failure (logged once by the caller).
  void Disable(const Status& why);
  void set_enabled(bool on) { enabled_ = on; }
  BlockStoreStats& counters() { return stats_; }

 private:
  void Drop(BlockKey key);  // from the index and the backend
  // The rest of a read of `key` (Get, a concurrent read, a host copy):
  // counts it, refreshes recency on success, discards a missing or corrupt
  // block, turns the tier off on a storage failure. True when kOk.
  bool FinishRead(const BlockKey& key, ReadOutcome outcome);
  bool MakeRoom(int64_t need);     // evicts LRU until need more bytes fit
  bool SpillOne(const BlockKey& key);  // into spill_, unless it holds it

  int64_t block_bytes_;
  int64_t bytes_limit_;
  int64_t bytes_ = 0;
  bool enabled_ = true;
  std::list<BlockKey> lru_;  // front = least recently used
  std::unordered_map<BlockKey, std::list<BlockKey>::iterator, BlockKeyHasher> index_;
  std::unordered_map<BlockKey, int, BlockKeyHasher> pins_;  // PinHost counts
  BlockStoreStats stats_;
  BlockStore* spill_ = nullptr;
  std::vector<uint8_t> spill_scratch_;
};

// Blocks in process memory, each with its checksum. Fault injection lets the
// tier logic be tested without a disk.
class MemoryBlockStore : public LruBlockStore {
 public:
  MemoryBlockStore(int64_t block_bytes, int64_t bytes_limit)
      : LruBlockStore(block_bytes, bytes_limit) {}
  std::string_view name() const override { return "memory"; }

  // Test hooks: flip a byte of a stored block; make every later write fail
  // (like a full disk).
  void CorruptForTest(const BlockKey& key);
  void FailWritesForTest(bool fail) { fail_writes_ = fail; }

 protected:
  Status WriteBlob(const BlockKey& key, std::span<const uint8_t> data) override;
  ReadOutcome ReadBlob(const BlockKey& key, std::span<uint8_t> out) const override;
  void DeleteBlob(const BlockKey& key) override;

 private:
  struct Blob {
    std::vector<uint8_t> data;
    uint64_t checksum = 0;
  };
  std::unordered_map<BlockKey, Blob, BlockKeyHasher> blobs_;
  bool fail_writes_ = false;
};

// Blocks in host memory from the backend's AllocHost (pinned on CUDA, so a
// block moves to and from the GPU by DMA; plain memory without a backend),
// carved from chunks allocated as the tier fills and never past its bound.
// No checksums: RAM does not tear, and a block is exactly what Put copied.
class HostBlockStore : public LruBlockStore {
 public:
  // `backend` (may be null) must outlive the store.
  HostBlockStore(int64_t block_bytes, int64_t bytes_limit, kernels::Backend* backend);
  ~HostBlockStore() override;
  std::string_view name() const override { return "host"; }
  int64_t allocated_bytes() const { return allocated_; }

 protected:
  Status WriteBlob(const BlockKey& key, std::span<const uint8_t> data) override;
  ReadOutcome ReadBlob(const BlockKey& key, std::span<uint8_t> out) const override;
  void DeleteBlob(const BlockKey& key) override;
  const uint8_t* HostBytes(const BlockKey& key) const override;

 private:
  kernels::Backend* backend_;
  int64_t blocks_per_chunk_;
  int64_t allocated_ = 0;
  std::vector<uint8_t*> chunks_;
  std::vector<uint8_t*> free_slots_;
  std::unordered_map<BlockKey, uint8_t*, BlockKeyHasher> slots_;
};

}  // namespace reprise::kv
