// Constraint: a per-request rule for which tokens a sequence may generate
// next (structured output, forced tool calls: a grammar compiled by the
// server). The engine knows nothing of what the rule is; it only asks the
// three questions below for the one sequence that owns the constraint: Mask
// on the scheduler thread or a sampling worker (the rows of a step are
// sampled in parallel on a GPU), Accept and Done on the scheduler thread;
// never two calls on one constraint at once. State shared between
// constraints (a compiled grammar's mask cache) must be thread-safe.
//
// Contract (what the sampler and the scheduler rely on):
//  - Mask is called once per sampling step, on the sampler's copy of the
//    logits row, before logit bias, penalties, temperature and truncation
//    (so greedy picks the best allowed token); it sets every disallowed
//    token's logit to -inf and leaves the others untouched. It returns how
//    many tokens stay allowed: 0 means the rule cannot go on with this
//    vocabulary, and the request fails.
//  - Accept is called with every sampled token, in order (end-of-generation
//    tokens included); false means the token broke the rule (a bug: the
//    request fails).
//  - Done: nothing more may be generated; the scheduler ends the sequence
//    (finish reason stop) right after the token that completed the rule.
//  - The state lives in the constraint object, which the request owns; a
//    preempted sequence keeps it, so its continuation is unchanged.
#pragma once

#include <cstdint>

namespace reprise::engine {

class Constraint {
 public:
  virtual ~Constraint() = default;
  virtual int64_t Mask(float* logits, int32_t n_vocab) = 0;
  virtual bool Accept(int32_t token) = 0;
  virtual bool Done() const = 0;
};

}  // namespace reprise::engine
