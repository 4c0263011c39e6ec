// Prompt cache tests on a small real BlockPool (F32, tiny dims). "Computing" a
// sequence writes a fingerprint of each position's token prefix into its K and
// V rows, so every reuse can be checked row by row: a cached prefix must hold
// exactly the values a fresh computation would have written.
#include "kv/prompt_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <set>

namespace reprise::kv {
namespace {

using Tokens = std::vector<int32_t>;

constexpr int kLayers = 2;
constexpr int kDim = 2;

Tokens Range(int32_t first, int n) {
  Tokens t(n);
  for (int i = 0; i < n; ++i) t[i] = first + i;
  return t;
}

Tokens Concat(const Tokens& a, const Tokens& b) {
  Tokens t = a;
  t.insert(t.end(), b.begin(), b.end());
  return t;
}

// A value determined by tokens[0..p] (exactly representable as float).
float Fingerprint(const Tokens& tokens, int p, int layer, int which) {
  uint64_t h = 1469598103934665603ull + layer * 31 + which * 7;
  for (int i = 0; i <= p; ++i) h = (h ^ static_cast<uint32_t>(tokens[i])) * 1099511628211ull;
  return static_cast<float>(h % (1u << 22));
}

class PromptCacheTest : public ::testing::Test {
 protected:
  void Make(int capacity_blocks, int max_entries, int block_tokens = 4) {
    cache_.reset();  // it releases into the old pool
    BlockPoolConfig pc;
    pc.n_layers = kLayers;
    pc.k_dim = kDim;
    pc.v_dim = kDim;
    pc.block_tokens = block_tokens;
    pc.dtype = DType::kF32;
    pc.max_bytes = static_cast<int64_t>(capacity_blocks) * kLayers * 2 * block_tokens * kDim * 4;
    auto pool = BlockPool::Create(pc);
    ASSERT_TRUE(pool.ok()) << pool.status().message();
    pool_ = std::move(pool).value();
    ASSERT_EQ(pool_->capacity_blocks(), capacity_blocks);
    budget_bytes_ = pc.max_bytes;
    PromptCacheConfig cc;
    cc.max_entries = max_entries;
    cache_ = std::make_unique<PromptCache>(*pool_, cc);
  }

  float* Row(int32_t block, int layer, int which, int row) {
    uint8_t* base = which == 0 ? pool_->K(block, layer) : pool_->V(block, layer);
    return reinterpret_cast<float*>(base) + row * kDim;
  }

  // Expects positions [0, seq.n_tokens) of seq to hold tokens' fingerprints.
  void ExpectRowsMatch(const Tokens& tokens, const SeqBlocks& seq) {
    const int bt = pool_->block_tokens();
    for (int p = 0; p < seq.n_tokens; ++p) {
      for (int l = 0; l < kLayers; ++l) {
        for (int w = 0; w < 2; ++w) {
          const float* r = Row(seq.blocks[p / bt], l, w, p % bt);
          ASSERT_EQ(r[0], Fingerprint(tokens, p, l, w)) << "position " << p;
          ASSERT_EQ(r[1], -r[0]) << "position " << p;
        }
      }
    }
  }

  // Acquires the cached prefix (all but the last token), checks it, and
  // computes the rest; the returned sequence holds every token.
  SeqBlocks Start(const Tokens& tokens, int32_t* n_cached = nullptr) {
    CacheHit hit = cache_->Acquire(tokens, static_cast<int32_t>(tokens.size()) - 1);
    EXPECT_EQ(hit.seq.n_tokens, hit.n_cached);
    ExpectRowsMatch(tokens, hit.seq);
    if (n_cached != nullptr) *n_cached = hit.n_cached;
    SeqBlocks seq = std::move(hit.seq);
    const int bt = pool_->block_tokens();
    for (int p = seq.n_tokens; p < static_cast<int>(tokens.size()); ++p) {
      if (p / bt == static_cast<int>(seq.blocks.size())) {
        const int32_t b = cache_->AllocateBlock();
        EXPECT_GE(b, 0) << "pool exhausted";
        if (b < 0) return seq;
        seq.blocks.push_back(b);
      }
      for (int l = 0; l < kLayers; ++l) {
        for (int w = 0; w < 2; ++w) {
          float* r = Row(seq.blocks[p / bt], l, w, p % bt);
          r[0] = Fingerprint(tokens, p, l, w);
          r[1] = -r[0];
        }
      }
      seq.n_tokens = p + 1;
      EXPECT_LE(pool_->bytes_in_use(), budget_bytes_);
    }
    return seq;
  }

