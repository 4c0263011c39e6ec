// Scheduler policies that change when tokens come, never which: the order
// prompt tokens are given out in (--prefill-order) and sampling a step's
// rows on several threads. Fixture: scheduler_fixture.h.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <vector>

#include "engine/scheduler_fixture.h"

namespace reprise::engine {
namespace {

using namespace sched_testing;  // NOLINT: the fixture and its helpers

// --prefill-order shortest: of three prompts admitted together (60, 10 and
// 30 tokens, 8 prompt tokens a step) the 10-token one gets its first token
// first, then the 30-token one; in arrival order the 60-token one does. Each
// request's tokens are the same either way.
TEST_F(SchedulerTest, ShortestPrefillOrderAnswersTheShortPromptFirstWithTheSameTokens) {
  const Tokens prompts[3] = {Tokens(60, 5), Tokens(10, 6), Tokens(30, 7)};
  std::map<PrefillOrder, std::vector<int>> first_step;
  std::map<PrefillOrder, std::vector<Tokens>> tokens;
  for (const PrefillOrder order : {PrefillOrder::kArrival, PrefillOrder::kShortest}) {
    prefill_order_ = order;
    Make(200, 0, 4, 256, /*prefill_chunk=*/8);
    for (const Tokens& p : prompts) Submit(p, 3, /*ignore_eos=*/true);
    std::vector<int> at(3, -1);
    for (int step = 0; step < 1000 && sched_->Step(); ++step) {
      for (size_t i = 0; i < 3; ++i) {
        std::lock_guard<std::mutex> lock(states_[i]->mu);
        if (at[i] < 0 && !states_[i]->events.empty()) at[i] = step;
      }
    }
    first_step[order] = at;
    for (size_t i = 0; i < 3; ++i) tokens[order].push_back(Drain(i).tokens);
  }
  const auto& arrival = first_step[PrefillOrder::kArrival];
  const auto& shortest = first_step[PrefillOrder::kShortest];
  EXPECT_LT(arrival[0], arrival[1]);
  EXPECT_LT(arrival[1], arrival[2]);
  EXPECT_LT(shortest[1], shortest[2]);
  EXPECT_LT(shortest[2], shortest[0]);
  EXPECT_EQ(shortest[1], 1);  // 10 tokens: two steps of 8
  EXPECT_EQ(tokens[PrefillOrder::kArrival], tokens[PrefillOrder::kShortest]);
  for (const Tokens& t : tokens[PrefillOrder::kShortest]) EXPECT_EQ(t.size(), 3u);
}

// A long prompt behind a stream of shorter ones is not starved: passed over
// kPrefillAging steps in a row, it goes first. 20 distinct 8-token prompts
// and one of 200 tokens (8 prompt tokens a step, one reply token each, so
// every batch holds prompt tokens only): the long prompt's first tokens run
// in step kPrefillAging, not after all 20 short ones.
TEST_F(SchedulerTest, ShortestPrefillOrderAgesALongPromptToTheFront) {
  prefill_order_ = PrefillOrder::kShortest;
  Make(400, 0, 24, 256, /*prefill_chunk=*/8);
  Submit(Tokens(200, 2), 1, /*ignore_eos=*/true);
  for (int k = 0; k < 20; ++k) Submit(Tokens(8, 10 + k), 1, /*ignore_eos=*/true);
  RunAll();
  int first = -1;
  for (size_t c = 0; c < fake_.call_tokens.size() && first < 0; ++c) {
    for (int32_t t : fake_.call_tokens[c]) {
      if (t == 2) first = static_cast<int>(c);
    }
  }
  EXPECT_EQ(first, kPrefillAging);
  for (size_t i = 0; i < states_.size(); ++i) {
    const Outcome o = Drain(i);
    EXPECT_TRUE(o.done);
    EXPECT_EQ(o.tokens.size(), 1u);
  }
}

// The rows of a step sampled on 4 threads (sample_threads, what a GPU
// server does) give every request the tokens it gets with the rows sampled
// one by one: seeded temperature sampling with top-p and a repetition
// penalty, a greedy request and a constrained one, 6 requests at once.
TEST_F(SchedulerTest, RowsSampledOnSeveralThreadsGiveTheSameTokens) {
  std::map<int, std::vector<Tokens>> runs;
  for (const int threads : {1, 4}) {
    sample_threads_ = threads;
    Make(300, 0, 6, 256, /*prefill_chunk=*/16);
    for (int k = 0; k < 6; ++k) {
      Request r;
      r.prompt = Range(3 + k, 9 + 3 * k);
      r.max_tokens = 14;
      r.ignore_eos = true;
      r.sampling.temperature = k == 0 ? 0.0f : 0.8f;
      r.sampling.top_p = 0.9f;
      r.sampling.repetition_penalty = k % 2 == 0 ? 1.0f : 1.3f;
      r.sampling.seed = 100 + k;
      if (k == 5) r.constraint = std::make_shared<StepConstraint>(10);
      Status st;
      ASSERT_EQ(sched_->Validate(&r, &st), ErrorCode::kOk) << st.message();
      states_.push_back(std::make_shared<RequestHandle::State>());
      sched_->Enqueue(std::move(r), states_.back());
    }
    RunAll();
    for (size_t i = 0; i < states_.size(); ++i) {
      const Outcome o = Drain(i);
      EXPECT_TRUE(o.done);
      runs[threads].push_back(o.tokens);
    }
  }
  sample_threads_ = 0;
  ASSERT_EQ(runs[1].size(), 6u);
  EXPECT_EQ(runs[1], runs[4]);
  EXPECT_EQ(runs[4][0].size(), 14u);
  EXPECT_EQ(runs[4][5].size(), 10u);
  // Seeded sampling, not a constant: the requests do not all agree.
  EXPECT_NE(runs[4][1], runs[4][3]);
}

}  // namespace
}  // namespace reprise::engine
