// Block stores on their own: content addresses, the shared LRU and byte
// accounting (MemoryBlockStore: simulated storage with fault injection), and
// the disk store's files: round trip, persistence, crash leftovers, torn,
// corrupt and foreign files, a bound smaller than what is on disk, and a
// directory that goes away (the tier turns itself off).
#include "kv/block_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "kv/block_key.h"
#include "kv/disk_block_store.h"
#include "testing/fixtures.h"

namespace reprise::kv {
namespace {

constexpr int64_t kBlock = 256;

std::vector<uint8_t> Payload(int seed) {
  std::vector<uint8_t> v(kBlock);
  for (int64_t i = 0; i < kBlock; ++i) v[i] = static_cast<uint8_t>(seed * 31 + i * 7);
  return v;
}

BlockKey Key(int i) {
  const int32_t t = i;
  return ChainTokens(BlockKey{1, 2}, std::span<const int32_t>(&t, 1));
}

TEST(BlockKeyTest, HexRoundTripsAndChainsCoverEveryInput) {
  const BlockKey k = Key(7);
  BlockKey back;
  ASSERT_TRUE(BlockKey::FromHex(k.Hex(), &back));
  EXPECT_EQ(back, k);
  EXPECT_EQ(k.Hex().size(), 32u);
  EXPECT_FALSE(BlockKey::FromHex("xyz", &back));
  EXPECT_FALSE(BlockKey::FromHex(std::string(32, 'G'), &back));
  const BlockKey layout{3, 4};
  const std::vector<int32_t> a = {1, 2, 3, 4}, b = {1, 2, 3, 5};
  const BlockKey ra = ChainString(layout, ""), rb = ChainString(layout, "tenant");
  EXPECT_NE(ra, rb);                                             // namespaces
  EXPECT_NE(ChainTokens(ra, a), ChainTokens(ra, b));             // tokens
  EXPECT_NE(ChainTokens(ra, a), ChainTokens(rb, a));             // namespace
  EXPECT_NE(ChainTokens(ra, a), ChainTokens(ChainString({9, 9}, ""), a));  // model / layout
  EXPECT_EQ(ChainTokens(ra, a), ChainTokens(ChainString(layout, ""), a));  // deterministic
  // A prefix differing in an earlier block changes every later key.
  EXPECT_NE(ChainTokens(ChainTokens(ra, a), a), ChainTokens(ChainTokens(ra, b), a));
  EXPECT_NE(ChainTokens(ra, std::span<const int32_t>(a).first(3)), ChainTokens(ra, a));
}

TEST(MemoryBlockStoreTest, RoundTripDedupeAndExactLruBound) {
  MemoryBlockStore s(kBlock, 3 * kBlock);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(s.Put(Key(i), Payload(i)));
  EXPECT_EQ(s.bytes(), 3 * kBlock);
  // The same key again: nothing written, only recency refreshed (0 is now newest).
  ASSERT_TRUE(s.Put(Key(0), Payload(0)));
  EXPECT_EQ(s.Stats().puts, 3);
  EXPECT_EQ(s.Stats().put_dedups, 1);
  EXPECT_EQ(s.Stats().bytes_written, 3 * kBlock);
  std::vector<uint8_t> out(kBlock);
  ASSERT_TRUE(s.Get(Key(1), out));  // 1 is now newest; 2 is the oldest
  EXPECT_EQ(out, Payload(1));
  ASSERT_TRUE(s.Put(Key(3), Payload(3)));  // evicts 2
  EXPECT_FALSE(s.Contains(Key(2)));
  EXPECT_TRUE(s.Contains(Key(0)) && s.Contains(Key(1)) && s.Contains(Key(3)));
  EXPECT_EQ(s.Stats().evictions, 1);
  EXPECT_EQ(s.bytes(), 3 * kBlock);
  EXPECT_EQ(s.KeysByRecency(), (std::vector<BlockKey>{Key(0), Key(1), Key(3)}));
  EXPECT_TRUE(s.Touch(Key(0)));
  EXPECT_EQ(s.KeysByRecency().back(), Key(0));
  EXPECT_FALSE(s.Get(Key(2), out));
  EXPECT_EQ(s.Stats().get_misses, 1);
  EXPECT_TRUE(s.Evict(Key(1)));
  EXPECT_FALSE(s.Evict(Key(1)));
  EXPECT_EQ(s.bytes(), 2 * kBlock);
  EXPECT_EQ(s.Stats().gets, 1);
  EXPECT_EQ(s.Stats().bytes_read, kBlock);
}

TEST(MemoryBlockStoreTest, BoundHoldsAfterEveryPutOfAManyBlockStream) {
  MemoryBlockStore s(kBlock, 10 * kBlock + kBlock / 2);  // room for 10 whole blocks
  for (int i = 0; i < 500; ++i) {
    ASSERT_TRUE(s.Put(Key(i), Payload(i)));
    ASSERT_LE(s.bytes(), s.bytes_limit());
    ASSERT_EQ(s.bytes(), s.blocks() * kBlock);
  }
  EXPECT_EQ(s.blocks(), 10);
  for (int i = 490; i < 500; ++i) EXPECT_TRUE(s.Contains(Key(i)));  // the 10 newest
  MemoryBlockStore tiny(kBlock, kBlock - 1);  // not even one block fits
  EXPECT_FALSE(tiny.Put(Key(0), Payload(0)));
  EXPECT_EQ(tiny.bytes(), 0);
  EXPECT_TRUE(tiny.enabled());  // a block too large is not a storage failure
}

TEST(MemoryBlockStoreTest, CorruptBlockIsDiscardedNeverLoaded) {
  MemoryBlockStore s(kBlock, 8 * kBlock);
  ASSERT_TRUE(s.Put(Key(1), Payload(1)));
  ASSERT_TRUE(s.Put(Key(2), Payload(2)));
  s.CorruptForTest(Key(1));
  std::vector<uint8_t> out(kBlock, 0);
  EXPECT_FALSE(s.Get(Key(1), out));
  EXPECT_EQ(out, std::vector<uint8_t>(kBlock, 0));  // nothing loaded
  EXPECT_FALSE(s.Contains(Key(1)));
  EXPECT_EQ(s.Stats().corrupt_discarded, 1);
  EXPECT_EQ(s.bytes(), kBlock);
  EXPECT_TRUE(s.Get(Key(2), out));  // the others are fine, the tier stays on
  EXPECT_TRUE(s.enabled());
}

TEST(MemoryBlockStoreTest, AFailedWriteTurnsTheTierOff) {
  MemoryBlockStore s(kBlock, 8 * kBlock);
  ASSERT_TRUE(s.Put(Key(1), Payload(1)));
  s.FailWritesForTest(true);
  EXPECT_FALSE(s.Put(Key(2), Payload(2)));
  EXPECT_FALSE(s.enabled());
  EXPECT_EQ(s.bytes(), kBlock);  // the failed write is not counted
  EXPECT_FALSE(s.Contains(Key(1)));  // off: everything misses
  std::vector<uint8_t> out(kBlock);
  EXPECT_FALSE(s.Get(Key(1), out));
  EXPECT_FALSE(s.Stats().enabled);
}

// ---- DiskBlockStore ----

class DiskBlockStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int n = 0;
    dir_ = reprise::testing::TempDir() + "/disk_store_" + std::to_string(getpid()) + "_" +
           std::to_string(n++);
  }
  std::unique_ptr<DiskBlockStore> Open(int64_t limit_blocks, BlockKey layout = {7, 7},
                                       int64_t queue_bytes = int64_t{64} << 20) {
    DiskBlockStoreConfig c;
    c.write_queue_bytes = queue_bytes;
    c.dir = dir_;
    c.layout = layout;
    c.block_bytes = kBlock;
    c.bytes_limit = limit_blocks * (DiskBlockStore::kHeaderBytes + kBlock);
    c.fsync = false;  // durability is the crash test's business (server tests)
    auto s = DiskBlockStore::Open(c);
    EXPECT_TRUE(s.ok()) << s.status().message();
    return s.ok() ? std::move(s).value() : nullptr;
  }
  int64_t FileSize(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 ? st.st_size : -1;
  }
  std::string dir_;
};

