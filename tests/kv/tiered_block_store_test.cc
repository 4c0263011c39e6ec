// The host-RAM tier and stacked tiers: HostBlockStore keeps exact bytes in
// slots carved from chunks it allocates as it fills (never past its bound);
// a tier that must evict for room spills the block into the tier below
// (demoted, not forgotten); TieredBlockStore finds a block in whichever tier
// holds it, never writes a block twice, reports which tier served a read,
// and sinks everything into the slowest tier at shutdown. Through the prompt
// cache: a conversation pushed out of the pool comes back from the host tier,
// and after more pressure from the disk tier, with rows identical to a fresh
// computation.
#include "kv/tiered_block_store.h"

#include <gtest/gtest.h>

#include <vector>

#include "kv/block_key.h"
#include "kv/prompt_cache.h"
#include "kv/prompt_cache_fixture.h"
#include "kv/promoter.h"

namespace reprise::kv {
namespace {

constexpr int64_t kBlock = 512;

std::vector<uint8_t> Payload(int seed) {
  std::vector<uint8_t> v(kBlock);
  for (int64_t i = 0; i < kBlock; ++i) v[i] = static_cast<uint8_t>(seed * 131 + i * 17 + 3);
  return v;
}

BlockKey Key(int i) {
  const int32_t t = i;
  return ChainTokens(BlockKey{5, 6}, std::span<const int32_t>(&t, 1));
}

TEST(HostBlockStoreTest, ExactBytesExactBoundAndSlotsReused) {
  HostBlockStore s(kBlock, 3 * kBlock, nullptr);
  EXPECT_EQ(s.name(), "host");
  EXPECT_EQ(s.allocated_bytes(), 0);  // nothing allocated until a block arrives
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(s.Put(Key(i), Payload(i)));
  EXPECT_EQ(s.bytes(), 3 * kBlock);
  EXPECT_EQ(s.allocated_bytes(), 3 * kBlock);  // the chunk is cut to the bound
  std::vector<uint8_t> out(kBlock);
  for (int round = 0; round < 50; ++round) {  // a stream: slots freed by evictions are reused
    const int i = 3 + round;
    ASSERT_TRUE(s.Put(Key(i), Payload(i)));
    ASSERT_LE(s.bytes(), s.bytes_limit());
    ASSERT_EQ(s.allocated_bytes(), 3 * kBlock);
    ASSERT_TRUE(s.Get(Key(i), out));
    ASSERT_EQ(out, Payload(i));
    ASSERT_FALSE(s.Contains(Key(i - 3)));
  }
  ASSERT_TRUE(s.Get(Key(51), out));
  EXPECT_EQ(out, Payload(51));
  EXPECT_FALSE(s.Put(Key(999), std::vector<uint8_t>(kBlock)) && s.bytes() > s.bytes_limit());
}

TEST(HostBlockStoreTest, EvictionSpillsIntoTheTierBelow) {
  HostBlockStore host(kBlock, 2 * kBlock, nullptr);
  MemoryBlockStore below(kBlock, 10 * kBlock);
  host.set_spill(&below);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(host.Put(Key(i), Payload(i)));
  // 0, 1, 2 were evicted from the host tier, each written below first.
  EXPECT_EQ(host.Stats().spills, 3);
  EXPECT_EQ(host.Stats().evictions, 3);
  std::vector<uint8_t> out(kBlock);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(below.Get(Key(i), out)) << i;
    EXPECT_EQ(out, Payload(i));
  }
  EXPECT_FALSE(below.Contains(Key(3)));
  // A block the tier below holds already is not written again.
  ASSERT_TRUE(host.Put(Key(0), Payload(0)));  // back into host (evicts 3, spilled)
  ASSERT_TRUE(host.Put(Key(7), Payload(7)));  // evicts 4 (spilled)
  ASSERT_TRUE(host.Put(Key(8), Payload(8)));  // evicts 0: below has it
  EXPECT_EQ(below.Stats().puts, 5);
  EXPECT_EQ(host.Stats().spills, 5);
}

// A pinned block (an asynchronous device copy reads its bytes in place)
// stays where it is: room is made from the next unpinned block, Evict
// refuses it, and when every block is pinned a Put stores nothing (and the
// tier stays on).
TEST(HostBlockStoreTest, APinnedBlockStaysInPlaceUntilUnpinned) {
  HostBlockStore host(kBlock, 3 * kBlock, nullptr);
  MemoryBlockStore below(kBlock, 10 * kBlock);
  host.set_spill(&below);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(host.Put(Key(i), Payload(i)));
  const BlockStore::HostPin pin = host.PinHost(Key(0));  // the least recently used
  ASSERT_NE(pin.data, nullptr);
  EXPECT_EQ(pin.tier, &host);
  EXPECT_EQ(std::vector<uint8_t>(pin.data, pin.data + kBlock), Payload(0));
  EXPECT_TRUE(host.pinned(Key(0)));
  ASSERT_TRUE(host.Put(Key(3), Payload(3)));  // evicts 1, not the pinned 0
  EXPECT_TRUE(host.Contains(Key(0)));
  EXPECT_FALSE(host.Contains(Key(1)));
  EXPECT_TRUE(below.Contains(Key(1)));  // demoted
  EXPECT_FALSE(host.Evict(Key(0)));
  const BlockStore::HostPin pin2 = host.PinHost(Key(2));
  const BlockStore::HostPin pin3 = host.PinHost(Key(3));
  ASSERT_NE(pin2.data, nullptr);
  ASSERT_NE(pin3.data, nullptr);
  EXPECT_FALSE(host.Put(Key(4), Payload(4)));  // all three pinned: no room
  EXPECT_TRUE(host.enabled());
  EXPECT_EQ(std::vector<uint8_t>(pin.data, pin.data + kBlock), Payload(0));  // untouched
  const int64_t gets = host.Stats().gets;
  host.UnpinHost(Key(0), pin, /*read=*/true);  // counted as a read, made most recent
  host.UnpinHost(Key(2), pin2, /*read=*/false);
  EXPECT_EQ(host.Stats().gets, gets + 1);
  EXPECT_EQ(host.KeysByRecency().back(), Key(0));
  ASSERT_TRUE(host.Put(Key(4), Payload(4)));  // evicts 2 (3 is still pinned)
  EXPECT_FALSE(host.Contains(Key(2)));
  EXPECT_TRUE(host.Contains(Key(3)));
  host.UnpinHost(Key(3), pin3, false);
  EXPECT_FALSE(host.pinned(Key(3)));
  EXPECT_EQ(host.bytes(), 3 * kBlock);
  // A disk-like tier keeps no host bytes: nothing to pin.
  MemoryBlockStore mem(kBlock, 2 * kBlock);
  ASSERT_TRUE(mem.Put(Key(9), Payload(9)));
  EXPECT_EQ(mem.PinHost(Key(9)).data, nullptr);
}

std::unique_ptr<TieredBlockStore> HostOverMemory(int host_blocks, int low_blocks,
                                                 MemoryBlockStore** low_out) {
  std::vector<std::unique_ptr<LruBlockStore>> tiers;
  tiers.push_back(std::make_unique<HostBlockStore>(kBlock, host_blocks * kBlock, nullptr));
  auto low = std::make_unique<MemoryBlockStore>(kBlock, low_blocks * kBlock);
  *low_out = low.get();
  tiers.push_back(std::move(low));
  auto t = TieredBlockStore::Create(std::move(tiers));
  EXPECT_TRUE(t.ok());
  return std::move(t).value();
}

TEST(TieredBlockStoreTest, ABlockIsFoundInWhicheverTierHoldsItAndWrittenOnce) {
  MemoryBlockStore* low = nullptr;
  auto t = HostOverMemory(2, 4, &low);
  EXPECT_EQ(t->name(), "host+memory");
  EXPECT_EQ(t->tier_count(), 2);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(t->Put(Key(i), Payload(i)));
  std::vector<uint8_t> out(kBlock);
  ASSERT_TRUE(t->Get(Key(4), out));
  EXPECT_EQ(t->last_get_tier(), 0);  // the newest is in host RAM
  EXPECT_EQ(out, Payload(4));
  ASSERT_TRUE(t->Get(Key(0), out));
  EXPECT_EQ(t->last_get_tier(), 1);  // the oldest sank to the tier below
  EXPECT_EQ(out, Payload(0));
  // Put of a key held anywhere writes nothing.
  const int64_t writes = t->Stats().puts;
  ASSERT_TRUE(t->Put(Key(0), Payload(0)));
  ASSERT_TRUE(t->Put(Key(4), Payload(4)));
  EXPECT_EQ(t->Stats().puts, writes);
  // Both bounds hold; the whole holds their sum.
  EXPECT_LE(t->tier(0)->Stats().bytes, 2 * kBlock);
  EXPECT_LE(low->bytes(), 4 * kBlock);
  EXPECT_EQ(t->Stats().bytes_limit, 6 * kBlock);
  EXPECT_TRUE(t->Evict(Key(0)));
  EXPECT_FALSE(t->Contains(Key(0)));
}

TEST(TieredBlockStoreTest, SpillAllToLowestKeepsWhatTheFasterTierHeld) {
  MemoryBlockStore* low = nullptr;
  auto t = HostOverMemory(4, 8, &low);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(t->Put(Key(i), Payload(i)));
  EXPECT_EQ(low->blocks(), 0);
  EXPECT_EQ(t->SpillAllToLowest(), 3);
  EXPECT_EQ(t->SpillAllToLowest(), 0);  // never rewritten
  std::vector<uint8_t> out(kBlock);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(low->Get(Key(i), out));
    EXPECT_EQ(out, Payload(i));
  }
}

