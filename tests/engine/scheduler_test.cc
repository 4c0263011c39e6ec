// Scheduler tests with a fake model (scheduler_fixture.h): the prompt cache,
// shared prefixes, the tier below the pool, cancellation, reservations and
// preemption, constraints, validation and random load.
#include <gtest/gtest.h>

#include <limits>
#include <map>
#include <random>
#include <string>
#include <thread>

#include "engine/scheduler_fixture.h"
#include "kv/block_store.h"

namespace reprise::engine {
namespace {

using namespace sched_testing;  // NOLINT: the fixture and its helpers

TEST_F(SchedulerTest, CacheHitGeneratesTheSameTokensAsCacheOff) {
  const Tokens turn1 = Range(3, 21);
  std::map<int, std::pair<Outcome, Outcome>> runs;
  for (int entries : {0, 10}) {
    Make(200, entries);
    Outcome a = Generate(turn1, 12);
    const Tokens turn2 = Concat(Concat(turn1, a.tokens), Range(7, 9));
    Outcome b = Generate(turn2, 12);
    runs[entries] = {a, b};
    EXPECT_EQ(sched_->pool().used_blocks(), sched_->cache().cached_blocks());
  }
  EXPECT_EQ(runs[0].first.tokens, runs[10].first.tokens);
  EXPECT_EQ(runs[0].second.tokens, runs[10].second.tokens);
  ASSERT_EQ(runs[10].second.tokens.size(), 12u);
  EXPECT_EQ(runs[0].second.final_event.usage.cached_tokens, 0);
  // Everything of turn 1 whose KV was computed: the prompt and all but the
  // last generated token.
  EXPECT_EQ(runs[10].second.final_event.usage.cached_tokens, 21 + 12 - 1);
  EXPECT_EQ(runs[10].second.final_event.finish, FinishReason::kLength);
}

// Request::cache_namespace: a follow-up from another tenant recomputes the
// whole prompt (and generates the same tokens); the same tenant hits.
TEST_F(SchedulerTest, CachedKvIsReusedOnlyWithinTheSameNamespace) {
  Make(200, 10);
  auto run = [&](const Tokens& prompt, const char* ns) {
    const size_t i = Submit(prompt, 6, false, ns);
    RunAll();
    return Drain(i);
  };
  const Tokens prompt = Range(2, 29);
  Outcome a = run(prompt, "alice");
  EXPECT_EQ(a.final_event.usage.cached_tokens, 0);
  Outcome b = run(prompt, "bob");
  EXPECT_EQ(b.final_event.usage.cached_tokens, 0);
  Outcome d = run(prompt, "");
  EXPECT_EQ(d.final_event.usage.cached_tokens, 0);
  Outcome a2 = run(prompt, "alice");
  EXPECT_EQ(a2.final_event.usage.cached_tokens, 28);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.tokens, a2.tokens);
  EXPECT_EQ(sched_->cache().entries(), 3);
  EXPECT_EQ(sched_->pool().used_blocks(), sched_->cache().cached_blocks());
}

TEST_F(SchedulerTest, FollowUpPrefillsOnlyTheUncachedTokens) {
  Make(200, 10);
  const Tokens turn1 = Range(0, 30);
  Outcome a = Generate(turn1, 5);
  const int64_t before = fake_.tokens_run;
  const Tokens turn2 = Concat(Concat(turn1, a.tokens), Range(9, 6));
  Outcome b = Generate(turn2, 5);
  // 30 + 4 cached; 1 + 6 prompt tokens to run, then 4 decode steps.
  EXPECT_EQ(b.final_event.usage.cached_tokens, 34);
  EXPECT_EQ(fake_.tokens_run - before, 7 + 4);
}

TEST_F(SchedulerTest, ExactRepeatReusesAllButTheLastPromptToken) {
  Make(200, 10);
  const Tokens prompt = Range(5, 17);
  Outcome a = Generate(prompt, 3);
  Outcome b = Generate(prompt, 3);
  EXPECT_EQ(b.final_event.usage.cached_tokens, 16);
  EXPECT_EQ(a.tokens, b.tokens);
}

TEST_F(SchedulerTest, ConcurrentRequestsSharingAPrefixMatchTheirSoloRuns) {
  const Tokens system = Range(1, 24);
  std::vector<Tokens> prompts;
  for (int i = 0; i < 6; ++i) prompts.push_back(Concat(system, Range(10 + 3 * i, 5 + i)));
  Make(400, 0, 1);
  std::vector<Tokens> solo;
  for (const Tokens& p : prompts) solo.push_back(Generate(p, 10).tokens);

  Make(400, 10, 4, 256, 16);
  Generate(Concat(system, {7}), 2);  // caches the system prompt
  std::vector<size_t> ids;
  for (const Tokens& p : prompts) ids.push_back(Submit(p, 10));
  RunAll();
  for (size_t i = 0; i < prompts.size(); ++i) {
    Outcome o = Drain(ids[i]);
    EXPECT_EQ(o.tokens, solo[i]) << "request " << i;
    EXPECT_GE(o.final_event.usage.cached_tokens, 24) << "request " << i;
  }
  EXPECT_GT(fake_.max_batch, 1);  // sequences ran together
  EXPECT_EQ(sched_->pool().used_blocks(), sched_->cache().cached_blocks());
}

// Requests that arrive together on one long shared prefix (agents starting
// on the same system prompt) compute it once: the first runs, the others
// wait until its prefill has computed the shared blocks, then hit them in
// the cache. Same tokens as solo runs; every prompt token not served from
// the cache is run exactly once; a tenant never waits for (or hits) another
// tenant's prefill.
TEST_F(SchedulerTest, RequestsStartingTogetherOnASharedPrefixComputeItOnce) {
  const Tokens system = Range(1, 40);  // 10 blocks of 4
  std::vector<Tokens> prompts;
  for (int i = 0; i < 4; ++i) prompts.push_back(Concat(system, Range(10 + 3 * i, 5 + i)));
  Make(400, 0, 1);
  std::vector<Tokens> solo;
  for (const Tokens& p : prompts) solo.push_back(Generate(p, 6).tokens);

  Make(400, 10, 4, 256, /*prefill_chunk=*/8);
  std::vector<size_t> ids;
  for (const Tokens& p : prompts) ids.push_back(Submit(p, 6));
  RunAll();
  int64_t expected_run = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    Outcome o = Drain(ids[i]);
    ASSERT_TRUE(o.done);
    EXPECT_EQ(o.tokens, solo[i]) << "request " << i;
    if (i == 0) {
      EXPECT_EQ(o.final_event.usage.cached_tokens, 0);
    } else {
      EXPECT_GE(o.final_event.usage.cached_tokens, 40) << "request " << i;
    }
    expected_run += static_cast<int64_t>(prompts[i].size()) - o.final_event.usage.cached_tokens +
                    static_cast<int64_t>(o.tokens.size()) - 1;
  }
  EXPECT_EQ(fake_.tokens_run, expected_run);  // the shared prefix ran once
  EXPECT_EQ(sched_->counters().shared_prefix_waits_total, 3);
  EXPECT_EQ(sched_->pool().used_blocks(), sched_->cache().cached_blocks());
  sched_->cache().CheckInvariants();

