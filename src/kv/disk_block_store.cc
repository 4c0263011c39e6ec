#include "kv/disk_block_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <utility>

#include "core/check.h"
#include "core/log.h"

namespace reprise::kv {
namespace {

constexpr char kMagic[8] = {'R', 'P', 'R', 'S', 'K', 'V', 'B', '1'};
constexpr uint32_t kVersion = 1;
constexpr std::string_view kExt = ".kvb";
constexpr std::string_view kTmpExt = ".kvb.tmp";
constexpr const char* kLog = "kv-disk";

void PutU32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
void PutU64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }
uint32_t GetU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t GetU64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
void PutKey(uint8_t* p, const BlockKey& k) {
  PutU64(p, k.hi);
  PutU64(p + 8, k.lo);
}
BlockKey GetKey(const uint8_t* p) { return BlockKey{GetU64(p), GetU64(p + 8)}; }

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Writes all of data at offset 0 of fd.
bool WriteAll(int fd, const uint8_t* data, size_t n) {
  size_t done = 0;
  while (done < n) {
    const ssize_t w = ::pwrite(fd, data + done, n - done, static_cast<off_t>(done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    done += static_cast<size_t>(w);
  }
  return true;
}

// Reads exactly n bytes from offset 0; false on error or a short file.
bool ReadAll(int fd, uint8_t* data, size_t n, int64_t offset) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd, data + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    done += static_cast<size_t>(r);
  }
  return true;
}

}  // namespace

DiskBlockStore::DiskBlockStore(const DiskBlockStoreConfig& config)
    : LruBlockStore(config.block_bytes, config.bytes_limit), config_(config) {}

DiskBlockStore::~DiskBlockStore() {
  if (!writer_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;  // the writer drains the queue first
  }
  work_cv_.notify_all();
  writer_.join();
}

bool DiskBlockStore::enabled() const {
  return LruBlockStore::enabled() && !write_failed_.load();
}

void DiskBlockStore::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  room_cv_.wait(lock, [&] { return pending_bytes_ == 0; });
}

int64_t DiskBlockStore::pending_write_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_bytes_;
}

void DiskBlockStore::WriterLoop() {
  for (;;) {
    std::shared_ptr<Job> job;
    bool skip = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything is written
      job = std::move(queue_.front());
      queue_.pop_front();
      skip = job->cancelled;
    }
    const Status st = skip ? Status::Ok() : WriteFile(job->key, job->file);
    std::lock_guard<std::mutex> lock(mu_);
    // Deleted while it was being written: the file must not outlive that.
    if (!skip && st.ok() && job->cancelled) ::unlink(PathOf(job->key).c_str());
    if (!st.ok() && write_error_.ok()) {
      write_error_ = st;
      write_failed_.store(true);
      LOG_ERROR("kv", "disk tier turned off: %s; serving goes on without it",
                st.message().c_str());
    }
    auto it = pending_.find(job->key);
    if (it != pending_.end() && it->second == job) pending_.erase(it);
    pending_bytes_ -= static_cast<int64_t>(job->file.size());
    // Kept for reuse (a fresh buffer costs page faults, more than the copy):
    // queued and spare buffers together stay within the queue's bound, plus
    // the one a WriteBlob waiting for room holds.
    const size_t cap = static_cast<size_t>(std::max<int64_t>(
        1, config_.write_queue_bytes / std::max<int64_t>(1, job->file.size())));
    if (spare_files_.size() < cap && job.use_count() == 1) {
      spare_files_.push_back(std::move(job->file));
    }
    room_cv_.notify_all();
  }
}

int64_t DiskBlockStore::FreeBytes(const std::string& dir) {
  struct statvfs vfs;
  if (::statvfs(dir.c_str(), &vfs) != 0) return 0;
  return static_cast<int64_t>(vfs.f_bavail) * static_cast<int64_t>(vfs.f_frsize);
}

std::string DiskBlockStore::PathOf(const BlockKey& key) const {
  return config_.dir + "/" + key.Hex() + std::string(kExt);
}

void DiskBlockStore::MakeHeader(const BlockKey& key, std::span<const uint8_t> payload,
                                uint8_t* h) const {
  std::memset(h, 0, kHeaderBytes);
  std::memcpy(h, kMagic, 8);
  PutU32(h + 8, kVersion);
  PutU32(h + 12, static_cast<uint32_t>(kHeaderBytes));
  PutKey(h + 16, config_.layout);
  PutKey(h + 32, key);
  PutU64(h + 48, static_cast<uint64_t>(payload.size()));
  const uint64_t seed = Checksum64(std::span<const uint8_t>(h, 56));
  PutU64(h + 56, Checksum64(payload, seed));
}

