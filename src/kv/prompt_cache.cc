#include "kv/prompt_cache.h"

#include <algorithm>
#include <chrono>
#include <unordered_set>

#include "core/check.h"

namespace reprise::kv {

struct PromptCache::Node {
  std::vector<int32_t> tokens;  // block_tokens of them, fewer only in a (leaf) partial node
  int32_t block = -1;           // the cache holds one reference
  Node* parent = nullptr;
  std::vector<std::unique_ptr<Node>> children;
  uint64_t last_tick = 0;
  int64_t last_use_unix_ms = 0;
  int64_t hits = 0;  // Acquire calls whose match went through this node
  std::string ns;    // roots only: the namespace
  BlockKey key;      // content address of the tokens from the start to this node's end
};

namespace {

int64_t UnixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Length of the common prefix of a and b.
int32_t CommonPrefix(std::span<const int32_t> a, std::span<const int32_t> b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return static_cast<int32_t>(i);
}

bool SameTokens(std::span<const int32_t> a, std::span<const int32_t> b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

}  // namespace

PromptCache::PromptCache(BlockPool& pool, const PromptCacheConfig& config)
    : pool_(pool), config_(config) {}

PromptCache::~PromptCache() { Clear(); }

void PromptCache::Touch(Node* node) {
  node->last_tick = tick_;
  node->last_use_unix_ms = now_unix_ms_;
}

bool PromptCache::IsRoot(const Node* node) { return node->parent == nullptr; }

PromptCache::Node* PromptCache::Root(std::string_view cache_namespace) const {
  auto it = roots_.find(cache_namespace);
  return it == roots_.end() ? nullptr : it->second.get();
}

void PromptCache::AddChild(Node* parent, std::unique_ptr<Node> child) {
  // A parent other than a root stops being a leaf: the entry count is unchanged.
  if (IsRoot(parent) || !parent->children.empty()) ++n_leaves_;
  ++n_nodes_;
  n_tokens_ += static_cast<int64_t>(child->tokens.size());
  child->parent = parent;
  parent->children.push_back(std::move(child));
}

void PromptCache::RemoveNode(Node* node) {
  CHECK(!IsRoot(node) && node->children.empty());
  Node* parent = node->parent;
  pool_.Unref(node->block);
  --n_nodes_;
  n_tokens_ -= static_cast<int64_t>(node->tokens.size());
  auto& siblings = parent->children;
  auto it = std::find_if(siblings.begin(), siblings.end(),
                         [node](const std::unique_ptr<Node>& c) { return c.get() == node; });
  CHECK(it != siblings.end());
  siblings.erase(it);
  if (IsRoot(parent) || !parent->children.empty()) --n_leaves_;
}

BlockKey PromptCache::RootKey(std::string_view cache_namespace) const {
  return ChainString(config_.layout, cache_namespace);
}

CacheHit PromptCache::Acquire(std::span<const int32_t> tokens, int32_t max_tokens,
                             std::string_view cache_namespace, bool concurrent_reads) {
  CacheHit hit;
  const int32_t bt = pool_.block_tokens();
  const int64_t limit = std::clamp<int64_t>(max_tokens, 0, static_cast<int64_t>(tokens.size()));
  Node* root = Root(cache_namespace);
  BlockStore* lower = config_.lower != nullptr && config_.lower->enabled() ? config_.lower : nullptr;
  if (config_.max_entries <= 0 || limit == 0 || (root == nullptr && lower == nullptr)) {
    ++misses_;
    return hit;
  }
  ++tick_;
  now_unix_ms_ = UnixMillis();

  // Walk the shared full blocks, then look for a block the match ends inside.
  std::vector<Node*> path;
  int64_t pos = 0;
  Node* partial_src = nullptr;
  int32_t partial_len = 0;
  for (Node* node = root; node != nullptr && pos < limit;) {
    const int64_t remaining = limit - pos;
    auto want = tokens.subspan(pos, static_cast<size_t>(std::min<int64_t>(bt, remaining)));
    Node* full = nullptr;
    Node* best = nullptr;
    int32_t best_len = 0;
    for (const auto& c : node->children) {
      if (remaining >= bt && SameTokens(c->tokens, want)) {
        full = c.get();
        break;
      }
      const int32_t len = CommonPrefix(c->tokens, want);
      if (len > best_len) {
        best_len = len;
        best = c.get();
      }
    }
    if (full != nullptr) {
      path.push_back(full);
      node = full;
      pos += bt;
      continue;
    }
    partial_src = best;
    partial_len = best_len;
    break;
  }

  // The lower tier continues the match past the tree: full blocks, then the
  // longest partial block that beats the tree's own partial match.
  std::vector<BlockKey> lower_keys;
  BlockKey lower_partial;
  int32_t lower_partial_len = 0;
  // Makes the matched blocks the tier's most recent, deepest first, so a
  // block's ancestors (which every later lookup needs first) stay newer.
  auto touch_matched = [&] {
    if (lower_partial_len > 0) lower->Touch(lower_partial);
    for (auto it = lower_keys.rbegin(); it != lower_keys.rend(); ++it) lower->Touch(*it);
  };
  if (lower != nullptr) {
    BlockKey key = path.empty() ? RootKey(cache_namespace) : path.back()->key;
    while (pos + bt <= limit) {
      const BlockKey k = ChainTokens(key, tokens.subspan(pos, bt));
      if (!lower->Contains(k)) break;
      lower_keys.push_back(k);
      key = k;
      pos += bt;
    }
    const int32_t longest = static_cast<int32_t>(std::min<int64_t>(bt - 1, limit - pos));
    const int32_t floor = lower_keys.empty() ? partial_len : 0;
    for (int32_t len = longest; len > floor; --len) {
      const BlockKey k = ChainTokens(key, tokens.subspan(pos, len));
      if (lower->Contains(k)) {
        lower_partial = k;
        lower_partial_len = len;
        break;
      }
    }
    if (!lower_keys.empty() || lower_partial_len > 0) partial_src = nullptr;
    // Demotions made to free pool blocks for them must not push them out.
    touch_matched();
  }

  // Pin the shared blocks first: evictions below (for the copy or the
  // promoted blocks) cannot free them.
  for (Node* n : path) {
    pool_.Ref(n->block);
    hit.seq.blocks.push_back(n->block);
    Touch(n);
    ++n->hits;
  }
  hit.n_shared_blocks = static_cast<int32_t>(path.size());
  hit.n_cached = static_cast<int32_t>(path.size()) * bt;

  if (partial_src != nullptr) {
    // Evict for the copy's block, but never the entry this match comes from.
    protected_ = partial_src;
    const int32_t dst = AllocateBlock();
    protected_ = nullptr;
    if (dst >= 0) {
      pool_.CopyTokens(partial_src->block, dst, partial_len);
      hit.seq.blocks.push_back(dst);
      hit.n_copied_tokens = partial_len;
      hit.n_cached += partial_len;
      // Copying part of a block is not continuing its conversation: only a
      // match that takes the whole source node (a partial leaf the request
      // extends) refreshes that entry. A prompt that merely shares its first
      // tokens (often just BOS) with an entry must not make it the most recent.
      if (partial_len == static_cast<int32_t>(partial_src->tokens.size())) {
        Touch(partial_src);
        ++partial_src->hits;
      }
    }  // else: no room for the copy; the match falls back to the shared blocks
  }

  // Promotions, in chain order. A block a reader thread can fetch (the disk,
  // with concurrent_reads) gets its pool block now and is read later
  // (CompletePromotions); any other is read here, each only after the
  // previous one arrived.
  auto promote = [&](const BlockKey& k, int32_t tokens) {
    // Pinned first: the evictions AllocateBlock may cause cannot drop it.
    const BlockStore::HostPin pin = concurrent_reads ? lower->PinHost(k) : BlockStore::HostPin{};
    const BlockStore* reader =
        concurrent_reads && pin.data == nullptr ? lower->ConcurrentReader(k) : nullptr;
    int32_t b;
    int tier = -1;
    if (pin.data != nullptr || reader != nullptr) {
      b = AllocateBlock();
      if (b < 0) {
        if (pin.data != nullptr) lower->UnpinHost(k, pin, /*read=*/false);
        return false;
      }
      PromotionRead r;
      r.key = k;
      r.reader = reader;
      r.host = pin;
      r.block = b;
      hit.pending.push_back(r);
    } else {
      b = Promote(k);
      if (b < 0) return false;
      tier = lower->last_get_tier();
    }
    hit.promoted.push_back({static_cast<int32_t>(hit.seq.blocks.size()), tokens, tier});
    hit.seq.blocks.push_back(b);
    hit.n_cached += tokens;
    return true;
  };
  bool promoted_all = true;
  for (const BlockKey& k : lower_keys) {
    if (!promote(k, bt)) {
      promoted_all = false;
      break;
    }
  }
  if (promoted_all && lower_partial_len > 0) promote(lower_partial, lower_partial_len);
  if (!hit.promoted.empty()) touch_matched();  // reads refreshed them leaf last
  hit.seq.n_tokens = hit.n_cached;
  if (hit.pending.empty()) Settle(&hit);
  return hit;
}

int32_t PromptCache::CompletePromotions(CacheHit* hit, std::span<const PromotionRead> reads) {
  CHECK(reads.size() == hit->pending.size());
  BlockStore* lower = config_.lower;
  const int32_t bt = pool_.block_tokens();
  // The first block that did not arrive: the match ends there.
  size_t cut = hit->seq.blocks.size();
  size_t next_pending = 0;
  for (CacheHit::Promoted& p : hit->promoted) {
    if (p.tier >= 0) continue;  // read in Acquire
    const PromotionRead& r = reads[next_pending];
    CHECK(r.block == hit->pending[next_pending].block && r.block == hit->seq.blocks[p.seq_block]);
    ++next_pending;
    if (!r.attempted || r.outcome != BlockStore::ReadOutcome::kOk) {
      cut = std::min(cut, static_cast<size_t>(p.seq_block));
    }
  }
  // Every read is finished with its tier: a disk read that ran is counted
  // (and a corrupt block discarded) even past the cut; a host block is
  // unpinned, counted as read only before it.
  next_pending = 0;
  for (CacheHit::Promoted& p : hit->promoted) {
    if (p.tier >= 0) continue;
    const PromotionRead& r = reads[next_pending++];
    const bool before_cut = static_cast<size_t>(p.seq_block) < cut;
    bool ok = false;
    if (r.host.data != nullptr) {
      lower->UnpinHost(r.key, r.host, before_cut);
      ok = before_cut;
    } else if (r.attempted) {
      ok = lower->FinishConcurrentRead(r.key, r.reader, r.outcome) && before_cut;
    }
    if (ok) {
      p.tier = lower->last_get_tier();
    } else {
      p.tier = -2;  // not part of the hit
    }
  }
  hit->pending.clear();
  int32_t lost = 0;
  if (cut < hit->seq.blocks.size()) {
    for (size_t i = cut; i < hit->seq.blocks.size(); ++i) pool_.Unref(hit->seq.blocks[i]);
    hit->seq.blocks.resize(cut);
    const int32_t kept = static_cast<int32_t>(cut) * bt;
    lost = hit->n_cached - kept;
    hit->n_cached = kept;
    hit->seq.n_tokens = kept;
    std::erase_if(hit->promoted,
                  [&](const CacheHit::Promoted& p) { return static_cast<size_t>(p.seq_block) >= cut; });
  }
  // The reads refreshed the tier's recency root first; make the matched
  // blocks the most recent deepest first again (see Acquire).
  for (auto it = reads.rbegin(); it != reads.rend(); ++it) {
    if (it->attempted && it->outcome == BlockStore::ReadOutcome::kOk) lower->Touch(it->key);
  }
  Settle(hit);
  return lost;
}

void PromptCache::Settle(CacheHit* hit) {
  for (const CacheHit::Promoted& p : hit->promoted) {
    CHECK(p.tier >= 0);
    ++promotions_;
    hit->n_lower_tokens += p.tokens;
    ++hit->n_lower_blocks;
    if (p.tier < PromptCacheStats::kMaxTiers) {
      tier_hit_tokens_[p.tier] += p.tokens;
      ++tier_promotions_[p.tier];
      hit->n_tier_tokens[p.tier] += p.tokens;
    }
  }
  hit->promoted.clear();
  if (hit->n_cached > 0) {
    ++hits_;
    hit_tokens_ += hit->n_cached;
    lower_hit_tokens_ += hit->n_lower_tokens;
  } else {
    ++misses_;
  }
}

int32_t PromptCache::Promote(const BlockKey& key) {
  const int32_t b = AllocateBlock();
  if (b < 0) return -1;
  const std::span<uint8_t> staging = pool_.staging();
  if (config_.lower == nullptr || !config_.lower->Get(key, staging)) {
    pool_.Unref(b);
    return -1;
  }
  pool_.WriteBlock(b, staging.data());
  return b;
}

bool PromptCache::Demote(Node* node, bool even_if_pinned) {
  BlockStore* lower = config_.lower;
  if (lower == nullptr || !lower->enabled()) return false;
  // A block a sequence still uses goes back into the tree when it ends.
  if (!even_if_pinned && pool_.RefCount(node->block) > 1) return false;
  if (lower->Touch(node->key)) return false;  // stored once: never rewritten
  const std::span<uint8_t> staging = pool_.staging();
  pool_.ReadBlock(node->block, staging.data());
  if (!lower->Put(node->key, staging)) return false;
  ++demotions_;
  return true;
}

int64_t PromptCache::DemoteAll() {
  if (config_.lower == nullptr) return 0;
  int64_t written = 0;
  std::vector<Node*> order;  // parents before children
  std::vector<Node*> stack;
  for (const auto& [ns, root] : roots_) stack.push_back(root.get());
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const auto& c : n->children) stack.push_back(c.get());
    if (!IsRoot(n)) order.push_back(n);
  }
  // Children first: in the tier's LRU order a block's ancestors end up newer
  // than it, so the tier drops leaves before the prefixes they hang from.
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    if (Demote(*it, /*even_if_pinned=*/true)) ++written;
  }
  return written;
}

