// Black-box tests of the prompt cache rules (issue 4), through HTTP only:
// hits on a follow-up turn, a fork and a shared system prompt; a prefix
// shared with a request still in flight; exact repeat;
// LRU order with --prompt-cache-size 2; size 0 keeps nothing; the byte bound
// holds under a stream of distinct conversations and under many requests
// asking for 32000 output tokens; a disconnect mid-stream
// cancels and releases blocks; no leaked blocks after load; the same tokens
// with a cache hit as with the cache off. The tiny model's vocabulary is
// byte-level, so a prompt of N ASCII characters is exactly N tokens.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "server/server_test_util.h"
#include "testing/fixtures.h"

namespace reprise::server::testing {
namespace {

std::unique_ptr<ServerProcess> StartOrDie(const std::string& model, std::vector<std::string> args) {
  std::string error;
  auto s = ServerProcess::Start(model, args, &error);
  EXPECT_NE(s, nullptr) << error;
  return s;
}

// Printable text of exactly n bytes, different for each seed from its first byte.
std::string Text(int seed, size_t n) {
  static const char* kWords[] = {"alpha", "bravo", "charlie", "delta",  "echo", "foxtrot",
                                 "golf",  "hotel", "india",   "juliet", "kilo", "lima"};
  std::string s = std::string(1, static_cast<char>('A' + seed % 26)) + std::to_string(seed) + ":";
  for (int i = 0; s.size() < n; ++i) {
    s += kWords[(seed * 7 + i * 3) % 12];
    s += ' ';
  }
  s.resize(n);
  return s;
}

Json Completion(const std::string& prompt, int max_tokens) {
  return {{"prompt", prompt},
          {"max_tokens", max_tokens},
          {"temperature", 0},
          {"logit_bias", {{"97", 100}, {"98", 100}}}};
}

int Cached(const HttpResult& r) {
  EXPECT_EQ(r.status, 200) << r.body;
  if (r.status != 200) return -1;
  return r.json["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>();
}

// POSTs `body` to `path` and hands each received chunk to `on_chunk`;
// returning false closes the connection (a client that walks away).
void PostStreaming(httplib::Client* client, const std::string& path, const Json& body,
                   const std::function<bool()>& on_chunk) {
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return on_chunk(); };
  client->send(req);
}

// At rest, the pool holds exactly the cache's blocks: nothing leaked.
void ExpectNoLeakedBlocks(const ServerProcess& s) {
  ASSERT_TRUE(s.WaitIdle());
  HttpResult c = s.Get("/v1/cache");
  ASSERT_EQ(c.status, 200);
  EXPECT_EQ(c.json["kv_blocks_in_use"], c.json["cached_blocks"]) << c.body;
  EXPECT_EQ(c.json["active_requests"], 0);
  EXPECT_EQ(s.Metric("reprise_kv_blocks_in_use"), s.Metric("reprise_prompt_cache_blocks"));
}

TEST(PromptCacheHttpTest, FollowUpTurnReusesTheWholeConversation) {
  auto s = StartOrDie(TinyChatModel(), {});
  ASSERT_NE(s, nullptr);
  Json messages = {{{"role", "system"}, {"content", "You are a test."}},
                   {{"role", "user"}, {"content", Text(1, 300)}}};
  Json body = {{"messages", messages},
               {"max_tokens", 20},
               {"temperature", 0},
               {"logit_bias", {{"97", 100}, {"98", 100}}}};
  HttpResult t1 = s->Post("/v1/chat/completions", body);
  ASSERT_EQ(t1.status, 200) << t1.body;
  EXPECT_EQ(Cached(t1), 0);
  const int prompt1 = t1.json["usage"]["prompt_tokens"];
  messages.push_back(
      {{"role", "assistant"}, {"content", t1.json["choices"][0]["message"]["content"]}});
  messages.push_back({{"role", "user"}, {"content", "And then?"}});
  body["messages"] = messages;
  HttpResult t2 = s->Post("/v1/chat/completions", body);
  // The whole first turn (prompt + the 19 generated tokens whose KV exists).
  EXPECT_GE(Cached(t2), prompt1 + 19);
  EXPECT_LT(Cached(t2), t2.json["usage"]["prompt_tokens"].get<int>());
  EXPECT_EQ(s->Metric("reprise_prompt_cache_hits_total"), 1);
  ExpectNoLeakedBlocks(*s);
}

TEST(PromptCacheHttpTest, ForkedConversationReusesTheCommonPrefixSharingBlocks) {
  auto s = StartOrDie(TinyChatModel(), {});
  ASSERT_NE(s, nullptr);
  const std::string common = Text(2, 301);  // 9 full 32-token blocks + 13 tokens
  ASSERT_EQ(Cached(s->Post("/v1/completions", Completion(common + "ending one", 4))), 0);
  HttpResult fork = s->Post("/v1/completions", Completion(common + "second end", 4));
  // Full blocks are shared and the partial one copied: exactly the common part.
  EXPECT_EQ(Cached(fork), 301);
  ASSERT_TRUE(s->WaitIdle());  // the insert follows the response
  HttpResult cache = s->Get("/v1/cache");
  ASSERT_EQ(cache.json["entries"], 2) << cache.body;
  for (const Json& e : cache.json["data"])
    EXPECT_GE(e["shared_blocks"].get<int>(), 9) << cache.body;
  // Shared, not copied: 9 shared blocks + each entry's own tail blocks.
  EXPECT_LT(cache.json["cached_blocks"].get<int>(), 2 * 10) << cache.body;
  ExpectNoLeakedBlocks(*s);
}

TEST(PromptCacheHttpTest, NewConversationSharingOnlyTheSystemPromptHits) {
  auto s = StartOrDie(TinyChatModel(), {});
  ASSERT_NE(s, nullptr);
  const std::string system = Text(3, 500);
  auto chat = [&](const std::string& user) {
    return Json{
        {"messages",
         {{{"role", "system"}, {"content", system}}, {{"role", "user"}, {"content", user}}}},
        {"max_tokens", 3},
        {"temperature", 0}};
  };
  ASSERT_EQ(Cached(s->Post("/v1/chat/completions", chat("first question"))), 0);
  HttpResult prefix =
      s->Post("/tokenize",
              {{"content", "<|im_start|>system\n" + system + "<|im_end|>\n<|im_start|>user\n"}});
  const int shared = static_cast<int>(prefix.json["tokens"].size());
  EXPECT_EQ(shared, 1 + 7 + 500 + 1 + 1 + 1 + 5);
  EXPECT_EQ(Cached(s->Post("/v1/chat/completions", chat("second one"))), shared);
  EXPECT_EQ(Cached(s->Post("/v1/chat/completions", chat("third time"))), shared);
  ExpectNoLeakedBlocks(*s);
}

TEST(PromptCacheHttpTest, ExactRepeatWorksAndReportsCachedTokens) {
  auto s = StartOrDie(TinyChatModel(), {});
  ASSERT_NE(s, nullptr);
  const Json body = Completion(Text(4, 200), 6);
  HttpResult a = s->Post("/v1/completions", body);
  for (int i = 0; i < 3; ++i) {
    HttpResult b = s->Post("/v1/completions", body);
    ASSERT_EQ(b.status, 200) << b.body;
    // At most prompt - 1: the last prompt token is recomputed for its logits.
    EXPECT_EQ(Cached(b), 199);
    EXPECT_EQ(b.json["choices"][0]["text"], a.json["choices"][0]["text"]);
  }
  Json streamed = body;
  streamed["stream"] = true;
  streamed["stream_options"] = {{"include_usage", true}};
  HttpResult st = s->Post("/v1/completions", streamed);
  bool done = false;
  std::vector<Json> chunks = ParseSse(st.body, &done);
  ASSERT_TRUE(done) << st.body;
  EXPECT_EQ(chunks.back()["usage"]["prompt_tokens_details"]["cached_tokens"], 199);
  EXPECT_EQ(StreamedText(chunks), a.json["choices"][0]["text"]);
  EXPECT_EQ(s->Get("/health").status, 200);
  ExpectNoLeakedBlocks(*s);
}

TEST(PromptCacheHttpTest, LruEvictsLeastRecentlyUsedAndAHitRefreshesRecency) {
  auto s = StartOrDie(TinyChatModel(), {"--prompt-cache-size", "2"});
  ASSERT_NE(s, nullptr);
  const std::string a = Text(10, 100), b = Text(11, 100), c = Text(12, 100);
  auto ask = [&](const std::string& p) {
    const int cached = Cached(s->Post("/v1/completions", Completion(p, 1)));
    EXPECT_TRUE(s->WaitIdle());  // stats are refreshed after the response
    EXPECT_LE(s->Get("/v1/cache").json["entries"].get<int>(), 2);
    return cached;
  };
  EXPECT_EQ(ask(a), 0);
  EXPECT_EQ(ask(b), 0);
  EXPECT_GT(ask(a), 0);  // hit: A is now more recent than B
  EXPECT_EQ(ask(c), 0);  // evicts B, the least recently used
  EXPECT_GE(s->Metric("reprise_prompt_cache_evictions_total"), 1);
  EXPECT_GT(ask(a), 0);  // A survived
  EXPECT_EQ(ask(b), 0);  // B was evicted
  EXPECT_EQ(s->Get("/v1/cache").json["entries"], 2);
  ExpectNoLeakedBlocks(*s);
}

// Issue 14 item 8, exactly as reported: with room for two entries, a third
// prompt that shares only BOS with the first two copies that one row from one
// of them; the copy must not make that entry the most recent, so the entry
// evicted is the oldest ("Lily saw a cat"), and "Ben liked to run" still hits.
TEST(PromptCacheHttpTest, PartialBlockCopyDoesNotRefreshTheEntryItCameFrom) {
  const std::string model = reprise::testing::FixturePath("stories260K/stories260K.gguf");
  REQUIRE_FIXTURE(model);
  auto s = StartOrDie(model, {"--prompt-cache-size", "2"});
  ASSERT_NE(s, nullptr);
  auto ask = [&](const std::string& prompt) {
    const int cached = Cached(s->Post(
        "/v1/completions", {{"prompt", prompt}, {"max_tokens", 4}, {"temperature", 0}}));
    EXPECT_TRUE(s->WaitIdle());
    return cached;
  };
  EXPECT_EQ(ask("Lily saw a cat"), 0);
  EXPECT_EQ(ask("Ben liked to run"), 1);  // BOS
  EXPECT_EQ(ask("Once upon a time"), 1);
  const int ben_tokens =
      static_cast<int>(s->Post("/tokenize", {{"content", "Ben liked to run"}, {"add_special", true}})
                           .json["tokens"]
                           .size());
  ASSERT_EQ(ben_tokens, 8);  // BOS + 7
  // The same prompt again: all but its last token (recomputed for its logits).
  EXPECT_EQ(ask("Ben liked to run"), ben_tokens - 1);
  EXPECT_EQ(ask("Lily saw a cat"), 1);  // the evicted one
}

TEST(PromptCacheHttpTest, SizeZeroDisablesCachingCompletely) {
  auto s = StartOrDie(TinyChatModel(), {"--prompt-cache-size", "0"});
  ASSERT_NE(s, nullptr);
  const Json body = Completion(Text(5, 150), 4);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Cached(s->Post("/v1/completions", body)), 0);
  Json chat = {{"messages", {{{"role", "user"}, {"content", Text(5, 150)}}}}, {"max_tokens", 2}};
  for (int i = 0; i < 2; ++i) EXPECT_EQ(Cached(s->Post("/v1/chat/completions", chat)), 0);
  ASSERT_TRUE(s->WaitIdle());
  HttpResult cache = s->Get("/v1/cache");
  EXPECT_EQ(cache.json["entries"], 0);
  EXPECT_EQ(cache.json["kv_blocks_in_use"], 0) << cache.body;
  EXPECT_EQ(s->Metric("reprise_prompt_cache_hits_total"), 0);
  EXPECT_EQ(s->Metric("reprise_prompt_tokens_cached_total"), 0);
  EXPECT_EQ(s->Metric("reprise_kv_bytes_in_use"), 0);
}

TEST(PromptCacheHttpTest, ByteBoundHoldsUnderAStreamOfDistinctConversations) {
  // 256 B/token x 32-token blocks = 8 KiB blocks; 160K = 20 blocks = 640 tokens.
  auto s = StartOrDie(TinyChatModel(), {"--prompt-cache-bytes", "160K", "--prompt-cache-size",
                                        "100", "--parallel", "2"});
  ASSERT_NE(s, nullptr);
  const double limit = s->Metric("reprise_prompt_cache_bytes_limit");
  ASSERT_EQ(limit, 160 * 1024);
  std::atomic<bool> running{true};
  std::atomic<int> over{0}, samples{0};
  std::thread poller([&] {
    auto client = s->Client();
    while (running) {
      auto r = client->Get("/metrics");
      if (r && r->status == 200) {
        ++samples;
        if (MetricValue(r->body, "reprise_kv_bytes_in_use") > limit) ++over;
        if (MetricValue(r->body, "reprise_prompt_cache_bytes") > limit) ++over;
      }
    }
  });
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int t = 0; t < 2; ++t) {
    clients.emplace_back([&, t] {
      for (int i = 0; i < 8; ++i) {
        if (Cached(s->Post("/v1/completions", Completion(Text(100 + t * 8 + i, 150), 8))) >= 0)
          ++ok;
      }
    });
  }
  for (auto& c : clients) c.join();
  running = false;
  poller.join();
  EXPECT_EQ(ok, 16);
  EXPECT_GT(samples, 10);
  EXPECT_EQ(over, 0) << "KV bytes exceeded the limit in " << over << " of " << samples
                     << " samples";
  EXPECT_GT(s->Metric("reprise_prompt_cache_evictions_total"), 0);
  EXPECT_LT(s->Metric("reprise_prompt_cache_entries"), 16);
  EXPECT_LE(s->Metric("reprise_kv_bytes_in_use"), limit);
  // A request that cannot fit even with the cache empty gets a clear error.
  HttpResult big = s->Post("/v1/completions", Completion(Text(200, 700), 8));
  EXPECT_EQ(big.status, 400) << big.body;
  EXPECT_EQ(big.json["error"]["code"], "exceeds_kv_budget") << big.body;
  // And the server still serves.
  EXPECT_GE(Cached(s->Post("/v1/completions", Completion(Text(201, 100), 4))), 0);
  ExpectNoLeakedBlocks(*s);
}