TEST_F(DiskBlockStoreTest, BlocksSurviveAReopenInTheirLruOrder) {
  {
    auto s = Open(4);
    ASSERT_NE(s, nullptr);
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(s->Put(Key(i), Payload(i)));
      s->Flush();
      usleep(20000);  // distinct mtimes
    }
    EXPECT_EQ(FileSize(s->PathOf(Key(0))), DiskBlockStore::kHeaderBytes + kBlock);
    EXPECT_EQ(s->bytes(), 3 * (DiskBlockStore::kHeaderBytes + kBlock));
    EXPECT_EQ(s->Stats().bytes_written, s->bytes());
  }
  auto s = Open(4);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->scan_report().loaded, 3);
  EXPECT_EQ(s->KeysByRecency(), (std::vector<BlockKey>{Key(0), Key(1), Key(2)}));
  std::vector<uint8_t> out(kBlock);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(s->Get(Key(i), out));
    EXPECT_EQ(out, Payload(i));
  }
  // A block stored already is never rewritten.
  const int64_t written = s->Stats().bytes_written;
  ASSERT_TRUE(s->Put(Key(1), Payload(1)));
  EXPECT_EQ(s->Stats().bytes_written, written);
}

// Eviction deletes exactly the evicted block's file: the directory never holds
// more files than the bound (regression: the evicted key was read after its
// LRU node was freed, and a wrong file name was unlinked).
TEST_F(DiskBlockStoreTest, EvictionRemovesTheEvictedFilesFromTheDirectory) {
  auto s = Open(3);
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < 12; ++i) {
    ASSERT_TRUE(s->Put(Key(i), Payload(i)));
    s->Flush();
    int files = 0;
    for (int k = 0; k <= i; ++k) files += FileSize(s->PathOf(Key(k))) >= 0;
    ASSERT_EQ(files, std::min(i + 1, 3)) << "after put " << i;
    for (int k = std::max(0, i - 2); k <= i; ++k) {
      ASSERT_GE(FileSize(s->PathOf(Key(k))), 0) << "newest blocks stay, put " << i;
    }
  }
}

