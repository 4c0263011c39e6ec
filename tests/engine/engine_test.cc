// Engine tests on a real tiny model (stories260K, F32 Llama): the scheduler
// thread, greedy determinism with and without cache hits, concurrency,
// cancellation and block accounting after load.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <thread>

#include "core/log.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "testing/fixtures.h"
#include "tokenizer/tokenizer.h"

namespace reprise::engine {
namespace {

using Tokens = std::vector<int32_t>;

struct Loaded {
  std::shared_ptr<const gguf::File> file;
  std::unique_ptr<model::Model> model;
  std::unique_ptr<tokenizer::Tokenizer> tok;
};

struct Result1 {
  Tokens tokens;
  Event final_event;
};

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    SetLogLevel(LogLevel::kWarn);
    const std::string path = testing::FixturePath("stories260K/stories260K.gguf");
    if (!testing::FileExists(path)) return;
    auto file = gguf::File::Open(path);
    ASSERT_TRUE(file.ok()) << file.status().message();
    loaded_ = new Loaded();
    loaded_->file = std::move(file).value();
    model::ModelOptions opts;
    opts.n_threads = 1;  // the machine is shared: no spinning workers
    auto m = model::Model::Load(loaded_->file, opts);
    ASSERT_TRUE(m.ok()) << m.status().message();
    loaded_->model = std::move(m).value();
    auto tok = tokenizer::Tokenizer::FromGguf(*loaded_->file);
    ASSERT_TRUE(tok.ok()) << tok.status().message();
    loaded_->tok = std::move(tok).value();
  }
  static void TearDownTestSuite() {
    delete loaded_;
    loaded_ = nullptr;
  }
  void SetUp() override {
    REQUIRE_FIXTURE(testing::FixturePath("stories260K/stories260K.gguf"));
    ASSERT_NE(loaded_, nullptr);
  }

  EngineConfig Config(int entries, int parallel = 4, int32_t chunk = 512) {
    EngineConfig c;
    c.max_parallel = parallel;
    c.max_cache_entries = entries;
    c.cache_bytes = 256 * 1024 * 1024;
    c.block_tokens = 16;
    c.kv_type = DType::kF32;
    c.prefill_chunk = chunk;
    return c;
  }

  std::unique_ptr<Engine> MakeEngine(const EngineConfig& c) {
    auto e = Engine::Create(*loaded_->model, *loaded_->tok, c);
    EXPECT_TRUE(e.ok()) << e.status().message();
    return e.ok() ? std::move(e).value() : nullptr;
  }

  Tokens Encode(const std::string& text) { return loaded_->tok->Encode(text, true, false); }

  static Result1 Collect(RequestHandle& h) {
    Result1 r;
    Event ev;
    while (h.Next(&ev)) {
      if (ev.kind == Event::Kind::kToken) {
        r.tokens.push_back(ev.token);
      } else {
        r.final_event = ev;
      }
    }
    return r;
  }

  static Result1 Generate(Engine& e, const Tokens& prompt, int32_t max_tokens) {
    Request req;
    req.prompt = prompt;
    req.max_tokens = max_tokens;
    req.sampling.temperature = 0.0f;
    SubmitResult s = e.Submit(std::move(req));
    EXPECT_TRUE(s.ok()) << s.status.message();
    if (!s.ok()) return {};
    return Collect(*s.handle);
  }