TEST(TieredBlockStoreTest, AFailingTierIsSkipped) {
  std::vector<std::unique_ptr<LruBlockStore>> tiers;
  auto top = std::make_unique<MemoryBlockStore>(kBlock, 2 * kBlock);
  MemoryBlockStore* top_raw = top.get();
  tiers.push_back(std::move(top));
  tiers.push_back(std::make_unique<HostBlockStore>(kBlock, 4 * kBlock, nullptr));
  auto t = std::move(TieredBlockStore::Create(std::move(tiers))).value();
  top_raw->FailWritesForTest(true);
  EXPECT_TRUE(t->Put(Key(1), Payload(1)));  // the top tier turned off; the next took it
  EXPECT_FALSE(top_raw->enabled());
  EXPECT_TRUE(t->enabled());
  std::vector<uint8_t> out(kBlock);
  ASSERT_TRUE(t->Get(Key(1), out));
  EXPECT_EQ(t->last_get_tier(), 1);
}

TEST(TieredBlockStoreTest, TiersOfDifferentBlockSizesAreRefused) {
  std::vector<std::unique_ptr<LruBlockStore>> tiers;
  tiers.push_back(std::make_unique<HostBlockStore>(kBlock, 4 * kBlock, nullptr));
  tiers.push_back(std::make_unique<MemoryBlockStore>(kBlock * 2, 4 * kBlock));
  EXPECT_FALSE(TieredBlockStore::Create(std::move(tiers)).ok());
  EXPECT_FALSE(TieredBlockStore::Create({}).ok());
}