  void Release(SeqBlocks& seq) {
    for (int32_t b : seq.blocks) pool_->Unref(b);
    seq = SeqBlocks();
  }

  void Finish(const Tokens& tokens, SeqBlocks& seq) {
    cache_->Insert(tokens, seq);
    Release(seq);
    cache_->CheckInvariants();
  }

  // One whole request: returns the number of cached tokens it reused.
  int32_t Run(const Tokens& tokens) {
    int32_t n_cached = 0;
    SeqBlocks seq = Start(tokens, &n_cached);
    Finish(tokens, seq);
    return n_cached;
  }

  // How many tokens a request for `tokens` would reuse (releases at once).
  int32_t Probe(const Tokens& tokens) {
    CacheHit hit = cache_->Acquire(tokens, static_cast<int32_t>(tokens.size()) - 1);
    ExpectRowsMatch(tokens, hit.seq);
    Release(hit.seq);
    return hit.n_cached;
  }

  std::unique_ptr<BlockPool> pool_;
  std::unique_ptr<PromptCache> cache_;
  int64_t budget_bytes_ = 0;
};

TEST_F(PromptCacheTest, FollowUpTurnReusesWholeConversation) {
  Make(64, 10);
  const Tokens turn1 = Range(100, 10);  // 2 full blocks + 2 tokens
  EXPECT_EQ(Run(turn1), 0);
  const Tokens turn2 = Concat(turn1, Range(500, 7));
  int32_t n_cached = 0;
  SeqBlocks seq = Start(turn2, &n_cached);
  EXPECT_EQ(n_cached, 10);
  Finish(turn2, seq);
  EXPECT_EQ(cache_->entries(), 1);  // the follow-up extends the same entry
  EXPECT_EQ(cache_->Stats().hits, 1);
  EXPECT_EQ(cache_->Stats().misses, 1);
  EXPECT_EQ(cache_->Stats().cached_tokens, 17);
}

TEST_F(PromptCacheTest, SharesFullBlocksAndCopiesOnlyThePartialOne) {
  Make(64, 10);
  const Tokens conv = Range(100, 12);
  Run(conv);
  const Tokens next = Concat(Range(100, 10), Range(900, 5));  // diverges inside block 2
  CacheHit hit = cache_->Acquire(next, static_cast<int32_t>(next.size()) - 1);
  EXPECT_EQ(hit.n_cached, 10);
  EXPECT_EQ(hit.n_shared_blocks, 2);
  EXPECT_EQ(hit.n_copied_tokens, 2);
  ASSERT_EQ(hit.seq.blocks.size(), 3u);
  EXPECT_EQ(pool_->RefCount(hit.seq.blocks[0]), 2);  // shared with the cache
  EXPECT_EQ(pool_->RefCount(hit.seq.blocks[1]), 2);
  EXPECT_EQ(pool_->RefCount(hit.seq.blocks[2]), 1);  // a private copy
  Release(hit.seq);
}

TEST_F(PromptCacheTest, ForkedConversationReusesCommonPrefix) {
  Make(64, 10);
  const Tokens original = Range(100, 20);
  Run(original);
  const Tokens edited = Concat(Range(100, 13), Range(700, 6));
  EXPECT_EQ(Run(edited), 13);
  EXPECT_EQ(cache_->entries(), 2);
  // Both branches stay reachable.
  EXPECT_EQ(Probe(Concat(original, {1})), 20);
  EXPECT_EQ(Probe(Concat(edited, {1})), 19);
}

TEST_F(PromptCacheTest, SharedSystemPromptIsStoredOnce) {
  Make(64, 10);
  const Tokens system = Range(1, 16);  // 4 full blocks
  const Tokens a = Concat(system, Range(200, 10));
  const Tokens b = Concat(system, Range(300, 10));
  EXPECT_EQ(Run(a), 0);
  EXPECT_EQ(Run(b), 16);
  // 4 system blocks + 3 blocks for each conversation's own 10 tokens.
  EXPECT_EQ(cache_->cached_blocks(), 4 + 3 + 3);
  EXPECT_EQ(pool_->used_blocks(), 10);
  auto entries = cache_->Entries();
  ASSERT_EQ(entries.size(), 2u);
  for (const auto& e : entries) {
    EXPECT_EQ(e.tokens, 26);
    EXPECT_EQ(e.blocks, 7);
    EXPECT_EQ(e.shared_blocks, 4);
    EXPECT_EQ(e.bytes, 7 * pool_->block_bytes());
  }
}

TEST_F(PromptCacheTest, ExactRepeatReusesAllButTheLastToken) {
  Make(64, 10);
  const Tokens unaligned = Range(10, 10);
  Run(unaligned);
  EXPECT_EQ(Run(unaligned), 9);
  const Tokens aligned = Range(50, 8);
  Run(aligned);
  EXPECT_EQ(Run(aligned), 7);  // ends inside block 1: 3 rows copied
  EXPECT_EQ(cache_->entries(), 2);
  EXPECT_EQ(pool_->used_blocks(), cache_->cached_blocks());
}

TEST_F(PromptCacheTest, EvictsLeastRecentlyUsedEntryWhenOverEntryLimit) {
  Make(64, 2);
  const Tokens a = Range(100, 9), b = Range(200, 9), c = Range(300, 9);
  Run(a);
  Run(b);
  Run(c);
  EXPECT_EQ(cache_->entries(), 2);
  EXPECT_EQ(cache_->Stats().evictions, 1);
  EXPECT_EQ(Probe(Concat(a, {1})), 0);
  EXPECT_EQ(Probe(Concat(b, {1})), 9);
  EXPECT_EQ(Probe(Concat(c, {1})), 9);
  EXPECT_EQ(pool_->used_blocks(), cache_->cached_blocks());
}

TEST_F(PromptCacheTest, HitRefreshesRecency) {
  Make(64, 2);
  const Tokens a = Range(100, 9), b = Range(200, 9), c = Range(300, 9);
  Run(a);
  Run(b);
  EXPECT_EQ(Probe(Concat(a, {1})), 9);  // a is now more recent than b
  Run(c);
  EXPECT_EQ(Probe(Concat(a, {1})), 9);
  EXPECT_EQ(Probe(Concat(b, {1})), 0);
}

TEST_F(PromptCacheTest, HitOnAnEntrysPrefixRefreshesThatEntry) {
  for (int prefix : {8, 6}) {  // ends on a block boundary / inside a block
    Make(64, 2);
    const Tokens a = Range(100, 20), b = Range(200, 20), c = Range(300, 9);
    Run(a);
    Run(b);
    EXPECT_EQ(Probe(Concat(Range(100, prefix), {1})), prefix);  // reuses a's first blocks
    Run(c);
    EXPECT_EQ(Probe(Concat(a, {1})), 20) << prefix;
    EXPECT_EQ(Probe(Concat(b, {1})), 0) << prefix;
  }
}

// Tenants: KV inserted under one namespace is never matched from another,
// not even a shared first token; within a namespace everything hits as usual.
TEST_F(PromptCacheTest, AHitNeverCrossesNamespaces) {
  Make(64, 10);
  const Tokens conv = Range(100, 10);  // 2 full blocks + a partial one
  SeqBlocks seq = Start(conv);  // computes all 10 (the cache is empty)
  cache_->Insert(conv, seq, "tenant-a");
  Release(seq);
  const Tokens next = Concat(conv, Range(500, 3));
  for (const char* other : {"", "tenant-b", "tenant-a ", "TENANT-A"}) {
    CacheHit miss = cache_->Acquire(next, 12, other);
    EXPECT_EQ(miss.n_cached, 0) << "namespace '" << other << "'";
    EXPECT_TRUE(miss.seq.blocks.empty());
    Release(miss.seq);
  }
  CacheHit same = cache_->Acquire(next, 12, "tenant-a");
  EXPECT_EQ(same.n_cached, 10);
  ExpectRowsMatch(next, same.seq);
  Release(same.seq);
  auto entries = cache_->Entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].cache_namespace, "tenant-a");
  cache_->CheckInvariants();
}

