// The prompt cache test fixture, shared by the cache's tests and its tier
// tests: a small real BlockPool (F32, tiny dims) in which "computing" a
// sequence writes a fingerprint of each position's token prefix into its K
// and V rows, so every reuse (shared, copied or read back from a lower tier)
// can be checked row by row against what a fresh computation would write.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "kv/block_store.h"
#include "kv/prompt_cache.h"

namespace reprise::kv::testing {

using Tokens = std::vector<int32_t>;

constexpr int kLayers = 2;
constexpr int kDim = 2;
// The content-address seed of the tests' "model".
constexpr BlockKey kLayout{0x1234, 0x5678};

inline Tokens Range(int32_t first, int n) {
  Tokens t(n);
  for (int i = 0; i < n; ++i) t[i] = first + i;
  return t;
}

inline Tokens Concat(const Tokens& a, const Tokens& b) {
  Tokens t = a;
  t.insert(t.end(), b.begin(), b.end());
  return t;
}

// A value determined by tokens[0..p] (exactly representable as float).
inline float Fingerprint(const Tokens& tokens, int p, int layer, int which) {
  uint64_t h = 1469598103934665603ull + layer * 31 + which * 7;
  for (int i = 0; i <= p; ++i) h = (h ^ static_cast<uint32_t>(tokens[i])) * 1099511628211ull;
  return static_cast<float>(h % (1u << 22));
}

class PromptCacheTest : public ::testing::Test {
 protected:
  // `lower`, when given, is the tier below the pool (it must outlive the cache).
  void Make(int capacity_blocks, int max_entries, int block_tokens = 4,
            BlockStore* lower = nullptr) {
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
    cc.layout = kLayout;
    cc.lower = lower;
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

}  // namespace reprise::kv::testing
