// Sampler implementation. See sampler.h for the order of operations; the
// comments here cover only how each step is done without per-token
// allocation or a full sort of the vocabulary.
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace reprise::engine {
namespace {

// Top-p histogram: buckets of width 1/kTopPBucketsPerUnit in -log p (at the
// sampling temperature) up to kTopPRange, plus one overflow bucket. Narrow
// buckets keep the one that needs sorting small.
constexpr float kTopPBucketsPerUnit = 32.0f;
constexpr float kTopPRange = 32.0f;
constexpr size_t kTopPBuckets = static_cast<size_t>(kTopPRange * kTopPBucketsPerUnit);
// Top-k of at most this many: a scan into a sorted list; more: selection.
constexpr size_t kTopKScan = 256;

// A logit's top-p histogram bucket: -log p = (max_logit - logit) /
// temperature in steps of 1 / kTopPBucketsPerUnit, kTopPBuckets past
// kTopPRange (and for NaN).
uint32_t TopPBucket(float logit, float max_logit, float inv_temp) {
  const float neg_log_p = (max_logit - logit) * inv_temp;
  if (!(neg_log_p < kTopPRange)) return kTopPBuckets;  // overflow; also NaN
  return static_cast<uint32_t>(neg_log_p * kTopPBucketsPerUnit);
}

// Within [lo, hi], NaN-safe (NaN fails every comparison).
bool InRange(float v, float lo, float hi) { return v >= lo && v <= hi; }

// The largest value of a[0, n) (n >= 1) as a scan `m = a[0]; m = max(m,
// a[i])` finds it: NaN never wins, except a NaN a[0], which nothing beats.
// Eight independent lanes instead of one dependent chain (a zero's sign may
// differ from the scan's, which neither caller can see).
float MaxOf(const float* a, int32_t n) {
  if (std::isnan(a[0])) return a[0];
  constexpr int kLanes = 8;
  float lane_max[kLanes];
  for (int k = 0; k < kLanes; ++k) lane_max[k] = a[0];
  int32_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int k = 0; k < kLanes; ++k) {
      const float v = a[i + k];
      lane_max[k] = v > lane_max[k] ? v : lane_max[k];
    }
  }
  float best = lane_max[0];
  for (int k = 1; k < kLanes; ++k) best = lane_max[k] > best ? lane_max[k] : best;
  for (; i < n; ++i) best = a[i] > best ? a[i] : best;
  return best;
}

// The first index of the largest value of a[0, n) under `>` (ties -> lowest
// id; NaN never wins, except a NaN a[0], which nothing beats): what a scan
// `if (a[i] > a[best]) best = i` returns, in two passes (MaxOf, then its
// first index) instead of one dependent compare and reload a token (128k
// tokens: ~15x faster).
int32_t FirstArgmax(const float* a, int32_t n) {
  if (std::isnan(a[0])) return 0;
  const float best = MaxOf(a, n);
  for (int32_t j = 0; j < n; ++j) {
    if (a[j] == best) return j;
  }
  return 0;  // not reached: best is one of the values
}

// Orders candidates by adjusted logit, descending; ties -> lower id first.
bool MoreLikely(float logit_a, int32_t id_a, float logit_b, int32_t id_b) {
  if (logit_a != logit_b) return logit_a > logit_b;
  return id_a < id_b;
}

// A double in [0, 1) from one 64-bit draw (53 random bits), identical on every
// standard library, unlike std::uniform_real_distribution.
double UniformUnit(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

uint64_t RandomSeed() {
  std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) ^ static_cast<uint64_t>(device());
}

}  // namespace

