// Running a compiled Grammar over bytes: the matcher's state is the set of
// ways the bytes read so far can continue — configurations (automaton state,
// call stack) — with call stacks stored as parent-linked nodes in an arena,
// so configurations that share a stack share its nodes. Reading a byte moves
// every configuration along its byte edge and then expands it: calls push a
// return state and enter the callee, accepting states pop (or, with an empty
// stack, mark the bytes so far a complete sentence). Only configurations
// whose state reads bytes are kept.
//
// Also the token mask: which tokens of a TokenTrie may come next. A
// TokenMasks object (shared by every matcher of one grammar and vocabulary)
// classifies, once per automaton state and lazily, every token as accepted
// whatever the call stack below holds, rejected whatever it holds, or
// uncertain (its bytes run past the end of the state's rule, so the answer
// depends on the stack). A mask is then the union, over the current
// configurations, of their states' accepted sets plus the uncertain tokens
// checked against the real stack. That is XGrammar's split into
// context-independent and context-dependent tokens; it makes a mask cost
// roughly one pass over a bitset instead of a walk of the vocabulary.
// States that behave alike for any token (the same edges into alike states,
// for as many bytes as the longest token has: Moore's partition refinement
// for that many rounds, or until it is stable) share one entry: e.g. the
// thousands of states that count the characters of a string under a large
// maxLength, away from its ends, are one class.
//
// Invariants: after every successful Accept the matcher is viable (it can
// still complete a sentence: the grammar is trimmed); a rejected Accept
// leaves the state unchanged; the stack arena only grows by what accepted
// bytes pushed (scratch pushes are undone) and is compacted when mostly
// garbage. A Matcher is single-threaded; TokenMasks is thread-safe.
// Ambiguity bound: a grammar whose alternatives stay ambiguous (e.g. two
// different rules for the same recursive language) can double its
// configurations at every nesting level; sets are cut to the first
// kMaxConfigs. Every configuration kept is viable, so what is generated
// still matches; only some continuations may be lost (at worst a request
// fails with an error, never hangs).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "grammar/grammar.h"
#include "grammar/token_trie.h"

namespace reprise::grammar {

inline constexpr size_t kMaxConfigs = 4096;

// One automaton configuration: a state and the call stack below it (an
// arena node; node 0 is the bottom).
struct Config {
  uint32_t state;
  uint32_t stack;
  bool operator==(const Config&) const = default;
};

// The expansion machinery shared by the matcher and the mask precomputation.
class Stepper {
 public:
  struct Node {
    uint32_t ret;
    uint32_t parent;
  };
  explicit Stepper(const Grammar& g) : g_(g) { nodes_.push_back({0, 0}); }

  // Appends to *out the expanded configurations reached from `in` by byte
  // `b`. *at_bottom is set when some path returned from the bottom frame
  // (an accepting state with stack 0): for a matcher that means "the bytes so
  // far are complete". Returns false if nothing (not even that) was reached.
  bool Advance(std::span<const Config> in, uint8_t b, std::vector<Config>* out, bool* at_bottom);
  // Expands one configuration (calls and returns) into *out.
  void Expand(Config c, std::vector<Config>* out, bool* at_bottom);

  size_t arena_size() const { return nodes_.size(); }
  void TruncateArena(size_t size) { nodes_.resize(size); }
  const Node& node(uint32_t i) const { return nodes_[i]; }
  std::vector<Node>& nodes() { return nodes_; }
  const Grammar& grammar() const { return g_; }

 private:
  const Grammar& g_;
  std::vector<Node> nodes_;
  // True the first time `c` is seen in this step.
  bool FirstSight(Config c);

  std::vector<Config> work_;
  std::vector<Config> seen_;
  std::unordered_set<uint64_t> seen_set_;  // when seen_ grows large
};

class TokenMasks;

class Matcher {
 public:
  explicit Matcher(std::shared_ptr<const Grammar> grammar);
  Matcher(const Matcher&) = delete;
  Matcher& operator=(const Matcher&) = delete;

  // Reads bytes; all or nothing: false (state unchanged) when the bytes
  // cannot continue the sentence.
  bool AcceptBytes(std::string_view bytes);
  // Whether AcceptBytes(bytes) would succeed (state unchanged either way).
  bool WouldAccept(std::string_view bytes);
  // The bytes read so far form a complete sentence.
  bool IsComplete() const { return complete_; }
  // Some byte may still be read.
  bool CanContinue() const { return !configs_.empty(); }

  // Sets bit t of `bits` ([ceil(n_vocab / 64)] words, overwritten) for every
  // token t that may come next: trie tokens whose bytes continue the
  // sentence, and the end-of-generation tokens when it is complete. Returns
  // the number of allowed tokens.
  int64_t FillMask(TokenMasks& masks, uint64_t* bits);

  size_t config_count() const { return configs_.size(); }
  size_t arena_size() const { return stepper_.arena_size(); }

 private:
  bool Step(std::string_view bytes, std::vector<Config>* out, bool* complete);
  bool ViableFrom(Config c, std::string_view bytes);
  void MaybeCompact();

  std::shared_ptr<const Grammar> grammar_;
  Stepper stepper_;
  std::vector<Config> configs_;
  bool complete_ = false;
  std::vector<Config> scratch_a_, scratch_b_;
  size_t live_nodes_after_compact_ = 1;
};

// Sets logits[t] = -inf for every token t whose bit in `bits` is clear.
void ApplyMask(const uint64_t* bits, float* logits, int32_t n_vocab);

// Per-state token classes for one grammar and one vocabulary (see the header
// comment), computed on first use and kept; shared by the matchers of every
// request that uses this grammar.
class TokenMasks {
 public:
  struct StateTokens {
    std::vector<uint64_t> accept_bits;  // set when the accepted set is large
    std::vector<int32_t> accept_list;   // otherwise
    std::vector<int32_t> uncertain;     // ids whose answer depends on the stack
    uint32_t nodes_visited = 0;         // trie nodes the precomputation walked
  };

  // `max_bytes` bounds what the per-state classes hold (a bitset is
  // n_vocab / 8 bytes); past it, entries not in use are dropped (and
  // recomputed if met again).
  TokenMasks(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const TokenTrie> trie,
             size_t max_bytes = 64u << 20);
  const Grammar& grammar() const { return *grammar_; }
  const TokenTrie& trie() const { return *trie_; }
  const std::shared_ptr<const Grammar>& grammar_ptr() const { return grammar_; }
  size_t words() const { return (static_cast<size_t>(trie_->n_vocab()) + 63) / 64; }

  // The classes of `state` (computed now if new). Thread-safe.
  std::shared_ptr<const StateTokens> For(uint32_t state);
  size_t cached_states() const;
  size_t cached_bytes() const;
  // Behaviour classes of the grammar's states (computed on first use).
  uint32_t BehaviourClass(uint32_t state);
  size_t behaviour_classes();

 private:
  StateTokens Compute(uint32_t state) const;
  static size_t BytesOf(const StateTokens& t);
  void ComputeClasses();

  std::shared_ptr<const Grammar> grammar_;
  std::shared_ptr<const TokenTrie> trie_;
  const size_t max_bytes_;
  std::once_flag classes_once_;
  std::vector<uint32_t> class_of_;  // state -> behaviour class
  size_t n_classes_ = 0;
  mutable std::mutex mu_;
  std::unordered_map<uint32_t, std::shared_ptr<const StateTokens>> states_;
  size_t bytes_ = 0;
};

}  // namespace reprise::grammar
