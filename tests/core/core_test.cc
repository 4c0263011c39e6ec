// Core utilities: Status/Result, fp16/bf16 conversions, dtype table, thread pool.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/fp16.h"
#include "core/status.h"
#include "core/thread_pool.h"

namespace reprise {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return Errorf("%d is odd", x);
  return x / 2;
}

Status UseHalf(int x, int* out) {
  ASSIGN_OR_RETURN(*out, Half(x));
  return Status::Ok();
}

TEST(Status, ResultCarriesValueOrError) {
  EXPECT_EQ(*Half(4), 2);
  auto r = Half(3);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "3 is odd");
  int v = 0;
  EXPECT_TRUE(UseHalf(8, &v).ok());
  EXPECT_EQ(v, 4);
  Status s = UseHalf(5, &v);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.WithContext("ctx").message(), "ctx: 5 is odd");
}

TEST(Fp16, RoundTripsEveryHalfExactly) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = Fp16ToFp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(Fp32ToFp16(f), h) << std::hex << h;
  }
}

TEST(Fp16, RoundsToNearestEven) {
  EXPECT_EQ(Fp32ToFp16(1.0f), 0x3c00);
  EXPECT_EQ(Fp32ToFp16(65504.0f), 0x7bff);
  EXPECT_EQ(Fp32ToFp16(1e6f), 0x7c00);  // overflow -> inf
  // Halfway between 1 and the next half (1 + 2^-10): ties to even (1.0).
  EXPECT_EQ(Fp32ToFp16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(Fp32ToFp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(Fp32ToFp16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(Fp16ToFp32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(Fp32ToFp16(-2.0f), 0xc000);
}

TEST(Bf16, RoundsToNearestEven) {
  EXPECT_EQ(Fp32ToBf16(1.0f), 0x3f80);
  EXPECT_EQ(Bf16ToFp32(0x3f80), 1.0f);
  EXPECT_EQ(Fp32ToBf16(BitsToFloat(0x3f808000)), 0x3f80);  // tie -> even
  EXPECT_EQ(Fp32ToBf16(BitsToFloat(0x3f818000)), 0x3f82);
}

TEST(DType, KnowsBlockGeometryOfGgufTypes) {
  EXPECT_EQ(RowBytes(DType::kQ8_0, 64), 68);
  EXPECT_EQ(RowBytes(DType::kQ4_K, 256), 144);
  EXPECT_EQ(RowBytes(DType::kQ6_K, 512), 420);
  EXPECT_EQ(RowBytes(DType::kBF16, 10), 20);
  EXPECT_EQ(GetDTypeInfo(4), nullptr);  // removed Q4_2
  EXPECT_EQ(GetDTypeInfo(1000), nullptr);
  EXPECT_EQ(ParseDType("q4_k"), DType::kQ4_K);
  EXPECT_FALSE(ParseDType("q9_9").has_value());
}

TEST(ThreadPool, ParallelForCoversRangeExactlyOnce) {
  for (int n : {1, 2, 3, 5}) {
    ThreadPool pool(n);
    std::vector<std::atomic<int>> seen(1000);
    for (int rep = 0; rep < 50; ++rep) {
      pool.ParallelFor(1000, 7, [&](int64_t b, int64_t e, int thread) {
        EXPECT_GE(thread, 0);
        EXPECT_LT(thread, n);
        for (int64_t i = b; i < e; ++i) seen[i]++;
      });
    }
    for (auto& s : seen) EXPECT_EQ(s.load(), 50);
  }
}

// Each thread's contiguous part (and the stealing between parts) still hands
// out every index once, in chunks of at most `grain` that start on a
// multiple of it, for sizes smaller than, equal to and not a multiple of
// threads x grain.
TEST(ThreadPool, ParallelForPartsCoverAwkwardShapes) {
  for (int threads : {2, 3, 4}) {
    ThreadPool pool(threads);
    for (int64_t n : {2, 3, 5, 7, 8, 9, 31, 64, 65, 127}) {
      for (int64_t grain : {1, 2, 4, 7}) {
        std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
        std::atomic<int> bad_chunks{0};
        pool.ParallelFor(n, grain, [&](int64_t b, int64_t e, int) {
          if (b % grain != 0 || e - b > grain || e <= b || e > n) bad_chunks++;
          for (int64_t i = b; i < e; ++i) seen[static_cast<size_t>(i)]++;
        });
        EXPECT_EQ(bad_chunks.load(), 0) << threads << " threads, n " << n << ", grain " << grain;
        for (int64_t i = 0; i < n; ++i) {
          ASSERT_EQ(seen[static_cast<size_t>(i)].load(), 1)
              << threads << " threads, n " << n << ", grain " << grain << ", index " << i;
        }
      }
    }
  }
}

// Per-thread indices are never used by two chunks at once (scratch safety).
TEST(ThreadPool, ThreadIndexIsExclusiveWhileAChunkRuns) {
  ThreadPool pool(4);
  std::vector<std::atomic<int>> in_use(4);
  std::atomic<int> violations{0};
  for (int rep = 0; rep < 200; ++rep) {
    pool.ParallelFor(64, 1, [&](int64_t, int64_t, int t) {
      if (in_use[t].fetch_add(1) != 0) violations++;
      volatile int sink = 0;  // a little work the compiler cannot drop
      for (int i = 0; i < 200; ++i) sink = i;
      (void)sink;
      in_use[t].fetch_sub(1);
    });
  }
  EXPECT_EQ(violations.load(), 0);
}

// A job finishes even if the workers never get to run (oversubscription):
// the caller does all the chunks itself and does not wait for them.
TEST(ThreadPool, ManyTinyJobsCompleteQuickly) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  for (int rep = 0; rep < 20000; ++rep) {
    pool.ParallelFor(4, 1, [&](int64_t b, int64_t e, int) { sum += e - b; });
  }
  EXPECT_EQ(sum.load(), 80000);
}

TEST(CpuFeatures, ReportsConsistentLevels) {
  const CpuFeatures& f = GetCpuFeatures();
  if (f.avx512_vnni) {
    EXPECT_TRUE(f.avx512);
  }
  if (f.avx512) {
    EXPECT_TRUE(f.avx2);
  }
  EXPECT_GE(PhysicalCoreCount(), 1);
  EXPECT_FALSE(f.ToString().empty());
}

}  // namespace
}  // namespace reprise
