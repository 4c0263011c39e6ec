// Matcher and token masks (see matcher.h).
#include "grammar/matcher.h"

#include <algorithm>
#include <bit>
#include <limits>

#include "core/check.h"

namespace reprise::grammar {

// ---- Stepper ----

bool Stepper::FirstSight(Config c) {
  constexpr size_t kLinear = 32;
  if (seen_.size() < kLinear) {
    if (std::find(seen_.begin(), seen_.end(), c) != seen_.end()) return false;
    seen_.push_back(c);
    if (seen_.size() == kLinear) {
      seen_set_.clear();
      for (const Config& s : seen_) seen_set_.insert(uint64_t{s.state} << 32 | s.stack);
    }
    return true;
  }
  return seen_set_.insert(uint64_t{c.state} << 32 | c.stack).second;
}

void Stepper::Expand(Config c, std::vector<Config>* out, bool* at_bottom) {
  work_.clear();
  work_.push_back(c);
  while (!work_.empty()) {
    const Config x = work_.back();
    work_.pop_back();
    if (!FirstSight(x)) continue;
    const Grammar::StateInfo& info = g_.state(x.state);
    if (info.flags & Grammar::kHasBytes) {
      if (out->size() >= kMaxConfigs) continue;  // see kMaxConfigs
      out->push_back(x);
    }
    if (info.flags & Grammar::kHasCalls) {
      for (uint32_t i = info.calls_begin; i < info.calls_end; ++i) {
        const Grammar::CallEdge& e = g_.call_edges()[i];
        nodes_.push_back({e.ret, x.stack});
        work_.push_back({g_.RuleStart(e.rule), static_cast<uint32_t>(nodes_.size() - 1)});
      }
    }
    if (info.flags & Grammar::kAccepting) {
      if (x.stack == 0) {
        *at_bottom = true;
      } else {
        const Node n = nodes_[x.stack];
        work_.push_back({n.ret, n.parent});
      }
    }
  }
}

bool Stepper::Advance(std::span<const Config> in, uint8_t b, std::vector<Config>* out,
                      bool* at_bottom) {
  const size_t before = out->size();
  seen_.clear();
  seen_set_.clear();
  if (in.size() == 1) {
    const int64_t t = g_.Next(in[0].state, b);
    if (t < 0) return *at_bottom;
    const uint32_t target = static_cast<uint32_t>(t);
    if (g_.state(target).flags == Grammar::kHasBytes) {  // the common case: no calls, no return
      out->push_back({target, in[0].stack});
      return true;
    }
    Expand({target, in[0].stack}, out, at_bottom);
    return out->size() > before || *at_bottom;
  }
  for (const Config& c : in) {
    const int64_t t = g_.Next(c.state, b);
    if (t >= 0) Expand({static_cast<uint32_t>(t), c.stack}, out, at_bottom);
  }
  return out->size() > before || *at_bottom;
}

// ---- Matcher ----

Matcher::Matcher(std::shared_ptr<const Grammar> grammar)
    : grammar_(std::move(grammar)), stepper_(*grammar_) {
  bool at_bottom = false;
  stepper_.Expand({grammar_->RuleStart(grammar_->root()), 0}, &configs_, &at_bottom);
  complete_ = at_bottom;
  live_nodes_after_compact_ = stepper_.arena_size();
}

bool Matcher::Step(std::string_view bytes, std::vector<Config>* out, bool* complete) {
  scratch_a_.assign(configs_.begin(), configs_.end());
  bool at_bottom = complete_;
  for (char ch : bytes) {
    scratch_b_.clear();
    at_bottom = false;
    if (!stepper_.Advance(scratch_a_, static_cast<uint8_t>(ch), &scratch_b_, &at_bottom)) {
      return false;
    }
    scratch_a_.swap(scratch_b_);
  }
  out->swap(scratch_a_);
  *complete = at_bottom;
  return true;
}

bool Matcher::AcceptBytes(std::string_view bytes) {
  const size_t mark = stepper_.arena_size();
  std::vector<Config> next;
  bool complete = false;
  if (!Step(bytes, &next, &complete)) {
    stepper_.TruncateArena(mark);
    return false;
  }
  configs_.swap(next);
  complete_ = complete;
  MaybeCompact();
  return true;
}

bool Matcher::WouldAccept(std::string_view bytes) {
  const size_t mark = stepper_.arena_size();
  std::vector<Config> next;
  bool complete = false;
  const bool ok = Step(bytes, &next, &complete);
  stepper_.TruncateArena(mark);
  return ok;
}

bool Matcher::ViableFrom(Config c, std::string_view bytes) {
  const size_t mark = stepper_.arena_size();
  scratch_a_.assign(1, c);
  bool ok = true;
  for (char ch : bytes) {
    scratch_b_.clear();
    bool at_bottom = false;
    if (!stepper_.Advance(scratch_a_, static_cast<uint8_t>(ch), &scratch_b_, &at_bottom)) {
      ok = false;
      break;
    }
    scratch_a_.swap(scratch_b_);
  }
  stepper_.TruncateArena(mark);
  return ok;
}

void Matcher::MaybeCompact() {
  const size_t size = stepper_.arena_size();
  if (size < 4096 || size < 4 * live_nodes_after_compact_) return;
  // Nodes reachable from the configurations; parents precede children, so
  // one pass in index order rebuilds the arena.
  std::vector<uint32_t> remap(size, UINT32_MAX);
  remap[0] = 0;
  for (const Config& c : configs_) {
    for (uint32_t n = c.stack; remap[n] == UINT32_MAX; n = stepper_.node(n).parent) remap[n] = 1;
  }
  std::vector<Stepper::Node>& nodes = stepper_.nodes();
  uint32_t next = 1;
  for (uint32_t i = 1; i < size; ++i) {
    if (remap[i] == UINT32_MAX) continue;
    remap[i] = next;
    nodes[next] = {nodes[i].ret, remap[nodes[i].parent]};
    ++next;
  }
  stepper_.TruncateArena(next);
  for (Config& c : configs_) c.stack = remap[c.stack];
  live_nodes_after_compact_ = next;
}

int64_t Matcher::FillMask(TokenMasks& masks, uint64_t* bits) {
  CHECK(masks.grammar_ptr().get() == grammar_.get());
  const size_t words = masks.words();
  std::fill(bits, bits + words, 0);
  const TokenTrie& trie = masks.trie();
  // Copied: ViableFrom reuses the scratch buffers, configs_ stays put.
  for (size_t ci = 0; ci < configs_.size(); ++ci) {
    const Config c = configs_[ci];
    const std::shared_ptr<const TokenMasks::StateTokens> held = masks.For(c.state);
    const TokenMasks::StateTokens& st = *held;
    if (!st.accept_bits.empty()) {
      for (size_t w = 0; w < words; ++w) bits[w] |= st.accept_bits[w];
    } else {
      for (int32_t t : st.accept_list) bits[t >> 6] |= uint64_t{1} << (t & 63);
    }
    for (int32_t t : st.uncertain) {
      const uint64_t bit = uint64_t{1} << (t & 63);
      if ((bits[t >> 6] & bit) == 0 && ViableFrom(c, trie.bytes(t))) bits[t >> 6] |= bit;
    }
  }
  if (complete_) {
    for (int32_t t : trie.eog()) bits[t >> 6] |= uint64_t{1} << (t & 63);
  }
  int64_t count = 0;
  for (size_t w = 0; w < words; ++w) count += std::popcount(bits[w]);
  return count;
}

void ApplyMask(const uint64_t* bits, float* logits, int32_t n_vocab) {
  const float kNegInf = -std::numeric_limits<float>::infinity();
  const int32_t full_words = n_vocab / 64;
  for (int32_t w = 0; w < full_words; ++w) {
    uint64_t clear = ~bits[w];
    if (clear == 0) continue;
    float* base = logits + static_cast<size_t>(w) * 64;
    if (clear == ~uint64_t{0}) {
      std::fill(base, base + 64, kNegInf);
      continue;
    }
    while (clear != 0) {
      base[std::countr_zero(clear)] = kNegInf;
      clear &= clear - 1;
    }
  }
  for (int32_t t = full_words * 64; t < n_vocab; ++t) {
    if ((bits[t >> 6] & (uint64_t{1} << (t & 63))) == 0) logits[t] = kNegInf;
  }
}

// ---- TokenMasks ----

TokenMasks::TokenMasks(std::shared_ptr<const Grammar> grammar,
                       std::shared_ptr<const TokenTrie> trie, size_t max_bytes)
    : grammar_(std::move(grammar)), trie_(std::move(trie)), max_bytes_(max_bytes) {}

size_t TokenMasks::BytesOf(const StateTokens& t) {
  return sizeof(StateTokens) + 64 + t.accept_bits.size() * sizeof(uint64_t) +
         (t.accept_list.size() + t.uncertain.size()) * sizeof(int32_t);
}

namespace {

uint64_t Mix(uint64_t h, uint64_t v) {
  uint64_t x = h ^ (v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2));
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

struct PairHash {
  size_t operator()(const std::pair<uint64_t, uint64_t>& p) const {
    return static_cast<size_t>(p.first ^ (p.second * 0x9e3779b97f4a7c15ull));
  }
};

}  // namespace

// Moore's refinement: round r separates states that differ within r bytes.
// A state's signature: its class, its byte edges (ranges merged when they
// lead to one class), and its calls (callee start class, return class); two
// independent 64-bit hashes make a merge by collision negligible.
void TokenMasks::ComputeClasses() {
  const Grammar& g = *grammar_;
  const size_t n = g.state_count();
  std::vector<uint32_t> cls(n), next(n);
  for (uint32_t s = 0; s < n; ++s) cls[s] = (g.state(s).flags & Grammar::kAccepting) ? 1 : 0;
  size_t count = 0;
  const uint32_t rounds = trie_->max_depth() + 1;
  std::unordered_map<std::pair<uint64_t, uint64_t>, uint32_t, PairHash> ids;
  std::vector<std::pair<uint32_t, uint32_t>> calls;
  for (uint32_t round = 0; round < rounds; ++round) {
    ids.clear();
    for (uint32_t s = 0; s < n; ++s) {
      const Grammar::StateInfo& info = g.state(s);
      uint64_t a = Mix(1, cls[s]), b = Mix(2, cls[s]);
      int lo = -1, hi = -1;
      uint32_t target = 0;
      auto add = [&](uint64_t v) {
        a = Mix(a, v);
        b = Mix(b ^ 0x5bd1e995u, v);
      };
      auto flush = [&] {
        if (lo >= 0) {
          add((uint64_t{static_cast<uint32_t>(lo)} << 40) |
              (uint64_t{static_cast<uint32_t>(hi)} << 32) | target);
        }
      };
      for (uint32_t i = info.bytes_begin; i < info.bytes_end; ++i) {
        const Grammar::ByteEdge& e = g.byte_edges()[i];
        const uint32_t t = cls[e.target];
        if (lo >= 0 && hi + 1 == e.lo && t == target) {
          hi = e.hi;
          continue;
        }
        flush();
        lo = e.lo;
        hi = e.hi;
        target = t;
      }
      flush();
      calls.clear();
      for (uint32_t i = info.calls_begin; i < info.calls_end; ++i) {
        const Grammar::CallEdge& e = g.call_edges()[i];
        calls.emplace_back(cls[g.RuleStart(e.rule)], cls[e.ret]);
      }
      std::sort(calls.begin(), calls.end());
      calls.erase(std::unique(calls.begin(), calls.end()), calls.end());
      add(0xca11ca11ca11ull);
      for (const auto& [start, ret] : calls) add((uint64_t{start} << 32) | ret);
      next[s] = ids.emplace(std::make_pair(a, b), static_cast<uint32_t>(ids.size())).first->second;
    }
    cls.swap(next);
    if (ids.size() == count) break;  // stable: no further round splits a class
    count = ids.size();
  }
  class_of_ = std::move(cls);
  n_classes_ = count;
}

uint32_t TokenMasks::BehaviourClass(uint32_t state) {
  std::call_once(classes_once_, [this] { ComputeClasses(); });
  return class_of_[state];
}

size_t TokenMasks::behaviour_classes() {
  std::call_once(classes_once_, [this] { ComputeClasses(); });
  return n_classes_;
}

std::shared_ptr<const TokenMasks::StateTokens> TokenMasks::For(uint32_t state) {
  const uint32_t key = BehaviourClass(state);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = states_.find(key);
    if (it != states_.end()) return it->second;
  }
  auto computed = std::make_shared<const StateTokens>(Compute(state));
  const size_t size = BytesOf(*computed);
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, inserted] = states_.emplace(key, computed);
  if (!inserted) return it->second;  // another thread was first
  bytes_ += size;
  // Over budget: drop other entries (those in use live on in their holders).
  for (auto e = states_.begin(); bytes_ > max_bytes_ && e != states_.end();) {
    if (e->first == key) {
      ++e;
      continue;
    }
    bytes_ -= BytesOf(*e->second);
    e = states_.erase(e);
  }
  return computed;
}