  // Two tenants: the second computes the prefix itself, at once.
  Make(400, 10, 4, 256, 8);
  const size_t a = Submit(prompts[0], 6, false, "alice"), b = Submit(prompts[1], 6, false, "bob");
  ASSERT_TRUE(sched_->Step());
  EXPECT_EQ(sched_->active(), 2);  // bob did not wait for alice's prefill
  RunAll();
  EXPECT_EQ(Drain(a).tokens, solo[0]);
  Outcome ob = Drain(b);
  EXPECT_EQ(ob.tokens, solo[1]);
  EXPECT_EQ(ob.final_event.usage.cached_tokens, 0);
  EXPECT_EQ(sched_->counters().shared_prefix_waits_total, 0);

  // The leader cancelled while another waits for it: the waiting one
  // computes the prefix itself and still matches its solo run.
  Make(400, 10, 4, 256, 8);
  const size_t lead = Submit(prompts[2], 6), follow = Submit(prompts[3], 6);
  ASSERT_TRUE(sched_->Step());
  EXPECT_EQ(sched_->active(), 1);
  EXPECT_EQ(sched_->waiting(), 1);
  states_[lead]->cancel = true;
  RunAll();
  EXPECT_EQ(Drain(lead).final_event.finish, FinishReason::kCancelled);
  EXPECT_EQ(Drain(follow).tokens, solo[3]);
  EXPECT_EQ(sched_->pool().used_blocks(), sched_->cache().cached_blocks());
}

