// TokenTrie construction (see token_trie.h): tokens sorted by bytes give the
// preorder directly; each token adds the nodes past its common prefix with
// the previous one.
#include "grammar/token_trie.h"

#include <algorithm>
#include <numeric>

#include "core/check.h"
#include "tokenizer/tokenizer.h"

namespace reprise::grammar {

TokenTrie::TokenTrie(const std::vector<std::string>& token_bytes, const std::vector<bool>& in_trie,
                     std::vector<int32_t> eog)
    : n_vocab_(static_cast<int32_t>(token_bytes.size())), eog_(std::move(eog)) {
  CHECK(in_trie.size() == token_bytes.size());
  bytes_.resize(token_bytes.size());
  std::vector<int32_t> order;
  for (size_t id = 0; id < token_bytes.size(); ++id) {
    if (in_trie[id] && !token_bytes[id].empty()) {
      order.push_back(static_cast<int32_t>(id));
      bytes_[id] = token_bytes[id];
    }
  }
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    if (bytes_[a] != bytes_[b]) return bytes_[a] < bytes_[b];
    return a < b;
  });
  // path[d] = node index at depth d + 1 of the current token's path.
  std::vector<uint32_t> path;
  const std::string* prev = nullptr;
  std::vector<std::pair<uint32_t, int32_t>> node_tokens;  // (node, id), in preorder
  for (int32_t id : order) {
    const std::string& t = bytes_[id];
    size_t common = 0;
    if (prev != nullptr) {
      const size_t limit = std::min(prev->size(), t.size());
      while (common < limit && (*prev)[common] == t[common]) ++common;
    }
    // Close the nodes below the common prefix.
    while (path.size() > common) {
      skip_[path.back()] = static_cast<uint32_t>(byte_.size());
      path.pop_back();
    }
    for (size_t d = common; d < t.size(); ++d) {
      path.push_back(static_cast<uint32_t>(byte_.size()));
      byte_.push_back(static_cast<uint8_t>(t[d]));
      depth_.push_back(static_cast<uint32_t>(d + 1));
      skip_.push_back(0);
    }
    max_depth_ = std::max<uint32_t>(max_depth_, static_cast<uint32_t>(t.size()));
    node_tokens.emplace_back(path.back(), id);
    prev = &t;
  }
  while (!path.empty()) {
    skip_[path.back()] = static_cast<uint32_t>(byte_.size());
    path.pop_back();
  }
  // Tokens ending at each node, in node order (node_tokens is already sorted
  // by node: tokens come in preorder of their end nodes).
  const uint32_t n = static_cast<uint32_t>(byte_.size());
  token_begin_.assign(n + 1, 0);
  token_ids_.reserve(node_tokens.size());
  size_t k = 0;
  for (uint32_t i = 0; i < n; ++i) {
    token_begin_[i] = static_cast<uint32_t>(token_ids_.size());
    while (k < node_tokens.size() && node_tokens[k].first == i) {
      token_ids_.push_back(node_tokens[k++].second);
    }
  }
  token_begin_[n] = static_cast<uint32_t>(token_ids_.size());
  CHECK(k == node_tokens.size());
}

std::shared_ptr<const TokenTrie> TokenTrie::FromTokenizer(const tokenizer::Tokenizer& tok) {
  const int32_t n = tok.n_vocab();
  std::vector<std::string> bytes(static_cast<size_t>(n));
  std::vector<bool> in(static_cast<size_t>(n), false);
  for (int32_t id = 0; id < n; ++id) {
    if (tok.IsEog(id)) continue;
    bytes[id] = tok.RenderToken(id, /*skip_special=*/true);
    in[id] = !bytes[id].empty();
  }
  std::vector<int32_t> eog(tok.eog_ids().begin(), tok.eog_ids().end());
  std::sort(eog.begin(), eog.end());
  return std::make_shared<const TokenTrie>(bytes, in, std::move(eog));
}

}  // namespace reprise::grammar
