// The scheduler tests' fixture (scheduler_test.cc, scheduler_order_test.cc):
// a fake model whose "KV" at position p is a hash of the token at p and the
// KV it reads back at p - 1 from the sequence's own blocks, and whose logits
// pick hash % n_vocab, so generated tokens depend on every KV row of the
// sequence and a wrong cached row changes the output. It also fails the test
// if a batch writes into a block shared with the cache. Plus a scheduler
// built around it (SchedulerTest), prompts (Range, Concat) and a constraint
// with state (StepConstraint).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/log.h"
#include "engine/scheduler.h"

namespace reprise::engine::sched_testing {

using Tokens = std::vector<int32_t>;
constexpr int32_t kVocab = 50;

inline uint32_t Mix(uint32_t h, int32_t token) {
  uint64_t x = (static_cast<uint64_t>(h) << 20) ^ static_cast<uint32_t>(token * 2654435761u);
  x ^= x >> 29;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 32;
  return static_cast<uint32_t>(x % (1u << 24));  // exact in a float
}

struct FakeModel {
  int64_t tokens_run = 0;
  int64_t calls = 0;
  int32_t max_batch = 0;
  int fail_on_call = -1;  // returns an error on this call (0-based)
  std::string violation;  // first broken rule, if any
  std::vector<std::vector<int32_t>> call_tokens;  // each call's batch tokens

  Status Forward(std::span<const model::BatchToken> batch, std::span<kv::SeqBlocks* const> seqs,
                 kv::BlockPool& pool, float* logits) {
    if (calls++ == fail_on_call) return Errorf("injected failure");
    tokens_run += static_cast<int64_t>(batch.size());
    call_tokens.emplace_back();
    for (const model::BatchToken& t : batch) call_tokens.back().push_back(t.token);
    max_batch = std::max(max_batch, static_cast<int32_t>(batch.size()));
    const int bt = pool.block_tokens();
    auto row = [&](const kv::SeqBlocks& s, int32_t pos) {
      return reinterpret_cast<float*>(pool.K(s.blocks[pos / bt], 0)) + pos % bt;
    };
    size_t out = 0;
    for (const model::BatchToken& t : batch) {
      const kv::SeqBlocks& s = *seqs[t.seq];
      if (t.pos >= static_cast<int32_t>(s.blocks.size()) * bt) {
        violation = "position beyond the sequence's blocks";
        return Errorf("%s", violation.c_str());
      }
      if (pool.RefCount(s.blocks[t.pos / bt]) != 1 && violation.empty()) {
        violation = "write into a block shared with the cache";
      }
      const uint32_t prev = t.pos == 0 ? 17u : static_cast<uint32_t>(*row(s, t.pos - 1));
      const uint32_t h = Mix(prev, t.token);
      *row(s, t.pos) = static_cast<float>(h);
      if (t.want_logits) {
        float* l = logits + out++ * kVocab;
        std::fill(l, l + kVocab, 0.0f);
        l[h % kVocab] = 1.0f;
      }
    }
    return Status::Ok();
  }
};

struct Outcome {
  Tokens tokens;
  Event final_event;
  bool done = false;
};

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override { SetLogLevel(LogLevel::kWarn); }
  void Make(int capacity_blocks, int max_entries, int max_parallel = 4, int32_t ctx = 256,
            int32_t prefill_chunk = 64, int block_tokens = 4) {
    states_.clear();
    sched_.reset();
    SchedulerConfig sc;
    sc.max_parallel = max_parallel;
    sc.max_cache_entries = max_entries;
    sc.ctx_size = ctx;
    sc.prefill_chunk = prefill_chunk;
    sc.n_vocab = kVocab;
    sc.eog_ids = eog_;
    kv::BlockPoolConfig pc;
    pc.n_layers = 1;
    pc.k_dim = 1;
    pc.v_dim = 1;
    pc.block_tokens = block_tokens;
    pc.dtype = DType::kF32;
    pc.max_bytes = static_cast<int64_t>(capacity_blocks) * block_tokens * 2 * 4;
    budget_bytes_ = pc.max_bytes;
    sc.overlap_promotions = overlap_promotions_;
    sc.prefill_order = prefill_order_;
    sc.sample_threads = sample_threads_;
    fake_ = FakeModel();
    auto s = Scheduler::Create(
        sc, pc,
        [this](auto batch, auto seqs, auto& pool, float* logits) {
          return fake_.Forward(batch, seqs, pool, logits);
        },
        std::move(next_lower_));
    ASSERT_TRUE(s.ok()) << s.status().message();
    sched_ = std::move(s).value();
  }