TEST_F(SchedulerTest, CancelEndsTheStreamAndReleasesBlocks) {
  Make(200, 10);
  const size_t i = Submit(Range(0, 20), 100);
  for (int k = 0; k < 5; ++k) ASSERT_TRUE(sched_->Step());
  Outcome partial = Drain(i);
  EXPECT_FALSE(partial.done);
  EXPECT_GT(partial.tokens.size(), 0u);
  states_[i]->cancel.store(true);
  sched_->Step();
  Outcome rest = Drain(i);
  ASSERT_TRUE(rest.done);
  EXPECT_EQ(rest.final_event.kind, Event::Kind::kDone);
  EXPECT_EQ(rest.final_event.finish, FinishReason::kCancelled);
  EXPECT_EQ(sched_->active(), 0);
  EXPECT_EQ(sched_->reserved_blocks(), 0);
  EXPECT_EQ(sched_->pool().used_blocks(), sched_->cache().cached_blocks());
  EXPECT_GT(sched_->cache().entries(), 0);  // what was computed is cached
}

// A lower tier read off the engine thread (like the disk) whose reads wait
// at a gate: the test holds a promotion in flight as long as it likes.
class GatedStore : public kv::MemoryBlockStore {
 public:
  using kv::MemoryBlockStore::MemoryBlockStore;
  std::atomic<bool> open{true};
  mutable std::atomic<int> reads{0};

