// The promoter over a real disk tier: blocks are read on its thread straight
// into a host pool or through staging slots (the device path), a job stops at
// its first failed read, a corrupt file is reported and discarded, and while
// the owner thread keeps writing and evicting blocks of the same tier, every
// block that arrives holds exactly its own bytes.
#include "kv/promoter.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>

#include "kv/disk_block_store.h"
#include "testing/fixtures.h"

namespace reprise::kv {
namespace {

using Outcome = BlockStore::ReadOutcome;

class PromoterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int n = 0;
    dir_ = reprise::testing::TempDir() + "/promoter_" + std::to_string(getpid()) + "_" +
           std::to_string(n++);
    BlockPoolConfig pc;
    pc.n_layers = 2;
    pc.k_dim = 8;
    pc.v_dim = 8;
    pc.block_tokens = 16;
    pc.dtype = DType::kF32;
    pc.max_bytes = 32 * BlockPool::BlockBytesOf(pc);
    auto pool = BlockPool::Create(pc);
    ASSERT_TRUE(pool.ok()) << pool.status().message();
    pool_ = std::move(pool).value();
  }
  void OpenStore(int64_t limit_blocks) {
    DiskBlockStoreConfig c;
    c.dir = dir_;
    c.layout = {3, 4};
    c.block_bytes = pool_->block_bytes();
    c.bytes_limit = limit_blocks * (DiskBlockStore::kHeaderBytes + c.block_bytes);
    c.fsync = false;
    auto s = DiskBlockStore::Open(c);
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_ = std::move(s).value();
  }
  static BlockKey Key(int i) { return BlockKey{0x9000u + static_cast<uint64_t>(i), 77}; }
  std::vector<uint8_t> Payload(int i) const {
    std::vector<uint8_t> p(static_cast<size_t>(pool_->block_bytes()));
    std::mt19937 rng(static_cast<uint32_t>(i) * 7919u + 1);
    for (auto& b : p) b = static_cast<uint8_t>(rng());
    return p;
  }
  std::vector<uint8_t> PoolBytes(int32_t block) const {
    std::vector<uint8_t> p(static_cast<size_t>(pool_->block_bytes()));
    pool_->ReadBlock(block, p.data());
    return p;
  }
  // A job reading blocks `first`.. `first + n - 1` into fresh pool blocks.
  std::vector<PromotionRead> Reads(int first, int n) {
    std::vector<PromotionRead> reads;
    for (int i = first; i < first + n; ++i) {
      PromotionRead r;
      r.key = Key(i);
      r.reader = store_->ConcurrentReader(r.key);
      EXPECT_NE(r.reader, nullptr) << i;
      r.block = pool_->Allocate();
      EXPECT_GE(r.block, 0);
      reads.push_back(r);
    }
    return reads;
  }
  void Release(const PromotionJob& job) {
    for (const PromotionRead& r : job.reads) pool_->Unref(r.block);
  }

  std::string dir_;
  std::unique_ptr<BlockPool> pool_;
  std::unique_ptr<DiskBlockStore> store_;
};

TEST_F(PromoterTest, ReadsEveryBlockIntoThePoolDirectlyOrThroughStagingSlots) {
  OpenStore(100);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(store_->Put(Key(i), Payload(i)));
  for (bool staged : {false, true}) {
    SCOPED_TRACE(staged ? "staged" : "direct");
    Promoter promoter(*pool_, /*staging_slots=*/2, /*force_staging=*/staged);
    const int64_t id = promoter.Submit(Reads(0, 10));  // more blocks than slots
    EXPECT_EQ(promoter.pending(), 1);
    PromotionJob job = promoter.Wait(id);
    EXPECT_EQ(job.id, id);
    EXPECT_EQ(promoter.pending(), 0);
    ASSERT_EQ(job.n_ok(), 10u);
    for (int i = 0; i < 10; ++i) {
      EXPECT_TRUE(job.reads[i].attempted);
      EXPECT_EQ(PoolBytes(job.reads[i].block), Payload(i)) << i;
      EXPECT_TRUE(store_->FinishConcurrentRead(job.reads[i].key, job.reads[i].reader,
                                               job.reads[i].outcome));
    }
    Release(job);
  }
  EXPECT_EQ(store_->Stats().gets, 20);
  // Default staging: about 64 MiB of blocks, 4 to 256 slots; none when reads
  // go straight into a host pool.
  EXPECT_EQ(Promoter(*pool_, 0, true).staging_slots(),
            std::clamp<int64_t>((int64_t{64} << 20) / pool_->block_bytes(), 4, 256));
  EXPECT_EQ(Promoter(*pool_).staging_slots(), 0);
  EXPECT_EQ(store_->Stats().bytes_read, 20 * (DiskBlockStore::kHeaderBytes + pool_->block_bytes()));
  EXPECT_EQ(pool_->used_blocks(), 0);
}

TEST_F(PromoterTest, AJobStopsAtItsFirstFailedRead) {
  OpenStore(100);
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(store_->Put(Key(i), Payload(i)));
  std::vector<PromotionRead> reads = Reads(0, 8);
  ASSERT_TRUE(store_->Evict(Key(4)));  // gone after the job was planned
  Promoter promoter(*pool_);
  PromotionJob job = promoter.Wait(promoter.Submit(std::move(reads)));
  EXPECT_EQ(job.n_ok(), 4u);
  EXPECT_TRUE(job.reads[4].attempted);
  EXPECT_EQ(job.reads[4].outcome, Outcome::kMissing);
  for (int i = 5; i < 8; ++i) EXPECT_FALSE(job.reads[i].attempted) << i;
  for (int i = 0; i < 4; ++i) EXPECT_EQ(PoolBytes(job.reads[i].block), Payload(i));
  EXPECT_FALSE(store_->FinishConcurrentRead(Key(4), job.reads[4].reader, Outcome::kMissing));
  EXPECT_EQ(store_->Stats().get_misses, 1);
  EXPECT_TRUE(store_->enabled());
  Release(job);
}

