// The vocabulary as the grammar matcher sees it: every token's bytes (what
// the server's detokenizer prints for it) arranged in a trie, so a mask walks
// shared prefixes once and skips whole subtrees a grammar state rejects.
// Built once per vocabulary (~0.1 s for 128k tokens) and shared, immutable,
// by every request.
//
// Which tokens are in the trie: those whose text is printed (normal, byte and
// user-defined tokens). Control, unknown and unused tokens print nothing, so
// they are never allowed under a grammar — except end-of-generation tokens,
// which are listed apart (eog()) and allowed exactly when the grammar is
// complete.
//
// Layout: nodes in depth-first preorder (children in byte order), so node i's
// subtree is [i, skip(i)) and the tokens ending in that subtree are
// token_ids()[token_begin(i), token_begin(skip(i))). The root is implicit
// (depth 0); node depths start at 1.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace reprise::tokenizer {
class Tokenizer;
}

namespace reprise::grammar {

class TokenTrie {
 public:
  // token_bytes[id]: the token's text; tokens with `in_trie[id]` false (or
  // empty text) are left out. `eog`: end-of-generation ids.
  TokenTrie(const std::vector<std::string>& token_bytes, const std::vector<bool>& in_trie,
            std::vector<int32_t> eog);
  // From a tokenizer: texts as RenderToken(id, skip_special=true), EOG ids.
  static std::shared_ptr<const TokenTrie> FromTokenizer(const tokenizer::Tokenizer& tok);

  int32_t n_vocab() const { return n_vocab_; }
  uint32_t node_count() const { return static_cast<uint32_t>(byte_.size()); }
  uint32_t max_depth() const { return max_depth_; }
  uint8_t byte(uint32_t i) const { return byte_[i]; }
  uint32_t depth(uint32_t i) const { return depth_[i]; }
  uint32_t skip(uint32_t i) const { return skip_[i]; }
  // Index into token_ids() of node i's first token (i may be node_count()).
  uint32_t token_begin(uint32_t i) const { return token_begin_[i]; }
  const std::vector<int32_t>& token_ids() const { return token_ids_; }
  const std::vector<int32_t>& eog() const { return eog_; }
  // The bytes of a token in the trie ("" for tokens left out).
  const std::string& bytes(int32_t id) const { return bytes_[id]; }

 private:
  int32_t n_vocab_ = 0;
  uint32_t max_depth_ = 0;
  std::vector<uint8_t> byte_;
  std::vector<uint32_t> depth_;
  std::vector<uint32_t> skip_;
  std::vector<uint32_t> token_begin_;  // [node_count + 1]
  std::vector<int32_t> token_ids_;
  std::vector<int32_t> eog_;
  std::vector<std::string> bytes_;
};

}  // namespace reprise::grammar
