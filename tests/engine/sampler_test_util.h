// The sampler tests' helpers (sampler_test.cc, sampler_logprob_test.cc):
// seeded parameters, draw counts, the reference softmax and chi-square, random
// logits, and the adjusted logits a sampler sees.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "engine/sampler.h"

namespace reprise::engine::sampler_testing {

constexpr uint64_t kSeed = 1234;

inline SamplingParams Seeded(float temperature) {
  SamplingParams p;
  p.temperature = temperature;
  p.seed = kSeed;
  return p;
}

inline std::vector<int32_t> Counts(Sampler& sampler, const std::vector<float>& logits, int draws) {
  std::vector<int32_t> counts(logits.size(), 0);
  for (int i = 0; i < draws; ++i) ++counts[sampler.Sample(logits.data()).token];
  return counts;
}

inline std::vector<double> Softmax(const std::vector<float>& logits, double temperature) {
  const double max = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) p[i] = std::exp((logits[i] - max) / temperature);
  const double sum = std::accumulate(p.begin(), p.end(), 0.0);
  for (double& v : p) v /= sum;
  return p;
}

// Pearson's chi-square statistic of observed counts against probabilities;
// tokens with zero probability must never be drawn.
inline double ChiSquare(const std::vector<int32_t>& counts, const std::vector<double>& probs, int draws) {
  double chi2 = 0.0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (probs[i] == 0.0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " has zero probability";
      continue;
    }
    const double expected = probs[i] * draws;
    chi2 += (counts[i] - expected) * (counts[i] - expected) / expected;
  }
  return chi2;
}

inline std::vector<float> RandomLogits(int32_t n, uint64_t seed, float scale = 3.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> logits(n);
  for (float& l : logits) l = normal(rng);
  return logits;
}

// Adjusted logits (after bias and penalties) recovered from the sampler's
// log-probabilities, shifted so that token `ref` is 0. Vocab <= 20.
inline std::vector<float> AdjustedRelativeTo(Sampler& sampler, const std::vector<float>& logits,
                                      int32_t ref) {
  const SampleResult r = sampler.Sample(logits.data());
  std::vector<float> lp(logits.size(), NAN);
  for (const auto& [id, logprob] : r.top_logprobs) lp[id] = logprob;
  std::vector<float> out(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) out[i] = lp[i] - lp[ref];
  return out;
}

}  // namespace reprise::engine::sampler_testing
