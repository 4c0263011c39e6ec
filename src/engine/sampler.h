// Token sampler: turns one row of logits into the next token of one sequence.
// Owns the per-sequence sampling state (seeded RNG, penalty history, scratch
// buffers sized once at construction); it does not own logits, the model or
// the sequence. Sample() does no heap allocation after construction (the
// by-value overload allocates only the top_logprobs vector it returns).
//
// Order of operations in Sample():
//   0. constraint (when one is passed: structured output, forced tool calls):
//      l[t] = -inf for every token the constraint does not allow next
//      (engine/constraint.h). First, so every later step, greedy included,
//      only ever sees allowed tokens; -inf stays -inf through bias and
//      penalties, gets probability 0, and is left out of top_logprobs.
//      Without a constraint nothing changes (same bits as before).
//   1. logit bias:  l[t] += bias[t]  (entries for the same id add up)
//   2. penalties:   repetition (l > 0 ? l / p : l * p) once per distinct token
//                   among the last `penalty_last_n` accepted tokens (prompt and
//                   generated); then presence (-presence once) and frequency
//                   (-frequency * count) over every generated token so far.
//   3. log-probabilities (when n_top_logprobs >= 0) are log_softmax of these
//      adjusted logits: AFTER bias and penalties, BEFORE temperature and any
//      truncation. That is what OpenAI-style clients expect.
//   4. temperature == 0: argmax of the adjusted logits (ties -> lowest id);
//      truncation and the RNG are skipped.
//   5. top-k: keep the k largest adjusted logits (ties -> lower ids first),
//      in that order (most likely first), so the draw below sees them in an
//      order no library choice changes.
//   6. softmax with temperature over the kept tokens.
//   7. top-p: keep the smallest prefix of tokens, by descending probability,
//      whose mass reaches top_p (at least one token). Without top-k the kept
//      tokens are then in id order, except those of the last histogram
//      bucket, which come after, most likely first.
//   8. min-p: keep tokens whose probability is >= min_p * (largest
//      probability), in the order they had.
//   9. draw from the kept tokens, in that order (an inverse-CDF scan), with
//      std::mt19937_64 seeded from `seed`, or
//      from std::random_device when no seed is given. Each non-greedy Sample()
//      consumes exactly one 64-bit draw, so the same seed and the same
//      sequence of logits give the same tokens on every platform.
//
// Invariants: n_vocab > 0; params passed ValidateSamplingParams (the
// constructor CHECKs it: validate requests at the edge, not here).
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <utility>
#include <vector>

#include "core/status.h"
#include "engine/constraint.h"

namespace reprise::engine {

// The most alternatives a client may ask for (OpenAI's limit for top_logprobs).
inline constexpr int32_t kMaxTopLogprobs = 20;

struct SamplingParams {
  float temperature = 1.0f;  // 0 = greedy (argmax; ties -> lowest id)
  int32_t top_k = 0;         // 0 = off
  float top_p = 1.0f;        // 1 = off
  float min_p = 0.0f;        // 0 = off
  // llama.cpp/CTRL style: logit > 0 ? logit / p : logit * p, once per distinct
  // token among the last `penalty_last_n` tokens (prompt + generated).
  float repetition_penalty = 1.0f;
  // OpenAI semantics, over all generated tokens (never prompt tokens):
  float presence_penalty = 0.0f;   // minus once if the token was generated
  float frequency_penalty = 0.0f;  // minus count * frequency_penalty
  // Window of the repetition penalty: 0 = off, -1 = every accepted token.
  int32_t penalty_last_n = 64;
  // (token id, bias) added to the logits; -100 effectively bans a token and
  // +100 effectively forces it.
  std::vector<std::pair<int32_t, float>> logit_bias;
  // Same seed + same request => same output; without a seed, random.
  std::optional<uint64_t> seed;
  // -1: no log-probabilities; 0: the chosen token's only; k: also the k most
  // likely alternatives (k <= kMaxTopLogprobs).
  int32_t n_top_logprobs = -1;
};

// Checks ranges like OpenAI's API: temperature [0, 2], top_p (0, 1],
// top_k >= 0, min_p [0, 1], presence/frequency_penalty [-2, 2],
// repetition_penalty > 0, penalty_last_n >= -1, logit_bias ids in
// [0, n_vocab) with values in [-100, 100], n_top_logprobs [-1, 20]. The error
// message starts with the request field it is about (e.g. "temperature must be
// in [0, 2], got 3"; n_top_logprobs is reported as "top_logprobs").
Status ValidateSamplingParams(const SamplingParams& params, int32_t n_vocab);

struct SampleResult {
  int32_t token = -1;
  // log P(token) under the adjusted distribution (see the header comment);
  // 0 when n_top_logprobs == -1 (not computed).
  float logprob = 0.0f;
  // The n_top_logprobs most likely tokens with their log-probabilities, most
  // likely first, ties -> lower id first. Empty when n_top_logprobs <= 0.
  std::vector<std::pair<int32_t, float>> top_logprobs;
};

class Sampler {
 public:
  // CHECKs that `params` is valid for `n_vocab`. Allocates every buffer here.
  Sampler(SamplingParams params, int32_t n_vocab);

  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;
  Sampler(Sampler&&) = default;
  Sampler& operator=(Sampler&&) = default;