Status ValidateSamplingParams(const SamplingParams& p, int32_t n_vocab) {
  if (n_vocab <= 0) return Errorf("n_vocab must be > 0, got %d", n_vocab);
  if (!InRange(p.temperature, 0.0f, 2.0f)) {
    return Errorf("temperature must be in [0, 2], got %g", p.temperature);
  }
  if (p.top_k < 0) return Errorf("top_k must be >= 0 (0 disables it), got %d", p.top_k);
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
    return Errorf("top_p must be in (0, 1], got %g", p.top_p);
  }
  if (!InRange(p.min_p, 0.0f, 1.0f)) return Errorf("min_p must be in [0, 1], got %g", p.min_p);
  if (!(p.repetition_penalty > 0.0f && std::isfinite(p.repetition_penalty))) {
    return Errorf("repetition_penalty must be > 0 (1 disables it), got %g", p.repetition_penalty);
  }
  if (!InRange(p.presence_penalty, -2.0f, 2.0f)) {
    return Errorf("presence_penalty must be in [-2, 2], got %g", p.presence_penalty);
  }
  if (!InRange(p.frequency_penalty, -2.0f, 2.0f)) {
    return Errorf("frequency_penalty must be in [-2, 2], got %g", p.frequency_penalty);
  }
  if (p.penalty_last_n < -1) {
    return Errorf("penalty_last_n must be >= -1 (-1 = whole sequence, 0 = off), got %d",
                  p.penalty_last_n);
  }
  for (const auto& [id, bias] : p.logit_bias) {
    if (id < 0 || id >= n_vocab) {
      return Errorf("logit_bias: token id %d is out of range [0, %d)", id, n_vocab);
    }
    if (!InRange(bias, -100.0f, 100.0f)) {
      return Errorf("logit_bias: value for token %d must be in [-100, 100], got %g", id, bias);
    }
  }
  if (p.n_top_logprobs < -1 || p.n_top_logprobs > kMaxTopLogprobs) {
    return Errorf("top_logprobs must be in [0, %d], got %d", kMaxTopLogprobs, p.n_top_logprobs);
  }
  return Status::Ok();
}

Sampler::Sampler(SamplingParams params, int32_t n_vocab)
    : params_(std::move(params)), n_vocab_(n_vocab) {
  const Status valid = ValidateSamplingParams(params_, n_vocab_);
  CHECK_MSG(valid.ok(), "invalid sampling params: %s", valid.message().c_str());
  rng_.seed(params_.seed.has_value() ? *params_.seed : RandomSeed());

  const size_t n = static_cast<size_t>(n_vocab_);
  adjusted_.resize(n);
  if (params_.temperature > 0.0f) {
    const bool top_p = params_.top_p < 1.0f;
    if (params_.top_k == 0 && (top_p || params_.min_p <= 0.0f)) probs_.resize(n);
    if (params_.top_k == 0 && top_p) {
      buckets_.resize(n);
      bucket_count_.resize(kTopPBuckets + 1);
    }
    if (params_.top_k != 0 || top_p || params_.min_p > 0.0f) candidates_.resize(n);
    if (top_p) bucket_mass_.resize(kTopPBuckets + 1);
  }

  use_repetition_ = params_.repetition_penalty != 1.0f && params_.penalty_last_n != 0;
  if (use_repetition_) {
    if (params_.penalty_last_n > 0) {
      window_ring_.resize(static_cast<size_t>(params_.penalty_last_n));
    }
    window_count_.assign(n, 0);
    window_slot_.assign(n, -1);
    window_tokens_.reserve(
        params_.penalty_last_n > 0 ? std::min(n, static_cast<size_t>(params_.penalty_last_n)) : n);
  }
  use_generated_ = params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f;
  if (use_generated_) {
    generated_count_.assign(n, 0);
    generated_tokens_.reserve(n);
  }
}

void Sampler::WindowAdd(int32_t token) {
  if (window_count_[token]++ == 0) {
    window_slot_[token] = static_cast<int32_t>(window_tokens_.size());
    window_tokens_.push_back(token);
  }
}

void Sampler::WindowRemove(int32_t token) {
  DCHECK(window_count_[token] > 0);
  if (--window_count_[token] == 0) {
    const int32_t slot = window_slot_[token];
    const int32_t last = window_tokens_.back();
    window_tokens_[slot] = last;
    window_slot_[last] = slot;
    window_tokens_.pop_back();
    window_slot_[token] = -1;
  }
}

