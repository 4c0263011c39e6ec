// Grammar building and compiling (see grammar.h): per-rule subset
// construction, liveness trimming, and the left-recursion check.
#include "grammar/grammar.h"

#include <algorithm>
#include <array>
#include <unordered_map>

namespace reprise::grammar {
namespace {

using StateSet = std::vector<uint32_t>;  // sorted NFA states

struct SetHash {
  size_t operator()(const StateSet& s) const {
    uint64_t h = 1469598103934665603ull;
    for (uint32_t v : s) h = (h ^ v) * 1099511628211ull;
    return static_cast<size_t>(h);
  }
};

}  // namespace

// ---- GrammarBuilder ----

bool GrammarBuilder::Room(size_t more_states) {
  if (!status_.ok()) return false;
  if (static_cast<int64_t>(states_.size() + more_states) > limits_.max_nfa_states) {
    Fail(Errorf("the grammar needs more than %lld automaton states",
                static_cast<long long>(limits_.max_nfa_states)));
    return false;
  }
  return true;
}

GrammarBuilder::Rule GrammarBuilder::NewRule(std::string name) {
  if (static_cast<int64_t>(rules_.size()) >= limits_.max_rules) {
    Fail(Errorf("the grammar needs more than %lld rules",
                static_cast<long long>(limits_.max_rules)));
  }
  const Rule r = static_cast<Rule>(rules_.size());
  rules_.push_back({std::move(name), 0});
  rules_[r].start = NewState(r);
  return r;
}

GrammarBuilder::State GrammarBuilder::NewState(Rule rule) {
  // Past a limit, hand out state 0: the builder has failed, every later edit
  // is ignored and nothing it built is compiled, so callers need no checks.
  if (!Room(1)) return 0;
  states_.push_back({rule, false, {}});
  return static_cast<State>(states_.size() - 1);
}

void GrammarBuilder::SetAccepting(State s) {
  if (!status_.ok()) return;
  states_[s].accepting = true;
}

void GrammarBuilder::AddBytes(State from, State to, uint8_t lo, uint8_t hi) {
  if (!status_.ok()) return;
  CHECK(lo <= hi && states_[from].rule == states_[to].rule);
  states_[from].edges.push_back({Edge::kBytes, lo, hi, to, 0});
}

void GrammarBuilder::AddEpsilon(State from, State to) {
  if (!status_.ok()) return;
  CHECK(states_[from].rule == states_[to].rule);
  states_[from].edges.push_back({Edge::kEpsilon, 0, 0, to, 0});
}

void GrammarBuilder::AddCall(State from, State to, Rule callee) {
  if (!status_.ok()) return;
  CHECK(states_[from].rule == states_[to].rule && callee < rules_.size());
  states_[from].edges.push_back({Edge::kCall, 0, 0, to, callee});
}

void GrammarBuilder::AddLiteral(State from, State to, std::string_view bytes) {
  if (bytes.empty()) {
    AddEpsilon(from, to);
    return;
  }
  State at = from;
  for (size_t i = 0; i + 1 < bytes.size(); ++i) {
    const State next = NewState(states_[from].rule);
    AddByte(at, next, static_cast<uint8_t>(bytes[i]));
    at = next;
  }
  AddByte(at, to, static_cast<uint8_t>(bytes.back()));
}

GrammarBuilder::State GrammarBuilder::Literal(State from, std::string_view bytes) {
  const State to = NewState(states_[from].rule);
  AddLiteral(from, to, bytes);
  return to;
}

void GrammarBuilder::AddTextUntil(State from, State to, std::string_view stop) {
  CHECK(!stop.empty());
  const size_t m = stop.size();
  // fail[i]: length of the longest proper border of stop[0, i).
  std::vector<size_t> fail(m + 1, 0);
  for (size_t i = 1, k = 0; i < m; ++i) {
    while (k > 0 && stop[i] != stop[k]) k = fail[k];
    if (stop[i] == stop[k]) ++k;
    fail[i + 1] = k;
  }
  std::vector<State> at(m);
  for (size_t j = 0; j < m; ++j) at[j] = NewState(states_[from].rule);
  AddEpsilon(from, at[0]);  // from's other edges stay out of the loop
  for (size_t j = 0; j < m; ++j) {
    // Target of each byte from "j bytes of stop matched"; runs of equal
    // targets become one range.
    size_t run_start = 0;
    size_t run_target = SIZE_MAX;
    auto flush = [&](size_t end) {
      if (run_target == SIZE_MAX) return;
      AddBytes(at[j], run_target == m ? to : at[run_target], static_cast<uint8_t>(run_start),
               static_cast<uint8_t>(end - 1));
    };
    for (size_t c = 0; c < 256; ++c) {
      size_t k = j;
      while (k > 0 && static_cast<uint8_t>(stop[k]) != c) k = fail[k];
      const size_t next = static_cast<uint8_t>(stop[k]) == c ? k + 1 : 0;
      if (next != run_target) {
        flush(c);
        run_start = c;
        run_target = next;
      }
    }
    flush(256);
  }
}

// ---- Grammar::Compile ----

Result<std::shared_ptr<const Grammar>> Grammar::Compile(const GrammarBuilder& b,
                                                        GrammarBuilder::Rule root,
                                                        GrammarLimits limits) {
  if (!b.status().ok()) return b.status();
  CHECK(root < b.rules_.size());
  using Edge = GrammarBuilder::Edge;
  const size_t n_rules = b.rules_.size();

  // 1. Subset construction, rule by rule; DFA states numbered globally.
  struct DState {
    uint32_t rule;
    bool accepting;
    std::vector<ByteEdge> bytes;
    std::vector<CallEdge> calls;
  };
  std::vector<DState> dstates;
  std::vector<uint32_t> rule_start(n_rules);
  std::vector<uint32_t> stack;
  std::vector<uint8_t> mark(b.states_.size(), 0);
  auto closure = [&](StateSet& set) {
    stack.assign(set.begin(), set.end());
    for (uint32_t s : set) mark[s] = 1;
    while (!stack.empty()) {
      const uint32_t s = stack.back();
      stack.pop_back();
      for (const Edge& e : b.states_[s].edges) {
        if (e.kind == Edge::kEpsilon && !mark[e.to]) {
          mark[e.to] = 1;
          set.push_back(e.to);
          stack.push_back(e.to);
        }
      }
    }
    for (uint32_t s : set) mark[s] = 0;
    std::sort(set.begin(), set.end());
    set.erase(std::unique(set.begin(), set.end()), set.end());
  };
  std::array<std::vector<uint32_t>, 256> buckets;
  int64_t subset_work = 0;  // builder states in every set interned so far
  bool too_much_work = false;
  for (uint32_t r = 0; r < n_rules; ++r) {
    std::unordered_map<StateSet, uint32_t, SetHash> ids;
    std::vector<StateSet> todo_sets;
    std::vector<uint32_t> todo_ids;
    auto intern = [&](StateSet set) -> int64_t {
      auto it = ids.find(set);
      if (it != ids.end()) return it->second;
      if (static_cast<int64_t>(dstates.size()) >= limits.max_dfa_states) return -1;
      subset_work += static_cast<int64_t>(set.size());
      if (subset_work > limits.max_subset_work) {
        too_much_work = true;
        return -1;
      }
      const uint32_t id = static_cast<uint32_t>(dstates.size());
      dstates.push_back({r, false, {}, {}});
      ids.emplace(set, id);
      todo_sets.push_back(std::move(set));
      todo_ids.push_back(id);
      return id;
    };
    StateSet start = {b.rules_[r].start};
    closure(start);
    const int64_t start_id = intern(std::move(start));
    if (start_id < 0) break;
    rule_start[r] = static_cast<uint32_t>(start_id);
    bool overflow = false;
    while (!todo_sets.empty() && !overflow) {
      const StateSet set = std::move(todo_sets.back());
      const uint32_t id = todo_ids.back();
      todo_sets.pop_back();
      todo_ids.pop_back();
      bool accepting = false;
      std::vector<std::pair<uint32_t, uint32_t>> calls;  // (callee, to)
      for (auto& bucket : buckets) bucket.clear();
      for (uint32_t s : set) {
        accepting = accepting || b.states_[s].accepting;
        for (const Edge& e : b.states_[s].edges) {
          if (e.kind == Edge::kBytes) {
            for (int c = e.lo; c <= e.hi; ++c) buckets[c].push_back(e.to);
          } else if (e.kind == Edge::kCall) {
            calls.emplace_back(e.callee, e.to);
          }
        }
      }
      std::vector<ByteEdge> out_bytes;
      int64_t prev_target = -1;
      for (int c = 0; c < 256 && !overflow; ++c) {
        std::vector<uint32_t>& bucket = buckets[c];
        if (bucket.empty()) {
          prev_target = -1;
          continue;
        }
        int64_t target;
        if (c > 0 && prev_target >= 0 && bucket == buckets[c - 1]) {
          target = prev_target;
        } else {
          StateSet next = bucket;
          closure(next);
          target = intern(std::move(next));
          if (target < 0) {
            overflow = true;
            break;
          }
        }
        if (!out_bytes.empty() && prev_target == target && out_bytes.back().hi + 1 == c) {
          out_bytes.back().hi = static_cast<uint8_t>(c);
        } else {
          out_bytes.push_back(
              {static_cast<uint8_t>(c), static_cast<uint8_t>(c), static_cast<uint32_t>(target)});
        }
        prev_target = target;
      }
      std::sort(calls.begin(), calls.end());
      std::vector<CallEdge> out_calls;
      for (size_t i = 0; i < calls.size() && !overflow;) {
        size_t j = i;
        StateSet next;
        while (j < calls.size() && calls[j].first == calls[i].first)
          next.push_back(calls[j++].second);
        closure(next);
        const int64_t target = intern(std::move(next));
        if (target < 0)
          overflow = true;
        else
          out_calls.push_back({calls[i].first, static_cast<uint32_t>(target)});
        i = j;
      }
      DState& d = dstates[id];
      d.accepting = accepting;
      d.bytes = std::move(out_bytes);
      d.calls = std::move(out_calls);
    }
    if (overflow) break;
  }
  if (too_much_work) {
    return Errorf("the grammar is too large to compile (its compiled states hold more than %lld "
                  "builder states)",
                  static_cast<long long>(limits.max_subset_work));
  }
  if (static_cast<int64_t>(dstates.size()) >= limits.max_dfa_states) {
    return Errorf("the grammar needs more than %lld compiled states",
                  static_cast<long long>(limits.max_dfa_states));
  }
  const size_t n = dstates.size();

  // 2. Liveness: a state is live when its rule can return from it, reading
  // bytes and calling rules whose start is live.
  std::vector<uint8_t> live(n, 0);
  std::vector<std::vector<uint32_t>> preds(n);
  for (uint32_t s = 0; s < n; ++s) {
    for (const ByteEdge& e : dstates[s].bytes) preds[e.target].push_back(s);
    for (const CallEdge& e : dstates[s].calls) {
      preds[e.ret].push_back(s);
      preds[rule_start[e.rule]].push_back(s);
    }
  }
  auto call_live = [&](const CallEdge& e) { return live[e.ret] && live[rule_start[e.rule]]; };
  std::vector<uint32_t> work;
  for (uint32_t s = 0; s < n; ++s) {
    if (dstates[s].accepting) {
      live[s] = 1;
      work.push_back(s);
    }
  }
  while (!work.empty()) {
    const uint32_t t = work.back();
    work.pop_back();
    for (uint32_t p : preds[t]) {
      if (live[p]) continue;
      bool ok = false;
      for (const ByteEdge& e : dstates[p].bytes) ok = ok || live[e.target];
      for (const CallEdge& e : dstates[p].calls) ok = ok || call_live(e);
      if (ok) {
        live[p] = 1;
        work.push_back(p);
      }
    }
  }
  if (!live[rule_start[root]]) {
    return Errorf("the grammar matches nothing (rule '%s' can never be completed)",
                  b.rules_[root].name.c_str());
  }
  preds.clear();
  preds.shrink_to_fit();

  // 3. Trim: keep only edges into live states and calls of live rules.
  for (DState& d : dstates) {
    std::erase_if(d.bytes, [&](const ByteEdge& e) { return !live[e.target]; });
    std::erase_if(d.calls, [&](const CallEdge& e) { return !call_live(e); });
  }

  // 4. Left recursion: a rule that can call itself before reading a byte.
  // nullable[r]: the rule matches the empty string.
  std::vector<uint8_t> nullable(n_rules, 0);
  auto empty_reach = [&](uint32_t r, std::vector<uint32_t>* reached) {
    // States of rule r reachable from its start without reading a byte.
    std::vector<uint32_t> todo = {rule_start[r]};
    reached->clear();
    std::vector<uint32_t> seen;
    while (!todo.empty()) {
      const uint32_t s = todo.back();
      todo.pop_back();
      if (std::find(seen.begin(), seen.end(), s) != seen.end()) continue;
      seen.push_back(s);
      reached->push_back(s);
      for (const CallEdge& e : dstates[s].calls) {
        if (nullable[e.rule]) todo.push_back(e.ret);
      }
    }
  };
  std::vector<uint32_t> reached;
  for (bool changed = true; changed;) {
    changed = false;
    for (uint32_t r = 0; r < n_rules; ++r) {
      if (nullable[r] || !live[rule_start[r]]) continue;
      empty_reach(r, &reached);
      for (uint32_t s : reached) {
        if (dstates[s].accepting) {
          nullable[r] = 1;
          changed = true;
          break;
        }
      }
    }
  }
  // Left-call graph and a cycle search (iterative DFS, colors 0/1/2).
  std::vector<std::vector<uint32_t>> left_calls(n_rules);
  for (uint32_t r = 0; r < n_rules; ++r) {
    if (!live[rule_start[r]]) continue;
    empty_reach(r, &reached);
    for (uint32_t s : reached) {
      for (const CallEdge& e : dstates[s].calls) left_calls[r].push_back(e.rule);
    }
  }
  std::vector<uint8_t> color(n_rules, 0);
  for (uint32_t r0 = 0; r0 < n_rules; ++r0) {
    if (color[r0] != 0) continue;
    std::vector<std::pair<uint32_t, size_t>> dfs = {{r0, 0}};
    color[r0] = 1;
    while (!dfs.empty()) {
      auto& [r, i] = dfs.back();
      if (i < left_calls[r].size()) {
        const uint32_t next = left_calls[r][i++];
        if (color[next] == 1) {
          return Errorf(
              "the grammar is left-recursive: rule '%s' can reach itself without "
              "reading anything",
              b.rules_[next].name.c_str());
        }
        if (color[next] == 0) {
          color[next] = 1;
          dfs.push_back({next, 0});
        }
      } else {
        color[r] = 2;
        dfs.pop_back();
      }
    }
  }

  // 5. Flatten.
  std::shared_ptr<Grammar> g(new Grammar());
  g->root_ = root;
  g->rule_start_ = std::move(rule_start);
  g->rule_names_.reserve(n_rules);
  for (const auto& r : b.rules_) g->rule_names_.push_back(r.name);
  g->states_.resize(n);
  for (uint32_t s = 0; s < n; ++s) {
    const DState& d = dstates[s];
    StateInfo& info = g->states_[s];
    info.rule = d.rule;
    info.bytes_begin = static_cast<uint32_t>(g->byte_edges_.size());
    g->byte_edges_.insert(g->byte_edges_.end(), d.bytes.begin(), d.bytes.end());
    info.bytes_end = static_cast<uint32_t>(g->byte_edges_.size());
    info.calls_begin = static_cast<uint32_t>(g->call_edges_.size());
    g->call_edges_.insert(g->call_edges_.end(), d.calls.begin(), d.calls.end());
    info.calls_end = static_cast<uint32_t>(g->call_edges_.size());
    info.flags = (d.accepting ? kAccepting : 0) | (d.bytes.empty() ? 0 : kHasBytes) |
                 (d.calls.empty() ? 0 : kHasCalls);
  }
  return std::shared_ptr<const Grammar>(std::move(g));
}

}  // namespace reprise::grammar
