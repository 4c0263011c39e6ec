// Byte-level context-free grammars for constrained decoding: a builder for
// rules written as small automata over bytes, and the compiled form the
// matcher (grammar/matcher.h) runs.
//
// A grammar is a set of rules (a recursive transition network). Each rule is
// a nondeterministic automaton whose edges read a byte range, call another
// rule (read one sentence of it, then continue), or read nothing (epsilon);
// the rule may return from its accepting states. One rule is the root: the
// grammar's sentences are the root's. Recursion is allowed except left
// recursion (a rule reaching itself before reading a byte), which Compile
// refuses, so expanding calls always terminates.
//
// Compile turns each rule into a deterministic automaton over bytes and call
// labels (subset construction), then trims it: edges into states from which
// the rule can no longer return, and calls of rules that match nothing, are
// dropped. So every state a matcher can reach can still complete a sentence,
// which is what lets a token mask be exact (a token is allowed iff the bytes
// so far plus its bytes are a prefix of some sentence).
//
// Invariants of a compiled Grammar: immutable and shareable across threads;
// state and edge counts are within GrammarLimits; byte edges of a state are
// disjoint ranges sorted by byte; every call edge's callee matches at least
// one sentence and its return state can reach acceptance; the root matches
// at least one sentence. A Builder is single-threaded and reports a size
// overrun as a sticky error (Status) instead of growing without bound.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace reprise::grammar {

struct GrammarLimits {
  int64_t max_nfa_states = 1'000'000;  // builder states, all rules together
  int64_t max_dfa_states = 250'000;    // compiled states, all rules together
  int64_t max_rules = 100'000;
  // Builder states in all the sets the compile interns (the subset
  // construction's work): an object of 3,000 optional properties makes sets
  // of thousands of states and took 27.7 s to reach max_dfa_states; this
  // stops it at 8.6 s, while 1,000 such properties still compile (3.6 s).
  int64_t max_subset_work = 100'000'000;
};

class GrammarBuilder {
 public:
  using State = uint32_t;
  using Rule = uint32_t;

  explicit GrammarBuilder(GrammarLimits limits = {}) : limits_(limits) {}

  // A new rule with its start state. `name` is for error messages and dumps.
  Rule NewRule(std::string name);
  State Start(Rule rule) const { return rules_[rule].start; }
  State NewState(Rule rule);
  Rule RuleOf(State s) const { return states_[s].rule; }
  void SetAccepting(State s);
  // Edges; both states must belong to the same rule.
  void AddBytes(State from, State to, uint8_t lo, uint8_t hi);
  void AddByte(State from, State to, uint8_t b) { AddBytes(from, to, b, b); }
  void AddEpsilon(State from, State to);
  void AddCall(State from, State to, Rule callee);
  // Reads `bytes` from `from`, ending in `to` (epsilon when empty).
  void AddLiteral(State from, State to, std::string_view bytes);
  // Same, returning a fresh end state.
  State Literal(State from, std::string_view bytes);
  // Any bytes up to and including the first occurrence of `stop` (non-empty),
  // from -> to: a KMP automaton of stop.size() states.
  void AddTextUntil(State from, State to, std::string_view stop);

  // A sticky error: set when a limit is passed (later calls do nothing).
  const Status& status() const { return status_; }
  void Fail(Status status) {
    if (status_.ok()) status_ = std::move(status);
  }
  size_t rule_count() const { return rules_.size(); }
  size_t state_count() const { return states_.size(); }
  const std::string& RuleName(Rule r) const { return rules_[r].name; }

 private:
  friend class Grammar;
  struct Edge {
    enum Kind : uint8_t { kBytes, kEpsilon, kCall } kind;
    uint8_t lo = 0, hi = 0;
    State to = 0;
    Rule callee = 0;
  };
  struct NState {
    Rule rule = 0;
    bool accepting = false;
    std::vector<Edge> edges;
  };
  struct NRule {
    std::string name;
    State start = 0;
  };
  bool Room(size_t more_states);

  GrammarLimits limits_;
  std::vector<NState> states_;
  std::vector<NRule> rules_;
  Status status_;
};

// A compiled grammar (see the header comment).
class Grammar {
 public:
  struct ByteEdge {
    uint8_t lo, hi;
    uint32_t target;
  };
  struct CallEdge {
    uint32_t rule;
    uint32_t ret;  // the caller's state after the callee returns
  };
  enum Flags : uint8_t {
    kAccepting = 1,  // the state's rule may return here
    kHasBytes = 2,   // at least one byte edge
    kHasCalls = 4,   // at least one call edge
  };
  struct StateInfo {
    uint32_t bytes_begin, bytes_end;  // into byte_edges()
    uint32_t calls_begin, calls_end;  // into call_edges()
    uint32_t rule;
    uint8_t flags;
  };

  // Errors: a builder error, left recursion, more states than the limits
  // allow, a root that matches nothing.
  static Result<std::shared_ptr<const Grammar>> Compile(const GrammarBuilder& builder,
                                                        GrammarBuilder::Rule root,
                                                        GrammarLimits limits = {});

  uint32_t root() const { return root_; }
  uint32_t RuleStart(uint32_t rule) const { return rule_start_[rule]; }
  const StateInfo& state(uint32_t s) const { return states_[s]; }
  size_t state_count() const { return states_.size(); }
  size_t rule_count() const { return rule_start_.size(); }
  const std::string& rule_name(uint32_t r) const { return rule_names_[r]; }
  // The target of `s` on byte `b`, or -1.
  int64_t Next(uint32_t s, uint8_t b) const {
    const StateInfo& info = states_[s];
    for (uint32_t i = info.bytes_begin; i < info.bytes_end; ++i) {
      const ByteEdge& e = byte_edges_[i];
      if (b < e.lo) return -1;
      if (b <= e.hi) return e.target;
    }
    return -1;
  }
  const ByteEdge* byte_edges() const { return byte_edges_.data(); }
  const CallEdge* call_edges() const { return call_edges_.data(); }

 private:
  Grammar() = default;
  uint32_t root_ = 0;
  std::vector<StateInfo> states_;
  std::vector<ByteEdge> byte_edges_;
  std::vector<CallEdge> call_edges_;
  std::vector<uint32_t> rule_start_;
  std::vector<std::string> rule_names_;
};

}  // namespace reprise::grammar
