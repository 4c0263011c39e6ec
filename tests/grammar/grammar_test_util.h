// Helpers for the grammar tests: a small JSON-flavoured vocabulary, random
// sentences drawn through token masks, and a brute-force check of a mask.
#pragma once

#include <memory>
#include <random>
#include <string>

#include "grammar/matcher.h"
#include "grammar/token_trie.h"

namespace reprise::grammar::testing {

// Printable ASCII bytes, tab/newline, a few UTF-8 characters (whole and as
// single bytes), JSON fragments ({" ": ", "} ... true null \u00e9 \n), and
// one end-of-generation token (the last id).
std::shared_ptr<const TokenTrie> JsonishTrie();

struct Generated {
  std::string text;
  bool complete = false;  // ended with end-of-generation or a finished grammar
};
// Draws tokens uniformly among those the mask allows (end-of-generation with
// probability `stop_p` whenever allowed) until the grammar ends or
// `max_tokens` pass. Checks the mask against brute force when `check` is set.
Generated RandomSentence(TokenMasks& masks, std::mt19937& rng, int max_tokens, double stop_p,
                         bool check);

// EXPECTs that FillMask's bits equal, for every token, whether its bytes
// continue the sentence (and, for end-of-generation, whether it is complete).
void ExpectMaskMatchesBruteForce(TokenMasks& masks, Matcher& m);

}  // namespace reprise::grammar::testing