// The same tokens cached by two tenants are two entries with their own blocks
// (nothing is shared across namespaces); the entry limit and the LRU order
// are global over all namespaces, and an emptied namespace disappears.
TEST_F(PromptCacheTest, NamespacesShareTheEntryLimitAndLruButNoBlocks) {
  Make(64, 2);
  const Tokens conv = Range(100, 9);
  auto run_in = [&](const Tokens& t, const char* ns) {
    CacheHit hit = cache_->Acquire(t, static_cast<int32_t>(t.size()) - 1, ns);
    const int32_t n = hit.n_cached;
    Release(hit.seq);
    SeqBlocks seq = Start(t);  // the default namespace is empty: computes everything
    cache_->Insert(t, seq, ns);
    Release(seq);
    cache_->CheckInvariants();
    return n;
  };
  EXPECT_EQ(run_in(conv, "a"), 0);
  EXPECT_EQ(run_in(conv, "b"), 0);
  EXPECT_EQ(cache_->entries(), 2);
  EXPECT_EQ(cache_->cached_blocks(), 2 * 3);
  EXPECT_EQ(pool_->used_blocks(), 2 * 3);
  EXPECT_EQ(run_in(conv, "a"), 8);      // a is now more recent than b
  EXPECT_EQ(run_in(Range(300, 5), "c"), 0);  // a third entry: b (oldest) goes
  EXPECT_EQ(cache_->entries(), 2);
  EXPECT_EQ(cache_->Acquire(conv, 8, "b").n_cached, 0);
  CacheHit a = cache_->Acquire(conv, 8, "a");
  EXPECT_EQ(a.n_cached, 8);
  Release(a.seq);
  for (const auto& e : cache_->Entries()) EXPECT_NE(e.cache_namespace, "b");
  cache_->CheckInvariants();
  cache_->Clear();
  EXPECT_EQ(pool_->used_blocks(), 0);
}