  // Validates and queues; returns the request's index in states_.
  size_t Submit(const Tokens& prompt, int32_t max_tokens, bool ignore_eos = false,
                const std::string& cache_namespace = "") {
    Request r;
    r.prompt = prompt;
    r.max_tokens = max_tokens;
    r.sampling.temperature = 0.0f;
    r.ignore_eos = ignore_eos;
    r.cache_namespace = cache_namespace;
    Status st;
    EXPECT_EQ(sched_->Validate(&r, &st), ErrorCode::kOk) << st.message();
    states_.push_back(std::make_shared<RequestHandle::State>());
    sched_->Enqueue(std::move(r), states_.back());
    return states_.size() - 1;
  }

  Outcome Drain(size_t i) {
    Outcome o;
    auto& st = *states_[i];
    std::lock_guard<std::mutex> lock(st.mu);
    for (Event& e : st.events) {
      if (e.kind == Event::Kind::kToken) {
        o.tokens.push_back(e.token);
      } else {
        o.final_event = e;
        o.done = true;
      }
    }
    st.events.clear();
    return o;
  }

  // Steps until idle, checking the byte bound and the fake's rules each step.
  void RunAll() {
    for (int guard = 0; guard < 100000 && sched_->Step(); ++guard) {
      ASSERT_LE(sched_->pool().bytes_in_use(), budget_bytes_);
      ASSERT_LE(sched_->reserved_blocks(), sched_->pool().capacity_blocks());
      ASSERT_EQ(fake_.violation, "");
    }
    ASSERT_EQ(sched_->active(), 0);
    ASSERT_EQ(sched_->waiting(), 0);
  }

  Outcome Generate(const Tokens& prompt, int32_t max_tokens) {
    const size_t i = Submit(prompt, max_tokens);
    RunAll();
    return Drain(i);
  }

  // The next Make's tier below the pool (taken by it) and promotion mode.
  std::unique_ptr<kv::BlockStore> next_lower_;
  bool overlap_promotions_ = true;
  PrefillOrder prefill_order_ = PrefillOrder::kArrival;  // the next Make's
  int sample_threads_ = 0;                                // the next Make's
  std::unique_ptr<Scheduler> sched_;
  FakeModel fake_;
  std::unordered_set<int32_t> eog_;
  std::vector<std::shared_ptr<RequestHandle::State>> states_;
  int64_t budget_bytes_ = 0;
};

inline Tokens Range(int32_t first, int n) {
  Tokens t(n);
  for (int i = 0; i < n; ++i) t[i] = (first + i) % kVocab;
  return t;
}

inline Tokens Concat(Tokens a, const Tokens& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A constraint allowing at step k only tokens t with t % 7 == k % 7 and
// Done after `length` tokens; its state is only its own count, so a
// preempted sequence that lost it would go wrong.
class StepConstraint : public Constraint {
 public:
  explicit StepConstraint(int length) : length_(length) {}
  int64_t Mask(float* logits, int32_t n_vocab) override {
    int64_t n = 0;
    for (int32_t t = 0; t < n_vocab; ++t) {
      if (t % 7 != step_ % 7)
        logits[t] = -std::numeric_limits<float>::infinity();
      else
        ++n;
    }
    return n;
  }
  bool Accept(int32_t token) override { return token % 7 == step_++ % 7; }
  bool Done() const override { return step_ >= length_; }

 private:
  int length_;
  int step_ = 0;
};

}  // namespace reprise::engine::sched_testing