  // Waits until nothing is queued or running, and returns that snapshot.
  static EngineStats WaitIdle(Engine& e) {
    EngineStats st;
    for (int i = 0; i < 500; ++i) {
      st = e.Stats();
      if (st.active == 0 && st.queued == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return st;
  }

  static Loaded* loaded_;
};
Loaded* EngineTest::loaded_ = nullptr;

TEST_F(EngineTest, CacheHitGeneratesTheSameGreedyTokensAsCacheOff) {
  const Tokens turn1 = Encode("Once upon a time, there was a little girl named Lily.");
  std::vector<Result1> off, on;
  for (int entries : {0, 10}) {
    // Different chunking on each side too: results must not depend on it.
    auto e = MakeEngine(Config(entries, 4, entries == 0 ? 512 : 5));
    ASSERT_NE(e, nullptr);
    auto& out = entries == 0 ? off : on;
    out.push_back(Generate(*e, turn1, 20));
    Tokens turn2 = turn1;
    turn2.insert(turn2.end(), out[0].tokens.begin(), out[0].tokens.end());
    const Tokens more = loaded_->tok->Encode(" She said hello.", false, false);
    turn2.insert(turn2.end(), more.begin(), more.end());
    out.push_back(Generate(*e, turn2, 20));
    out.push_back(Generate(*e, turn2, 20));  // exact repeat
  }
  for (size_t i = 0; i < off.size(); ++i) {
    EXPECT_EQ(on[i].tokens, off[i].tokens) << "request " << i;
    EXPECT_EQ(off[i].final_event.usage.cached_tokens, 0);
    EXPECT_FALSE(on[i].tokens.empty());
  }
  const int32_t n_turn1 = static_cast<int32_t>(turn1.size());
  EXPECT_EQ(on[0].final_event.usage.cached_tokens, 0);
  EXPECT_GE(on[1].final_event.usage.cached_tokens, n_turn1);
  EXPECT_EQ(on[2].final_event.usage.cached_tokens, on[2].final_event.usage.prompt_tokens - 1);
}

TEST_F(EngineTest, ConcurrentRequestsSharingAPrefixMatchTheirSoloRuns) {
  const Tokens system = Encode("One day, a big dog and a small cat went to the park to play.");
  std::vector<Tokens> prompts;
  for (const char* s : {" The dog", " The cat", " They saw", " It was", " A bird"}) {
    Tokens p = system;
    const Tokens t = loaded_->tok->Encode(s, false, false);
    p.insert(p.end(), t.begin(), t.end());
    prompts.push_back(p);
  }
  std::vector<Tokens> solo;
  {
    auto e = MakeEngine(Config(0, 1));
    for (const Tokens& p : prompts) solo.push_back(Generate(*e, p, 24).tokens);
  }
  auto e = MakeEngine(Config(10, 4, 8));
  Generate(*e, system, 2);  // caches the shared prefix
  std::vector<Result1> got(prompts.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < prompts.size(); ++i) {
    threads.emplace_back([&, i] { got[i] = Generate(*e, prompts[i], 24); });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(got[i].tokens, solo[i]) << "request " << i;
    EXPECT_GE(got[i].final_event.usage.cached_tokens, static_cast<int32_t>(system.size()) - 1);
  }
  const EngineStats st = WaitIdle(*e);
  EXPECT_EQ(st.kv_used_blocks, st.cache.cached_blocks);
  EXPECT_GT(st.cache.hits, 0);
}

TEST_F(EngineTest, CancelEndsTheStreamAndReleasesBlocks) {
  auto e = MakeEngine(Config(10));
  Request req;
  req.prompt = Encode("Once upon a time");
  req.max_tokens = 2000;  // far more than can run before the cancel lands
  req.ignore_eos = true;
  SubmitResult s = e->Submit(std::move(req));
  ASSERT_TRUE(s.ok()) << s.status.message();
  Event ev;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(s.handle->Next(&ev));
    ASSERT_EQ(ev.kind, Event::Kind::kToken);
  }
  s.handle->Cancel();
  Result1 rest = Collect(*s.handle);
  EXPECT_EQ(rest.final_event.kind, Event::Kind::kDone);
  EXPECT_EQ(rest.final_event.finish, FinishReason::kCancelled);
  EXPECT_LT(rest.final_event.usage.completion_tokens, 2000);
  EXPECT_TRUE(s.handle->finished());
  const EngineStats st = WaitIdle(*e);
  EXPECT_EQ(st.active, 0);
  EXPECT_EQ(st.kv_used_blocks, st.cache.cached_blocks);
  EXPECT_EQ(st.cache.entries, 1);  // what was computed before the cancel is cached
}

TEST_F(EngineTest, NoLeakedBlocksAfterConcurrentLoad) {
  EngineConfig c = Config(3, 3, 16);
  c.cache_bytes = 3 * 1024 * 1024;  // tight: forces evictions and waiting
  auto e = MakeEngine(c);
  ASSERT_NE(e, nullptr);
  const EngineStats start = e->Stats();
  const char* texts[] = {"Once upon a time", "The sun was hot", "Tom had a red ball", "Mom said no",
                         "The little fish swam"};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Tokens history = Encode(texts[t]);
      for (int turn = 0; turn < 4; ++turn) {
        Request req;
        req.prompt = history;
        req.max_tokens = 12;
        req.sampling.temperature = 0.8f;
        req.sampling.seed = 100 * t + turn;
        SubmitResult s = e->Submit(std::move(req));
        ASSERT_TRUE(s.ok()) << s.status.message();
        if (turn == 2) {
          Event ev;
          s.handle->Next(&ev);
          s.handle->Cancel();
        }
        Result1 r = Collect(*s.handle);
        ASSERT_NE(r.final_event.kind, Event::Kind::kError) << r.final_event.error.message();
        history.insert(history.end(), r.tokens.begin(), r.tokens.end());
        const Tokens more = Encode(texts[(t + turn) % 5]);
        history.insert(history.end(), more.begin(), more.end());
        EXPECT_LE(e->Stats().kv_bytes_in_use, c.cache_bytes);
      }
    });
  }
  for (auto& t : threads) t.join();
  const EngineStats st = WaitIdle(*e);
  EXPECT_EQ(st.kv_used_blocks, st.cache.cached_blocks);
  EXPECT_LE(st.cache.entries, 3);
  EXPECT_LE(st.kv_bytes_in_use, c.cache_bytes);
  EXPECT_EQ(st.requests_total, 16);
  EXPECT_GT(st.cache.hits, 0);
  EXPECT_EQ(start.kv_used_blocks, 0);
  EXPECT_TRUE(e->Healthy());
}

