// The KV block pool's head-major layout: CopyTokens copies exactly the first
// n positions of every head of every layer, and nothing else.
#include "kv/block_pool.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace reprise::kv {
namespace {

TEST(BlockPoolTest, CopyTokensCopiesThePrefixOfEveryHead) {
  BlockPoolConfig pc;
  pc.n_layers = 2;
  pc.k_dim = 3 * 4;  // 3 heads of 4
  pc.v_dim = 3 * 2;  // 3 heads of 2
  pc.n_heads = 3;
  pc.block_tokens = 8;
  pc.dtype = DType::kF32;
  pc.max_bytes = 1 << 20;
  auto pool = BlockPool::Create(pc);
  ASSERT_TRUE(pool.ok()) << pool.status().message();
  BlockPool& p = **pool;
  const int32_t src = p.Allocate(), dst = p.Allocate();
  ASSERT_GE(src, 0);
  ASSERT_GE(dst, 0);
  // Element (head h, row r, i) of layer l holds a value naming it.
  auto fill = [&](int32_t block, float base) {
    for (int l = 0; l < pc.n_layers; ++l) {
      float* k = reinterpret_cast<float*>(p.K(block, l));
      float* v = reinterpret_cast<float*>(p.V(block, l));
      for (int i = 0; i < pc.block_tokens * pc.k_dim; ++i) k[i] = base + l * 1000 + i;
      for (int i = 0; i < pc.block_tokens * pc.v_dim; ++i) v[i] = base - l * 1000 - i;
    }
  };
  fill(src, 1e6f);
  fill(dst, -1e6f);
  const int n = 5;
  p.CopyTokens(src, dst, n);
  for (int l = 0; l < pc.n_layers; ++l) {
    for (const bool is_k : {true, false}) {
      const int hd = (is_k ? pc.k_dim : pc.v_dim) / pc.n_heads;
      const float* s = reinterpret_cast<const float*>(is_k ? p.K(src, l) : p.V(src, l));
      const float* d = reinterpret_cast<const float*>(is_k ? p.K(dst, l) : p.V(dst, l));
      for (int h = 0; h < pc.n_heads; ++h) {
        for (int r = 0; r < pc.block_tokens; ++r) {
          for (int i = 0; i < hd; ++i) {
            const int at = (h * pc.block_tokens + r) * hd + i;
            if (r < n) {
              ASSERT_EQ(d[at], s[at]) << "layer " << l << " head " << h << " row " << r;
            } else {
              ASSERT_NE(d[at], s[at]) << "layer " << l << " head " << h << " row " << r;
            }
          }
        }
      }
    }
  }
}

TEST(BlockPoolTest, HeadsMustDivideTheRowWidths) {
  BlockPoolConfig pc;
  pc.n_layers = 1;
  pc.k_dim = 10;
  pc.v_dim = 10;
  pc.n_heads = 3;
  pc.max_bytes = 1 << 20;
  auto pool = BlockPool::Create(pc);
  ASSERT_FALSE(pool.ok());
  EXPECT_NE(pool.status().message().find("heads"), std::string::npos);
}

TEST(BlockPoolTest, ReadAndWriteBlockMoveTheWholeBlockThroughHostMemory) {
  BlockPoolConfig pc;
  pc.n_layers = 3;
  pc.k_dim = 8;
  pc.v_dim = 12;
  pc.n_heads = 2;
  pc.block_tokens = 4;
  pc.dtype = DType::kF32;
  pc.max_bytes = 1 << 20;
  auto pool = std::move(BlockPool::Create(pc)).value();
  const int32_t a = pool->Allocate(), b = pool->Allocate();
  std::vector<uint8_t> bytes(pool->block_bytes());
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 7 + 1);
  pool->WriteBlock(a, bytes.data());
  // The last layer's V starts where the layout says it does.
  const int64_t v_last = pool->V(a, 2) - pool->K(a, 0);
  EXPECT_EQ(pool->V(a, 2)[0], bytes[v_last]);
  std::vector<uint8_t> back(pool->block_bytes(), 0);
  pool->ReadBlock(a, back.data());
  EXPECT_EQ(back, bytes);
  pool->WriteBlock(b, back.data());
  std::vector<uint8_t> back_b(pool->block_bytes(), 0);
  pool->ReadBlock(b, back_b.data());
  EXPECT_EQ(back_b, bytes);
  // The staging block (where demotions and promotions pass): one block, the
  // same buffer every time, and blocks round-trip through it.
  const std::span<uint8_t> st = pool->staging();
  ASSERT_EQ(st.size(), static_cast<size_t>(pool->block_bytes()));
  EXPECT_EQ(pool->staging().data(), st.data());
  pool->ReadBlock(a, st.data());
  pool->WriteBlock(b, st.data());
  pool->ReadBlock(b, back_b.data());
  EXPECT_EQ(back_b, bytes);
}

}  // namespace
}  // namespace reprise::kv