// Agents ask for max_tokens 32000 whatever the context. KV is reserved as a
// sequence grows, so 12 such requests run together on a budget one of them
// could fill alone: under pressure the newest is preempted and resumes, and
// every request ends with finish reason "length" and exactly the text it
// generates alone, inside the byte bound.
TEST(PromptCacheHttpTest, ManyMaxTokens32000RequestsOnASmallBudgetAllFinish) {
  // 8 KiB blocks of 32 tokens; 160K = 20 blocks = 640 tokens for everything.
  auto s = StartOrDie(TinyChatModel(), {"--prompt-cache-bytes", "160K", "--prompt-cache-size",
                                        "4", "--parallel", "6"});
  ASSERT_NE(s, nullptr);
  const double limit = s->Metric("reprise_prompt_cache_bytes_limit");
  auto body = [](int i) {
    return Json{{"prompt", Text(300 + i, 60 + 7 * i)}, {"max_tokens", 32000},
                {"temperature", 0}, {"ignore_eos", true}};
  };
  constexpr int kN = 12;
  std::atomic<bool> running{true};
  std::atomic<int> over{0};
  std::thread poller([&] {
    auto client = s->Client();
    while (running) {
      auto r = client->Get("/metrics");
      if (r && r->status == 200 && MetricValue(r->body, "reprise_kv_bytes_in_use") > limit) ++over;
    }
  });
  std::vector<HttpResult> results(kN);
  std::vector<std::thread> clients;
  for (int i = 0; i < kN; ++i) {
    clients.emplace_back([&, i] { results[i] = s->Post("/v1/completions", body(i)); });
  }
  for (auto& c : clients) c.join();
  running = false;
  poller.join();
  EXPECT_EQ(over, 0);
  EXPECT_GT(s->Metric("reprise_preemptions_total"), 0);
  EXPECT_EQ(s->Metric("reprise_requests_failed_total"), 0);
  // Continuous batching at work: many steps advanced several sequences.
  const double steps = s->Metric("reprise_batch_sequences_count");
  EXPECT_GT(steps, 0);
  EXPECT_LT(s->Metric("reprise_batch_sequences_bucket{le=\"1\"}"), steps);
  EXPECT_EQ(s->Metric("reprise_batch_sequences_bucket{le=\"+Inf\"}"), steps);
  EXPECT_GT(s->Metric("reprise_batch_sequences_sum"), steps);
  EXPECT_GE(s->Metric("reprise_batch_tokens_total"), s->Metric("reprise_batch_sequences_sum"));
  for (int i = 0; i < kN; ++i) {
    ASSERT_EQ(results[i].status, 200) << i << ": " << results[i].body;
    const Json& r = results[i].json;
    EXPECT_EQ(r["choices"][0]["finish_reason"], "length") << i;
    // Clamped to what the pool holds alone: prompt + output - 1 = 640 positions.
    EXPECT_EQ(r["usage"]["prompt_tokens"].get<int>() + r["usage"]["completion_tokens"].get<int>(),
              641)
        << i;
  }
  ExpectNoLeakedBlocks(*s);
  // Alone, with nothing else running, each generates the same text.
  for (int i = 0; i < kN; i += 5) {
    HttpResult solo = s->Post("/v1/completions", body(i));
    ASSERT_EQ(solo.status, 200) << solo.body;
    EXPECT_EQ(solo.json["choices"][0]["text"], results[i].json["choices"][0]["text"]) << i;
  }
}