TEST_F(EngineTest, SubmitRefusesRequestsThatCannotFit) {
  EngineConfig c = Config(10);
  c.ctx_size = 64;
  auto e = MakeEngine(c);
  ASSERT_NE(e, nullptr);
  Request req;
  // A prompt past the context is refused...
  Tokens long_prompt;
  for (int i = 0; i < 8; ++i) {
    for (int32_t t : Encode("Once upon a time there was a girl")) long_prompt.push_back(t);
  }
  ASSERT_GE(long_prompt.size(), 64u);
  req.prompt = long_prompt;
  req.max_tokens = 4;
  SubmitResult s = e->Submit(req);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code, ErrorCode::kContextLengthExceeded);
  EXPECT_STREQ(ErrorCodeName(s.code), "context_length_exceeded");
  // ...while an output budget past it is clamped: the request runs to the
  // context's end and finishes with "length".
  req.prompt = Encode("Once upon a time");
  req.max_tokens = 64;
  req.ignore_eos = true;
  SubmitResult clamped = e->Submit(req);
  ASSERT_TRUE(clamped.ok()) << clamped.status.message();
  Result1 cr = Collect(*clamped.handle);
  EXPECT_EQ(cr.final_event.finish, FinishReason::kLength);
  EXPECT_EQ(cr.final_event.usage.completion_tokens, 64 - static_cast<int>(req.prompt.size()));
  req.prompt.clear();
  EXPECT_EQ(e->Submit(req).code, ErrorCode::kInvalidRequest);
  req.prompt = {1, static_cast<int32_t>(loaded_->model->config().n_vocab)};
  EXPECT_EQ(e->Submit(req).code, ErrorCode::kInvalidRequest);

  EngineConfig small = Config(10);
  small.cache_bytes = 2 * e->Stats().kv_bytes_per_token * small.block_tokens;  // 2 blocks
  auto e2 = MakeEngine(small);
  ASSERT_NE(e2, nullptr);
  req.prompt = Tokens(long_prompt.begin(), long_prompt.begin() + 40);  // 40 > 32 positions
  req.max_tokens = 4;
  s = e2->Submit(req);
  EXPECT_EQ(s.code, ErrorCode::kExceedsKvBudget);
  EXPECT_NE(s.status.message().find("prompt-cache-bytes"), std::string::npos);
  req.prompt = Encode("Once upon a time");
  // Without max_tokens the request is limited to what fits.
  req.max_tokens = 0;
  req.ignore_eos = true;
  SubmitResult ok = e2->Submit(req);
  ASSERT_TRUE(ok.ok()) << ok.status.message();
  Result1 r = Collect(*ok.handle);
  EXPECT_EQ(r.final_event.finish, FinishReason::kLength);
  EXPECT_EQ(r.final_event.usage.prompt_tokens + r.final_event.usage.completion_tokens,
            2 * small.block_tokens + 1);
}

TEST_F(EngineTest, ShutdownEndsPendingRequests) {
  auto e = MakeEngine(Config(10, 1));
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (int i = 0; i < 3; ++i) {
    Request req;
    req.prompt = Encode("Once upon a time");
    req.max_tokens = 200;
    req.ignore_eos = true;
    SubmitResult s = e->Submit(std::move(req));
    ASSERT_TRUE(s.ok());
    handles.push_back(s.handle);
  }
  EXPECT_TRUE(e->Healthy());
  e.reset();
  for (auto& h : handles) {
    Result1 r = Collect(*h);
    EXPECT_TRUE(h->finished());
    if (r.final_event.kind == Event::Kind::kError) {
      EXPECT_EQ(r.final_event.code, ErrorCode::kShuttingDown);
    } else {
      EXPECT_EQ(r.final_event.finish, FinishReason::kLength);
    }
  }
}

}  // namespace
}  // namespace reprise::engine

namespace reprise::engine {
namespace {

// /health answers from Engine::Healthy(): true while the scheduler thread's
// heartbeat is fresh, false once it is older than stall_timeout_ms (a step
// that hangs) — here forced with a 1 ms timeout against the 50 ms idle tick.
TEST_F(EngineTest, HealthReflectsTheSchedulerHeartbeat) {
  EngineConfig c = Config(2);
  auto healthy = MakeEngine(c);
  ASSERT_NE(healthy, nullptr);
  EXPECT_TRUE(healthy->Healthy());
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  EXPECT_TRUE(healthy->Healthy());  // idle ticks keep it fresh

  c.stall_timeout_ms = 1;
  auto stalled = MakeEngine(c);
  ASSERT_NE(stalled, nullptr);
  bool saw_unhealthy = false;
  for (int i = 0; i < 100 && !saw_unhealthy; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    saw_unhealthy = !stalled->Healthy();
  }
  EXPECT_TRUE(saw_unhealthy);
}

}  // namespace
}  // namespace reprise::engine