using namespace ::reprise::kv::testing;  // NOLINT

class PromptCacheHostTierTest : public PromptCacheTest {
 protected:
  void TearDown() override {
    cache_.reset();
    store_.reset();
  }
  std::unique_ptr<TieredBlockStore> store_;
  MemoryBlockStore* low_ = nullptr;
};

TEST_F(PromptCacheHostTierTest, AConversationComesBackFromHostThenFromTheTierBelow) {
  cache_.reset();
  const int64_t block_bytes = int64_t{kLayers} * 2 * 4 * kDim * 4;
  std::vector<std::unique_ptr<LruBlockStore>> tiers;
  tiers.push_back(std::make_unique<HostBlockStore>(block_bytes, 3 * block_bytes, nullptr));
  auto low = std::make_unique<MemoryBlockStore>(block_bytes, 100 * block_bytes);
  low_ = low.get();
  tiers.push_back(std::move(low));
  store_ = std::move(TieredBlockStore::Create(std::move(tiers))).value();
  Make(64, 1, 4, store_.get());
  const Tokens a = Range(100, 10), b = Range(200, 9), c = Range(300, 9);
  Run(a);
  Run(b);  // a (3 blocks) demoted: into host RAM
  EXPECT_EQ(store_->tier(0)->Stats().blocks, 3);
  EXPECT_EQ(low_->blocks(), 0);
  CacheHit hit = cache_->Acquire(a, static_cast<int32_t>(a.size()) - 1);
  ExpectRowsMatch(a, hit.seq);
  // a's two full blocks (its partial last block holds all 10 tokens; only a
  // request containing them all may use it).
  EXPECT_EQ(hit.n_cached, 8);
  EXPECT_EQ(hit.n_tier_tokens[0], 8);  // from host
  EXPECT_EQ(hit.n_tier_tokens[1], 0);
  for (int32_t blk : hit.seq.blocks) pool_->Unref(blk);
  // b, then c, pushed out of the pool: host keeps 3 blocks, a sinks below.
  Run(c);
  Run(Range(400, 9));
  EXPECT_GT(low_->blocks(), 0);
  hit = cache_->Acquire(a, static_cast<int32_t>(a.size()) - 1);
  ExpectRowsMatch(a, hit.seq);
  EXPECT_EQ(hit.n_cached, 8);
  EXPECT_EQ(hit.n_tier_tokens[0] + hit.n_tier_tokens[1], 8);
  EXPECT_GT(hit.n_tier_tokens[1], 0);  // at least part of it from the tier below
  for (int32_t blk : hit.seq.blocks) pool_->Unref(blk);
  const PromptCacheStats st = cache_->Stats();
  EXPECT_EQ(st.tier_hit_tokens[0] + st.tier_hit_tokens[1], st.lower_hit_tokens);
}

