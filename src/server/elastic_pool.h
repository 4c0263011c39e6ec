// The HTTP connection task queue (cpp-httplib's new_task_queue hook): one
// thread per connection, grown on demand instead of httplib's fixed pool.
//
// httplib serves each connection on one thread for its whole life, reading
// with blocking waits; with a fixed pool of 16, 16 idle or trickling sockets
// took every thread and /health waited behind them for 30-60 s. Here a new
// connection gets a thread at once (an idle worker, else a new one) while
// fewer than `max_threads` run, so idle sockets cost a parked thread each
// (a 1 MiB stack reserved, tens of KiB touched) and never delay others.
// Past max_threads, connections wait in FIFO order for a thread.
// Invariants: at most max_threads workers; `min_threads` are started up
// front and kept; a worker beyond them exits after `idle_exit` without work;
// Shutdown() runs every queued task, then joins all workers.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>

#include <httplib.h>

namespace reprise::server {

class ElasticPool : public httplib::TaskQueue {
 public:
  // `after_task`, if set, runs on the worker after each task (a connection
  // has ended there).
  ElasticPool(int min_threads, int max_threads, std::function<void()> after_task = nullptr,
              std::chrono::milliseconds idle_exit = std::chrono::seconds(30));
  ~ElasticPool() override;

  void enqueue(std::function<void()> fn) override;
  void shutdown() override;

  int threads() const;  // workers alive now
  int busy() const;     // workers running a task now

 private:
  void Spawn();  // mu_ held
  static void* Main(void* self);
  void Work();

  const int min_threads_;
  const int max_threads_;
  const std::function<void()> after_task_;
  const std::chrono::milliseconds idle_exit_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable exit_cv_;
  std::deque<std::function<void()>> tasks_;
  int threads_ = 0;
  int idle_ = 0;
  bool shutdown_ = false;
};

}  // namespace reprise::server