int32_t PromptCache::SharedPrefixTokens(std::span<const int32_t> tokens, int32_t max_tokens,
                                        std::string_view cache_namespace) const {
  const int32_t bt = pool_.block_tokens();
  const int64_t limit = std::clamp<int64_t>(max_tokens, 0, static_cast<int64_t>(tokens.size()));
  if (config_.max_entries <= 0) return 0;
  int64_t pos = 0;
  for (const Node* node = Root(cache_namespace); node != nullptr && pos + bt <= limit;) {
    const auto want = tokens.subspan(static_cast<size_t>(pos), static_cast<size_t>(bt));
    const Node* next = nullptr;
    for (const auto& c : node->children) {
      if (SameTokens(c->tokens, want)) {
        next = c.get();
        break;
      }
    }
    if (next == nullptr) break;
    node = next;
    pos += bt;
  }
  return static_cast<int32_t>(pos);
}

void PromptCache::Insert(std::span<const int32_t> tokens, const SeqBlocks& seq,
                         std::string_view cache_namespace) {
  if (config_.max_entries <= 0 || tokens.empty()) return;
  const int32_t bt = pool_.block_tokens();
  const int64_t n = static_cast<int64_t>(tokens.size());
  CHECK_MSG(n <= seq.n_tokens && (n + bt - 1) / bt <= static_cast<int64_t>(seq.blocks.size()),
            "Insert of %lld tokens from a sequence of %d tokens in %zu blocks",
            static_cast<long long>(n), seq.n_tokens, seq.blocks.size());
  ++tick_;
  now_unix_ms_ = UnixMillis();

  Node* node = Root(cache_namespace);
  if (node == nullptr) {
    auto root = std::make_unique<Node>();
    root->ns = std::string(cache_namespace);
    root->key = RootKey(cache_namespace);
    node = root.get();
    roots_.emplace(root->ns, std::move(root));
  }
  bool added = false;
  for (int64_t pos = 0, i = 0; pos < n; pos += bt, ++i) {
    auto chunk = tokens.subspan(pos, static_cast<size_t>(std::min<int64_t>(bt, n - pos)));
    Node* same = nullptr;
    Node* cover = nullptr;     // an existing node whose tokens extend a partial chunk
    std::vector<Node*> stale;  // partial leaves that the chunk extends
    for (const auto& c : node->children) {
      if (SameTokens(c->tokens, chunk)) {
        same = c.get();
        break;
      }
      const int32_t len = CommonPrefix(c->tokens, chunk);
      if (len == static_cast<int32_t>(chunk.size())) cover = c.get();
      if (len == static_cast<int32_t>(c->tokens.size())) stale.push_back(c.get());
    }
    if (same != nullptr) {
      Touch(same);
      node = same;
      continue;
    }
    if (cover != nullptr) {  // already stored as part of a longer entry
      Touch(cover);
      break;
    }
    auto fresh = std::make_unique<Node>();
    fresh->tokens.assign(chunk.begin(), chunk.end());
    fresh->key = ChainTokens(node->key, chunk);
    fresh->block = seq.blocks[static_cast<size_t>(i)];
    pool_.Ref(fresh->block);
    for (Node* s : stale) {  // replaced: keep its history, drop its block
      CHECK(s->children.empty());
      fresh->hits += s->hits;
      RemoveNode(s);
    }
    Node* raw = fresh.get();
    AddChild(node, std::move(fresh));
    Touch(raw);
    node = raw;
    added = true;
  }
  if (added) ++inserts_;
  while (n_leaves_ > config_.max_entries) {
    Node* victim = PickVictim(/*must_free=*/false);
    CHECK(victim != nullptr);
    EvictEntry(victim);
  }
}