  // Records a token of the sequence for the penalties. Prompt tokens count for
  // the repetition penalty only; generated tokens for all three. Call it for
  // every prompt token, then for every sampled token. CHECKs the id range.
  void Accept(int32_t token, bool is_prompt);

  // logits: [n_vocab], not modified. `constraint` (optional) masks the
  // tokens it does not allow (step 0); when it allows none, result->token is
  // -1 and nothing else is set.
  SampleResult Sample(const float* logits, Constraint* constraint = nullptr);
  // Same, writing into *result and reusing its top_logprobs storage: no heap
  // allocation at all once that vector has grown to n_top_logprobs (a
  // constraint may allocate in its own Mask).
  void Sample(const float* logits, SampleResult* result, Constraint* constraint = nullptr);

  const SamplingParams& params() const { return params_; }
  int32_t n_vocab() const { return n_vocab_; }

 private:
  struct Candidate {
    int32_t id;
    float logit;  // adjusted logit
    float prob;   // unnormalised: exp((logit - max_logit) / temperature)
    uint32_t bucket;  // top-p: its histogram bucket (set with prob)
  };

  // Copies logits into adjusted_, masks them (false: nothing allowed), then
  // applies bias and penalties.
  bool ApplyBiasAndPenalties(const float* logits, Constraint* constraint);
  int32_t Argmax() const;
  int32_t SampleTruncated();
  // Top-p over the whole vocabulary (no top-k): candidates_[0, n) are the
  // kept tokens, the whole buckets in id order, then the boundary bucket's
  // most likely first; returns n.
  size_t TopPOfRow();
  // Top-p's boundary bucket (bucket_mass_ filled): the first where the
  // running mass reaches `target`; *above: the mass of the buckets before it.
  size_t TopPBoundary(double target, double* above) const;
  // Sorts the boundary bucket's candidates [from, to) most likely first and
  // returns how many candidates top-p keeps: through the first whose
  // running mass (from `above`) reaches `target`, or all; at least one.
  static size_t TopPCut(Candidate* cands, size_t from, size_t to, double above, double target);
  void FillLogprobs(int32_t token, SampleResult* result) const;
  // Adds/removes one occurrence of `token` to the repetition-penalty window.
  void WindowAdd(int32_t token);
  void WindowRemove(int32_t token);

  SamplingParams params_;
  int32_t n_vocab_;
  std::mt19937_64 rng_;

  std::vector<float> adjusted_;        // [n_vocab] logits after bias + penalties
  std::vector<Candidate> candidates_;  // [n_vocab] scratch for truncation
  std::vector<float> probs_;           // [n_vocab] scratch without top-k
  std::vector<uint16_t> buckets_;      // [n_vocab] top-p without top-k: each token's bucket
  std::vector<uint32_t> bucket_count_;  // top-p without top-k: tokens a bucket
  std::vector<double> bucket_mass_;    // [top-p histogram buckets + 1]

  // Repetition penalty (allocated only when it is active).
  bool use_repetition_ = false;
  std::vector<int32_t> window_ring_;    // [penalty_last_n] last tokens; empty for -1
  size_t window_head_ = 0;              // next slot to overwrite once full
  size_t window_size_ = 0;              // tokens currently in the ring
  std::vector<int32_t> window_count_;   // [n_vocab] occurrences in the window
  std::vector<int32_t> window_slot_;    // [n_vocab] index in window_tokens_, or -1
  std::vector<int32_t> window_tokens_;  // distinct tokens in the window

  // Presence / frequency penalties (allocated only when one is active).
  bool use_generated_ = false;
  std::vector<int32_t> generated_count_;   // [n_vocab] times generated
  std::vector<int32_t> generated_tokens_;  // distinct generated tokens
};

}  // namespace reprise::engine