size_t TokenMasks::cached_states() const {
  std::lock_guard<std::mutex> lock(mu_);
  return states_.size();
}

size_t TokenMasks::cached_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

// Walks the trie from (state, unknown stack). A token is accepted when some
// path reads all its bytes without returning below the state's frame (or
// returns exactly at its last byte: a live return state always follows);
// tokens below a trie node where a path returned below the frame are
// uncertain unless accepted another way; the rest are rejected.
TokenMasks::StateTokens TokenMasks::Compute(uint32_t state) const {
  const TokenTrie& trie = *trie_;
  Stepper stepper(*grammar_);  // its node 0 stands for the unknown stack below
  const uint32_t n = trie.node_count();
  const size_t levels = trie.max_depth() + 2;
  std::vector<Config> buf = {{state, 0}};
  std::vector<uint32_t> level_begin(levels + 1, 0), arena_mark(levels + 1, 1);
  level_begin[0] = 0;
  level_begin[1] = 1;
  std::vector<Config> tmp;
  std::vector<int32_t> accepted;
  std::vector<std::pair<uint32_t, uint32_t>> uncertain_ranges;
  StateTokens out;
  uint32_t i = 0;
  while (i < n) {
    const uint32_t d = trie.depth(i);
    buf.resize(level_begin[d]);
    stepper.TruncateArena(arena_mark[d]);
    ++out.nodes_visited;
    tmp.clear();
    bool at_bottom = false;
    const std::span<const Config> parent(buf.data() + level_begin[d - 1],
                                         level_begin[d] - level_begin[d - 1]);
    if (!stepper.Advance(parent, trie.byte(i), &tmp, &at_bottom)) {
      i = trie.skip(i);
      continue;
    }
    const std::vector<int32_t>& ids = trie.token_ids();
    for (uint32_t k = trie.token_begin(i); k < trie.token_begin(i + 1); ++k) {
      accepted.push_back(ids[k]);
    }
    if (at_bottom && trie.token_begin(i + 1) < trie.token_begin(trie.skip(i))) {
      uncertain_ranges.emplace_back(trie.token_begin(i + 1), trie.token_begin(trie.skip(i)));
    }
    if (tmp.empty()) {
      i = trie.skip(i);
      continue;
    }
    buf.insert(buf.end(), tmp.begin(), tmp.end());
    level_begin[d + 1] = static_cast<uint32_t>(buf.size());
    arena_mark[d + 1] = static_cast<uint32_t>(stepper.arena_size());
    ++i;
  }
  const size_t words = this->words();
  std::vector<uint64_t> acc(words, 0);
  for (int32_t t : accepted) acc[t >> 6] |= uint64_t{1} << (t & 63);
  if (!uncertain_ranges.empty()) {
    std::vector<uint64_t> unc(words, 0);
    const std::vector<int32_t>& ids = trie.token_ids();
    for (const auto& [a, b] : uncertain_ranges) {
      for (uint32_t k = a; k < b; ++k) {
        const int32_t t = ids[k];
        const uint64_t bit = uint64_t{1} << (t & 63);
        if ((acc[t >> 6] & bit) != 0 || (unc[t >> 6] & bit) != 0) continue;
        unc[t >> 6] |= bit;
        out.uncertain.push_back(t);
      }
    }
    std::sort(out.uncertain.begin(), out.uncertain.end());
  }
  if (accepted.size() * 16 > static_cast<size_t>(trie.n_vocab())) {
    out.accept_bits = std::move(acc);
  } else {
    std::sort(accepted.begin(), accepted.end());
    accepted.erase(std::unique(accepted.begin(), accepted.end()), accepted.end());
    out.accept_list = std::move(accepted);
  }
  return out;
}

}  // namespace reprise::grammar
