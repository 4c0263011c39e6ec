// The prompt cache: a radix tree over token blocks that indexes the KV blocks
// of finished requests so any later request sharing a prefix reuses them.
//
// Each node below the root is one KV block: block_tokens tokens (a full node)
// or fewer (a partial node, always a leaf), plus the id of the pool block that
// holds their K/V. The cache owns one reference on every node's block. A leaf
// is one cached "entry" (a conversation); conversations that share a prefix
// share its nodes, so a common system prompt is stored once.
//
// Invariants:
//  - a block id appears in at most one node; every node holds exactly one ref;
//  - full blocks are shared with sequences (Ref), never written while shared:
//    a sequence only writes positions past its cached prefix, and a block in
//    which the match ends part-way is copied (CopyTokens) into a fresh block —
//    the only copy the cache ever makes;
//  - entries (leaves) <= max_entries after every Insert; max_entries == 0
//    keeps nothing;
//  - bytes: the pool's capacity is the byte budget and covers cached plus
//    in-flight blocks; the cache frees cached blocks (EvictUntilFree) when an
//    allocation needs room.
// Eviction removes a whole entry: its leaf and the chain of nodes only it
// uses (up to the first node with another child), least recently used first.
// An entry's recency is the latest use of any node in that chain, so a hit
// on a prefix refreshes the entry that served it. A copy of part of a block
// does not count as a use of its source node (the request shares a few tokens
// with that entry, it does not continue it); a copy of a whole partial leaf
// (the next turn of a short conversation) does.
//
// Namespaces (tenants): every request names one (engine::Request::
// cache_namespace, "" = the default). Each namespace has its own radix root,
// so a lookup only ever matches KV inserted under the same namespace; the
// entry limit, the byte budget and the LRU order are global across all of
// them. A namespace's root exists while it has entries.
//
// A lower tier (config.lower: a BlockStore, e.g. the disk) makes eviction a
// demotion: each block of an evicted entry that no sequence pins is copied
// (BlockPool::ReadBlock) into the store under its content address (node
// key, kv/block_key.h) unless the store holds it already, then dropped from
// the pool as before. Acquire continues a match past the tree with blocks of
// the store (full blocks, then the longest partial one) and promotes them:
// fresh pool blocks filled through BlockPool::WriteBlock, owned by the
// sequence like a copied block; when it ends, Insert puts the conversation
// back into the tree. The tree holds only blocks in the pool, so max_entries
// and the pool's byte budget keep their meaning; the store has its own bound.
// A store that fails, or a block that fails validation, only shortens the
// match: the rest is recomputed.
// Promotions overlapped with compute: Acquire with concurrent_reads leaves
// the blocks that need no engine-thread read in CacheHit::pending, their
// fresh pool blocks already in the hit: blocks pinned in host memory
// (BlockStore::PinHost: the host tier, copied asynchronously) and blocks a
// reader thread can fetch (BlockStore::ConcurrentReader: the disk). The
// caller moves them (kv/promoter.h) while other sequences run, then
// CompletePromotions settles the hit: pins are released, the match ends at
// the first block that did not arrive, and hit counters count only what did.
//
// Not thread-safe: owned by the engine thread, like the pool.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kv/block_key.h"
#include "kv/block_pool.h"
#include "kv/block_store.h"
#include "kv/promoter.h"

