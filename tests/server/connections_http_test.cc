// Black-box test of issue 16's finding 2: idle or trickling connections must
// not stop the server from serving others (each connection has a thread of
// its own, started on demand; see src/server/elastic_pool.h).
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>
#include <memory>
#include <string>
#include <vector>

#include "server/server_test_util.h"

namespace reprise::server::testing {
namespace {

using Clock = std::chrono::steady_clock;

int ThreadCount(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::atoi(line.c_str() + 8);
  }
  return -1;
}

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// 1,000 idle sockets (connected, nothing sent) and 200 trickling ones
// (half a request line, then silence): once the server has taken them in,
// /health and a completion are still answered in under a second.
TEST(Connections, ThousandIdleAndTricklingSocketsDoNotStarveOthers) {
  constexpr int kIdle = 1000;
  constexpr int kTrickling = 200;
  rlimit files{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &files), 0);
  if (files.rlim_cur < 4096 && files.rlim_max >= 4096) {
    files.rlim_cur = 4096;
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &files), 0);
  }
  ASSERT_GE(files.rlim_cur, 1400u) << "the test needs 1,400 descriptors (ulimit -n)";
  std::string error;
  // Deadlines long enough that the sockets stay for the whole test.
  auto s = ServerProcess::Start(TinyChatModel(), {"--idle-timeout", "30", "--read-timeout", "30",
                                                 "--header-timeout", "60"},
                                &error);
  ASSERT_NE(s, nullptr) << error;
  std::vector<std::unique_ptr<RawConnection>> hogs;
  for (int i = 0; i < kIdle + kTrickling; ++i) {
    auto c = std::make_unique<RawConnection>(s->port());
    ASSERT_TRUE(c->ok()) << "connection " << i;
    if (i >= kIdle) {  // trickling
      ASSERT_TRUE(c->Send("GET /health HTTP/1.1\r\nHo"));
    }
    hogs.push_back(std::move(c));
  }
  // Wait until the server has taken them all in (a thread each), then probe.
  const auto t_absorb = Clock::now();
  int threads = 0;
  while (MsSince(t_absorb) < 30000) {
    threads = ThreadCount(s->pid());
    if (threads >= kIdle + kTrickling) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_GE(threads, kIdle + kTrickling);
  std::printf("1,200 connections taken in (a thread each) after %.0f ms\n", MsSince(t_absorb));
  for (int round = 0; round < 3; ++round) {
    auto t0 = Clock::now();
    HttpResult health = s->Get("/health");
    const double health_ms = MsSince(t0);
    EXPECT_EQ(health.status, 200) << health.body;
    EXPECT_LT(health_ms, 1000.0);
    t0 = Clock::now();
    HttpResult done = s->Post("/v1/completions", {{"prompt", "hello"}, {"max_tokens", 4}});
    const double completion_ms = MsSince(t0);
    EXPECT_EQ(done.status, 200) << done.body;
    EXPECT_LT(completion_ms, 1000.0);
    std::printf("with 1,000 idle + 200 trickling sockets: /health %.1f ms, completion %.1f ms\n",
                health_ms, completion_ms);
  }
  // The hogs are still connected (not dropped to make room).
  EXPECT_EQ(hogs.back()->ReadResponse(0), "");
}

// A connection that sends nothing is closed after --idle-timeout.
TEST(Connections, IdleConnectionsAreClosedAfterTheIdleTimeout) {
  std::string error;
  auto s = ServerProcess::Start(TinyChatModel(), {"--idle-timeout", "1"}, &error);
  ASSERT_NE(s, nullptr) << error;
  RawConnection c(s->port());
  ASSERT_TRUE(c.ok());
  const auto t0 = Clock::now();
  EXPECT_EQ(c.ReadResponse(5000), "");  // EOF, no response
  const double ms = MsSince(t0);
  EXPECT_GE(ms, 900.0);
  EXPECT_LT(ms, 3000.0);
}

// Finding 2's trickler: one header byte every 200 ms never hits the 30 s
// per-read timeout, but --header-timeout bounds the whole header; a
// connection that has sent a request is not subject to it.
TEST(Connections, TricklingHeadersAreCutAtTheHeaderTimeout) {
  std::string error;
  auto s = ServerProcess::Start(
      TinyChatModel(), {"--header-timeout", "1", "--read-timeout", "30", "--idle-timeout", "5"},
      &error);
  ASSERT_NE(s, nullptr) << error;
  RawConnection served(s->port());
  const std::string get = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  ASSERT_TRUE(served.Send(get));
  EXPECT_EQ(ParseRawResponse(served.ReadResponse(5000)).status, 200);
  RawConnection slow(s->port());
  const std::string request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " +
                              std::string(200, 'x') + "\r\n\r\n";
  const auto t0 = Clock::now();
  bool cut = false;
  for (size_t i = 0; i < request.size() - 4 && MsSince(t0) < 10000; ++i) {
    if (!slow.Send(request.substr(i, 1))) {
      cut = true;
      break;
    }
    pollfd p{slow.fd(), POLLIN, 0};
    if (poll(&p, 1, 200) > 0) {  // EOF: the server closed it
      cut = true;
      break;
    }
  }
  const double ms = MsSince(t0);
  EXPECT_TRUE(cut) << "the trickling connection was still open after " << ms << " ms";
  EXPECT_GE(ms, 900.0);
  EXPECT_LT(ms, 4000.0);
  // The connection that had sent a request 1+ s ago still works.
  ASSERT_TRUE(served.Send(get));
  EXPECT_EQ(ParseRawResponse(served.ReadResponse(5000)).status, 200);
}

// One client address may hold --max-connections-per-client connections
// that have sent a request; more get 429 and are closed; a closed one frees
// its place.
TEST(Connections, ConnectionsPerClientAddressAreCapped) {
  std::string error;
  auto s = ServerProcess::Start(TinyChatModel(), {"--max-connections-per-client", "2"}, &error);
  ASSERT_NE(s, nullptr) << error;
  const std::string get = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  auto a = std::make_unique<RawConnection>(s->port());
  auto b = std::make_unique<RawConnection>(s->port());
  for (RawConnection* c : {a.get(), b.get()}) {
    ASSERT_TRUE(c->Send(get));
    EXPECT_EQ(ParseRawResponse(c->ReadResponse(5000)).status, 200);
  }
  // A and B stay open (keep-alive): a third connection is refused.
  RawConnection third(s->port());
  ASSERT_TRUE(third.Send(get));
  RawResponse refused = ParseRawResponse(third.ReadResponse(5000));
  EXPECT_EQ(refused.status, 429) << refused.body;
  EXPECT_EQ(refused.json["error"]["code"], "too_many_connections") << refused.body;
  // A keep-alive connection already counted keeps working.
  ASSERT_TRUE(a->Send(get));
  EXPECT_EQ(ParseRawResponse(a->ReadResponse(5000)).status, 200);
  a.reset();  // closes: B and one new connection fit
  int status = -1;
  for (int i = 0; i < 100 && status != 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    RawConnection next(s->port());
    ASSERT_TRUE(next.Send(get));
    status = ParseRawResponse(next.ReadResponse(5000)).status;
  }
  EXPECT_EQ(status, 200);
}

}  // namespace
}  // namespace reprise::server::testing
