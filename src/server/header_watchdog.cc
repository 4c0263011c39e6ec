// Header deadline for new connections (see header_watchdog.h).
#include "server/header_watchdog.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdlib>
#include <unordered_map>

#include "core/log.h"

namespace reprise::server {
namespace {

constexpr std::chrono::milliseconds kScanEvery{250};


// The peer key of a connected socket on `port`; "" otherwise.
std::string ConnectedPeer(int fd, int port) {
  sockaddr_storage local{}, peer{};
  socklen_t local_len = sizeof(local), peer_len = sizeof(peer);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0) return "";
  std::string ip;
  int local_port = 0;
  if (!SocketAddressText(local, &ip, &local_port) || local_port != port) return "";
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) return "";
  int peer_port = 0;
  if (!SocketAddressText(peer, &ip, &peer_port)) return "";
  return PeerKey(ip, peer_port);
}

}  // namespace

std::string PeerKey(const std::string& ip, int port) { return ip + "|" + std::to_string(port); }

HeaderWatchdog::HeaderWatchdog(int port, std::chrono::milliseconds timeout,
                               std::function<bool(const std::string&)> spoke)
    : port_(port), timeout_(timeout), spoke_(std::move(spoke)), thread_([this] { Loop(); }) {}

HeaderWatchdog::~HeaderWatchdog() { Stop(); }

void HeaderWatchdog::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void HeaderWatchdog::Loop() {
  using Clock = std::chrono::steady_clock;
  std::unordered_map<std::string, Clock::time_point> first_seen;
  std::unordered_map<std::string, Clock::time_point> next;
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, kScanEvery, [this] { return stop_; })) {
    lock.unlock();
    const Clock::time_point now = Clock::now();
    next.clear();
    if (DIR* dir = opendir("/proc/self/fd")) {
      while (dirent* e = readdir(dir)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        const int fd = std::atoi(e->d_name);
        const std::string peer = ConnectedPeer(fd, port_);
        if (peer.empty() || spoke_(peer)) continue;
        auto it = first_seen.find(peer);
        const Clock::time_point since = it == first_seen.end() ? now : it->second;
        if (now - since < timeout_) {
          next.emplace(peer, since);
          continue;
        }
        // Re-check right before acting: the fd may have been reused.
        if (ConnectedPeer(fd, port_) == peer && !spoke_(peer)) {
          shutdown(fd, SHUT_RDWR);
          shut_down_.fetch_add(1);
        }
      }
      closedir(dir);
    }
    first_seen.swap(next);
    lock.lock();
  }
}

bool SocketAddressText(const sockaddr_storage& a, std::string* ip, int* port) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (a.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&a);
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf));
    *port = ntohs(in->sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a);
    inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf));
    *port = ntohs(in6->sin6_port);
  } else {
    return false;
  }
  *ip = buf;
  return true;
}

}  // namespace reprise::server