TEST_F(DiskBlockStoreTest, TornCorruptLeftoverAndForeignFilesAreNeverLoaded) {
  {
    auto s = Open(10);
    ASSERT_NE(s, nullptr);
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(s->Put(Key(i), Payload(i)));
    s->Flush();
    // Truncate block 0 (a torn write), flip a payload byte of block 1.
    ASSERT_EQ(::truncate(s->PathOf(Key(0)).c_str(), 100), 0);
    std::fstream f(s->PathOf(Key(1)), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(DiskBlockStore::kHeaderBytes + 10);
    f.put('\x55' ^ static_cast<char>(Payload(1)[10]));
  }
  // An interrupted write's temp file, a stranger's file and a foreign block.
  std::ofstream(dir_ + "/" + Key(8).Hex() + ".kvb.tmp") << "half a block";
  std::ofstream(dir_ + "/notes.txt") << "not ours";
  {
    auto other = Open(10, BlockKey{8, 8});  // another model: sees none of ours
    ASSERT_NE(other, nullptr);
    EXPECT_EQ(other->scan_report().loaded, 0);
    EXPECT_EQ(other->scan_report().foreign, 4);  // its header says another layout
    ASSERT_TRUE(other->Put(Key(9), Payload(9)));
  }
  auto s = Open(10);
  ASSERT_NE(s, nullptr);
  const DiskScanReport& r = s->scan_report();
  EXPECT_EQ(r.temp_removed, 0);  // the other store's scan removed it already
  EXPECT_EQ(r.foreign, 1);       // Key(9) of the other layout: left alone
  EXPECT_EQ(r.loaded, 3);        // 1 (corrupt payload: caught on read), 2, 3
  EXPECT_EQ(r.discarded, 1);     // 0, torn
  EXPECT_FALSE(s->Contains(Key(0)));
  EXPECT_FALSE(reprise::testing::FileExists(s->PathOf(Key(0))));
  EXPECT_FALSE(reprise::testing::FileExists(dir_ + "/" + Key(8).Hex() + ".kvb.tmp"));
  EXPECT_TRUE(reprise::testing::FileExists(dir_ + "/notes.txt"));
  EXPECT_TRUE(reprise::testing::FileExists(s->PathOf(Key(9))));  // not deleted
  EXPECT_FALSE(s->Contains(Key(9)));
  std::vector<uint8_t> out(kBlock, 0);
  EXPECT_FALSE(s->Get(Key(1), out));  // checksum mismatch: discarded, not loaded
  EXPECT_FALSE(reprise::testing::FileExists(s->PathOf(Key(1))));
  EXPECT_EQ(s->Stats().corrupt_discarded, 2);  // the torn one (at open) and this one
  ASSERT_TRUE(s->Get(Key(2), out));
  EXPECT_EQ(out, Payload(2));
  EXPECT_TRUE(s->enabled());
}

TEST_F(DiskBlockStoreTest, ASmallerBoundKeepsTheNewestBlocks) {
  {
    auto s = Open(6);
    ASSERT_NE(s, nullptr);
    for (int i = 0; i < 6; ++i) {
      ASSERT_TRUE(s->Put(Key(i), Payload(i)));
      s->Flush();
      usleep(20000);
    }
  }
  auto s = Open(2);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->scan_report().loaded, 2);
  EXPECT_EQ(s->scan_report().over_bound, 4);
  EXPECT_TRUE(s->Contains(Key(4)) && s->Contains(Key(5)));
  EXPECT_LE(s->bytes(), s->bytes_limit());
  EXPECT_FALSE(reprise::testing::FileExists(s->PathOf(Key(0))));
}

