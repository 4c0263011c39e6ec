// The disk tier: one file a KV block in one directory, named by its content
// address (<32 hex digits>.kvb), inside its own byte bound with its own LRU
// order (LruBlockStore).
//
// File format (little endian): a 64-byte header, then the block's bytes.
//   0  magic "RPRSKVB1"          8  u32 format version (1)   12 u32 header bytes (64)
//   16 layout key (16 bytes: model identity, KV type, block size; block_key.h)
//   32 block key (16 bytes, = the file name)                 48 u64 payload bytes
//   56 u64 XXH3-64 of bytes [0, 56) and the payload
//
// Crash safety: a block is written to <name>.tmp, fdatasync'ed and renamed
// to its name, so a name never points at bytes that are not on the device
// (the directory is not fsync'ed: a power loss may lose the latest names,
// which is a miss, never a corrupt block); a file is never rewritten
// (content addressed). Open() rebuilds the index from the directory: leftover .tmp
// files, files of the wrong size (torn, truncated) or with a bad header are
// deleted and logged; files whose header names another layout (another
// model, quantization, KV type or block size) are foreign: left alone, never
// indexed or loaded, and logged. The checksum is verified on every read
// (Get), so a corrupt file is discarded instead of loaded. Files written by
// an earlier run are indexed oldest (mtime) first: its LRU order survives.
// Written and read files are dropped from the page cache (POSIX_FADV_DONTNEED):
// demoted KV does not stay in RAM, and a promotion reads from the device.
// Reads touch no member that changes, so a promotion may read files on
// another thread while the engine thread writes and deletes others
// (reads_concurrently(); kv/promoter.h).
// One server process per directory.
//
// Demotions do not wait for the disk: WriteBlob hands the file's bytes (a
// copy) to one writer thread and returns; blocks queued or being written are
// read from that copy, and a deletion of one cancels it (the writer removes
// a file it already wrote). The copies are bounded (write_queue_bytes, the
// buffers kept for reuse included; a WriteBlob past it waits for room).
// Flush() and the destructor wait until every queued block is on disk, so a
// clean shutdown loses nothing; a crash loses the queued blocks (misses,
// never corrupt blocks).
//
// Errors: a directory that cannot be created or read fails Open (the caller
// runs without the tier); a failed write (disk full, read-only) turns the
// tier off (LruBlockStore::Disable; from the writer thread: enabled() is
// false from then on, and the block reads as missing), serving goes on.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "kv/block_store.h"

namespace reprise::kv {

struct DiskBlockStoreConfig {
  std::string dir;
  BlockKey layout;  // written into every file; others' files are foreign
  int64_t block_bytes = 0;
  int64_t bytes_limit = 0;  // files (headers included) never exceed this
  bool fsync = true;        // off only in tests that do not test durability
  // Bytes of file copies the writer thread holds at most, queued or kept
  // for reuse (at least one block always fits); 0 writes inside WriteBlob,
  // on the caller's thread.
  int64_t write_queue_bytes = int64_t{32} << 20;
};

// What Open found in the directory.
struct DiskScanReport {
  int64_t loaded = 0;        // valid blocks indexed
  int64_t foreign = 0;       // valid files of another layout (ignored)
  int64_t discarded = 0;     // torn / truncated / bad-header files deleted
  int64_t temp_removed = 0;  // leftover .tmp files of an interrupted write
  int64_t over_bound = 0;    // valid blocks deleted because the bound is smaller
};

class DiskBlockStore : public LruBlockStore {
 public:
  static constexpr int64_t kHeaderBytes = 64;

  static Result<std::unique_ptr<DiskBlockStore>> Open(const DiskBlockStoreConfig& config);
  ~DiskBlockStore() override;  // after Flush()
  // Waits until every block handed to the writer thread is on disk (or its
  // write failed).
  void Flush();
  // Bytes of files queued or being written now (tests, diagnostics).
  int64_t pending_write_bytes() const;
  std::string_view name() const override { return "disk"; }
  // False from the moment the writer thread saw a write fail (logged then).
  bool enabled() const override;
  bool durable() const override { return true; }
  const DiskBlockStoreConfig& config() const { return config_; }
  const DiskScanReport& scan_report() const { return scan_; }
  std::string PathOf(const BlockKey& key) const;  // where the block's file lives

  // Free bytes for an unprivileged user on the filesystem holding `dir`
  // (statvfs); 0 when unknown.
  static int64_t FreeBytes(const std::string& dir);

 protected:
  int64_t stored_bytes() const override { return kHeaderBytes + block_bytes(); }
  Status WriteBlob(const BlockKey& key, std::span<const uint8_t> data) override;
  ReadOutcome ReadBlob(const BlockKey& key, std::span<uint8_t> out) const override;
  void DeleteBlob(const BlockKey& key) override;
  bool reads_concurrently() const override { return true; }

 private:
  DiskBlockStore(const DiskBlockStoreConfig& config);
  Status Scan();
  void MakeHeader(const BlockKey& key, std::span<const uint8_t> payload, uint8_t* header) const;
  // Writes a whole file (header + payload) under its name: .tmp, sync, rename.
  Status WriteFile(const BlockKey& key, std::span<const uint8_t> file) const;
  void WriterLoop();

  // A block handed to the writer thread.
  struct Job {
    BlockKey key;
    std::vector<uint8_t> file;  // header + payload
    bool cancelled = false;     // deleted meanwhile (guarded by mu_)
  };

  DiskBlockStoreConfig config_;
  DiskScanReport scan_;
  // The writer thread's state, guarded by mu_.
  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // the writer waits for jobs
  std::condition_variable room_cv_;  // WriteBlob / Flush wait for the writer
  std::deque<std::shared_ptr<Job>> queue_;
  std::unordered_map<BlockKey, std::shared_ptr<Job>, BlockKeyHasher> pending_;  // not on disk yet
  int64_t pending_bytes_ = 0;  // files queued or being written
  std::vector<std::vector<uint8_t>> spare_files_;  // written jobs' buffers, for reuse
  Status write_error_;         // the writer's first failure, reported by WriteBlob
  std::atomic<bool> write_failed_{false};  // write_error_ is set: the tier is off
  bool stop_ = false;
  std::thread writer_;
};

}  // namespace reprise::kv