// The same conversations with promotions left to the promoter: host-tier
// blocks are pinned and copied at Submit (WriteBlockAsync), the rest read
// by its thread; the rows are a fresh computation's, and the host tier's
// blocks are unpinned and counted once the hit is settled.
TEST_F(PromptCacheHostTierTest, PinnedHostBlocksAreCopiedByThePromoter) {
  cache_.reset();
  const int64_t block_bytes = int64_t{kLayers} * 2 * 4 * kDim * 4;
  std::vector<std::unique_ptr<LruBlockStore>> tiers;
  tiers.push_back(std::make_unique<HostBlockStore>(block_bytes, 3 * block_bytes, nullptr));
  auto host = static_cast<HostBlockStore*>(tiers.back().get());
  auto low = std::make_unique<MemoryBlockStore>(block_bytes, 100 * block_bytes);
  low_ = low.get();
  tiers.push_back(std::move(low));
  store_ = std::move(TieredBlockStore::Create(std::move(tiers))).value();
  Make(64, 1, 4, store_.get());
  const Tokens a = Range(100, 10), b = Range(200, 9);
  Run(a);
  Run(b);  // a's 3 blocks: into host RAM
  const Tokens next = Concat(a, {5, 6});
  CacheHit hit = cache_->Acquire(next, static_cast<int32_t>(next.size()) - 1, "", true);
  ASSERT_EQ(hit.pending.size(), 3u);
  for (const PromotionRead& r : hit.pending) {
    EXPECT_NE(r.host.data, nullptr);
    EXPECT_EQ(r.reader, nullptr);
    EXPECT_TRUE(host->pinned(r.key));
  }
  // Pressure while the copies are in flight: demotions must not drop them.
  Run(Range(300, 9));
  Run(Range(400, 9));
  for (const PromotionRead& r : hit.pending) EXPECT_TRUE(host->Contains(r.key));
  Promoter promoter(*pool_);
  PromotionJob job = promoter.Wait(promoter.Submit(hit.pending));
  EXPECT_EQ(job.n_ok(), 3u);
  EXPECT_EQ(cache_->CompletePromotions(&hit, job.reads), 0);
  EXPECT_EQ(hit.n_cached, 10);
  EXPECT_EQ(hit.n_tier_tokens[0], 10);
  ExpectRowsMatch(next, hit.seq);
  for (const PromotionRead& r : job.reads) EXPECT_FALSE(host->pinned(r.key));
  EXPECT_EQ(cache_->Stats().tier_promotions[0], 3);
  Release(hit.seq);
  EXPECT_EQ(pool_->used_blocks(), cache_->cached_blocks());
}

}  // namespace
}  // namespace reprise::kv