// --kv-type q8_0: about half of F16's bytes per token (so the same
// --prompt-cache-bytes holds about twice the tokens), and a cache hit still
// generates exactly what a cold run with the same KV type does.
TEST(PromptCacheHttpTest, Q8KvHalvesBytesPerTokenAndHitsStayExact) {
  auto f16 = StartOrDie(TinyChatModel(), {"--kv-type", "f16", "--prompt-cache-bytes", "1M"});
  auto q8 = StartOrDie(TinyChatModel(), {"--kv-type", "q8_0", "--prompt-cache-bytes", "1M"});
  auto cold = StartOrDie(TinyChatModel(), {"--kv-type", "q8_0", "--prompt-cache-size", "0"});
  ASSERT_TRUE(f16 != nullptr && q8 != nullptr && cold != nullptr);
  const double b16 = f16->Metric("reprise_kv_bytes_per_token");
  const double b8 = q8->Metric("reprise_kv_bytes_per_token");
  EXPECT_GT(b16, 0);
  // The tiny model's heads are 16 wide: groups of 16 values, 18 bytes each
  // (at head sizes >= 32: 34 bytes per 32 values).
  EXPECT_EQ(b8, b16 * 18 / 32) << b8 << " vs " << b16;
  EXPECT_GE(q8->Metric("reprise_kv_blocks_capacity"),
            std::floor(f16->Metric("reprise_kv_blocks_capacity") * 32 / 18) - 1);
  EXPECT_NE(q8->Log().find("Q8_0"), std::string::npos);
  const std::string turn1 = Text(40, 200);
  Json first = {{"prompt", turn1}, {"max_tokens", 8}, {"temperature", 0}, {"ignore_eos", true}};
  ASSERT_EQ(Cached(q8->Post("/v1/completions", first)), 0);
  Json next = {{"prompt", turn1 + Text(41, 60)}, {"max_tokens", 16}, {"temperature", 0},
               {"ignore_eos", true}, {"logprobs", 1}};
  HttpResult hit = q8->Post("/v1/completions", next);
  HttpResult miss = cold->Post("/v1/completions", next);
  EXPECT_EQ(Cached(hit), 200);  // 6 shared blocks and a partial one copied
  EXPECT_EQ(Cached(miss), 0);
  EXPECT_EQ(hit.json["choices"][0]["text"], miss.json["choices"][0]["text"]);
  EXPECT_EQ(hit.json["choices"][0]["logprobs"]["token_logprobs"],
            miss.json["choices"][0]["logprobs"]["token_logprobs"]);
  // A bad value is a clear startup error.
  std::string error;
  EXPECT_EQ(ServerProcess::Start(TinyChatModel(), {"--kv-type", "q4"}, &error), nullptr);
  EXPECT_NE(error.find("q8_0"), std::string::npos) << error;
}