void Sampler::Accept(int32_t token, bool is_prompt) {
  CHECK_MSG(token >= 0 && token < n_vocab_, "token %d out of range [0, %d)", token, n_vocab_);
  if (use_repetition_) {
    if (window_ring_.empty()) {  // penalty_last_n == -1: the whole sequence
      WindowAdd(token);
    } else if (window_size_ < window_ring_.size()) {
      window_ring_[window_size_++] = token;
      WindowAdd(token);
    } else {
      WindowRemove(window_ring_[window_head_]);
      window_ring_[window_head_] = token;
      window_head_ = (window_head_ + 1) % window_ring_.size();
      WindowAdd(token);
    }
  }
  if (use_generated_ && !is_prompt) {
    if (generated_count_[token]++ == 0) generated_tokens_.push_back(token);
  }
}

bool Sampler::ApplyBiasAndPenalties(const float* logits, Constraint* constraint) {
  std::copy(logits, logits + n_vocab_, adjusted_.begin());
  if (constraint != nullptr && constraint->Mask(adjusted_.data(), n_vocab_) == 0) return false;
  for (const auto& [id, bias] : params_.logit_bias) adjusted_[id] += bias;
  if (use_repetition_) {
    const float penalty = params_.repetition_penalty;
    for (int32_t id : window_tokens_) {
      float& l = adjusted_[id];
      l = l > 0.0f ? l / penalty : l * penalty;
    }
  }
  if (use_generated_) {
    for (int32_t id : generated_tokens_) {
      adjusted_[id] -= params_.presence_penalty +
                       params_.frequency_penalty * static_cast<float>(generated_count_[id]);
    }
  }
  return true;
}

int32_t Sampler::Argmax() const { return FirstArgmax(adjusted_.data(), n_vocab_); }

size_t Sampler::TopPOfRow() {
  // One pass over the row: each token's probability and bucket, the total,
  // and the buckets' mass and counts.
  const float* a = adjusted_.data();
  float* p = probs_.data();
  uint16_t* bucket = buckets_.data();
  const float max_logit = MaxOf(a, n_vocab_);
  const float inv_temp = 1.0f / params_.temperature;
  std::fill(bucket_mass_.begin(), bucket_mass_.end(), 0.0);
  std::fill(bucket_count_.begin(), bucket_count_.end(), 0u);
  double total = 0.0;
  for (int32_t i = 0; i < n_vocab_; ++i) {
    p[i] = std::exp((a[i] - max_logit) * inv_temp);
    total += p[i];
    const auto b = static_cast<uint16_t>(TopPBucket(a[i], max_logit, inv_temp));
    bucket[i] = b;
    bucket_mass_[b] += p[i];
    ++bucket_count_[b];
  }
  // The buckets above the boundary are kept whole, in id order; the
  // boundary bucket follows them, sorted, to find the exact cut.
  const double target = static_cast<double>(params_.top_p) * total;
  double above = 0.0;
  const size_t boundary = TopPBoundary(target, &above);
  size_t whole = 0;  // tokens in the buckets above the boundary
  for (size_t b = 0; b < boundary; ++b) whole += bucket_count_[b];
  Candidate* const cands = candidates_.data();
  size_t j = 0, k = whole;
  for (int32_t i = 0; i < n_vocab_; ++i) {
    if (bucket[i] < boundary) {
      cands[j++] = {i, a[i], p[i], bucket[i]};
    } else if (bucket[i] == boundary) {
      cands[k++] = {i, a[i], p[i], bucket[i]};
    }
  }
  return TopPCut(cands, whole, k, above, target);
}

size_t Sampler::TopPBoundary(double target, double* above) const {
  *above = 0.0;
  for (size_t b = 0; b < kTopPBuckets; ++b) {
    if (*above + bucket_mass_[b] >= target) return b;
    *above += bucket_mass_[b];
  }
  return kTopPBuckets;
}

size_t Sampler::TopPCut(Candidate* cands, size_t from, size_t to, double above, double target) {
  std::sort(cands + from, cands + to, [](const Candidate& x, const Candidate& y) {
    return MoreLikely(x.logit, x.id, y.logit, y.id);
  });
  size_t kept = to;
  double cum = above;
  for (size_t c = from; c < to; ++c) {
    cum += cands[c].prob;
    if (cum >= target) {
      kept = c + 1;
      break;
    }
  }
  return std::max<size_t>(kept, 1);
}