int32_t PromptCache::AllocateBlock() {
  int32_t block = pool_.Allocate();
  if (block < 0 && EvictUntilFree(1)) block = pool_.Allocate();
  return block;
}

bool PromptCache::EvictUntilFree(int32_t n_blocks) {
  if (n_blocks > pool_.capacity_blocks()) return false;
  while (pool_.free_blocks() < n_blocks) {
    Node* victim = PickVictim(/*must_free=*/true);
    if (victim == nullptr) return false;
    EvictEntry(victim);
  }
  return true;
}

PromptCache::Node* PromptCache::PickVictim(bool must_free) const {
  Node* victim = nullptr;
  uint64_t victim_tick = 0;
  std::vector<Node*> stack;
  for (const auto& [ns, root] : roots_) stack.push_back(root.get());
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const auto& c : n->children) stack.push_back(c.get());
    if (IsRoot(n) || !n->children.empty()) continue;
    // n is a leaf: walk its exclusive chain.
    uint64_t tick = 0;
    bool frees = false;
    bool is_protected = false;
    for (Node* c = n;;) {
      tick = std::max(tick, c->last_tick);
      frees = frees || pool_.RefCount(c->block) == 1;
      is_protected = is_protected || c == protected_;
      Node* p = c->parent;
      if (IsRoot(p) || p->children.size() != 1) break;
      c = p;
    }
    if (is_protected || (must_free && !frees)) continue;
    if (victim == nullptr || tick < victim_tick) {
      victim = n;
      victim_tick = tick;
    }
  }
  return victim;
}

