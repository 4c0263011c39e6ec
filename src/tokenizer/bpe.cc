// Byte-level BPE encoder (tokenizer.ggml.model = "gpt2").
//
// Text is sanitized to valid UTF-8 (invalid bytes -> U+FFFD), split into
// words by the pre-tokenizer of tokenizer.ggml.pre, and each word's bytes are
// merged lowest-rank-first (ties: leftmost first) using the merge table. The
// table is keyed by token ids, so a merge step is one hash lookup. Llama 3
// style vocabularies (ignore_merges) take a word that is itself a token
// as-is. Repeated words within one Encode call are merged once (per-call
// cache; no shared mutable state).
#include <algorithm>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"

namespace reprise::tokenizer {

struct Tokenizer::BpeScratch {
  struct Symbol {
    int32_t id;  // token id, or -1 for a byte whose character is not a token
    int32_t prev;
    int32_t next;
    bool alive;
  };
  struct Candidate {
    int32_t rank;
    int32_t left;
    int32_t right;
    int32_t left_id;
    int32_t right_id;
    int32_t result;
  };
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
  std::string mapped;
};

namespace {

// Min-heap order for std::*_heap: lowest rank, then leftmost.
struct CandidateGreater {
  template <class C>
  bool operator()(const C& a, const C& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

}  // namespace

Status Tokenizer::InitBpe(const std::vector<std::string>& merges) {
  for (int b = 0; b < 256; ++b) bpe_byte_token_[b] = Lookup(byte_map_.Encode(static_cast<uint8_t>(b)));
  merges_.reserve(merges.size());
  std::string joined;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const std::string& m = merges[rank];
    const size_t space = m.find(' ', 1);
    if (space == std::string::npos) {
      return Errorf("tokenizer.ggml.merges[%zu] = '%s' is not \"left right\"", rank, m.c_str());
    }
    const std::string_view left(m.data(), space);
    const std::string_view right(m.data() + space + 1, m.size() - space - 1);
    const int32_t left_id = Lookup(left);
    const int32_t right_id = Lookup(right);
    joined.assign(left).append(right);
    const int32_t result = Lookup(joined);
    // A merge whose parts or result are not tokens can never produce a token.
    if (left_id < 0 || right_id < 0 || result < 0) continue;
    merges_.emplace(PairKey(left_id, right_id), Merge{static_cast<int32_t>(rank), result});
  }
  return Status::Ok();
}

void Tokenizer::EncodeBpeWord(std::string_view word, BpeScratch* scratch,
                              std::vector<int32_t>* out) const {
  if (ignore_merges_) {
    scratch->mapped.clear();
    for (char c : word) scratch->mapped += byte_map_.Encode(static_cast<uint8_t>(c));
    const int32_t id = Lookup(scratch->mapped);
    if (id >= 0) {
      out->push_back(id);
      return;
    }
  }
  auto& symbols = scratch->symbols;
  auto& heap = scratch->heap;
  symbols.clear();
  heap.clear();
  const int32_t n = static_cast<int32_t>(word.size());
  for (int32_t i = 0; i < n; ++i) {
    symbols.push_back({bpe_byte_token_[static_cast<uint8_t>(word[i])], i - 1,
                       i + 1 < n ? i + 1 : -1, true});
  }
  const auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const int32_t left_id = symbols[left].id, right_id = symbols[right].id;
    if (left_id < 0 || right_id < 0) return;
    const auto it = merges_.find(PairKey(left_id, right_id));
    if (it == merges_.end()) return;
    heap.push_back({it->second.rank, left, right, left_id, right_id, it->second.result});
    std::push_heap(heap.begin(), heap.end(), CandidateGreater());
  };
  for (int32_t i = 1; i < n; ++i) try_add(i - 1, i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), CandidateGreater());
    const BpeScratch::Candidate c = heap.back();
    heap.pop_back();
    auto& left = symbols[c.left];
    auto& right = symbols[c.right];
    // Stale: a side has merged since this pair was queued.
    if (!left.alive || !right.alive || left.next != c.right || left.id != c.left_id ||
        right.id != c.right_id) {
      continue;
    }
    left.id = c.result;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = c.left;
    try_add(left.prev, c.left);
    try_add(c.left, left.next);
  }
  for (int32_t i = 0; i != -1 && i < n; i = symbols[i].next) {
    // A byte whose character is not a token is dropped (as the reference does).
    if (symbols[i].id >= 0) out->push_back(symbols[i].id);
  }
}

void Tokenizer::EncodeBpe(std::string_view text, std::vector<int32_t>* out) const {
  std::string sanitized;
  if (!IsValidUtf8(text)) {
    sanitized = SanitizeUtf8(text);
    text = sanitized;
  }
  BpeScratch scratch;
  // Per-call cache: word -> [offset, count) into `cached`.
  std::unordered_map<std::string_view, std::pair<uint32_t, uint32_t>> cache;
  std::vector<int32_t> cached;
  for (std::string_view word : pre_tokenizer_->Split(text)) {
    const auto it = cache.find(word);
    if (it != cache.end()) {
      out->insert(out->end(), cached.begin() + it->second.first,
                  cached.begin() + it->second.first + it->second.second);
      continue;
    }
    const size_t before = out->size();
    EncodeBpeWord(word, &scratch, out);
    if (word.size() <= 64) {
      cache.emplace(word, std::make_pair(static_cast<uint32_t>(cached.size()),
                                         static_cast<uint32_t>(out->size() - before)));
      cached.insert(cached.end(), out->begin() + before, out->end());
    }
  }
}

}  // namespace reprise::tokenizer
