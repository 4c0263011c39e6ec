// SentencePiece-style encoder (tokenizer.ggml.model = "llama").
//
// The text (spaces already escaped to U+2581, dummy prefix already added) is
// split into UTF-8 characters; adjacent pairs whose concatenation is a token
// are merged best-score-first (ties: leftmost first) until no pair forms a
// token. A final piece that is not a token is emitted as its <0xXX> byte
// tokens (byte fallback), or as the unknown token if the vocabulary has none.
// A byte that does not begin a well-formed UTF-8 sequence is a symbol of its
// own, so invalid input survives byte-exactly through byte fallback. (llama.cpp
// sizes a character by its lead byte alone, which on invalid input can
// swallow the bytes of a following escaped space; the two agree on all valid
// UTF-8.)
#include <algorithm>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace reprise::tokenizer {
namespace {

struct Symbol {
  int32_t prev;
  int32_t next;
  uint32_t start;
  uint32_t len;  // 0 once merged into its left neighbour
};

struct Bigram {
  float score;
  int32_t left;
  int32_t right;
  uint32_t len;
};

// Orders the max-heap: higher score first, then the leftmost pair.
struct BigramLess {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

constexpr std::string_view kSpace = "\xe2\x96\x81";  // '▁'

}  // namespace

struct Tokenizer::SpmScratch {
  std::vector<Symbol> symbols;
  std::vector<Bigram> queue;  // max-heap by BigramLess
};

int32_t Tokenizer::SpmByteToken(uint8_t byte) const {
  if (spm_byte_token_[byte] >= 0) return spm_byte_token_[byte];
  return Lookup(std::string_view(reinterpret_cast<const char*>(&byte), 1));
}

void Tokenizer::EncodeSpmChunk(std::string_view text, SpmScratch* scratch,
                               std::vector<int32_t>* out) const {
  if (text.empty()) return;
  auto& symbols = scratch->symbols;
  symbols.clear();
  for (size_t offs = 0; offs < text.size();) {
    uint32_t cp;
    const int decoded = DecodeUtf8(text, offs, &cp);
    const uint32_t len = decoded > 0 ? static_cast<uint32_t>(decoded) : 1;
    const int32_t index = static_cast<int32_t>(symbols.size());
    symbols.push_back({index - 1, offs + len < text.size() ? index + 1 : -1,
                       static_cast<uint32_t>(offs), len});
    offs += len;
  }

  auto& queue = scratch->queue;
  queue.clear();
  const auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const uint32_t len = symbols[left].len + symbols[right].len;
    const int32_t id = Lookup(text.substr(symbols[left].start, len));
    if (id < 0) return;
    queue.push_back({scores_[id], left, right, len});
    std::push_heap(queue.begin(), queue.end(), BigramLess());
  };
  for (int32_t i = 1; i < static_cast<int32_t>(symbols.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    std::pop_heap(queue.begin(), queue.end(), BigramLess());
    const Bigram bigram = queue.back();
    queue.pop_back();
    Symbol& left = symbols[bigram.left];
    Symbol& right = symbols[bigram.right];
    // Stale: one side has merged since this pair was queued.
    if (left.len == 0 || right.len == 0 || left.len + right.len != bigram.len) continue;
    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = bigram.left;
    try_add(left.prev, bigram.left);
    try_add(bigram.left, left.next);
  }

  for (int32_t i = 0; i != -1; i = symbols[i].next) {
    const Symbol& sym = symbols[i];
    const std::string_view piece = text.substr(sym.start, sym.len);
    const int32_t id = Lookup(piece);
    if (id >= 0) {
      out->push_back(id);
      continue;
    }
    // Byte fallback; without byte tokens the whole piece is one unknown token.
    bool all_bytes = true;
    for (char c : piece) all_bytes = all_bytes && SpmByteToken(static_cast<uint8_t>(c)) >= 0;
    if (!all_bytes) {
      if (unk_id_ >= 0) out->push_back(unk_id_);
      continue;
    }
    for (char c : piece) out->push_back(SpmByteToken(static_cast<uint8_t>(c)));
  }
}


void Tokenizer::EncodeSpm(std::string_view text, std::vector<int32_t>* out) const {
  SpmScratch scratch;
  if (!spm_split_at_spaces_) {
    EncodeSpmChunk(text, &scratch, out);
    return;
  }
  // No token has '▁' after another character, so no merge crosses the start
  // of a '▁' that follows a non-'▁' character: encode those chunks apart
  // (same result, small heaps).
  size_t chunk = 0;
  for (size_t pos = text.find(kSpace, 1); pos != std::string_view::npos;
       pos = text.find(kSpace, pos + kSpace.size())) {
    if (pos >= kSpace.size() && text.compare(pos - kSpace.size(), kSpace.size(), kSpace) == 0) {
      continue;  // inside a run of '▁'
    }
    EncodeSpmChunk(text.substr(chunk, pos - chunk), &scratch, out);
    chunk = pos;
  }
  EncodeSpmChunk(text.substr(chunk), &scratch, out);
}

bool Tokenizer::SpmCanSplitAtSpaces() const {
  for (const std::string& t : tokens_) {
    for (size_t pos = t.find(kSpace, 1); pos != std::string::npos;
         pos = t.find(kSpace, pos + 1)) {
      if (pos < kSpace.size() || t.compare(pos - kSpace.size(), kSpace.size(), kSpace) != 0) {
        return false;
      }
    }
  }
  return true;
}

}  // namespace reprise::tokenizer
