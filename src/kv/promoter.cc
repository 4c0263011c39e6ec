#include "kv/promoter.h"

#include <algorithm>

#include "core/check.h"
#include "core/log.h"
#include "kernels/backend.h"

namespace reprise::kv {

size_t PromotionJob::n_ok() const {
  size_t n = 0;
  while (n < reads.size() && reads[n].attempted &&
         reads[n].outcome == BlockStore::ReadOutcome::kOk) {
    ++n;
  }
  return n;
}

struct Promoter::Job {
  PromotionJob job;
  int staged = 0;      // blocks read into a slot and not yet copied into the pool
  bool disk = false;   // has reads for the reader thread
  uint64_t fence = 0;  // covers its asynchronous copies (0: none)
};

namespace {
int SlotsFor(const BlockPool& pool, int asked) {
  if (asked > 0) return asked;
  const int64_t n = (int64_t{64} << 20) / std::max<int64_t>(1, pool.block_bytes());
  return static_cast<int>(std::clamp<int64_t>(n, 4, 256));
}
}  // namespace

Promoter::Promoter(BlockPool& pool, int staging_slots, bool force_staging)
    : pool_(pool),
      staging_slots_(SlotsFor(pool, staging_slots)),
      direct_(!force_staging && pool.device() == nullptr) {
  if (!direct_) {
    const size_t bytes = static_cast<size_t>(staging_slots_) * static_cast<size_t>(pool.block_bytes());
    if (pool.device() != nullptr) {
      Result<void*> p = pool.device()->AllocHost(bytes, "the KV promotion staging slots");
      if (p.ok()) staging_ = static_cast<uint8_t*>(p.value());
    }
    if (staging_ == nullptr) staging_vec_.resize(bytes);
    for (int i = 0; i < staging_slots_; ++i) free_slots_.push_back(i);
  }
  thread_ = std::thread([this] { Loop(); });
}

Promoter::~Promoter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  reader_cv_.notify_all();
  thread_.join();
  if (last_fence_ != 0) pool_.WaitWrites(last_fence_);
  for (const Copying& c : copying_) pool_.WaitWrites(c.fence);
  if (staging_ != nullptr) pool_.device()->FreeHost(staging_);
}

std::span<uint8_t> Promoter::Slot(int slot) {
  const size_t n = static_cast<size_t>(pool_.block_bytes());
  uint8_t* base = staging_ != nullptr ? staging_ : staging_vec_.data();
  return {base + static_cast<size_t>(slot) * n, n};
}

int64_t Promoter::Submit(std::vector<PromotionRead> reads) {
  auto job = std::make_unique<Job>();
  job->job.id = next_id_++;
  job->job.reads = std::move(reads);
  for (PromotionRead& r : job->job.reads) {
    CHECK(r.block >= 0 && (r.reader != nullptr) != (r.host.data != nullptr));
    r.attempted = false;
    if (r.host.data != nullptr) {  // pinned host memory: copied now, asynchronously
      pool_.WriteBlockAsync(r.block, r.host.data);
      r.attempted = true;
      r.outcome = BlockStore::ReadOutcome::kOk;
      job->fence = 1;
    } else {
      job->disk = true;
    }
  }
  if (job->fence != 0) job->fence = last_fence_ = pool_.WriteFence();
  const int64_t id = job->job.id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (job->disk) {
      queue_.push_back(std::move(job));
    } else {
      read_.push_back(std::move(job));  // nothing for the reader thread
    }
  }
  ++submitted_;
  reader_cv_.notify_all();
  return id;
}

void Promoter::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    reader_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    Job& job = *queue_.front();
    ReadJob(job, lock);  // the front stays this job while it is read
    if (stop_) return;
    read_.push_back(std::move(queue_.front()));
    queue_.pop_front();
    owner_cv_.notify_all();
  }
}