namespace reprise::kv {

struct PromptCacheConfig {
  int max_entries = 10;  // --prompt-cache-size: cached conversations (leaves); 0 disables
  // Seed of the content addresses: the model identity, KV type and block size
  // (block_key.h). Only used with a lower tier.
  BlockKey layout;
  // The tier below the pool (not owned; must outlive the cache), or null.
  BlockStore* lower = nullptr;
};

// A cached prefix handed to a new sequence. The caller owns one reference on
// each block in seq.blocks and must Unref them (or Insert then Unref).
struct CacheHit {
  SeqBlocks seq;                // seq.n_tokens == n_cached
  int32_t n_cached = 0;         // leading tokens whose KV is already in seq
  int32_t n_shared_blocks = 0;  // blocks shared with the cache (not copied)
  int32_t n_copied_tokens = 0;  // rows copied into a fresh block (< block_tokens)
  int32_t n_lower_tokens = 0;   // of n_cached, tokens read back from the lower tier
  int32_t n_lower_blocks = 0;   // blocks promoted from the lower tier
  int32_t n_tier_tokens[4] = {};  // of n_lower_tokens, per tier of the lower store
  // Reads left to a reader thread (Acquire with concurrent_reads), in chain
  // order: their pool blocks are in seq and counted in n_cached, but hold
  // their KV only once read; until CompletePromotions the n_lower_* and
  // n_tier_tokens counts are not filled in.
  std::vector<PromotionRead> pending;
  // Internal (the cache's bookkeeping until the hit is final): blocks taken
  // from the lower tier: position in seq.blocks, tokens, the tier that
  // served it (-1: pending).
  struct Promoted {
    int32_t seq_block;
    int32_t tokens;
    int tier;
  };
  std::vector<Promoted> promoted;
};

struct PromptCacheStats {
  int64_t entries = 0;        // leaves
  int64_t cached_blocks = 0;  // distinct blocks held by the cache
  int64_t cached_bytes = 0;   // cached_blocks * block_bytes
  int64_t cached_tokens = 0;  // distinct token positions stored
  int64_t hits = 0;           // Acquire calls that reused >= 1 token
  int64_t misses = 0;         // Acquire calls that reused nothing
  int64_t hit_tokens = 0;     // tokens reused over all Acquire calls
  int64_t evictions = 0;      // entries evicted (for count or bytes)
  int64_t inserts = 0;        // Insert calls that stored something new
  // The lower tier, seen from the cache.
  int64_t lower_hit_tokens = 0;  // tokens of hits read back from the lower tier
  int64_t promotions = 0;        // blocks read back into the pool
  int64_t demotions = 0;         // evicted blocks written to the lower tier
  // Per tier of the lower store (BlockStore::tier(i)), in its order.
  static constexpr int kMaxTiers = 4;
  int64_t tier_hit_tokens[kMaxTiers] = {};  // of lower_hit_tokens, served by tier i
  int64_t tier_promotions[kMaxTiers] = {};  // of promotions, read from tier i
};

// One cached entry (leaf), for GET /v1/cache.
struct CacheEntryInfo {
  int64_t tokens = 0;         // tokens from the root to this leaf
  int64_t bytes = 0;          // blocks * block_bytes
  int32_t blocks = 0;         // blocks on the path from the root
  int32_t shared_blocks = 0;  // of those, blocks also on another entry's path
  int64_t last_use_unix_ms = 0;
  int64_t hits = 0;  // Acquire calls whose match reached this entry's own blocks
  std::string cache_namespace;  // the tenant it belongs to ("" = default)
  int32_t lower_blocks = 0;     // of blocks (all in the pool), those also in the lower tier
};

class PromptCache {
 public:
  // `pool` must outlive the cache.
  PromptCache(BlockPool& pool, const PromptCacheConfig& config);
  ~PromptCache();  // releases every cached block
  PromptCache(const PromptCache&) = delete;
  PromptCache& operator=(const PromptCache&) = delete;

  const PromptCacheConfig& config() const { return config_; }
  BlockPool& pool() { return pool_; }

  // The longest cached prefix of `tokens`, at most max_tokens long (callers
  // pass tokens.size() - 1 so the last prompt token is recomputed for its
  // logits). Full matching blocks are shared; where the match ends inside a
  // block its rows are copied into a fresh block (evicting if needed; without
  // room the match falls back to the shared full blocks). Refreshes recency
  // of the matched path and counts a hit or a miss.
  // Only entries of `cache_namespace` are matched.
  // With concurrent_reads, blocks of a tier that can be read off this thread
  // are left in hit.pending (see the header comment).
  CacheHit Acquire(std::span<const int32_t> tokens, int32_t max_tokens,
                   std::string_view cache_namespace = {}, bool concurrent_reads = false);

  // Settles a hit whose pending reads ended (`reads`: hit->pending with the
  // reader's outcomes, as the promoter returns them): finishes each read
  // with its tier, drops the blocks from the first one that did not arrive
  // on (the match ends there), fills the hit's lower-tier counts and counts
  // the hit. Returns the tokens the match lost.
  int32_t CompletePromotions(CacheHit* hit, std::span<const PromotionRead> reads);