int32_t Sampler::SampleTruncated() {
  if (!probs_.empty() && params_.top_p >= 1.0f) {
    // No truncation: the candidates are the vocabulary in id order, so the
    // probabilities go to a plain array (the same operations in the same
    // order as below: the same token).
    const float* a = adjusted_.data();
    float* p = probs_.data();
    const float max_logit = MaxOf(a, n_vocab_);
    const float inv_temp = 1.0f / params_.temperature;
    double total = 0.0;
    for (int32_t i = 0; i < n_vocab_; ++i) {
      p[i] = std::exp((a[i] - max_logit) * inv_temp);
      total += p[i];
    }
    const double u = UniformUnit(rng_) * total;
    double cum = 0.0;
    for (int32_t i = 0; i < n_vocab_; ++i) {
      cum += p[i];
      if (u < cum) return i;
    }
    for (int32_t i = n_vocab_; i-- > 0;) {
      if (p[i] > 0.0f) return i;
    }
    return 0;
  }
  const auto more_likely = [](const Candidate& a, const Candidate& b) {
    return MoreLikely(a.logit, a.id, b.logit, b.id);
  };
  Candidate* const cands = candidates_.data();
  size_t n = static_cast<size_t>(n_vocab_);
  const size_t top_k = static_cast<size_t>(params_.top_k);
  double total = 0.0;
  float max_logit = 0.0f;  // (set on every path that reads it)
  if (!buckets_.empty()) {
    n = TopPOfRow();
  } else if (top_k > 0 && top_k < n) {
    // Top-k, most likely first. Small k: one scan keeping the k best in a
    // sorted list (after the first few thousand tokens nearly every token
    // is turned away by one comparison with the k-th); large k: partial
    // selection, then a sort of the kept k.
    if (top_k <= kTopKScan) {
      size_t m = 0;
      for (int32_t i = 0; i < n_vocab_; ++i) {
        const float v = adjusted_[i];
        if (m == top_k && !MoreLikely(v, i, cands[m - 1].logit, cands[m - 1].id)) continue;
        size_t pos = m < top_k ? m++ : m - 1;
        while (pos > 0 && MoreLikely(v, i, cands[pos - 1].logit, cands[pos - 1].id)) {
          cands[pos] = cands[pos - 1];
          --pos;
        }
        cands[pos] = {i, v, 0.0f, 0};
      }
    } else {
      for (size_t i = 0; i < n; ++i) cands[i] = {static_cast<int32_t>(i), adjusted_[i], 0.0f, 0};
      std::nth_element(cands, cands + top_k - 1, cands + n, more_likely);
      std::sort(cands, cands + top_k, more_likely);
    }
    n = top_k;
    max_logit = cands[0].logit;
    for (size_t i = 1; i < n; ++i) max_logit = std::max(max_logit, cands[i].logit);
  } else {
    // The candidates and their largest logit; the passes below keep index
    // order, so every sum is the same whichever way the max was found.
    max_logit = MaxOf(adjusted_.data(), n_vocab_);
    for (size_t i = 0; i < n; ++i) cands[i] = {static_cast<int32_t>(i), adjusted_[i], 0.0f, 0};
  }

  if (buckets_.empty()) {  // (TopPOfRow did all this for the whole row)
    // Softmax with temperature (unnormalised; the maximum maps to 1), and for
    // top-p each candidate's bucket and the buckets' mass (below) in the same
    // pass.
    const float inv_temp = 1.0f / params_.temperature;
    const bool top_p = params_.top_p < 1.0f;
    if (top_p) std::fill(bucket_mass_.begin(), bucket_mass_.end(), 0.0);
    for (size_t i = 0; i < n; ++i) {
      cands[i].prob = std::exp((cands[i].logit - max_logit) * inv_temp);
      total += cands[i].prob;
      if (top_p) {
        cands[i].bucket = TopPBucket(cands[i].logit, max_logit, inv_temp);
        bucket_mass_[cands[i].bucket] += cands[i].prob;
      }
    }

    // Top-p without a full sort: the histogram of probability mass over
    // buckets of (max_logit - logit) / temperature, i.e. of -log p (built
    // above). Buckets above the one where the running mass reaches top_p are
    // kept whole and unsorted; only the boundary bucket is sorted (ties ->
    // lower id) to find the exact cut. Cost O(n) plus sorting one narrow
    // bucket.
    if (top_p) {
      const double target = static_cast<double>(params_.top_p) * total;
      double above = 0.0;
      const size_t boundary = TopPBoundary(target, &above);
      Candidate* const mid =
          std::partition(cands, cands + n, [&](const Candidate& c) { return c.bucket < boundary; });
      Candidate* const end =
          std::partition(mid, cands + n, [&](const Candidate& c) { return c.bucket == boundary; });
      n = TopPCut(cands, static_cast<size_t>(mid - cands), static_cast<size_t>(end - cands), above,
                  target);
    }
  }

  // Min-p: the largest probability is 1 in these units, so the threshold is
  // min_p itself. The most likely token always survives.
  if (params_.min_p > 0.0f) {
    const float threshold = params_.min_p;
    size_t kept = 0;  // a stable filter: the kept tokens stay in their order
    for (size_t i = 0; i < n; ++i) {
      if (cands[i].prob >= threshold) cands[kept++] = cands[i];
    }
    n = kept;
  }
  if (params_.top_p < 1.0f || params_.min_p > 0.0f) {
    total = 0.0;
    for (size_t i = 0; i < n; ++i) total += cands[i].prob;
  }

  // One draw; inverse-CDF scan over the kept tokens.
  const double u = UniformUnit(rng_) * total;
  double cum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    cum += cands[i].prob;
    if (u < cum) return cands[i].id;
  }
  // Rounding can leave u == cum at the end: the last token with mass wins.
  for (size_t i = n; i-- > 0;) {
    if (cands[i].prob > 0.0f) return cands[i].id;
  }
  return cands[0].id;
}

