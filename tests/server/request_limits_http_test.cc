// Black-box tests of request parsing that cannot be pushed over (issue 16,
// findings 1, 3, 4 and 7): each finding's repro, against the real server.
// A 1 MiB body limit (--max-body-bytes) keeps the over-limit cases small.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "server/server_test_util.h"

namespace reprise::server::testing {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

class RequestLimitsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string error;
    // --read-timeout 30: the framing cases must be answered long before it.
    server_ = ServerProcess::Start(TinyChatModel(),
                                   {"--max-body-bytes", "1MiB", "--read-timeout", "30"}, &error)
                  .release();
    ASSERT_NE(server_, nullptr) << error;
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr); }
  void TearDown() override {
    // Whatever a test sent, the server still answers.
    HttpResult h = S().Get("/health");
    EXPECT_EQ(h.status, 200) << h.body;
  }
  static ServerProcess& S() { return *server_; }
  static ServerProcess* server_;
};
ServerProcess* RequestLimitsTest::server_ = nullptr;

void ExpectErrorEnvelope(int status, const Json& j, int want, const std::string& body) {
  EXPECT_EQ(status, want) << body;
  ASSERT_TRUE(j.is_object() && j.contains("error")) << body;
  for (const char* key : {"message", "type", "param", "code"}) {
    EXPECT_TRUE(j["error"].contains(key)) << key << " missing in " << body;
  }
}

std::string Nested(int depth) {
  return "{\"x\":" + std::string(depth, '[') + std::string(depth, ']') + ",\"content\":\"a\"}";
}

std::string RawPost(const std::string& path, const std::string& extra_headers,
                    const std::string& body) {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
         extra_headers + "\r\n" + body;
}

// Finding 1: an array nested 50,000 deep crashed every POST route.
TEST_F(RequestLimitsTest, DeepNestingIs400OnEveryPostRoute) {
  const std::string body = Nested(50000);
  for (const char* path :
       {"/tokenize", "/detokenize", "/v1/chat/completions", "/v1/completions"}) {
    HttpResult r = S().PostRaw(path, body);
    ExpectErrorEnvelope(r.status, r.json, 400, r.body);
    EXPECT_NE(r.body.find("deeper than 128"), std::string::npos) << path << ": " << r.body;
  }
}

// Found by hand after finding 1's fix: tool-call arguments arrive as a JSON
// *string* (what the OpenAI SDK sends), which the body's bounded parse does
// not see into; parsed without a bound, an object nested 100,000 deep in it
// killed the server. Past the bound the arguments stay a string.
TEST_F(RequestLimitsTest, DeeplyNestedToolCallArgumentsDoNotCrashTheServer) {
  const int depth = 100000;
  const std::string args = "{\"a\":" + std::string(depth, '[') + std::string(depth, ']') + "}";
  const Json body = {
      {"messages",
       Json::array({{{"role", "user"}, {"content", "hi"}},
                    {{"role", "assistant"},
                     {"content", nullptr},
                     {"tool_calls", Json::array({{{"id", "c1"},
                                                   {"type", "function"},
                                                   {"function", {{"name", "f"}, {"arguments", args}}}}})}},
                    {{"role", "tool"}, {"tool_call_id", "c1"}, {"content", "ok"}}})},
      {"max_tokens", 2}};
  HttpResult r = S().PostRaw("/v1/chat/completions", body.dump());
  EXPECT_TRUE(r.status == 200 || r.status == 400) << r.status << ": " << r.body.substr(0, 300);
  HttpResult health = S().Get("/health");
  EXPECT_EQ(health.status, 200) << "the server did not survive the request";
}

TEST_F(RequestLimitsTest, DepthLimitIsExactly128Levels) {
  // The outer object is level 1: 127 arrays inside it make 128 levels.
  HttpResult ok = S().PostRaw("/tokenize", Nested(127));
  EXPECT_EQ(ok.status, 200) << ok.body;
  HttpResult deep = S().PostRaw("/tokenize", Nested(128));
  ExpectErrorEnvelope(deep.status, deep.json, 400, deep.body);
}

// Finding 3: the body limit did not apply to chunked bodies (200 MB taken in).
TEST_F(RequestLimitsTest, ChunkedBodyOverTheLimitIs413AsSoonAsItPassesIt) {
  RawConnection c(S().port());
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c.Send("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"));
  // 64 KiB chunks of '[' (the 30 MB-of-'[' body, chunked): stop sending as
  // soon as an answer is there; it must come before 2 MiB were sent.
  const std::string chunk = "10000\r\n" + std::string(0x10000, '[') + "\r\n";
  std::string got;
  int sent_chunks = 0;
  for (; sent_chunks < 32 * 16; ++sent_chunks) {  // up to 32 MiB
    if (!c.Send(chunk)) break;  // the server closed after answering
    got = c.ReadResponse(sent_chunks < 16 ? 0 : 20);
    if (!got.empty()) {
      // A non-blocking read can catch the answer half-arrived: read the rest
      // (the server closes the connection after it).
      got += c.ReadResponse(2000);
      break;
    }
  }
  if (got.empty()) got = c.ReadResponse(5000);
  RawResponse r = ParseRawResponse(got);
  ExpectErrorEnvelope(r.status, r.json, 413, got);
  EXPECT_LE(sent_chunks, 32) << "the 413 came only after " << sent_chunks << " x 64 KiB";
}