void PromptCache::EvictEntry(Node* leaf) {
  CHECK(!IsRoot(leaf) && leaf->children.empty());
  Node* n = leaf;
  while (!IsRoot(n) && n->children.empty()) {
    Node* parent = n->parent;
    Demote(n, /*even_if_pinned=*/false);
    RemoveNode(n);
    n = parent;
  }
  if (IsRoot(n) && n->children.empty()) roots_.erase(n->ns);  // the namespace's last entry
  ++evictions_;
}

void PromptCache::Clear() {
  ++tick_;
  // Post-order removal without recursion.
  std::vector<Node*> stack;
  for (const auto& [ns, root] : roots_) stack.push_back(root.get());
  while (!stack.empty()) {
    Node* n = stack.back();
    if (!n->children.empty()) {
      stack.push_back(n->children.back().get());
      continue;
    }
    stack.pop_back();
    if (!IsRoot(n)) RemoveNode(n);
  }
  roots_.clear();
  CHECK(n_nodes_ == 0 && n_leaves_ == 0 && n_tokens_ == 0);
}

PromptCacheStats PromptCache::Stats() const {
  PromptCacheStats s;
  s.entries = n_leaves_;
  s.cached_blocks = n_nodes_;
  s.cached_bytes = n_nodes_ * pool_.block_bytes();
  s.cached_tokens = n_tokens_;
  s.hits = hits_;
  s.misses = misses_;
  s.hit_tokens = hit_tokens_;
  s.evictions = evictions_;
  s.inserts = inserts_;
  s.lower_hit_tokens = lower_hit_tokens_;
  for (int i = 0; i < PromptCacheStats::kMaxTiers; ++i) {
    s.tier_hit_tokens[i] = tier_hit_tokens_[i];
    s.tier_promotions[i] = tier_promotions_[i];
  }
  s.promotions = promotions_;
  s.demotions = demotions_;
  return s;
}

