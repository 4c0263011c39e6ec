// A total deadline for a new connection's first request headers.
//
// httplib reads request headers with a per-read timeout only, so a client
// sending one byte every few seconds holds its connection (and thread)
// forever. The watchdog thread looks at the server's connected sockets every
// 250 ms (by their local port, from /proc/self/fd, since httplib does not
// expose them); a socket whose peer has not yet sent a complete request
// (Admit marks each connection's peer when its first request's headers are
// in) within `timeout` of being first seen is shut down, which ends
// httplib's read on it and closes the connection.
// Invariants: only sockets on the server's port are touched, only with
// shutdown() (never close(): the fd stays httplib's); a connection that has
// sent a request is never touched; Stop() joins the thread.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace reprise::server {

// The address text and port of a socket address (IPv4 or IPv6); false for
// other families. Shared with admission.cc's per-connection lookups.
bool SocketAddressText(const sockaddr_storage& a, std::string* ip, int* port);

class HeaderWatchdog {
 public:
  // `spoke(peer)`: whether the connection from `peer` ("ip|port") has sent
  // a request.
  HeaderWatchdog(int port, std::chrono::milliseconds timeout,
                 std::function<bool(const std::string&)> spoke);
  ~HeaderWatchdog();  // stops
  HeaderWatchdog(const HeaderWatchdog&) = delete;
  HeaderWatchdog& operator=(const HeaderWatchdog&) = delete;

  void Stop();
  int64_t shut_down() const { return shut_down_.load(); }  // sockets cut so far

 private:
  void Loop();

  const int port_;
  const std::chrono::milliseconds timeout_;
  const std::function<bool(const std::string&)> spoke_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<int64_t> shut_down_{0};
  std::thread thread_;
};

// "ip|port": the key of a peer for HeaderWatchdog.
std::string PeerKey(const std::string& ip, int port);

}  // namespace reprise::server