void Sampler::FillLogprobs(int32_t token, SampleResult* result) const {
  const float* x = adjusted_.data();
  float max_logit = x[0];
  for (int32_t i = 1; i < n_vocab_; ++i) max_logit = std::max(max_logit, x[i]);
  double sum = 0.0;
  for (int32_t i = 0; i < n_vocab_; ++i) sum += std::exp(x[i] - max_logit);
  const float log_z = max_logit + static_cast<float>(std::log(sum));
  result->logprob = x[token] - log_z;

  // Top-N by a single scan into a small sorted list (N <= kMaxTopLogprobs):
  // most tokens are rejected by one comparison against the current N-th.
  auto& top = result->top_logprobs;
  const size_t want = static_cast<size_t>(std::min(params_.n_top_logprobs, n_vocab_));
  for (int32_t i = 0; i < n_vocab_; ++i) {
    const float v = x[i];
    if (top.size() == want && (want == 0 || !(v > top.back().second))) continue;
    if (v == -std::numeric_limits<float>::infinity()) continue;  // masked by a constraint
    // Insert after every entry >= v (ids ascend, so ties stay lower-id first).
    size_t pos = top.size();
    while (pos > 0 && top[pos - 1].second < v) --pos;
    if (top.size() < want) top.emplace_back();
    for (size_t j = top.size() - 1; j > pos; --j) top[j] = top[j - 1];
    top[pos] = {i, v};
  }
  for (auto& entry : top) entry.second -= log_z;
}

void Sampler::Sample(const float* logits, SampleResult* result, Constraint* constraint) {
  CHECK(logits != nullptr && result != nullptr);
  result->top_logprobs.clear();
  result->logprob = 0.0f;
  if (params_.temperature == 0.0f && constraint == nullptr && params_.n_top_logprobs < 0 &&
      params_.logit_bias.empty() && !use_repetition_ && !use_generated_) {
    result->token = FirstArgmax(logits, n_vocab_);  // the adjusted row would be a copy
    return;
  }
  if (!ApplyBiasAndPenalties(logits, constraint)) {
    result->token = -1;
    return;
  }
  result->token = params_.temperature == 0.0f ? Argmax() : SampleTruncated();
  if (params_.n_top_logprobs >= 0) FillLogprobs(result->token, result);
}

SampleResult Sampler::Sample(const float* logits, Constraint* constraint) {
  SampleResult result;
  if (params_.n_top_logprobs > 0) {
    result.top_logprobs.reserve(static_cast<size_t>(params_.n_top_logprobs));
  }
  Sample(logits, &result, constraint);
  return result;
}

}  // namespace reprise::engine
