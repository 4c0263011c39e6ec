// The promoter: reads KV blocks from a tier below the pool (the disk) on its
// own thread, so a request whose cached prefix was demoted waits for its
// reads while the engine goes on running every other sequence, instead of
// the whole batch stalling for the read (promotions overlapped with compute).
//
// A job is the promotions of one admission, in chain order: for each block,
// its content address, where it comes from and the fresh pool block it fills.
// A block of the disk (BlockStore::ConcurrentReader) is read by the reader
// thread, straight into its pool block when the pool is host memory
// (BlockPool::HostBlock), else into one of the staging slots (the backend's
// AllocHost: pinned on a GPU; ~64 MiB of them) that the owner thread copies
// into the pool in Poll or Wait with BlockPool::WriteBlockAsync (on a GPU
// the copy stream: the engine thread does not wait for the copies; a slot
// goes back to the reader once its copy has landed); the disk job stops at
// its first failed read (a block's KV is only usable after every block
// before it).
// A block pinned in host memory (BlockStore::PinHost: the host tier) is
// copied at Submit with BlockPool::WriteBlockAsync (on a GPU: the copy
// stream, overlapping the compute) and the job also waits for its fence.
//
// Invariants:
//  - the reader thread touches only the tiers' ReadConcurrently, the pool
//    blocks of jobs not yet returned (their owner neither reads nor frees
//    them until Poll or Wait returns the job), the staging slots and the
//    promoter's own queue; the pool's logic (refcounts, free list) and every
//    index stay on the owner thread;
//  - jobs are read in submission order, one at a time, each block in order;
//  - a returned job is final: every read has its outcome, `attempted` says
//    which ran (the owner passes those to BlockStore::FinishConcurrentRead),
//    and every asynchronous copy has finished (host reads are attempted and
//    kOk; the owner unpins them);
//  - staging memory is staging_slots blocks, allocated at construction and
//    only when reads cannot go straight into the pool;
//  - the destructor finishes the job being read, waits for the copies,
//    drops the queued jobs (not returned: their pool blocks and pins are the
//    owner's to release, after) and joins.
// Owner-thread methods are not thread-safe among themselves (one engine
// thread), like the pool.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "kv/block_key.h"
#include "kv/block_pool.h"
#include "kv/block_store.h"

namespace reprise::kv {

struct PromotionRead {
  BlockKey key;
  // Where it comes from: a tier the reader thread reads (a disk read), or
  // pinned host memory the owner thread copies from asynchronously.
  const BlockStore* reader = nullptr;  // from BlockStore::ConcurrentReader
  BlockStore::HostPin host;            // from BlockStore::PinHost
  int32_t block = -1;                  // the pool block it fills
  // Filled by the promoter.
  bool attempted = false;
  BlockStore::ReadOutcome outcome = BlockStore::ReadOutcome::kMissing;
};

struct PromotionJob {
  int64_t id = 0;
  std::vector<PromotionRead> reads;
  // Leading reads that succeeded: their pool blocks hold the blocks' bytes.
  size_t n_ok() const;
};

class Promoter {
 public:
  // `pool` must outlive the promoter. `staging_slots` 0: about 64 MiB of
  // blocks (4 to 256 slots). `force_staging` routes host pools' reads
  // through the staging slots too (tests of the device path).
  explicit Promoter(BlockPool& pool, int staging_slots = 0, bool force_staging = false);
  ~Promoter();
  Promoter(const Promoter&) = delete;
  Promoter& operator=(const Promoter&) = delete;

  // Queues the reads of one admission; returns the job's id (> 0).
  int64_t Submit(std::vector<PromotionRead> reads);
  // Copies staged blocks into the pool and returns the jobs finished since
  // the last Poll or Wait, in submission order.
  std::vector<PromotionJob> Poll();
  // Blocks until job `id` is finished (copying staged blocks meanwhile) and
  // returns it; other jobs finished meanwhile wait for the next Poll.
  PromotionJob Wait(int64_t id);
  // Sleeps until a job's disk reads end or a staged block is ready, or
  // `timeout` (jobs waiting only for copies are checked every 100 us).
  void WaitForProgress(std::chrono::milliseconds timeout);
  // Jobs submitted and not yet returned.
  int64_t pending() const { return submitted_ - returned_; }
  int staging_slots() const { return direct_ ? 0 : staging_slots_; }

 private:
  struct Job;
  struct Staged {
    Job* job;
    size_t index;
    int slot;
  };
  void Loop();
  bool Finished(const Job& job);  // owner thread, mu_ held: staged and copied
  void ReadJob(Job& job, std::unique_lock<std::mutex>& lock);
  // Owner thread: WriteBlocks every staged block; moves jobs that are done
  // into done_ (submission order kept).
  void Drain();
  std::span<uint8_t> Slot(int slot);

  BlockPool& pool_;
  const int staging_slots_;
  const bool direct_;  // reads go straight into host pool blocks
  uint8_t* staging_ = nullptr;         // device pools: AllocHost'ed slots
  std::vector<uint8_t> staging_vec_;   // host pools (force_staging) or no pinned memory

  std::mutex mu_;
  std::condition_variable reader_cv_;  // a job or a free slot arrived, or stop
  std::condition_variable owner_cv_;   // a block was staged or a job's reads ended
  std::deque<std::unique_ptr<Job>> queue_;  // front: being read
  std::vector<std::unique_ptr<Job>> read_;  // reads ended, staged blocks may remain
  std::vector<Staged> staged_;
  std::vector<int> free_slots_;
  bool stop_ = false;

  std::vector<PromotionJob> done_;  // owner thread only
  uint64_t last_fence_ = 0;         // of the latest job with copies
  // Staged blocks whose copy into the pool was issued (owner thread only):
  // their slots and job counts wait for the fence.
  struct Copying {
    uint64_t fence;
    std::vector<Staged> blocks;
  };
  std::deque<Copying> copying_;
  int64_t next_id_ = 1;
  int64_t submitted_ = 0;
  int64_t returned_ = 0;
  std::thread thread_;
};

}  // namespace reprise::kv