// Called and returns with `lock` held; unlocked while reading.
void Promoter::ReadJob(Job& job, std::unique_lock<std::mutex>& lock) {
  const int64_t block_bytes = pool_.block_bytes();
  for (PromotionRead& r : job.job.reads) {
    if (stop_) return;
    if (r.reader == nullptr) continue;  // a host copy, issued at Submit
    int slot = -1;
    std::span<uint8_t> dest;
    if (direct_) {
      dest = pool_.HostBlock(r.block);
    } else {
      reader_cv_.wait(lock, [&] { return stop_ || !free_slots_.empty(); });
      if (stop_) return;
      slot = free_slots_.back();
      free_slots_.pop_back();
      dest = Slot(slot);
    }
    CHECK(static_cast<int64_t>(dest.size()) == block_bytes);
    lock.unlock();
    const BlockStore::ReadOutcome outcome = r.reader->ReadConcurrently(r.key, dest);
    lock.lock();
    r.attempted = true;
    r.outcome = outcome;
    if (slot >= 0) {
      if (outcome == BlockStore::ReadOutcome::kOk) {
        staged_.push_back(Staged{&job, static_cast<size_t>(&r - job.job.reads.data()), slot});
        ++job.staged;
        owner_cv_.notify_all();
      } else {
        free_slots_.push_back(slot);
      }
    }
    if (outcome != BlockStore::ReadOutcome::kOk) return;  // the rest would be recomputed
  }
}

void Promoter::Drain() {
  std::vector<Staged> staged;
  {
    std::lock_guard<std::mutex> lock(mu_);
    staged.swap(staged_);
  }
  // The slots are ours until handed back: the reader fills only free ones.
  // Their copies are queued (asynchronous on a GPU) under one fence.
  if (!staged.empty()) {
    for (const Staged& s : staged) {
      pool_.WriteBlockAsync(s.job->job.reads[s.index].block, Slot(s.slot).data());
    }
    copying_.push_back(Copying{pool_.WriteFence(), std::move(staged)});
  }
  // Copies that have landed: slots back to the reader, blocks counted in.
  std::vector<Staged> landed;
  while (!copying_.empty() && pool_.WritesDone(copying_.front().fence)) {
    for (const Staged& s : copying_.front().blocks) landed.push_back(s);
    copying_.pop_front();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const Staged& s : landed) {
      free_slots_.push_back(s.slot);
      --s.job->staged;
    }
    for (auto it = read_.begin(); it != read_.end();) {
      if (Finished(**it)) {
        done_.push_back(std::move((*it)->job));
        it = read_.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (!landed.empty()) reader_cv_.notify_all();
}

bool Promoter::Finished(const Job& job) {
  return job.staged == 0 && (job.fence == 0 || pool_.WritesDone(job.fence));
}

std::vector<PromotionJob> Promoter::Poll() {
  Drain();
  std::vector<PromotionJob> out;
  out.swap(done_);
  returned_ += static_cast<int64_t>(out.size());
  std::sort(out.begin(), out.end(),
            [](const PromotionJob& a, const PromotionJob& b) { return a.id < b.id; });
  return out;
}

PromotionJob Promoter::Wait(int64_t id) {
  while (true) {
    Drain();
    for (auto it = done_.begin(); it != done_.end(); ++it) {
      if (it->id == id) {
        PromotionJob job = std::move(*it);
        done_.erase(it);
        ++returned_;
        return job;
      }
    }
    if (!copying_.empty()) {  // staged blocks on their way into the pool
      pool_.WaitWrites(copying_.front().fence);
      continue;
    }
    std::unique_lock<std::mutex> lock(mu_);
    uint64_t fence = 0;  // set when the job only waits for its copies
    owner_cv_.wait_for(lock, std::chrono::milliseconds(50), [&] {
      if (!staged_.empty()) return true;
      for (const auto& j : read_) {
        if (j->job.id == id) {
          fence = j->staged == 0 ? j->fence : 0;
          return true;
        }
      }
      return false;
    });
    lock.unlock();
    if (fence != 0) pool_.WaitWrites(fence);
  }
}

void Promoter::WaitForProgress(std::chrono::milliseconds timeout) {
  if (!done_.empty()) return;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (!staged_.empty()) return;  // blocks to copy in
    if (!copying_.empty() && pool_.WritesDone(copying_.front().fence)) return;
    // Staged blocks in flight into the pool, or jobs whose disk reads ended
    // waiting for their host copies: checked every 100 us.
    bool copying = !copying_.empty();
    for (const auto& j : read_) {
      if (Finished(*j)) return;
      if (j->staged == 0) copying = true;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return;
    const auto step = copying ? std::chrono::microseconds(100)
                              : std::chrono::duration_cast<std::chrono::microseconds>(deadline - now);
    owner_cv_.wait_for(lock, std::min<std::chrono::microseconds>(
                                 step, std::chrono::duration_cast<std::chrono::microseconds>(
                                           deadline - now)));
  }
}

}  // namespace reprise::kv
