// Grammar test helpers (see grammar_test_util.h).
#include "grammar/grammar_test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace reprise::grammar::testing {

std::shared_ptr<const TokenTrie> JsonishTrie() {
  static std::shared_ptr<const TokenTrie> trie = [] {
    std::vector<std::string> tokens;
    for (int c = 0x20; c < 0x7F; ++c) tokens.push_back(std::string(1, static_cast<char>(c)));
    for (const char* t : {"\t", "\n", "\xC3", "\xA9", "\xE4", "\xB8", "\xAD", "\xF0", "\x9F",
                          "\x98", "\x80", "\xED", "\xA0"}) {
      tokens.push_back(t);
    }
    for (const char* t : {"\xC3\xA9",
                          "\xE4\xB8\xAD",
                          "\xF0\x9F\x98\x80",
                          "{\"",
                          "\"}",
                          "\":",
                          "\": ",
                          "\", \"",
                          "\",",
                          "\"]",
                          "\"}}",
                          "\"}]",
                          "}}",
                          "]}",
                          "}]",
                          "},",
                          "],",
                          "[{",
                          "[\"",
                          "[[",
                          "true",
                          "false",
                          "null",
                          "12",
                          "-1",
                          ".5",
                          "e+",
                          "E-",
                          "00",
                          "\\n",
                          "\\u00e9",
                          "\\\"",
                          "\\\\",
                          "\\ud83d",
                          "\"a",
                          "abc",
                          " the",
                          "name",
                          "\"name\": \"",
                          "  ",
                          "\n  ",
                          "\n\t",
                          "{}",
                          "[]",
                          "\"\"",
                          "<tool_call>",
                          "</think>",
                          "<think>",
                          "\n</tool_call>",
                          "id",
                          "-0",
                          "2024-",
                          "01-",
                          "T12:",
                          "Z\"",
                          "abcdefghijklmnopqrstuvwxyz0123456789"}) {
      tokens.push_back(t);
    }
    tokens.push_back("<eos>");
    std::vector<bool> in(tokens.size(), true);
    in.back() = false;
    return std::make_shared<const TokenTrie>(
        tokens, in, std::vector<int32_t>{static_cast<int32_t>(tokens.size() - 1)});
  }();
  return trie;
}

void ExpectMaskMatchesBruteForce(TokenMasks& masks, Matcher& m) {
  const TokenTrie& trie = masks.trie();
  std::vector<uint64_t> bits(masks.words());
  const int64_t count = m.FillMask(masks, bits.data());
  int64_t expected_count = 0;
  std::vector<int32_t> eog = trie.eog();
  for (int32_t t = 0; t < trie.n_vocab(); ++t) {
    const bool is_eog = std::find(eog.begin(), eog.end(), t) != eog.end();
    bool expected;
    if (is_eog) {
      expected = m.IsComplete();
    } else {
      expected = !trie.bytes(t).empty() && m.WouldAccept(trie.bytes(t));
    }
    const bool got = (bits[t >> 6] >> (t & 63)) & 1;
    expected_count += expected;
    if (got != expected) {
      ADD_FAILURE() << "token " << t << " '" << trie.bytes(t) << "': mask says " << got
                    << ", brute force " << expected;
      return;
    }
  }
  EXPECT_EQ(count, expected_count);
}

Generated RandomSentence(TokenMasks& masks, std::mt19937& rng, int max_tokens, double stop_p,
                         bool check) {
  Matcher m(masks.grammar_ptr());
  const TokenTrie& trie = masks.trie();
  std::vector<uint64_t> bits(masks.words());
  Generated out;
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int i = 0; i < max_tokens; ++i) {
    if (m.IsComplete() && !m.CanContinue()) {
      out.complete = true;
      return out;
    }
    if (check) ExpectMaskMatchesBruteForce(masks, m);
    m.FillMask(masks, bits.data());
    std::vector<int32_t> allowed;
    bool eog_allowed = false;
    for (int32_t t = 0; t < trie.n_vocab(); ++t) {
      if (!((bits[t >> 6] >> (t & 63)) & 1)) continue;
      if (trie.bytes(t).empty())
        eog_allowed = true;
      else
        allowed.push_back(t);
    }
    if (eog_allowed && (allowed.empty() || unit(rng) < stop_p)) {
      out.complete = true;
      return out;
    }
    if (allowed.empty()) {
      ADD_FAILURE() << "no token allowed after '" << out.text << "'";
      return out;
    }
    const int32_t t = allowed[std::uniform_int_distribution<size_t>(0, allowed.size() - 1)(rng)];
    if (!m.AcceptBytes(trie.bytes(t))) {
      ADD_FAILURE() << "allowed token '" << trie.bytes(t) << "' rejected after '" << out.text
                    << "'";
      return out;
    }
    out.text += trie.bytes(t);
  }
  return out;
}

}  // namespace reprise::grammar::testing
