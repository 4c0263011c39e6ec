// The prompt cache over a lower tier (MemoryBlockStore: simulated storage):
// eviction demotes instead of forgetting, a lookup promotes what the pool no
// longer holds (rows identical to a fresh computation), a shared prefix is
// stored once, namespaces stay apart, corrupt blocks and a failing tier only
// shorten matches, both bounds hold under a stream of conversations, and a
// new cache over the same store (a restart) finds what was demoted.
#include <gtest/gtest.h>

#include <random>

#include "kv/block_store.h"
#include "kv/prompt_cache.h"
#include "kv/prompt_cache_fixture.h"

namespace reprise::kv {
namespace {

using namespace ::reprise::kv::testing;  // NOLINT

// A memory store whose blocks a reader may fetch off the owner thread (the
// tests below read them on the test thread, between Acquire and
// CompletePromotions, as the promoter would).
class ConcurrentMemoryStore : public MemoryBlockStore {
 public:
  using MemoryBlockStore::MemoryBlockStore;

 protected:
  bool reads_concurrently() const override { return true; }
};

class PromptCacheTierTest : public PromptCacheTest {
 protected:
  // A pool of `capacity_blocks` 4-token blocks and a store of `store_blocks`.
  void MakeTiered(int capacity_blocks, int max_entries, int store_blocks,
                  bool concurrent = false) {
    cache_.reset();
    store_.reset();
    const int64_t block_bytes = int64_t{kLayers} * 2 * 4 * kDim * 4;
    if (concurrent) {
      store_ = std::make_unique<ConcurrentMemoryStore>(block_bytes, store_blocks * block_bytes);
    } else {
      store_ = std::make_unique<MemoryBlockStore>(block_bytes, store_blocks * block_bytes);
    }
    Make(capacity_blocks, max_entries, 4, store_.get());
  }
  // Performs a hit's pending reads as the promoter would (straight into the
  // host pool, stopping at the first failure), then settles the hit.
  int32_t ReadPending(CacheHit* hit) {
    std::vector<PromotionRead> reads = hit->pending;
    for (PromotionRead& r : reads) {
      r.outcome = r.reader->ReadConcurrently(r.key, pool_->HostBlock(r.block));
      r.attempted = true;
      if (r.outcome != BlockStore::ReadOutcome::kOk) break;
    }
    return cache_->CompletePromotions(hit, reads);
  }
  // The content address of tokens[0, end) (end on a block boundary or not).
  BlockKey KeyOf(const Tokens& tokens, int end, const char* ns = "") {
    BlockKey k = ChainString(kLayout, ns);
    for (int pos = 0; pos < end; pos += 4) {
      const int n = std::min(4, end - pos);
      k = ChainTokens(k, std::span<const int32_t>(tokens).subspan(pos, n));
    }
    return k;
  }
  CacheHit Lookup(const Tokens& tokens, const char* ns = "") {
    CacheHit hit = cache_->Acquire(tokens, static_cast<int32_t>(tokens.size()) - 1, ns);
    ExpectRowsMatch(tokens, hit.seq);
    return hit;
  }
  void TearDown() override {
    cache_.reset();  // before the store it points to
    store_.reset();
  }
  std::unique_ptr<MemoryBlockStore> store_;
};

TEST_F(PromptCacheTierTest, EvictedConversationIsDemotedAndPromotedBack) {
  MakeTiered(64, 1, 100);
  const Tokens a = Range(100, 10), b = Range(200, 9);  // 3 blocks each (2 full + partial)
  Run(a);
  EXPECT_EQ(store_->blocks(), 0);  // nothing is written while it stays in the pool
  Run(b);                          // over the entry limit: a is demoted
  EXPECT_EQ(cache_->entries(), 1);
  EXPECT_EQ(store_->blocks(), 3);
  EXPECT_EQ(cache_->Stats().demotions, 3);
  EXPECT_EQ(pool_->used_blocks(), cache_->cached_blocks());  // a's blocks left the pool
  // Leaf first: in the tier's LRU a block's ancestors are newer than it.
  EXPECT_EQ(store_->KeysByRecency(),
            (std::vector<BlockKey>{KeyOf(a, 10), KeyOf(a, 8), KeyOf(a, 4)}));

  const Tokens next = Concat(a, Range(500, 5));
  CacheHit hit = Lookup(next);  // rows checked against a fresh computation
  EXPECT_EQ(hit.n_cached, 10);
  EXPECT_EQ(hit.n_lower_tokens, 10);
  EXPECT_EQ(hit.n_lower_blocks, 3);
  EXPECT_EQ(hit.n_shared_blocks, 0);
  Release(hit.seq);
  EXPECT_EQ(cache_->Stats().promotions, 3);
  EXPECT_EQ(cache_->Stats().lower_hit_tokens, 10);
  // The continued conversation goes back into the tree; b is demoted in turn.
  EXPECT_EQ(Run(next), 10);
  EXPECT_EQ(Probe(Concat(next, {1})), static_cast<int32_t>(next.size()));
  EXPECT_TRUE(store_->Contains(KeyOf(b, 8)));
  EXPECT_EQ(pool_->used_blocks(), cache_->cached_blocks());
}

// The tier's own LRU drops the end of a conversation before its beginning:
// what is left is still a usable prefix.
TEST_F(PromptCacheTierTest, AFullTierDropsLeavesBeforeThePrefixesTheyExtend) {
  MakeTiered(64, 1, 2);  // the store holds 2 blocks
  const Tokens a = Range(100, 10);  // 3 blocks
  Run(a);
  Run(Range(200, 3));  // a is demoted: its partial leaf is the one that does not fit
  EXPECT_EQ(store_->KeysByRecency(), (std::vector<BlockKey>{KeyOf(a, 8), KeyOf(a, 4)}));
  CacheHit hit = Lookup(Concat(a, {1}));
  EXPECT_EQ(hit.n_cached, 8);
  EXPECT_EQ(hit.n_lower_tokens, 8);
  Release(hit.seq);
  // A lookup refreshes the blocks it read, ancestors newest.
  EXPECT_EQ(store_->KeysByRecency(), (std::vector<BlockKey>{KeyOf(a, 8), KeyOf(a, 4)}));
  EXPECT_LE(store_->bytes(), store_->bytes_limit());
}

TEST_F(PromptCacheTierTest, MatchContinuesFromThePoolIntoTheLowerTier) {
  MakeTiered(64, 1, 100);
  const Tokens system = Range(1, 8);
  const Tokens a = Concat(system, Range(100, 9)), b = Concat(system, Range(200, 9));
  Run(a);
  Run(b);  // a's own blocks are demoted; the system blocks stay (b uses them)
  CacheHit hit = Lookup(Concat(a, {7}));
  EXPECT_EQ(hit.n_shared_blocks, 2);  // system, from the pool
  EXPECT_EQ(hit.n_lower_tokens, 9);   // a's own 9 tokens, from the store
  EXPECT_EQ(hit.n_cached, 17);
  Release(hit.seq);
}

TEST_F(PromptCacheTierTest, ASharedPrefixIsStoredOnceAndNeverRewritten) {
  MakeTiered(64, 1, 100);
  const Tokens system = Range(1, 16);  // 4 full blocks
  for (int i = 0; i < 5; ++i) Run(Concat(system, Range(1000 * (i + 1), 6)));
  Run(Range(9000, 5));  // pushes the last system-prompt conversation out too
  // 4 system blocks once + 2 blocks of each of the 5 conversations.
  EXPECT_EQ(store_->blocks(), 4 + 5 * 2);
  EXPECT_EQ(store_->Stats().puts, 4 + 5 * 2);
  const int64_t written = store_->Stats().bytes_written;
  // Promote one, continue it, and push it out again: nothing new to write
  // but the new turn's block (and the 2 blocks of the conversation that its
  // insert pushed out).
  const Tokens again = Concat(Concat(system, Range(3000, 6)), Range(50, 2));
  EXPECT_EQ(Run(again), 22);
  Run(Range(9100, 5));
  EXPECT_EQ(store_->Stats().bytes_written - written, (1 + 2) * store_->block_bytes());
}

TEST_F(PromptCacheTierTest, DemotedBlocksStayInTheirNamespace) {
  MakeTiered(64, 1, 100);
  const Tokens a = Range(100, 10);
  SeqBlocks seq = Start(a);
  cache_->Insert(a, seq, "alice");
  Release(seq);
  Run(Range(200, 6));  // demotes alice's entry
  EXPECT_EQ(store_->blocks(), 3);
  for (const char* other : {"", "bob"}) {
    CacheHit miss = Lookup(Concat(a, {1}), other);
    EXPECT_EQ(miss.n_cached, 0) << other;
    Release(miss.seq);
  }
  CacheHit hit = Lookup(Concat(a, {1}), "alice");
  EXPECT_EQ(hit.n_cached, 10);
  EXPECT_EQ(hit.n_lower_tokens, 10);
  Release(hit.seq);
}

TEST_F(PromptCacheTierTest, ACorruptBlockShortensTheMatchAndIsNeverLoaded) {
  MakeTiered(64, 1, 100);
  const Tokens a = Range(100, 14);  // 3 full + a 2-token partial
  Run(a);
  Run(Range(200, 5));
  ASSERT_EQ(store_->blocks(), 4);
  store_->CorruptForTest(KeyOf(a, 8));  // the second block
  CacheHit hit = Lookup(Concat(a, {1}));  // rows of what was loaded are checked
  EXPECT_EQ(hit.n_cached, 4);             // only the block before the corrupt one
  EXPECT_EQ(hit.n_lower_blocks, 1);
  Release(hit.seq);
  EXPECT_EQ(store_->Stats().corrupt_discarded, 1);
  EXPECT_FALSE(store_->Contains(KeyOf(a, 8)));
  EXPECT_TRUE(store_->enabled());
  // Recomputed and reinserted, then demoted again: whole again.
  EXPECT_EQ(Run(Concat(a, {1})), 4);
  Run(Range(300, 5));
  CacheHit whole = Lookup(Concat(a, {1, 2}));
  EXPECT_EQ(whole.n_cached, 15);
  Release(whole.seq);
}

TEST_F(PromptCacheTierTest, AFailingTierTurnsOffAndTheCacheKeepsServing) {
  MakeTiered(16, 2, 100);
  store_->FailWritesForTest(true);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(Run(Range(100 * (i + 1), 9)), 0);
  EXPECT_FALSE(store_->enabled());
  EXPECT_EQ(cache_->Stats().demotions, 0);
  EXPECT_EQ(cache_->entries(), 2);
  EXPECT_EQ(Probe(Range(1000, 9)), 8);  // the pool still serves
  EXPECT_EQ(pool_->used_blocks(), cache_->cached_blocks());
}

TEST_F(PromptCacheTierTest, PinnedBlocksAreNotDemotedUntilTheirSequenceEnds) {
  MakeTiered(64, 1, 100);
  const Tokens a = Range(100, 8);
  Run(a);
  int32_t n_cached = 0;
  SeqBlocks pinned = Start(Concat(a, {1, 2, 3}), &n_cached);
  ASSERT_EQ(n_cached, 8);
  Run(Range(200, 5));  // evicts a's entry while a continuation holds its blocks
  EXPECT_EQ(store_->blocks(), 0);
  Finish(Concat(a, {1, 2, 3}), pinned);  // back in the tree (and b demoted)
  EXPECT_EQ(Probe(Concat(a, {1, 2, 3, 4})), 11);
}

// Issue 14's rule: hundreds of distinct conversations through a small pool
// and a small store; both bounds hold after every request, the pool is
// exactly the cached blocks when idle, and the newest conversations hit.
TEST_F(PromptCacheTierTest, BothBoundsHoldUnderAStreamOfConversations) {
  MakeTiered(12, 3, 20);
  std::mt19937 rng(11);
  std::vector<Tokens> convs;
  for (int i = 0; i < 300; ++i) {
    Tokens t;
    if (!convs.empty() && rng() % 3 == 0) {  // continue a recent one
      t = Concat(convs[convs.size() - 1 - rng() % std::min<size_t>(convs.size(), 6)],
                 Range(50000 + i * 10, 1 + static_cast<int>(rng() % 6)));
      if (t.size() > 40) t = Range(100 * (i + 1), 6);
    } else {
      t = Range(100 * (i + 1), 2 + static_cast<int>(rng() % 20));
    }
    Run(t);
    convs.push_back(t);
    ASSERT_LE(pool_->bytes_in_use(), budget_bytes_);
    ASSERT_LE(store_->bytes(), store_->bytes_limit());
    ASSERT_EQ(pool_->used_blocks(), cache_->cached_blocks());
    ASSERT_EQ(store_->bytes(), store_->blocks() * store_->block_bytes());
  }
  EXPECT_GT(cache_->Stats().demotions, 100);
  EXPECT_GT(cache_->Stats().promotions, 10);
  EXPECT_GT(store_->Stats().evictions, 0);
  // The most recent conversations are whole (in the pool or in the store).
  for (size_t i = convs.size() - 3; i < convs.size(); ++i)
    EXPECT_EQ(Probe(Concat(convs[i], {1})), static_cast<int32_t>(convs[i].size()));
}

// Acquire with concurrent reads leaves the store's blocks to a reader: the
// hit already holds their pool blocks, counts come when it is settled, and
// the rows are those a fresh computation writes.
TEST_F(PromptCacheTierTest, ReadsLeftToAReaderSettleToTheSameHit) {
  MakeTiered(64, 1, 100, /*concurrent=*/true);
  const Tokens system = Range(1, 8);
  const Tokens a = Concat(system, Range(100, 9)), b = Concat(system, Range(200, 9));
  Run(a);
  Run(b);  // a's own 9 tokens (3 blocks) are demoted; the system stays in the pool
  const Tokens next = Concat(a, {7});
  CacheHit hit = cache_->Acquire(next, static_cast<int32_t>(next.size()) - 1, "", true);
  ASSERT_EQ(hit.pending.size(), 3u);
  EXPECT_EQ(hit.n_cached, 17);
  EXPECT_EQ(hit.seq.blocks.size(), 5u);
  EXPECT_EQ(hit.n_lower_tokens, 0);  // not settled yet
  EXPECT_EQ(cache_->Stats().promotions, 0);
  EXPECT_EQ(ReadPending(&hit), 0);
  EXPECT_TRUE(hit.pending.empty());
  EXPECT_EQ(hit.n_cached, 17);
  EXPECT_EQ(hit.n_shared_blocks, 2);
  EXPECT_EQ(hit.n_lower_tokens, 9);
  EXPECT_EQ(hit.n_lower_blocks, 3);
  EXPECT_EQ(hit.n_tier_tokens[0], 9);
  ExpectRowsMatch(next, hit.seq);
  const PromptCacheStats st = cache_->Stats();
  EXPECT_EQ(st.promotions, 3);
  EXPECT_EQ(st.lower_hit_tokens, 9);
  EXPECT_EQ(st.tier_promotions[0], 3);
  EXPECT_EQ(store_->Stats().gets, 3);
  // Deepest first again: the tier's LRU drops a's end before its beginning.
  EXPECT_EQ(store_->KeysByRecency(), (std::vector<BlockKey>{KeyOf(a, 17), KeyOf(a, 16),
                                                            KeyOf(a, 12)}));
  Release(hit.seq);
  EXPECT_EQ(pool_->used_blocks(), cache_->cached_blocks());
}

TEST_F(PromptCacheTierTest, APendingReadThatFailsEndsTheMatchThere) {
  MakeTiered(64, 1, 100, /*concurrent=*/true);
  const Tokens a = Range(100, 14);  // 3 full blocks + a 2-token partial
  Run(a);
  Run(Range(200, 5));
  ASSERT_EQ(store_->blocks(), 4);
  static_cast<MemoryBlockStore*>(store_.get())->CorruptForTest(KeyOf(a, 8));
  const Tokens next = Concat(a, {1});
  const int64_t hits_before = cache_->Stats().hits;
  CacheHit hit = cache_->Acquire(next, static_cast<int32_t>(next.size()) - 1, "", true);
  ASSERT_EQ(hit.pending.size(), 4u);
  EXPECT_EQ(hit.n_cached, 14);
  EXPECT_EQ(ReadPending(&hit), 10);  // only the block before the corrupt one stays
  EXPECT_EQ(hit.n_cached, 4);
  EXPECT_EQ(hit.seq.n_tokens, 4);
  EXPECT_EQ(hit.seq.blocks.size(), 1u);
  EXPECT_EQ(hit.n_lower_blocks, 1);
  ExpectRowsMatch(next, hit.seq);
  EXPECT_EQ(store_->Stats().corrupt_discarded, 1);
  EXPECT_FALSE(store_->Contains(KeyOf(a, 8)));
  EXPECT_EQ(cache_->Stats().hits, hits_before + 1);
  EXPECT_EQ(cache_->Stats().promotions, 1);
  Release(hit.seq);
  EXPECT_EQ(pool_->used_blocks(), cache_->cached_blocks());  // the dropped blocks are free

  // The first block failing leaves no hit at all: counted as a miss.
  store_->Evict(KeyOf(a, 4));
  const int64_t misses_before = cache_->Stats().misses;
  CacheHit none = cache_->Acquire(Concat(a, {2}), 14, "", true);
  EXPECT_TRUE(none.pending.empty());  // nothing chains past a missing first block
  EXPECT_EQ(none.n_cached, 0);
  EXPECT_EQ(cache_->Stats().misses, misses_before + 1);
}

TEST_F(PromptCacheTierTest, ANewCacheOverTheSameStoreFindsWhatWasDemoted) {
  MakeTiered(64, 10, 100);
  const Tokens a = Range(100, 10), b = Range(200, 6);
  Run(a);
  Run(b);
  EXPECT_EQ(cache_->DemoteAll(), 3 + 2);  // shutdown
  EXPECT_EQ(cache_->DemoteAll(), 0);      // stored once
  // "Restart": a new pool and cache over the same store.
  cache_.reset();
  Make(64, 10, 4, store_.get());
  CacheHit hit = Lookup(Concat(a, {1}));
  EXPECT_EQ(hit.n_cached, 10);
  EXPECT_EQ(hit.n_lower_tokens, 10);
  Release(hit.seq);
  // An exact repeat of b wants 5 of its 6 tokens: the full block comes from
  // the store, but its partial block holds 2 tokens and is named by both of
  // them, so it cannot serve a 1-token match (the tree can: it compares
  // tokens). At most block_tokens - 1 tokens are recomputed for it.
  EXPECT_EQ(Probe(b), 4);
}

}  // namespace
}  // namespace reprise::kv