std::vector<CacheEntryInfo> PromptCache::Entries() const {
  std::vector<CacheEntryInfo> out;
  // (node, blocks on the path above it, tokens on the path above it)
  struct Item {
    Node* node;
    int32_t depth_blocks;
    int64_t depth_tokens;
    const std::string* ns;
  };
  std::vector<Item> stack;
  for (const auto& [ns, root] : roots_) stack.push_back({root.get(), 0, 0, &ns});
  while (!stack.empty()) {
    Item it = stack.back();
    stack.pop_back();
    Node* n = it.node;
    const int32_t blocks = it.depth_blocks + (IsRoot(n) ? 0 : 1);
    const int64_t tokens = it.depth_tokens + static_cast<int64_t>(n->tokens.size());
    for (const auto& c : n->children) stack.push_back({c.get(), blocks, tokens, it.ns});
    if (IsRoot(n) || !n->children.empty()) continue;
    CacheEntryInfo info;
    info.cache_namespace = *it.ns;
    info.tokens = tokens;
    info.blocks = blocks;
    info.bytes = blocks * pool_.block_bytes();
    if (config_.lower != nullptr && config_.lower->enabled()) {
      for (const Node* c = n; !IsRoot(c); c = c->parent)
        info.lower_blocks += config_.lower->Contains(c->key) ? 1 : 0;
    }
    int32_t own = 0;
    for (Node* c = n;;) {
      ++own;
      info.last_use_unix_ms = std::max(info.last_use_unix_ms, c->last_use_unix_ms);
      info.hits = std::max(info.hits, c->hits);
      Node* p = c->parent;
      if (IsRoot(p) || p->children.size() != 1) break;
      c = p;
    }
    info.shared_blocks = blocks - own;
    out.push_back(info);
  }
  return out;
}