TEST_F(RequestLimitsTest, ContentLengthOverTheLimitIs413WithoutReadingTheBody) {
  RawConnection c(S().port());
  ASSERT_TRUE(c.ok());
  const auto t0 = Clock::now();
  // Announce 100 MiB, send none of it: the answer comes at once.
  ASSERT_TRUE(c.Send(RawPost("/v1/completions", "Content-Length: 104857600\r\n", "")));
  RawResponse r = ParseRawResponse(c.ReadResponse(5000));
  ExpectErrorEnvelope(r.status, r.json, 413, r.body);
  EXPECT_LT(MsSince(t0), 1000.0);
  // httplib's client writes the whole body before reading: it gets the 413 too.
  HttpResult big = S().PostRaw("/v1/completions", std::string((1 << 20) + 1, ' '));
  ExpectErrorEnvelope(big.status, big.json, 413, big.body);
}

// Finding 7: negative or overflowing Content-Length waited for the 30 s
// read timeout; a body shorter than announced is answered when the client
// stops sending.
TEST_F(RequestLimitsTest, MalformedContentLengthIsAnsweredAtOnce) {
  for (const char* length : {"-1", "99999999999999999999999", "12abc", "+5", "1 2"}) {
    RawConnection c(S().port());
    ASSERT_TRUE(c.ok());
    const auto t0 = Clock::now();
    ASSERT_TRUE(c.Send(RawPost("/tokenize", std::string("Content-Length: ") + length + "\r\n",
                               "{\"content\":\"a\"}")));
    RawResponse r = ParseRawResponse(c.ReadResponse(5000));
    ExpectErrorEnvelope(r.status, r.json, 400, r.body);
    EXPECT_LT(MsSince(t0), 1000.0) << "Content-Length: " << length;
  }
  // Both framings at once (request smuggling) and no framing at all.
  {
    RawConnection c(S().port());
    ASSERT_TRUE(c.Send(RawPost("/tokenize", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                               "0\r\n\r\n")));
    RawResponse r = ParseRawResponse(c.ReadResponse(5000));
    ExpectErrorEnvelope(r.status, r.json, 400, r.body);
  }
  {
    RawConnection c(S().port());
    const auto t0 = Clock::now();
    ASSERT_TRUE(c.Send(RawPost("/tokenize", "", "")));
    RawResponse r = ParseRawResponse(c.ReadResponse(5000));
    ExpectErrorEnvelope(r.status, r.json, 411, r.body);
    EXPECT_LT(MsSince(t0), 1000.0);
  }
}

TEST_F(RequestLimitsTest, BodyShorterThanAnnouncedIsAnsweredWhenTheClientStops) {
  RawConnection c(S().port());
  ASSERT_TRUE(c.ok());
  const auto t0 = Clock::now();
  ASSERT_TRUE(c.Send(RawPost("/tokenize", "Content-Length: 100\r\n", "{\"content\":\"a\"}")));
  c.ShutdownWrite();
  RawResponse r = ParseRawResponse(c.ReadResponse(5000));
  ExpectErrorEnvelope(r.status, r.json, 400, r.body);
  EXPECT_LT(MsSince(t0), 1000.0);
}

// Finding 4: 30 MB of '[' took 14.7 s and 2.3 GB; 200,000 keys took 31.9 s.
TEST_F(RequestLimitsTest, ParsingIsLinearInTimeAndMemory) {
  std::string error;
  auto big = ServerProcess::Start(TinyChatModel(), {}, &error);  // the default 32 MiB limit
  ASSERT_NE(big, nullptr) << error;
  const int64_t rss_before = PeakRssBytes(big->pid());
  ASSERT_GT(rss_before, 0);
  auto t0 = Clock::now();
  HttpResult brackets = big->PostRaw("/v1/chat/completions", std::string(30'000'000, '['));
  const double brackets_ms = MsSince(t0);
  ExpectErrorEnvelope(brackets.status, brackets.json, 400, brackets.body.substr(0, 300));
  // The body itself is 30 MB; parsing it adds next to nothing.
  const int64_t rss_growth = PeakRssBytes(big->pid()) - rss_before;
  EXPECT_LT(rss_growth, int64_t{150} << 20) << "peak RSS grew by " << rss_growth;
  EXPECT_LT(brackets_ms, 3000.0);

  std::string keys = "{\"prompt\":\"hi\",\"max_tokens\":1,\"logit_bias\":{";
  for (int i = 0; i < 200000; ++i) {
    if (i > 0) keys += ',';
    keys += "\"" + std::to_string(i) + "\":1";
  }
  keys += "}}";
  t0 = Clock::now();
  HttpResult r = big->PostRaw("/v1/completions", keys);
  const double keys_ms = MsSince(t0);
  // The ids pass the byte vocabulary's size: a 400 naming logit_bias.
  ExpectErrorEnvelope(r.status, r.json, 400, r.body);
  EXPECT_EQ(r.json["error"]["param"], "logit_bias") << r.body;
  EXPECT_LT(keys_ms, 3000.0);
  std::printf("30 MB of '[': %.0f ms, peak RSS +%.1f MiB; 200,000-key logit_bias: %.0f ms\n",
              brackets_ms, static_cast<double>(rss_growth) / (1 << 20), keys_ms);
}

}  // namespace
}  // namespace reprise::server::testing