TEST_F(PromptCacheTest, SizeZeroDisablesCaching) {
  Make(64, 0);
  const Tokens a = Range(100, 12);
  EXPECT_EQ(Run(a), 0);
  EXPECT_EQ(Run(a), 0);
  EXPECT_EQ(pool_->used_blocks(), 0);
  EXPECT_EQ(cache_->entries(), 0);
  EXPECT_EQ(cache_->Stats().hits, 0);
  EXPECT_EQ(cache_->Stats().misses, 2);
}

TEST_F(PromptCacheTest, ByteBoundHoldsUnderAStreamOfDistinctConversations) {
  Make(12, 1000);
  std::mt19937 rng(7);
  Tokens last;
  for (int i = 0; i < 60; ++i) {
    last = Range(1000 * (i + 1), 5 + static_cast<int>(rng() % 26));  // 2..8 blocks
    EXPECT_EQ(Run(last), 0);
    EXPECT_LE(pool_->bytes_in_use(), budget_bytes_);
    EXPECT_EQ(pool_->used_blocks(), cache_->cached_blocks());
  }
  EXPECT_GT(cache_->Stats().evictions, 0);
  EXPECT_EQ(Probe(Concat(last, {1})), static_cast<int32_t>(last.size()));
}

TEST_F(PromptCacheTest, PartialBlockCopyEqualsTheSourceRows) {
  Make(64, 10);
  const Tokens conv = Range(100, 8);
  Run(conv);
  const Tokens fork = Concat(Range(100, 7), {999, 998});
  CacheHit hit = cache_->Acquire(fork, static_cast<int32_t>(fork.size()) - 1);
  ASSERT_EQ(hit.n_cached, 7);
  ASSERT_EQ(hit.seq.blocks.size(), 2u);
  // The source is the cached block 1 of conv: find it through a shared probe.
  CacheHit src = cache_->Acquire(Concat(conv, {1}), 8);
  ASSERT_EQ(src.n_shared_blocks, 2);
  const int32_t copy = hit.seq.blocks[1];
  const int32_t orig = src.seq.blocks[1];
  EXPECT_NE(copy, orig);
  for (int l = 0; l < kLayers; ++l) {
    EXPECT_EQ(0, std::memcmp(pool_->K(copy, l), pool_->K(orig, l), 3 * kDim * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(pool_->V(copy, l), pool_->V(orig, l), 3 * kDim * sizeof(float)));
  }
  Release(hit.seq);
  Release(src.seq);
}

TEST_F(PromptCacheTest, InsertReplacesAPartialLeafItExtends) {
  Make(64, 10);
  Run(Range(100, 6));  // 1 full block + a 2-token leaf
  Run(Range(100, 7));  // the same conversation, one token longer
  EXPECT_EQ(cache_->entries(), 1);
  EXPECT_EQ(cache_->cached_blocks(), 2);
  EXPECT_EQ(cache_->Stats().cached_tokens, 7);
  EXPECT_EQ(pool_->used_blocks(), 2);
}

TEST_F(PromptCacheTest, InsertOfAPrefixOfACachedEntryAddsNothing) {
  Make(64, 10);
  Run(Range(100, 14));
  const int64_t blocks = cache_->cached_blocks();
  Run(Range(100, 6));
  EXPECT_EQ(cache_->entries(), 1);
  EXPECT_EQ(cache_->cached_blocks(), blocks);
  EXPECT_EQ(pool_->used_blocks(), blocks);
}

TEST_F(PromptCacheTest, EvictionKeepsASharedSystemPromptWhileConversationsRotate) {
  Make(64, 2);
  const Tokens system = Range(1, 16);
  for (int i = 0; i < 5; ++i) Run(Concat(system, Range(1000 * (i + 1), 10)));
  EXPECT_EQ(cache_->entries(), 2);
  EXPECT_EQ(cache_->cached_blocks(), 4 + 3 + 3);
  EXPECT_EQ(Probe(Concat(system, Range(9000, 3))), 16);
}

TEST_F(PromptCacheTest, EvictionForRoomSkipsEntriesPinnedByInFlightSequences) {
  Make(10, 10);
  const Tokens a = Range(100, 8), b = Range(200, 8);
  Run(a);
  // An in-flight continuation of a pins both of a's blocks.
  int32_t n_cached = 0;
  SeqBlocks pinned = Start(Concat(a, {1, 2, 3}), &n_cached);
  ASSERT_EQ(n_cached, 8);
  Run(b);  // b is now the most recently used entry
  EXPECT_EQ(pool_->free_blocks(), 10 - 4 - 1);
  EXPECT_TRUE(cache_->EvictUntilFree(6));
  EXPECT_EQ(cache_->entries(), 1);  // b went: evicting a (older, pinned) frees nothing
  EXPECT_EQ(Probe(Concat(a, {1})), 8);
  EXPECT_FALSE(cache_->EvictUntilFree(8));  // the pinned blocks cannot be freed
  Release(pinned);
  EXPECT_TRUE(cache_->EvictUntilFree(10));
  EXPECT_EQ(pool_->used_blocks(), 0);
}

TEST_F(PromptCacheTest, EntriesReportHitsLastUseAndCounters) {
  Make(64, 10);
  const Tokens a = Range(100, 10), b = Range(200, 6);
  const uint64_t v0 = cache_->version();
  Run(a);
  Run(b);
  EXPECT_NE(cache_->version(), v0);
  Probe(Concat(a, {1}));
  Probe(Concat(a, {2}));
  auto entries = cache_->Entries();
  ASSERT_EQ(entries.size(), 2u);
  std::sort(entries.begin(), entries.end(),
            [](const CacheEntryInfo& x, const CacheEntryInfo& y) { return x.tokens > y.tokens; });
  EXPECT_EQ(entries[0].tokens, 10);
  EXPECT_EQ(entries[0].hits, 2);
  EXPECT_EQ(entries[0].blocks, 3);
  EXPECT_EQ(entries[0].shared_blocks, 0);
  EXPECT_EQ(entries[1].tokens, 6);
  EXPECT_EQ(entries[1].hits, 0);
  EXPECT_GT(entries[0].last_use_unix_ms, 1600000000000);  // a wall-clock time
  const PromptCacheStats st = cache_->Stats();
  EXPECT_EQ(st.entries, 2);
  EXPECT_EQ(st.cached_blocks, 5);
  EXPECT_EQ(st.cached_bytes, 5 * pool_->block_bytes());
  EXPECT_EQ(st.cached_tokens, 16);
  EXPECT_EQ(st.hits, 2);
  EXPECT_EQ(st.misses, 2);
  EXPECT_EQ(st.hit_tokens, 20);
  EXPECT_EQ(st.inserts, 2);
}

TEST_F(PromptCacheTest, AcquireFallsBackToSharedBlocksWhenNoBlockIsFreeForTheCopy) {
  Make(3, 10);
  const Tokens a = Range(100, 6);  // a full block + a 2-token leaf
  Run(a);
  const int32_t other = pool_->Allocate();  // an in-flight block fills the pool
  ASSERT_GE(other, 0);
  ASSERT_EQ(pool_->free_blocks(), 0);
  // The copy of the partial block has no room, and the entry it would come
  // from must not be evicted to make some: the match stops at the full block.
  CacheHit hit = cache_->Acquire(Concat(a, {1}), 6);
  EXPECT_EQ(hit.n_cached, 4);
  EXPECT_EQ(hit.n_copied_tokens, 0);
  EXPECT_EQ(cache_->entries(), 1);
  ExpectRowsMatch(a, hit.seq);
  Release(hit.seq);
  pool_->Unref(other);
  EXPECT_EQ(Probe(Concat(a, {1})), 6);
  cache_->CheckInvariants();
}

TEST_F(PromptCacheTest, NoLeakedBlocksAfterReleasingEverything) {
  Make(40, 4);
  const Tokens system = Range(1, 8);
  std::vector<std::pair<Tokens, SeqBlocks>> in_flight;
  for (int i = 0; i < 6; ++i) {
    Tokens t = Concat(system, Range(100 * (i + 1), 3 + i));
    SeqBlocks s = Start(t);
    in_flight.emplace_back(t, std::move(s));
  }
  for (auto& [t, s] : in_flight) Finish(t, s);
  EXPECT_EQ(pool_->used_blocks(), cache_->cached_blocks());
  cache_->Clear();
  EXPECT_EQ(pool_->used_blocks(), 0);
  EXPECT_EQ(cache_->entries(), 0);
}

// Random conversations (follow-ups, forks, shared system prompts, repeats),
// several in flight at once, against a model: with no pressure the match is
// exactly the longest common prefix with anything inserted; under pressure it
// is never longer, rows are always right, and accounting is exact.
TEST_F(PromptCacheTest, RandomizedStressAgreesWithAModel) {
  for (int phase = 0; phase < 2; ++phase) {
    const bool bounded = phase == 1;
    Make(bounded ? 60 : 4096, bounded ? 5 : 100000, 4);
    std::mt19937 rng(1234 + phase);
    std::vector<Tokens> history;
    std::vector<std::pair<Tokens, SeqBlocks>> in_flight;
    auto pick = [&](int n) { return static_cast<int>(rng() % n); };
    for (int step = 0; step < 400; ++step) {
      if (!in_flight.empty() && (in_flight.size() >= 3 || pick(2) == 0)) {
        auto it = in_flight.begin() + pick(static_cast<int>(in_flight.size()));
        if (pick(5) == 0) {
          Release(it->second);  // cancelled: nothing inserted
        } else {
          Finish(it->first, it->second);
          history.push_back(it->first);
        }
        in_flight.erase(it);
      } else {
        Tokens t;
        const int kind = history.empty() ? 0 : pick(4);
        if (kind == 0) {  // new conversation, maybe on a shared system prompt
          t = Range(pick(3) * 50, pick(3) * 5);
          for (int i = 0, n = 2 + pick(12); i < n; ++i) t.push_back(pick(6));
        } else {
          const Tokens& base = history[pick(static_cast<int>(history.size()))];
          t.assign(base.begin(), base.begin() + (kind == 1 ? base.size() : pick(base.size() + 1)));
          if (kind != 3) {
            for (int i = 0, n = 1 + pick(8); i < n; ++i) t.push_back(pick(6));
          }
        }
        if (t.size() < 2 || t.size() > 60) continue;
        size_t best = 0;
        for (const Tokens& h : history) {
          size_t l = 0;
          while (l < h.size() && l < t.size() && h[l] == t[l]) ++l;
          best = std::max(best, l);
        }
        best = std::min(best, t.size() - 1);
        int32_t n_cached = 0;
        SeqBlocks s = Start(t, &n_cached);
        if (bounded) {
          EXPECT_LE(n_cached, static_cast<int32_t>(best));
        } else {
          EXPECT_EQ(n_cached, static_cast<int32_t>(best)) << "step " << step;
        }
        in_flight.emplace_back(t, std::move(s));
      }
      cache_->CheckInvariants();
      // Exact accounting: the pool holds the union of cached and in-flight blocks.
      std::set<int32_t> held;
      for (auto& [t, s] : in_flight) held.insert(s.blocks.begin(), s.blocks.end());
      int64_t cache_only = 0;
      for (int32_t b = 0; b < pool_->capacity_blocks(); ++b) {
        if (pool_->RefCount(b) > 0 && !held.count(b)) ++cache_only;
      }
      EXPECT_EQ(cache_only + static_cast<int64_t>(held.size()), pool_->used_blocks());
      EXPECT_LE(cache_only, cache_->cached_blocks());
      EXPECT_LE(pool_->bytes_in_use(), budget_bytes_);
      if (HasFailure()) return;
    }
    for (auto& [t, s] : in_flight) Finish(t, s);
    EXPECT_EQ(pool_->used_blocks(), cache_->cached_blocks());
    if (bounded) {
      EXPECT_GT(cache_->Stats().evictions, 0);
    }
    EXPECT_GT(cache_->Stats().hits, 50);
    cache_->Clear();
    EXPECT_EQ(pool_->used_blocks(), 0);
  }
}

}  // namespace
}  // namespace reprise::kv