void PromptCache::CheckInvariants() const {
  const int32_t bt = pool_.block_tokens();
  std::unordered_set<int32_t> blocks;
  int64_t nodes = 0, leaves = 0, tokens = 0;
  std::vector<const Node*> stack;
  for (const auto& [ns, root] : roots_) {
    CHECK_MSG(IsRoot(root.get()) && root->ns == ns, "namespace root of '%s' misfiled", ns.c_str());
    CHECK_MSG(!root->children.empty(), "namespace '%s' has a root but no entries", ns.c_str());
    stack.push_back(root.get());
  }
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    for (size_t i = 0; i < n->children.size(); ++i) {
      const Node* c = n->children[i].get();
      CHECK(c->parent == n);
      for (size_t j = i + 1; j < n->children.size(); ++j) {
        CHECK_MSG(!SameTokens(c->tokens, n->children[j]->tokens), "duplicate sibling nodes");
      }
      stack.push_back(c);
    }
    if (IsRoot(n)) continue;
    ++nodes;
    tokens += static_cast<int64_t>(n->tokens.size());
    if (n->children.empty()) ++leaves;
    CHECK(!n->tokens.empty() && static_cast<int32_t>(n->tokens.size()) <= bt);
    CHECK_MSG(static_cast<int32_t>(n->tokens.size()) == bt || n->children.empty(),
              "a partial block node has children");
    CHECK_MSG(pool_.RefCount(n->block) >= 1, "cached block %d is free", n->block);
    CHECK_MSG(blocks.insert(n->block).second, "block %d cached twice", n->block);
  }
  CHECK(nodes == n_nodes_ && leaves == n_leaves_ && tokens == n_tokens_);
  CHECK(config_.max_entries <= 0 ? n_leaves_ == 0 : n_leaves_ <= config_.max_entries);
}

}  // namespace reprise::kv