TEST_F(PromoterTest, ACorruptFileIsReportedAndDiscardedNeverLoaded) {
  OpenStore(100);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(store_->Put(Key(i), Payload(i)));
  store_->Flush();
  {
    FILE* f = std::fopen(store_->PathOf(Key(1)).c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    std::fseek(f, DiskBlockStore::kHeaderBytes + 100, SEEK_SET);
    std::fputc(0xA5 ^ Payload(1)[100], f);
    std::fclose(f);
  }
  Promoter promoter(*pool_);
  PromotionJob job = promoter.Wait(promoter.Submit(Reads(0, 3)));
  EXPECT_EQ(job.n_ok(), 1u);
  EXPECT_EQ(job.reads[1].outcome, Outcome::kCorrupt);
  EXPECT_FALSE(job.reads[2].attempted);
  EXPECT_TRUE(store_->FinishConcurrentRead(Key(0), job.reads[0].reader, job.reads[0].outcome));
  EXPECT_FALSE(store_->FinishConcurrentRead(Key(1), job.reads[1].reader, job.reads[1].outcome));
  EXPECT_EQ(store_->Stats().corrupt_discarded, 1);
  EXPECT_FALSE(store_->Contains(Key(1)));
  struct stat st;
  EXPECT_NE(::stat(store_->PathOf(Key(1)).c_str(), &st), 0);  // the file is deleted
  Release(job);
}

// The owner thread writes new blocks into a tier too small for all of them
// while jobs read from it: blocks are evicted (files deleted) under the
// reader. A read then misses or wins the race, and whatever arrives is the
// block's own bytes.
TEST_F(PromoterTest, ReadsRacingEvictionsGetTheirOwnBytesOrAMiss) {
  OpenStore(24);
  for (int i = 0; i < 24; ++i) ASSERT_TRUE(store_->Put(Key(i), Payload(i)));
  for (bool staged : {false, true}) {
    SCOPED_TRACE(staged ? "staged" : "direct");
    Promoter promoter(*pool_, 2, staged);
    int next_put = 1000;
    int64_t ok = 0;
    auto settle = [&] {
      for (const PromotionJob& job : promoter.Poll()) {
        for (const PromotionRead& r : job.reads) {
          if (!r.attempted) continue;
          if (r.outcome == Outcome::kOk) {
            EXPECT_EQ(PoolBytes(r.block), Payload(static_cast<int>(r.key.hi - 0x9000u)));
            ++ok;
          } else {
            EXPECT_EQ(r.outcome, Outcome::kMissing);
          }
          store_->FinishConcurrentRead(r.key, r.reader, r.outcome);
        }
        Release(job);
      }
    };
    for (int round = 0; round < 40; ++round) {
      while (pool_->free_blocks() < 4) {
        promoter.WaitForProgress(std::chrono::milliseconds(10));
        settle();
      }
      const int first = (round * 5) % 20;
      std::vector<PromotionRead> reads;
      for (int i = first; i < first + 4; ++i) {
        PromotionRead r;
        r.key = Key(i);
        if (store_->ConcurrentReader(r.key) == nullptr) {  // evicted: put it back
          ASSERT_TRUE(store_->Put(Key(i), Payload(i)));
        }
        r.reader = store_->ConcurrentReader(r.key);
        ASSERT_NE(r.reader, nullptr);
        r.block = pool_->Allocate();
        ASSERT_GE(r.block, 0);
        reads.push_back(r);
      }
      promoter.Submit(std::move(reads));
      // Churn: new blocks push the least recently used ones (some of them
      // being read) out of the tier.
      for (int k = 0; k < 3; ++k, ++next_put) ASSERT_TRUE(store_->Put(Key(next_put), Payload(next_put)));
      settle();
    }
    while (promoter.pending() > 0) {
      promoter.WaitForProgress(std::chrono::milliseconds(10));
      settle();
    }
    EXPECT_GT(ok, 0);
    EXPECT_LE(store_->bytes(), store_->bytes_limit());
    EXPECT_EQ(pool_->used_blocks(), 0);
  }
}

TEST_F(PromoterTest, DestroyingWithJobsQueuedReturnsPromptly) {
  OpenStore(100);
  for (int i = 0; i < 16; ++i) ASSERT_TRUE(store_->Put(Key(i), Payload(i)));
  std::vector<PromotionRead> all;
  {
    Promoter promoter(*pool_, 1, /*force_staging=*/true);  // never drained: the reader blocks
    for (int j = 0; j < 4; ++j) {
      std::vector<PromotionRead> reads = Reads(j * 4, 4);
      all.insert(all.end(), reads.begin(), reads.end());
      promoter.Submit(std::move(reads));
    }
  }
  for (const PromotionRead& r : all) pool_->Unref(r.block);
  EXPECT_EQ(pool_->used_blocks(), 0);
}

}  // namespace
}  // namespace reprise::kv