TEST(PromptCacheHttpTest, DisconnectMidStreamCancelsAndReleasesBlocks) {
  auto s = StartOrDie(SlowChatModel(), {});
  ASSERT_NE(s, nullptr);
  const double generated_before = s->Metric("reprise_generated_tokens_total");
  const int max_tokens = 4000;
  Json body = {
      {"prompt", Text(6, 64)}, {"max_tokens", max_tokens}, {"stream", true}, {"ignore_eos", true}};
  int chunks = 0;
  PostStreaming(s->Client().get(), "/v1/completions", body, [&] { return ++chunks < 5; });
  EXPECT_GE(chunks, 5);
  ASSERT_TRUE(s->WaitIdle(60000));
  const double generated = s->Metric("reprise_generated_tokens_total") - generated_before;
  EXPECT_LT(generated, max_tokens / 2) << "the generation was not cancelled";
  EXPECT_NE(s->Log().find("completion"), std::string::npos);
  ExpectNoLeakedBlocks(*s);
}

// A request that shares a long prefix with one still generating reuses that
// one's KV (its full blocks are published to the cache once computed), not
// only KV of finished requests.
TEST(PromptCacheHttpTest, ARequestSharingAPrefixWithOneInFlightReusesItsKv) {
  auto s = StartOrDie(SlowChatModel(), {"--parallel", "2"});
  ASSERT_NE(s, nullptr);
  const std::string shared = Text(30, 256);
  std::atomic<bool> streaming{false}, stop{false};
  std::thread leader([&] {
    Json body = {{"prompt", shared + Text(31, 20)},
                 {"max_tokens", 3000},
                 {"stream", true},
                 {"ignore_eos", true}};
    // Returns when `stop` closes the connection (or the stream ends).
    PostStreaming(s->Client().get(), "/v1/completions", body, [&] {
      streaming = true;  // its prompt is computed: it is generating
      return !stop.load();
    });
  });
  for (int i = 0; i < 6000 && !streaming; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(streaming.load()) << "the first request never streamed";
  HttpResult r = s->Post("/v1/completions", Completion(shared + Text(32, 20), 5));
  stop = true;
  leader.join();
  // The 256 shared characters (tokens) in full KV blocks: at least 224 of them.
  EXPECT_GE(Cached(r), 224) << r.body;
  ExpectNoLeakedBlocks(*s);
}

TEST(PromptCacheHttpTest, NoLeakedBlocksAfterConcurrentMixedLoad) {
  auto s = StartOrDie(TinyChatModel(), {"--prompt-cache-size", "4", "--parallel", "4"});
  ASSERT_NE(s, nullptr);
  const std::string system = Text(20, 200);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      auto client = s->Client();
      for (int i = 0; i < 6; ++i) {
        Json body = {{"messages",
                      {{{"role", "system"}, {"content", system}},
                       {{"role", "user"}, {"content", Text(t * 10 + i, 40 + 10 * i)}}}},
                     {"max_tokens", 5 + i},
                     {"stream", (i % 2) == 0},
                     {"temperature", (t % 2) ? 0.0 : 0.9}};
        if (i == 3) body["stop"] = {"a", "b", "c"};
        if (i == 4) {  // a prompt past the context: refused with context_length_exceeded
          body["messages"][1]["content"] = Text(t * 10 + i, 2000);
        }
        if (i == 5) {  // a client that walks away mid-stream
          body["stream"] = true;
          body["max_tokens"] = 300;
          int n = 0;
          PostStreaming(client.get(), "/v1/chat/completions", body, [&] { return ++n < 2; });
          continue;
        }
        auto r = client->Post("/v1/chat/completions", body.dump(), "application/json");
        const int want = i == 4 ? 400 : 200;
        if (!r || r->status != want) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, 0);
  ExpectNoLeakedBlocks(*s);
  EXPECT_LE(s->Metric("reprise_prompt_cache_entries"), 4);
  EXPECT_EQ(s->Get("/health").status, 200);
}

// Greedy and seeded sampling: the same tokens (and log-probabilities) whether
// the prompt's KV came from the cache or was computed from scratch.
TEST(PromptCacheHttpTest, CacheHitGivesTheSameTokensAsCacheOff) {
  auto cached = StartOrDie(TinyChatModel(), {});
  auto uncached = StartOrDie(TinyChatModel(), {"--prompt-cache-size", "0"});
  ASSERT_NE(cached, nullptr);
  ASSERT_NE(uncached, nullptr);
  const std::string first = Text(7, 333);
  const std::string second = first + Text(8, 150);
  for (const double temperature : {0.0, 1.0}) {
    Json body = {{"prompt", second}, {"max_tokens", 24}, {"temperature", temperature},
                 {"seed", 99},       {"logprobs", 1},    {"ignore_eos", true}};
    Json warm = body;
    warm["prompt"] = first;
    ASSERT_EQ(cached->Post("/v1/completions", warm).status, 200);
    HttpResult hit = cached->Post("/v1/completions", body);
    HttpResult cold = uncached->Post("/v1/completions", body);
    EXPECT_GE(Cached(hit), 333);
    EXPECT_EQ(Cached(cold), 0);
    const Json& a = hit.json["choices"][0]["logprobs"];
    const Json& b = cold.json["choices"][0]["logprobs"];
    EXPECT_EQ(a["tokens"], b["tokens"]) << "temperature " << temperature;
    ASSERT_EQ(a["token_logprobs"].size(), b["token_logprobs"].size());
    for (size_t i = 0; i < a["token_logprobs"].size(); ++i) {
      EXPECT_NEAR(a["token_logprobs"][i].get<double>(), b["token_logprobs"][i].get<double>(), 1e-4);
    }
    EXPECT_EQ(hit.json["choices"][0]["text"], cold.json["choices"][0]["text"]);
  }
}

}  // namespace
}  // namespace reprise::server::testing
