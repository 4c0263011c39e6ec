// One thread per connection, grown on demand (see elastic_pool.h).
#include "server/elastic_pool.h"

#include <pthread.h>

#include <algorithm>

#include "core/log.h"

namespace reprise::server {

namespace {
constexpr size_t kStackBytes = size_t{1} << 20;
}  // namespace

ElasticPool::ElasticPool(int min_threads, int max_threads, std::function<void()> after_task,
                         std::chrono::milliseconds idle_exit)
    : min_threads_(std::max(1, min_threads)),
      max_threads_(std::max(std::max(1, min_threads), max_threads)),
      after_task_(std::move(after_task)),
      idle_exit_(idle_exit) {
  std::lock_guard<std::mutex> lock(mu_);
  for (int i = 0; i < min_threads_; ++i) Spawn();
}

ElasticPool::~ElasticPool() { shutdown(); }

void ElasticPool::Spawn() {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kStackBytes);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t tid;
  if (pthread_create(&tid, &attr, &ElasticPool::Main, this) == 0) {
    ++threads_;
    ++idle_;  // counts as idle until it takes a task
  } else {
    LOG_WARN("server", "cannot start an HTTP thread (%d running); connections will wait",
             threads_);
  }
  pthread_attr_destroy(&attr);
}

void* ElasticPool::Main(void* self) {
  static_cast<ElasticPool*>(self)->Work();
  return nullptr;
}

void ElasticPool::enqueue(std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  tasks_.push_back(std::move(fn));
  // Every queued task needs a free worker of its own.
  if (static_cast<int>(tasks_.size()) > idle_ && threads_ < max_threads_) Spawn();
  work_cv_.notify_one();
}

void ElasticPool::Work() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (tasks_.empty() && !shutdown_) {
      const bool spare = threads_ > min_threads_;
      if (spare) {
        if (!work_cv_.wait_for(lock, idle_exit_,
                               [this] { return !tasks_.empty() || shutdown_; })) {
          break;  // idle past idle_exit: a spare worker leaves
        }
      } else {
        work_cv_.wait(lock, [this] { return !tasks_.empty() || shutdown_; });
      }
    }
    if (tasks_.empty()) {
      if (shutdown_) break;
      continue;
    }
    std::function<void()> fn = std::move(tasks_.front());
    tasks_.pop_front();
    --idle_;
    lock.unlock();
    fn();
    if (after_task_) after_task_();
    lock.lock();
    ++idle_;
  }
  --idle_;
  --threads_;
  exit_cv_.notify_all();
}

void ElasticPool::shutdown() {
  std::unique_lock<std::mutex> lock(mu_);
  shutdown_ = true;
  work_cv_.notify_all();
  exit_cv_.wait(lock, [this] { return threads_ == 0; });
}

int ElasticPool::threads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return threads_;
}

int ElasticPool::busy() const {
  std::lock_guard<std::mutex> lock(mu_);
  return threads_ - idle_;
}

}  // namespace reprise::server