Result<std::unique_ptr<DiskBlockStore>> DiskBlockStore::Open(const DiskBlockStoreConfig& config) {
  if (config.dir.empty()) return Errorf("the prompt cache dir is empty");
  if (config.block_bytes <= 0 || config.bytes_limit < 0) {
    return Errorf("invalid disk tier shape (block %lld bytes, bound %lld bytes)",
                  static_cast<long long>(config.block_bytes),
                  static_cast<long long>(config.bytes_limit));
  }
  if (::mkdir(config.dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return Errorf("cannot create the prompt cache dir %s: %s", config.dir.c_str(),
                  std::strerror(errno));
  }
  struct stat st;
  if (::stat(config.dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Errorf("the prompt cache dir %s is not a directory", config.dir.c_str());
  }
  if (::access(config.dir.c_str(), R_OK | W_OK | X_OK) != 0) {
    return Errorf("the prompt cache dir %s is not writable: %s", config.dir.c_str(),
                  std::strerror(errno));
  }
  std::unique_ptr<DiskBlockStore> store(new DiskBlockStore(config));
  RETURN_IF_ERROR(store->Scan());
  if (config.write_queue_bytes > 0) {
    store->writer_ = std::thread([s = store.get()] { s->WriterLoop(); });
  }
  return store;
}

Status DiskBlockStore::Scan() {
  DIR* d = ::opendir(config_.dir.c_str());
  if (d == nullptr) {
    return Errorf("cannot read the prompt cache dir %s: %s", config_.dir.c_str(),
                  std::strerror(errno));
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) names.emplace_back(e->d_name);
  ::closedir(d);

  struct Found {
    int64_t mtime_ns;
    std::string name;
    BlockKey key;
  };
  std::vector<Found> valid;
  const int64_t want_size = kHeaderBytes + block_bytes();
  uint8_t header[kHeaderBytes];
  for (const std::string& name : names) {
    const std::string path = config_.dir + "/" + name;
    if (EndsWith(name, kTmpExt) || (name.find(".kvb.tmp") != std::string::npos)) {
      ::unlink(path.c_str());  // an interrupted write: never renamed, never indexed
      ++scan_.temp_removed;
      continue;
    }
    if (!EndsWith(name, kExt)) continue;  // not ours
    BlockKey key;
    if (!BlockKey::FromHex(std::string_view(name).substr(0, name.size() - kExt.size()), &key)) {
      continue;  // not ours either
    }
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    bool ok = fd >= 0 && st.st_size >= kHeaderBytes && ReadAll(fd, header, kHeaderBytes, 0);
    if (fd >= 0) ::close(fd);
    ok = ok && std::memcmp(header, kMagic, 8) == 0 && GetU32(header + 8) == kVersion &&
         GetU32(header + 12) == kHeaderBytes && GetKey(header + 32) == key;
    if (ok && GetKey(header + 16) != config_.layout) {
      ++scan_.foreign;  // another model's / layout's block: not ours to load or delete
      continue;
    }
    ok = ok && static_cast<int64_t>(GetU64(header + 48)) == block_bytes() &&
         st.st_size == want_size;
    if (!ok) {
      LOG_WARN(kLog, "discarding %s: torn, truncated or not a KV block file (%lld bytes)",
               path.c_str(), static_cast<long long>(st.st_size));
      ::unlink(path.c_str());
      ++scan_.discarded;
      ++counters().corrupt_discarded;
      continue;
    }
    valid.push_back({static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
                     name, key});
  }
  // Oldest first: the most recently written end up most recently used. When
  // the bound shrank since, the newest blocks are the ones kept.
  std::sort(valid.begin(), valid.end(), [](const Found& a, const Found& b) {
    return a.mtime_ns != b.mtime_ns ? a.mtime_ns < b.mtime_ns : a.name < b.name;
  });
  const int64_t per_file = stored_bytes();
  const int64_t fit = per_file > 0 ? bytes_limit() / per_file : 0;
  const size_t skip = valid.size() > static_cast<size_t>(fit) ? valid.size() - fit : 0;
  for (size_t i = 0; i < valid.size(); ++i) {
    if (i < skip) {
      ::unlink((config_.dir + "/" + valid[i].name).c_str());
      ++scan_.over_bound;
      continue;
    }
    CHECK(IndexExisting(valid[i].key));
    ++scan_.loaded;
  }
  if (scan_.discarded + scan_.foreign + scan_.temp_removed + scan_.over_bound > 0) {
    LOG_WARN(kLog,
             "%s: %lld blocks indexed; %lld corrupt/torn files discarded, %lld interrupted "
             "writes removed, %lld blocks over the bound removed, %lld files of another "
             "model or KV layout ignored",
             config_.dir.c_str(), static_cast<long long>(scan_.loaded),
             static_cast<long long>(scan_.discarded), static_cast<long long>(scan_.temp_removed),
             static_cast<long long>(scan_.over_bound), static_cast<long long>(scan_.foreign));
  }
  return Status::Ok();
}

Status DiskBlockStore::WriteBlob(const BlockKey& key, std::span<const uint8_t> data) {
  auto job = std::make_shared<Job>();
  job->key = key;
  if (writer_.joinable()) {  // a buffer the writer is done with: no allocation, no page faults
    std::lock_guard<std::mutex> lock(mu_);
    if (!spare_files_.empty()) {
      job->file = std::move(spare_files_.back());
      spare_files_.pop_back();
    }
  }
  job->file.resize(static_cast<size_t>(kHeaderBytes) + data.size());
  MakeHeader(key, data, job->file.data());
  std::memcpy(job->file.data() + kHeaderBytes, data.data(), data.size());
  if (!writer_.joinable()) return WriteFile(key, job->file);
  const int64_t size = static_cast<int64_t>(job->file.size());
  std::unique_lock<std::mutex> lock(mu_);
  if (!write_error_.ok()) return write_error_;  // the tier turns off
  room_cv_.wait(lock, [&] {
    return pending_bytes_ == 0 || pending_bytes_ + size <= config_.write_queue_bytes;
  });
  pending_[key] = job;  // replaces a cancelled job of the same key, if any
  queue_.push_back(std::move(job));
  pending_bytes_ += size;
  work_cv_.notify_one();
  return Status::Ok();
}

Status DiskBlockStore::WriteFile(const BlockKey& key, std::span<const uint8_t> file) const {
  const std::string path = PathOf(key);
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errorf("cannot create %s: %s", tmp.c_str(), std::strerror(errno));
  bool ok = WriteAll(fd, file.data(), file.size());
  int err = ok ? 0 : errno;
  if (ok && config_.fsync && ::fdatasync(fd) != 0) {
    ok = false;
    err = errno;
  }
  // The point of demoting is to free RAM: do not keep the block in the page
  // cache as well (effective once the pages are clean, i.e. after the sync).
  if (ok) ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  if (::close(fd) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (ok && ::rename(tmp.c_str(), path.c_str()) != 0) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    return Errorf("writing %s failed: %s", path.c_str(),
                  err != 0 ? std::strerror(err) : "short write");
  }
  // No fsync of the directory: the data is durable before its name appears,
  // so a power loss can only lose recent names (a miss, never a corrupt
  // block), and skipping it halves the cost of a demotion (3.2 instead of
  // 6.1 ms a 256 KiB block on this project's VM disk).
  return Status::Ok();
}

BlockStore::ReadOutcome DiskBlockStore::ReadBlob(const BlockKey& key,
                                                 std::span<uint8_t> out) const {
  // A block not on disk yet: from the writer's copy.
  if (writer_.joinable()) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pending_.find(key);
    if (it != pending_.end()) {
      std::memcpy(out.data(), it->second->file.data() + kHeaderBytes, out.size());
      return ReadOutcome::kOk;
    }
  }
  // The header into a local buffer and the payload straight into `out`: no
  // member that changes is touched, so this may run off the engine thread.
  const std::string path = PathOf(key);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? ReadOutcome::kMissing : ReadOutcome::kFailed;
  uint8_t h[kHeaderBytes];
  struct stat st;
  const bool sized = ::fstat(fd, &st) == 0 &&
                     st.st_size == static_cast<off_t>(kHeaderBytes + block_bytes());
  const bool read = sized && ReadAll(fd, h, kHeaderBytes, 0) &&
                    ReadAll(fd, out.data(), out.size(), kHeaderBytes);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);  // it lives in the pool now
  ::close(fd);
  if (!read) return ReadOutcome::kCorrupt;  // truncated or unreadable bytes
  const uint64_t seed = Checksum64(std::span<const uint8_t>(h, 56));
  if (std::memcmp(h, kMagic, 8) != 0 || GetKey(h + 16) != config_.layout ||
      GetKey(h + 32) != key || static_cast<int64_t>(GetU64(h + 48)) != block_bytes() ||
      GetU64(h + 56) != Checksum64(std::span<const uint8_t>(out.data(), out.size()), seed)) {
    return ReadOutcome::kCorrupt;
  }
  return ReadOutcome::kOk;
}

void DiskBlockStore::DeleteBlob(const BlockKey& key) {
  if (writer_.joinable()) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pending_.find(key);
    if (it != pending_.end()) {  // not on disk yet: the writer skips or removes it
      it->second->cancelled = true;
      pending_.erase(it);
      return;
    }
  }
  ::unlink(PathOf(key).c_str());
}

}  // namespace reprise::kv