 protected:
  bool reads_concurrently() const override { return true; }
  ReadOutcome ReadBlob(const kv::BlockKey& key, std::span<uint8_t> out) const override {
    ++reads;
    while (!open.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return kv::MemoryBlockStore::ReadBlob(key, out);
  }
};

class SchedulerTierTest : public SchedulerTest {
 protected:
  // Turn 1 of a conversation, then another request that pushes it out of the
  // pool (one cached entry) into the gated tier; returns turn 2's prompt.
  Tokens DemotedConversation() {
    const Tokens turn1 = Range(1, 30);
    Outcome a = Generate(turn1, 5);
    EXPECT_EQ(a.tokens.size(), 5u);
    Generate(Range(11, 9), 3);  // the one entry now: turn 1 is demoted
    EXPECT_GT(store_ != nullptr ? store_->blocks() : host_->blocks(), 0);
    return Concat(Concat(turn1, a.tokens), Range(40, 6));
  }
  // The gated disk-like tier, or (host) a host-RAM tier (promoted by pinned
  // asynchronous copies).
  void MakeTiered(bool overlap, bool host = false) {
    const int64_t block_bytes = 4 * 2 * 4;  // 4 tokens, 1 layer, K and V of one float
    if (host) {
      auto store = std::make_unique<kv::HostBlockStore>(block_bytes, 200 * block_bytes, nullptr);
      host_ = store.get();
      next_lower_ = std::move(store);
    } else {
      auto store = std::make_unique<GatedStore>(block_bytes, 200 * block_bytes);
      store_ = store.get();
      next_lower_ = std::move(store);
    }
    overlap_promotions_ = overlap;
    Make(64, 1);
  }
  GatedStore* store_ = nullptr;  // owned by the scheduler
  kv::HostBlockStore* host_ = nullptr;
};

// While a follow-up's prefix is read back from the tier, the other sequences
// keep decoding; the follow-up then generates what a cold run generates.
TEST_F(SchedulerTierTest, ALoadingSequenceDoesNotStallTheOthers) {
  Make(64, 0);  // the reference: no cache at all
  MakeTiered(true);
  const Tokens turn2 = DemotedConversation();
  Make(64, 0);
  const Outcome cold = Generate(turn2, 8);
  ASSERT_EQ(cold.tokens.size(), 8u);

  MakeTiered(true);
  ASSERT_EQ(DemotedConversation(), turn2);
  store_->open = false;
  const size_t other = Submit(Range(20, 5), 40, /*ignore_eos=*/true);
  for (int k = 0; k < 3; ++k) ASSERT_TRUE(sched_->Step());
  const size_t follow = Submit(turn2, 8);
  const size_t before = Drain(other).tokens.size();
  for (int k = 0; k < 10; ++k) ASSERT_TRUE(sched_->Step());
  EXPECT_EQ(Drain(other).tokens.size(), 10u) << "the other sequence decoded every step";
  EXPECT_TRUE(Drain(follow).tokens.empty());  // still loading
  for (int ms = 0; ms < 2000 && store_->reads.load() == 0; ++ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_GE(store_->reads.load(), 1);  // the reader waits at the gate
  EXPECT_GT(before, 0u);
  store_->open = true;
  RunAll();
  const Outcome warm = Drain(follow);
  EXPECT_EQ(warm.tokens, cold.tokens);
  ASSERT_TRUE(warm.done);
  EXPECT_EQ(warm.final_event.usage.cached_tokens, 30 + 5 - 1);
  EXPECT_EQ(warm.final_event.usage.cached_tokens_lower_tier, 30 + 5 - 1);
  EXPECT_EQ(sched_->pool().used_blocks(), sched_->cache().cached_blocks());
  EXPECT_EQ(sched_->cache().Stats().promotions, (30 + 5 - 1 + 3) / 4);
}

// The same conversation with promotions read inside admission (the old path)
// generates the same tokens and counts the same hit.
TEST_F(SchedulerTierTest, OverlappedAndInlinePromotionsAgree) {
  std::vector<Outcome> runs;
  for (bool overlap : {false, true}) {
    store_ = nullptr;
    MakeTiered(overlap);
    const Tokens turn2 = DemotedConversation();
    runs.push_back(Generate(turn2, 8));
    EXPECT_EQ(sched_->pool().used_blocks(), sched_->cache().cached_blocks());
  }
  EXPECT_EQ(runs[0].tokens, runs[1].tokens);
  EXPECT_EQ(runs[0].final_event.usage.cached_tokens, runs[1].final_event.usage.cached_tokens);
  EXPECT_EQ(runs[0].final_event.usage.cached_tokens_lower_tier,
            runs[1].final_event.usage.cached_tokens_lower_tier);
  EXPECT_GT(runs[1].final_event.usage.cached_tokens_lower_tier, 0);
}

// From the host tier: pinned blocks copied by the promoter (asynchronous
// on a GPU) give the same tokens as the inline read and leave no pin behind.
TEST_F(SchedulerTierTest, HostTierPromotionsAgreeAndUnpin) {
  std::vector<Outcome> runs;
  for (bool overlap : {false, true}) {
    MakeTiered(overlap, /*host=*/true);
    const Tokens turn2 = DemotedConversation();
    runs.push_back(Generate(turn2, 8));
    EXPECT_EQ(sched_->pool().used_blocks(), sched_->cache().cached_blocks());
    for (const kv::BlockKey& k : host_->KeysByRecency()) EXPECT_FALSE(host_->pinned(k));
  }
  EXPECT_EQ(runs[0].tokens, runs[1].tokens);
  EXPECT_EQ(runs[1].final_event.usage.cached_tokens_lower_tier, 30 + 5 - 1);
  EXPECT_EQ(runs[1].final_event.usage.cached_tokens_host, 30 + 5 - 1);
  EXPECT_EQ(runs[0].final_event.usage.cached_tokens_host, 30 + 5 - 1);
}

// Cancelled while its reads are in flight: it ends once they have (the
// reader writes into its blocks) while the other streams keep running, the
// request ends cancelled, nothing leaks, and the prefix that arrived is
// cached again.
TEST_F(SchedulerTierTest, CancelWhileLoadingEndsAfterTheReadsAndLeaksNothing) {
  MakeTiered(true);
  const Tokens turn2 = DemotedConversation();
  store_->open = false;
  const size_t other = Submit(Range(20, 5), 30, /*ignore_eos=*/true);
  const size_t follow = Submit(turn2, 8);
  for (int k = 0; k < 3; ++k) sched_->Step();
  EXPECT_TRUE(Drain(follow).tokens.empty());
  states_[follow]->cancel.store(true);
  for (int k = 0; k < 5; ++k) ASSERT_TRUE(sched_->Step());
  EXPECT_FALSE(Drain(follow).done);             // still loading: not ended yet
  EXPECT_EQ(Drain(other).tokens.size(), 8u);    // the other stream never waited
  std::thread opener([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    store_->open = true;
  });
  RunAll();
  opener.join();
  const Outcome o = Drain(follow);
  ASSERT_TRUE(o.done);
  EXPECT_EQ(o.final_event.finish, FinishReason::kCancelled);
  EXPECT_EQ(sched_->reserved_blocks(), 0);
  EXPECT_EQ(sched_->pool().used_blocks(), sched_->cache().cached_blocks());
  // Turn 1's KV is back in the pool's cache: turn 2 hits without the tier.
  const int64_t reads = store_->reads.load();
  const Outcome again = Generate(turn2, 8);
  EXPECT_EQ(again.final_event.usage.cached_tokens, 30 + 5 - 1);
  EXPECT_EQ(again.final_event.usage.cached_tokens_lower_tier, 0);
  EXPECT_EQ(store_->reads.load(), reads);
}

TEST_F(SchedulerTest, CancelOfAQueuedRequestNeverRunsIt) {
  Make(200, 10, 1);
  const size_t a = Submit(Range(0, 10), 5);
  const size_t b = Submit(Range(20, 10), 5);
  states_[b]->cancel.store(true);
  RunAll();
  EXPECT_EQ(Drain(a).tokens.size(), 5u);
  Outcome ob = Drain(b);
  EXPECT_TRUE(ob.tokens.empty());
  EXPECT_EQ(ob.final_event.finish, FinishReason::kCancelled);
  EXPECT_EQ(sched_->counters().requests_total, 1);
}

TEST_F(SchedulerTest, AdmissionReservesWhatThePromptNeedsNotTheWholeOutputBudget) {
  // Worst cases of 8 blocks each (ceil((12 + 20 - 1) / 4)) would admit one at
  // a time into 12 blocks; admission reserves ceil((12 + 1) / 4) = 4 each.
  Make(12, 10);
  const Tokens solo_a = Generate(Range(0, 12), 20).tokens;
  const Tokens solo_b = Generate(Range(30, 12), 20).tokens;
  Make(12, 10);
  const size_t a = Submit(Range(0, 12), 20);
  const size_t b = Submit(Range(30, 12), 20);
  ASSERT_TRUE(sched_->Step());
  EXPECT_EQ(sched_->active(), 2);
  EXPECT_EQ(sched_->reserved_blocks(), 8);
  RunAll();
  // Both grew past what the pool holds together: the newer one was preempted
  // and resumed, and still generated exactly its solo tokens.
  EXPECT_GT(sched_->counters().preemptions_total, 0);
  const Outcome oa = Drain(a), ob = Drain(b);
  EXPECT_EQ(oa.tokens, solo_a);
  EXPECT_EQ(ob.tokens, solo_b);
  EXPECT_EQ(oa.final_event.kind, Event::Kind::kDone);
  EXPECT_EQ(ob.final_event.finish, FinishReason::kLength);
  EXPECT_EQ(ob.final_event.usage.completion_tokens, 20);
  EXPECT_EQ(sched_->pool().used_blocks(), sched_->cache().cached_blocks());
}

TEST_F(SchedulerTest, ManyHugeOutputBudgetsOnASmallPoolAllFinishWithTheirSoloTokens) {
  // Agents ask for 32000 output tokens; the budget is clamped to what the
  // pool holds alone, and under pressure sequences are preempted, never
  // failed, and the byte bound holds after every step (RunAll).
  constexpr int kBlocks = 24, kN = 12;
  std::vector<Tokens> prompts, solo;
  std::mt19937 rng(7);
  for (int i = 0; i < kN; ++i) prompts.push_back(Range(static_cast<int32_t>(rng() % kVocab), 5 + rng() % 20));
  for (int i = 0; i < kN; ++i) {
    Make(kBlocks, 2, 6, 512);
    solo.push_back(Generate(prompts[i], 32000).tokens);
  }
  Make(kBlocks, 2, 6, 512);
  std::vector<size_t> ids;
  for (int i = 0; i < kN; ++i) ids.push_back(Submit(prompts[i], 32000));
  RunAll();
  EXPECT_GT(sched_->counters().preemptions_total, 0);
  for (int i = 0; i < kN; ++i) {
    const Outcome o = Drain(ids[i]);
    ASSERT_EQ(o.final_event.kind, Event::Kind::kDone) << i << ": " << o.final_event.error.message();
    EXPECT_EQ(o.final_event.finish, FinishReason::kLength) << i;
    EXPECT_EQ(o.tokens, solo[i]) << i;
    // Clamped to the pool: prompt + output fill it exactly (one sampled token
    // never needs KV).
    EXPECT_EQ(static_cast<int>(prompts[i].size() + o.tokens.size()) - 1, kBlocks * 4) << i;
  }
  EXPECT_EQ(sched_->counters().requests_failed, 0);
  EXPECT_EQ(sched_->reserved_blocks(), 0);
  EXPECT_EQ(sched_->pool().used_blocks(), sched_->cache().cached_blocks());
}

TEST_F(SchedulerTest, AConstraintMasksEveryStepAndEndsTheSequenceWhenDone) {
  Make(200, 0);
  Request r;
  r.prompt = Range(4, 9);
  r.max_tokens = 50;
  r.sampling.temperature = 0.0f;
  r.constraint = std::make_shared<StepConstraint>(11);
  Status st;
  ASSERT_EQ(sched_->Validate(&r, &st), ErrorCode::kOk);
  states_.push_back(std::make_shared<RequestHandle::State>());
  sched_->Enqueue(std::move(r), states_.back());
  RunAll();
  const Outcome o = Drain(0);
  ASSERT_EQ(o.tokens.size(), 11u);
  for (size_t k = 0; k < o.tokens.size(); ++k) EXPECT_EQ(o.tokens[k] % 7, static_cast<int>(k % 7));
  EXPECT_EQ(o.final_event.kind, Event::Kind::kDone);
  EXPECT_EQ(o.final_event.finish, FinishReason::kStop);
  // A constraint that allows nothing fails the request with a clear error.
  class Nothing : public Constraint {
    int64_t Mask(float* logits, int32_t n) override {
      std::fill(logits, logits + n, -std::numeric_limits<float>::infinity());
      return 0;
    }
    bool Accept(int32_t) override { return false; }
    bool Done() const override { return false; }
  };
  Request bad;
  bad.prompt = Range(1, 5);
  bad.max_tokens = 5;
  bad.sampling.temperature = 0.0f;
  bad.constraint = std::make_shared<Nothing>();
  ASSERT_EQ(sched_->Validate(&bad, &st), ErrorCode::kOk);
  states_.push_back(std::make_shared<RequestHandle::State>());
  sched_->Enqueue(std::move(bad), states_.back());
  RunAll();
  const Outcome b = Drain(1);
  EXPECT_TRUE(b.tokens.empty());
  EXPECT_EQ(b.final_event.kind, Event::Kind::kError);
  EXPECT_EQ(b.final_event.code, ErrorCode::kInvalidRequest);
  EXPECT_NE(b.final_event.error.message().find("constraint"), std::string::npos);
  EXPECT_EQ(sched_->pool().used_blocks(), sched_->cache().cached_blocks());
}

TEST_F(SchedulerTest, ConstrainedSequencesKeepTheirConstraintAcrossPreemption) {
  constexpr int kBlocks = 16, kN = 8;
  auto submit = [&](int i) {
    Request r;
    r.prompt = Range(3 * i, 6 + i);
    r.max_tokens = 32000;
    r.sampling.temperature = 0.0f;
    r.constraint = std::make_shared<StepConstraint>(40 + i);
    Status st;
    EXPECT_EQ(sched_->Validate(&r, &st), ErrorCode::kOk);
    states_.push_back(std::make_shared<RequestHandle::State>());
    sched_->Enqueue(std::move(r), states_.back());
    return states_.size() - 1;
  };
  std::vector<Tokens> solo;
  for (int i = 0; i < kN; ++i) {
    Make(kBlocks, 2, 6, 512);
    const size_t id = submit(i);
    RunAll();
    solo.push_back(Drain(id).tokens);
  }
  Make(kBlocks, 2, 6, 512);
  std::vector<size_t> ids;
  for (int i = 0; i < kN; ++i) ids.push_back(submit(i));
  RunAll();
  EXPECT_GT(sched_->counters().preemptions_total, 0);
  for (int i = 0; i < kN; ++i) {
    const Outcome o = Drain(ids[i]);
    EXPECT_EQ(o.final_event.finish, FinishReason::kStop) << i;
    EXPECT_EQ(o.tokens.size(), static_cast<size_t>(40 + i)) << i;
    EXPECT_EQ(o.tokens, solo[i]) << i;
  }
}

TEST_F(SchedulerTest, CancelOfAPreemptedSequenceEndsItCleanly) {
  Make(12, 10, 2);
  const size_t a = Submit(Range(0, 12), 30);
  const size_t b = Submit(Range(30, 12), 30);
  for (int i = 0; i < 200 && sched_->counters().preemptions_total == 0; ++i) sched_->Step();
  ASSERT_GT(sched_->counters().preemptions_total, 0);
  ASSERT_EQ(sched_->waiting(), 1);
  states_[b]->cancel.store(true);
  RunAll();
  EXPECT_EQ(Drain(a).final_event.finish, FinishReason::kLength);
  const Outcome ob = Drain(b);
  EXPECT_EQ(ob.final_event.finish, FinishReason::kCancelled);
  EXPECT_FALSE(ob.tokens.empty());
  EXPECT_EQ(sched_->reserved_blocks(), 0);
  EXPECT_EQ(sched_->pool().used_blocks(), sched_->cache().cached_blocks());
  sched_->cache().CheckInvariants();
}

TEST_F(SchedulerTest, StreamOfDistinctConversationsStaysInsideTheByteBudget) {
  Make(24, 100, 3, 256, 8);
  std::mt19937 rng(5);
  std::vector<size_t> ids;
  for (int i = 0; i < 30; ++i) {
    ids.push_back(
        Submit(Range(static_cast<int32_t>(rng() % kVocab), 5 + rng() % 30), 1 + rng() % 20));
    if (i % 3 == 2) RunAll();  // RunAll asserts the bound after every step
  }
  RunAll();
  for (size_t i : ids) EXPECT_EQ(Drain(i).final_event.kind, Event::Kind::kDone);
  EXPECT_GT(sched_->cache().Stats().evictions, 0);
  EXPECT_EQ(sched_->pool().used_blocks(), sched_->cache().cached_blocks());
}

TEST_F(SchedulerTest, StopsAtEndOfGenerationUnlessIgnoreEos) {
  Make(200, 0);
  const Tokens prompt = Range(2, 9);
  const Tokens free_run = Generate(prompt, 8).tokens;
  ASSERT_EQ(free_run.size(), 8u);
  const int32_t eog = free_run[3];
  const size_t first = std::find(free_run.begin(), free_run.end(), eog) - free_run.begin();
  eog_ = {eog};
  Make(200, 0);
  Outcome stopped = Generate(prompt, 8);
  EXPECT_EQ(stopped.final_event.finish, FinishReason::kStop);
  EXPECT_EQ(stopped.tokens, Tokens(free_run.begin(), free_run.begin() + first));
  EXPECT_EQ(stopped.final_event.usage.completion_tokens, static_cast<int32_t>(first));
  const size_t i = Submit(prompt, 8, /*ignore_eos=*/true);
  RunAll();
  Outcome ignored = Drain(i);
  EXPECT_EQ(ignored.tokens, free_run);
  EXPECT_EQ(ignored.final_event.finish, FinishReason::kLength);
}

TEST_F(SchedulerTest, PrefillRunsInChunksMixedWithDecodes) {
  Make(200, 0, 4, 256, 8);
  const size_t a = Submit(Range(0, 4), 30);
  ASSERT_TRUE(sched_->Step());  // a's prompt
  const size_t b = Submit(Range(10, 40), 3);
  for (int k = 0; k < 3; ++k) {
    const int64_t before = fake_.tokens_run;
    ASSERT_TRUE(sched_->Step());
    EXPECT_EQ(fake_.tokens_run - before, 8 + 1);  // a chunk of b's prompt + a's decode
  }
  RunAll();
  EXPECT_EQ(Drain(a).tokens.size(), 30u);
  EXPECT_EQ(Drain(b).tokens.size(), 3u);
  EXPECT_LE(fake_.max_batch, 9);
}

TEST_F(SchedulerTest, ForwardFailureFailsItsRequestsAndLeaksNothing) {
  Make(200, 10);
  fake_.fail_on_call = 2;
  const size_t a = Submit(Range(0, 10), 10);
  RunAll();
  Outcome o = Drain(a);
  ASSERT_TRUE(o.done);
  EXPECT_EQ(o.final_event.kind, Event::Kind::kError);
  EXPECT_EQ(o.final_event.code, ErrorCode::kInternal);
  EXPECT_EQ(sched_->pool().used_blocks(), sched_->cache().cached_blocks());
  // The scheduler keeps serving.
  EXPECT_EQ(Generate(Range(0, 10), 4).tokens.size(), 4u);
}

TEST_F(SchedulerTest, ValidateRejectsBadRequestsWithTheirCodes) {
  Make(10, 10, 4, 64);  // 10 blocks of 4 = 40 positions
  auto check = [&](Tokens prompt, int32_t max_tokens) {
    Request r;
    r.prompt = std::move(prompt);
    r.max_tokens = max_tokens;
    Status st;
    const ErrorCode code = sched_->Validate(&r, &st);
    EXPECT_EQ(code == ErrorCode::kOk, st.ok()) << st.message();
    return std::make_pair(code, r.max_tokens);
  };
  EXPECT_EQ(check({}, 5).first, ErrorCode::kInvalidRequest);
  EXPECT_EQ(check({1, kVocab}, 5).first, ErrorCode::kInvalidRequest);
  EXPECT_EQ(check({1, -1}, 5).first, ErrorCode::kInvalidRequest);
  // Only a prompt that does not fit is refused: the context (64), the budget (40).
  EXPECT_EQ(check(Range(0, 64), 0).first, ErrorCode::kContextLengthExceeded);
  EXPECT_EQ(check(Range(0, 64), 5).first, ErrorCode::kContextLengthExceeded);
  EXPECT_EQ(check(Range(0, 41), 0).first, ErrorCode::kExceedsKvBudget);
  EXPECT_EQ(check(Range(0, 41), 3).first, ErrorCode::kExceedsKvBudget);
  // An output budget past the context or the KV budget is clamped to what is left.
  EXPECT_EQ(check(Range(0, 30), 40), std::make_pair(ErrorCode::kOk, 11));  // budget: 40 positions
  EXPECT_EQ(check(Range(0, 30), 20), std::make_pair(ErrorCode::kOk, 11));
  EXPECT_EQ(check(Range(0, 30), 11), std::make_pair(ErrorCode::kOk, 11));  // 40 positions fit
  EXPECT_EQ(check(Range(0, 30), 4), std::make_pair(ErrorCode::kOk, 4));
  // Without max_tokens: up to what the context and the budget allow.
  EXPECT_EQ(check(Range(0, 30), 0), std::make_pair(ErrorCode::kOk, 11));
  Request bad;
  bad.prompt = {1, 2};
  bad.sampling.temperature = 5.0f;
  Status st;
  EXPECT_EQ(sched_->Validate(&bad, &st), ErrorCode::kInvalidRequest);
  EXPECT_NE(st.message().find("temperature"), std::string::npos);
}

TEST_F(SchedulerTest, RandomLoadWithCancelsLeavesOnlyCachedBlocks) {
  Make(60, 4, 3, 256, 8);
  std::mt19937 rng(99);
  std::vector<Tokens> history = {Range(0, 12)};
  std::vector<size_t> live;
  for (int step = 0; step < 300; ++step) {
    const int action = static_cast<int>(rng() % 6);
    if (action == 0 && live.size() < 8) {
      Tokens p = history[rng() % history.size()];
      p.resize(std::min<size_t>(p.size(), 1 + rng() % (p.size() + 1)));
      p = Concat(p, Range(static_cast<int32_t>(rng() % kVocab), 1 + rng() % 10));
      history.push_back(p);
      live.push_back(Submit(p, 1 + rng() % 15));
    } else if (action == 1 && !live.empty()) {
      states_[live[rng() % live.size()]]->cancel.store(true);
    } else {
      sched_->Step();
      ASSERT_LE(sched_->pool().bytes_in_use(), budget_bytes_);
      ASSERT_EQ(fake_.violation, "");
    }
    std::erase_if(live, [&](size_t i) {
      std::lock_guard<std::mutex> lock(states_[i]->mu);
      return !states_[i]->events.empty() && states_[i]->events.back().kind != Event::Kind::kToken;
    });
  }
  RunAll();
  sched_->cache().CheckInvariants();
  EXPECT_EQ(sched_->reserved_blocks(), 0);
  EXPECT_EQ(sched_->pool().used_blocks(), sched_->cache().cached_blocks());
  EXPECT_GT(sched_->cache().Stats().hits, 0);
}

}  // namespace
}  // namespace reprise::engine