  // Tokens of the longest prefix of `tokens` (at most max_tokens) that full
  // blocks of the tree under `cache_namespace` hold: what Acquire would share
  // without a copy or a lower-tier read. No side effect (no recency, no
  // counters).
  int32_t SharedPrefixTokens(std::span<const int32_t> tokens, int32_t max_tokens,
                             std::string_view cache_namespace = {}) const;

  // Stores `tokens` whose KV is in the first tokens.size() positions of `seq`
  // (tokens.size() <= seq.n_tokens). Identical full blocks already cached are
  // kept, new nodes take a reference on seq's blocks; the caller still owns
  // its own references. Then evicts least recently used entries down to
  // max_entries (over all namespaces). The entry belongs to `cache_namespace`.
  void Insert(std::span<const int32_t> tokens, const SeqBlocks& seq,
              std::string_view cache_namespace = {});

  // A fresh block (refcount 1), evicting cached entries if the pool is full;
  // -1 when even that cannot free one.
  int32_t AllocateBlock();

  // Evicts least recently used entries whose removal frees blocks now (those
  // not entirely pinned by in-flight sequences) until the pool has n_blocks
  // free. Returns whether it has.
  bool EvictUntilFree(int32_t n_blocks);

  // Drops every entry (nothing is demoted).
  void Clear();

  // Copies every cached block the lower tier does not hold yet into it (at
  // shutdown, so a restart finds the conversations). Returns blocks written.
  int64_t DemoteAll();

  PromptCacheStats Stats() const;
  std::vector<CacheEntryInfo> Entries() const;
  int64_t entries() const { return n_leaves_; }
  // Changes whenever entries, recency or counters may have changed (lets
  // callers refresh snapshots of Entries() only when needed).
  uint64_t version() const { return tick_ + static_cast<uint64_t>(evictions_ + misses_); }
  int64_t cached_blocks() const { return n_nodes_; }

  // Walks the tree and CHECKs the invariants above (for tests).
  void CheckInvariants() const;

 private:
  struct Node;
  // The evictable entry with the oldest recency (nullptr if none); when
  // must_free, only entries whose removal returns a block to the pool.
  Node* PickVictim(bool must_free) const;
  void EvictEntry(Node* leaf);
  void AddChild(Node* parent, std::unique_ptr<Node> child);
  void RemoveNode(Node* node);  // unlinks a childless node, drops its block ref
  void Touch(Node* node);       // stamps the current operation's tick and time
  static bool IsRoot(const Node* node);
  Node* Root(std::string_view cache_namespace) const;  // nullptr if it has no entries
  BlockKey RootKey(std::string_view cache_namespace) const;
  // Writes a cached node's block to the lower tier (see the header comment).
  bool Demote(Node* node, bool even_if_pinned);
  // A fresh pool block filled from the lower tier's `key`; -1 when no block
  // is free or the read fails.
  int32_t Promote(const BlockKey& key);
  // Counts a final hit: its lower-tier blocks per tier, hit or miss.
  void Settle(CacheHit* hit);

  BlockPool& pool_;
  PromptCacheConfig config_;
  // One radix root per namespace with entries (roots have no block).
  std::map<std::string, std::unique_ptr<Node>, std::less<>> roots_;
  uint64_t tick_ = 0;          // one per Acquire/Insert: the LRU clock
  int64_t now_unix_ms_ = 0;    // wall time of the current operation
  Node* protected_ = nullptr;  // entry an in-progress Acquire must not evict
  int64_t n_nodes_ = 0;
  int64_t n_leaves_ = 0;
  int64_t n_tokens_ = 0;
  int64_t hits_ = 0;
  int64_t misses_ = 0;
  int64_t hit_tokens_ = 0;
  int64_t evictions_ = 0;
  int64_t inserts_ = 0;
  int64_t lower_hit_tokens_ = 0;
  int64_t tier_hit_tokens_[PromptCacheStats::kMaxTiers] = {};
  int64_t tier_promotions_[PromptCacheStats::kMaxTiers] = {};
  int64_t promotions_ = 0;
  int64_t demotions_ = 0;
};

}  // namespace reprise::kv