// Demotions go to a writer thread: a block reads back at once (from the
// queued copy or its file), blocks evicted before their write leave no file
// behind, a queue of one block still takes every write (WriteBlob waits for
// room), and the destructor writes whatever is still queued.
TEST_F(DiskBlockStoreTest, QueuedWritesReadBackLeaveNoStrayFilesAndSurviveTheDestructor) {
  for (const int64_t queue : {DiskBlockStore::kHeaderBytes + kBlock, int64_t{64} << 20}) {
    {
      auto s = Open(5, {7, 7}, queue);
      ASSERT_NE(s, nullptr);
      std::vector<uint8_t> out(kBlock);
      for (int i = 0; i < 40; ++i) {
        ASSERT_TRUE(s->Put(Key(i), Payload(i)));
        ASSERT_TRUE(s->Get(Key(i), out)) << i;  // possibly still queued
        ASSERT_EQ(out, Payload(i)) << i;
        if (i % 7 == 3) {
          ASSERT_TRUE(s->Evict(Key(i)));  // maybe before its write: cancelled
        }
      }
      EXPECT_LE(s->bytes(), s->bytes_limit());
      const std::vector<BlockKey> held = s->KeysByRecency();
      s->Flush();
      EXPECT_EQ(s->pending_write_bytes(), 0);
      // Exactly the held blocks have files: nothing evicted was left behind.
      int files = 0, tmp = 0;
      DIR* d = ::opendir(dir_.c_str());
      ASSERT_NE(d, nullptr);
      while (dirent* e = ::readdir(d)) {
        const std::string name = e->d_name;
        files += name.size() > 4 && name.substr(name.size() - 4) == ".kvb";
        tmp += name.find(".tmp") != std::string::npos;
      }
      ::closedir(d);
      EXPECT_EQ(files, static_cast<int>(held.size())) << "queue " << queue;
      EXPECT_EQ(tmp, 0);
      for (const BlockKey& k : held) EXPECT_TRUE(reprise::testing::FileExists(s->PathOf(k)));
      // Queued again and destroyed at once: the destructor writes them.
      for (int i = 100; i < 103; ++i) ASSERT_TRUE(s->Put(Key(i), Payload(i)));
    }
    auto s = Open(5);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->scan_report().loaded, 5) << "queue " << queue;
    std::vector<uint8_t> out(kBlock);
    for (int i = 100; i < 103; ++i) {
      ASSERT_TRUE(s->Get(Key(i), out)) << i;
      EXPECT_EQ(out, Payload(i));
    }
    s.reset();
    std::filesystem::remove_all(dir_);
  }
}

TEST_F(DiskBlockStoreTest, ADirectoryThatGoesAwayTurnsTheTierOff) {
  for (const int64_t queue : {int64_t{0}, int64_t{64} << 20}) {  // inline and queued writes
    auto s = Open(4, {7, 7}, queue);
    ASSERT_NE(s, nullptr);
    ASSERT_TRUE(s->Put(Key(1), Payload(1)));
    s->Flush();
    ASSERT_EQ(std::remove(s->PathOf(Key(1)).c_str()), 0);
    ASSERT_EQ(::rmdir(dir_.c_str()), 0);
    // Cannot create the file: the tier turns off, at once when writing
    // inline, at the next write once the writer thread saw the failure.
    if (s->Put(Key(2), Payload(2))) {
      ASSERT_GT(queue, 0);
      s->Flush();  // the writer saw the failure: the tier is off at once
      EXPECT_FALSE(s->enabled());
      EXPECT_FALSE(s->Stats().enabled);
      std::vector<uint8_t> out(kBlock);
      EXPECT_FALSE(s->Get(Key(2), out));
      EXPECT_FALSE(s->Put(Key(3), Payload(3)));
    }
    EXPECT_FALSE(s->enabled()) << queue;
    EXPECT_FALSE(s->Contains(Key(1)));
    if (queue == 0) {  // for the next round
      ASSERT_EQ(::mkdir(dir_.c_str(), 0755), 0);
    }
  }
  // A path that is a file cannot be the dir.
  std::ofstream(dir_) << "a file";
  DiskBlockStoreConfig c;
  c.dir = dir_;
  c.block_bytes = kBlock;
  c.bytes_limit = 1 << 20;
  auto bad = DiskBlockStore::Open(c);
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(dir_), std::string::npos) << bad.status().message();
}

}  // namespace
}  // namespace reprise::kv
