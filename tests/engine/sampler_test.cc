// Sampler tests: greedy, temperature statistics, top-k/top-p/min-p truncation,
// penalties, logit bias and seeding (log-probabilities, validation and
// constraints: sampler_logprob_test.cc). Every random test uses a fixed seed,
// so results are deterministic.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/sampler_test_util.h"

namespace reprise::engine {
namespace {

using namespace sampler_testing;  // NOLINT: the shared helpers

// ---------------------------------------------------------------- greedy ----

TEST(SamplerTest, GreedyPicksArgmax) {
  const std::vector<float> logits = {0.1f, -2.0f, 3.5f, 3.4f, 1.0f};
  Sampler sampler(Seeded(0.0f), 5);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(sampler.Sample(logits.data()).token, 2);
}

TEST(SamplerTest, GreedyBreaksTiesTowardLowestId) {
  const std::vector<float> logits = {1.0f, 7.0f, -1.0f, 7.0f, 7.0f};
  Sampler sampler(Seeded(0.0f), 5);
  EXPECT_EQ(sampler.Sample(logits.data()).token, 1);
}

// Greedy returns what the scan `if (l[i] > l[best]) best = i` does, on rows
// the two-pass argmax could get wrong: ties (the first wins), +0 and -0
// (equal), -inf, NaN (never picked, but a NaN first entry stays), a
// maximum in the tail past the last full group of eight, one-token and
// seven-token vocabularies. Both the row itself (no bias or penalty) and
// the adjusted copy (a logit bias of 0 on one id) are checked.
TEST(SamplerTest, GreedyMatchesAFirstMaximumScanOnAwkwardRows) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<std::vector<float>> rows = {
      {-0.0f, 0.0f, -1.0f},
      {0.0f, -0.0f},
      {-inf, -inf, -inf},
      {nan, 5.0f, 6.0f},
      {1.0f, nan, 2.0f, nan},
      {1.0f},
      {3.0f, 1.0f, 2.0f, 3.0f, 0.0f, 3.0f, -1.0f},
      {-inf, -5.0f, nan, -5.0f},
  };
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> pick(-3, 3), len(1, 40);
  for (int r = 0; r < 300; ++r) {
    std::vector<float> row(static_cast<size_t>(len(rng)));
    for (float& v : row) {
      const int k = pick(rng);
      v = k == -3 ? -inf : k == 3 && r % 7 == 0 ? nan : static_cast<float>(k);
    }
    rows.push_back(row);
  }
  for (const std::vector<float>& row : rows) {
    int32_t want = 0;
    for (int32_t i = 1; i < static_cast<int32_t>(row.size()); ++i) {
      if (row[i] > row[want]) want = i;
    }
    const int32_t n = static_cast<int32_t>(row.size());
    Sampler plain(Seeded(0.0f), n);
    EXPECT_EQ(plain.Sample(row.data()).token, want) << "row of " << n;
    SamplingParams biased = Seeded(0.0f);
    biased.logit_bias = {{n - 1, 0.0f}};
    Sampler copy(biased, n);
    EXPECT_EQ(copy.Sample(row.data()).token, want) << "row of " << n << " (copied)";
  }
}

TEST(SamplerTest, GreedyIgnoresTruncationParameters) {
  SamplingParams p = Seeded(0.0f);
  p.top_k = 2;
  p.top_p = 0.5f;
  p.min_p = 0.3f;
  const std::vector<float> logits = RandomLogits(1000, 7);
  Sampler sampler(p, 1000);
  const int32_t argmax =
      static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  EXPECT_EQ(sampler.Sample(logits.data()).token, argmax);
}

// ----------------------------------------------------------- temperature ----

TEST(SamplerTest, TemperatureSamplingMatchesSoftmaxDistribution) {
  const std::vector<float> logits = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, -1.0f};
  constexpr int kDraws = 100000;
  // Critical value of chi-square with 5 degrees of freedom at p = 0.001.
  constexpr double kChi2Critical = 20.52;
  for (float temperature : {0.5f, 1.0f, 1.7f}) {
    Sampler sampler(Seeded(temperature), 6);
    const auto counts = Counts(sampler, logits, kDraws);
    EXPECT_LT(ChiSquare(counts, Softmax(logits, temperature), kDraws), kChi2Critical)
        << "temperature " << temperature;
  }
}

TEST(SamplerTest, LowTemperatureConcentratesOnArgmax) {
  const std::vector<float> logits = {1.0f, 1.5f, 0.0f};
  Sampler sampler(Seeded(0.01f), 3);
  const auto counts = Counts(sampler, logits, 1000);
  EXPECT_EQ(counts[1], 1000);
}

// ------------------------------------------------------------ truncation ----

TEST(SamplerTest, TopKOneEqualsGreedy) {
  const std::vector<float> logits = RandomLogits(5000, 11);
  SamplingParams p = Seeded(1.5f);
  p.top_k = 1;
  Sampler sampler(p, 5000);
  Sampler greedy(Seeded(0.0f), 5000);
  const int32_t expected = greedy.Sample(logits.data()).token;
  for (int i = 0; i < 200; ++i) EXPECT_EQ(sampler.Sample(logits.data()).token, expected);
}

TEST(SamplerTest, TopKSamplesOnlyTheKMostLikelyInProportion) {
  const std::vector<float> logits = {0.0f, 2.0f, 1.0f, 3.0f, -1.0f, 2.5f, 0.5f};
  SamplingParams p = Seeded(1.0f);
  p.top_k = 3;  // tokens 3, 5, 1
  Sampler sampler(p, 7);
  constexpr int kDraws = 50000;
  const auto counts = Counts(sampler, logits, kDraws);
  std::vector<float> kept(7, -INFINITY);
  for (int id : {1, 3, 5}) kept[id] = logits[id];
  // 2 degrees of freedom, p = 0.001.
  EXPECT_LT(ChiSquare(counts, Softmax(kept, 1.0), kDraws), 13.82);
}

// Both top-k paths (a scan for k <= 256, selection above) keep exactly the
// k most likely tokens (ties -> lower ids) of a 3,000-token row with many
// ties, and draw them in proportion: every draw is in the set, and the
// counts match the softmax of the kept logits.
TEST(SamplerTest, TopKKeepsTheExactSetOnBothPaths) {
  std::vector<float> logits(3000);
  std::mt19937 rng(21);
  std::uniform_int_distribution<int> level(0, 40);
  for (float& v : logits) v = 0.1f * static_cast<float>(level(rng));  // ~75 tokens a value
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  for (const int32_t k : {7, 256, 257, 900}) {
    std::vector<float> kept(logits.size(), -INFINITY);
    for (int32_t j = 0; j < k; ++j) kept[order[j]] = logits[order[j]];
    SamplingParams p = Seeded(1.0f);
    p.top_k = k;
    Sampler sampler(p, static_cast<int32_t>(logits.size()));
    const int draws = 40 * k;
    const auto counts = Counts(sampler, logits, draws);
    for (size_t id = 0; id < counts.size(); ++id) {
      if (counts[id] > 0) {
        ASSERT_NE(kept[id], -INFINITY) << "k " << k << ": token " << id << " is not in the top k";
      }
    }
    // Pooled by logit value (the tokens of one value are equally likely), so
    // each bin expects plenty of draws.
    std::map<float, std::pair<int, double>> by_value;  // value -> (draws, probability)
    const std::vector<double> want = Softmax(kept, 1.0);
    for (size_t id = 0; id < counts.size(); ++id) {
      if (kept[id] == -INFINITY) continue;
      by_value[kept[id]].first += counts[id];
      by_value[kept[id]].second += want[id];
    }
    double chi = 0.0;
    for (const auto& [value, c] : by_value) {
      const double e = c.second * draws;
      chi += (c.first - e) * (c.first - e) / e;
    }
    // At most 41 values: 40 degrees of freedom, p = 0.001.
    EXPECT_LT(chi, 73.4) << "k " << k;
  }
}

TEST(SamplerTest, TopKBreaksTiesTowardLowerIds) {
  const std::vector<float> logits = {1.0f, 5.0f, 5.0f, 5.0f, 0.0f};
  SamplingParams p = Seeded(1.0f);
  p.top_k = 2;
  Sampler sampler(p, 5);
  const auto counts = Counts(sampler, logits, 2000);
  EXPECT_GT(counts[1], 0);
  EXPECT_GT(counts[2], 0);
  EXPECT_EQ(counts[3], 0);
}

TEST(SamplerTest, TinyTopPEqualsGreedy) {
  const std::vector<float> logits = RandomLogits(50000, 13);
  SamplingParams p = Seeded(1.0f);
  p.top_p = 1e-6f;
  Sampler sampler(p, 50000);
  Sampler greedy(Seeded(0.0f), 50000);
  const int32_t expected = greedy.Sample(logits.data()).token;
  for (int i = 0; i < 200; ++i) EXPECT_EQ(sampler.Sample(logits.data()).token, expected);

  const std::vector<float> ties = {0.0f, 4.0f, 4.0f, 1.0f};
  Sampler tie_sampler(p, 4);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(tie_sampler.Sample(ties.data()).token, 1);
}

TEST(SamplerTest, TopPKeepsSmallestPrefixReachingTheMass) {
  // Probabilities 0.5, 0.3, 0.15, 0.05 (in a shuffled id order).
  const std::vector<float> logits = {std::log(0.15f), std::log(0.5f), std::log(0.05f),
                                     std::log(0.3f)};
  SamplingParams p = Seeded(1.0f);
  p.top_p = 0.75f;  // 0.5 < 0.75 <= 0.8: keeps ids 1 and 3
  Sampler sampler(p, 4);
  constexpr int kDraws = 50000;
  const auto counts = Counts(sampler, logits, kDraws);
  // 1 degree of freedom, p = 0.001.
  EXPECT_LT(ChiSquare(counts, {0.0, 0.5 / 0.8, 0.0, 0.3 / 0.8}, kDraws), 10.83);
}

TEST(SamplerTest, TopPOnLargeVocabularyMatchesFullSortNucleus) {
  constexpr int32_t kVocab = 150000;
  const std::vector<float> logits = RandomLogits(kVocab, 17, 2.0f);
  constexpr float kTopP = 0.9f;
  // Reference nucleus by a full sort.
  const std::vector<double> probs = Softmax(logits, 1.0);
  std::vector<int32_t> order(kVocab);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  });
  std::set<int32_t> nucleus;
  double cum = 0.0;
  for (int32_t id : order) {
    nucleus.insert(id);
    cum += probs[id];
    if (cum >= kTopP) break;
  }
  ASSERT_GT(nucleus.size(), 1000u);  // large enough to need several chunks

  SamplingParams p = Seeded(1.0f);
  p.top_p = kTopP;
  Sampler sampler(p, kVocab);
  std::set<int32_t> seen;
  for (int i = 0; i < 1000; ++i) {
    const int32_t t = sampler.Sample(logits.data()).token;
    ASSERT_TRUE(nucleus.count(t)) << "token " << t << " is outside the top-p nucleus";
    seen.insert(t);
  }
  EXPECT_GT(seen.size(), 100u);  // it really samples, not just the head
}

TEST(SamplerTest, TopPCutsThroughTiesKeepingLowerIds) {
  // 10,000 equally likely tokens: top_p 0.5 keeps exactly ids [0, 5000).
  constexpr int32_t kVocab = 10000;
  const std::vector<float> logits(kVocab, 0.25f);
  SamplingParams p = Seeded(1.0f);
  p.top_p = 0.5f;
  Sampler sampler(p, kVocab);
  int32_t max_seen = -1;
  for (int i = 0; i < 3000; ++i) max_seen = std::max(max_seen, sampler.Sample(logits.data()).token);
  EXPECT_LT(max_seen, 5000);
  EXPECT_GT(max_seen, 4900);
}

TEST(SamplerTest, TopKThenTopPKeepsTheNucleusOfTheTopK) {
  // Probabilities 0.4, 0.3, 0.2, 0.1 after top_k = 4 over a larger vocab.
  std::vector<float> logits(100, -30.0f);
  logits[10] = std::log(0.4f);
  logits[20] = std::log(0.3f);
  logits[30] = std::log(0.2f);
  logits[40] = std::log(0.1f);
  SamplingParams p = Seeded(1.0f);
  p.top_k = 4;
  p.top_p = 0.65f;  // 0.4 < 0.65 <= 0.7: ids 10 and 20
  Sampler sampler(p, 100);
  constexpr int kDraws = 20000;
  const auto counts = Counts(sampler, logits, kDraws);
  std::vector<double> expected(100, 0.0);
  expected[10] = 0.4 / 0.7;
  expected[20] = 0.3 / 0.7;
  EXPECT_LT(ChiSquare(counts, expected, kDraws), 10.83);  // 1 dof, p = 0.001
}

TEST(SamplerTest, MinPFiltersTokensBelowFractionOfTheMostLikely) {
  // Probabilities 0.5, 0.3, 0.15, 0.05: min_p 0.2 keeps p >= 0.1 (ids 0, 1, 2).
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f),
                                     std::log(0.05f)};
  SamplingParams p = Seeded(1.0f);
  p.min_p = 0.2f;
  Sampler sampler(p, 4);
  constexpr int kDraws = 50000;
  const auto counts = Counts(sampler, logits, kDraws);
  // 2 degrees of freedom, p = 0.001.
  EXPECT_LT(ChiSquare(counts, {0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0.0}, kDraws), 13.82);
}

TEST(SamplerTest, MinPAppliesAfterTopPAndTemperature) {
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f),
                                     std::log(0.05f)};
  SamplingParams p = Seeded(1.0f);
  p.top_p = 0.9f;  // keeps ids 0, 1, 2
  p.min_p = 0.5f;  // then keeps p >= 0.25: ids 0, 1
  Sampler sampler(p, 4);
  const auto counts = Counts(sampler, logits, 5000);
  EXPECT_GT(counts[0], 0);
  EXPECT_GT(counts[1], 0);
  EXPECT_EQ(counts[2], 0);
  EXPECT_EQ(counts[3], 0);

  // At temperature 2 the ratio p2/p0 is sqrt(0.3) ~ 0.55 >= 0.5: id 2 survives.
  p.temperature = 2.0f;
  Sampler hot(p, 4);
  EXPECT_GT(Counts(hot, logits, 5000)[2], 0);
}

// ------------------------------------------------------------- penalties ----

TEST(SamplerTest, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  const std::vector<float> logits = {0.0f, 2.0f, -2.0f, 3.0f, 1.0f};
  SamplingParams p = Seeded(0.0f);
  p.repetition_penalty = 2.0f;
  p.n_top_logprobs = 5;
  Sampler sampler(p, 5);
  sampler.Accept(1, /*is_prompt=*/true);  // prompt tokens count
  sampler.Accept(2, /*is_prompt=*/false);
  sampler.Accept(1, /*is_prompt=*/false);  // repeated: penalised once only
  const auto adjusted = AdjustedRelativeTo(sampler, logits, 0);
  EXPECT_NEAR(adjusted[1], 1.0f, 1e-5);   // 2 / 2
  EXPECT_NEAR(adjusted[2], -4.0f, 1e-5);  // -2 * 2
  EXPECT_NEAR(adjusted[3], 3.0f, 1e-5);   // untouched
  EXPECT_NEAR(adjusted[4], 1.0f, 1e-5);
}

TEST(SamplerTest, RepetitionPenaltyForgetsTokensOutsideTheWindow) {
  const std::vector<float> logits = {0.0f, 2.0f, 2.0f, 2.0f};
  SamplingParams p = Seeded(0.0f);
  p.repetition_penalty = 2.0f;
  p.penalty_last_n = 2;
  p.n_top_logprobs = 4;
  Sampler sampler(p, 4);
  for (int32_t t : {1, 2, 3}) sampler.Accept(t, /*is_prompt=*/true);  // window = {2, 3}
  auto adjusted = AdjustedRelativeTo(sampler, logits, 0);
  EXPECT_NEAR(adjusted[1], 2.0f, 1e-5);
  EXPECT_NEAR(adjusted[2], 1.0f, 1e-5);
  EXPECT_NEAR(adjusted[3], 1.0f, 1e-5);
  sampler.Accept(3, /*is_prompt=*/false);  // window = {3, 3}
  adjusted = AdjustedRelativeTo(sampler, logits, 0);
  EXPECT_NEAR(adjusted[2], 2.0f, 1e-5);
  EXPECT_NEAR(adjusted[3], 1.0f, 1e-5);
}

TEST(SamplerTest, RepetitionPenaltyWholeSequenceWindowKeepsEveryToken) {
  const std::vector<float> logits = {0.0f, 2.0f, 2.0f, 2.0f};
  SamplingParams p = Seeded(0.0f);
  p.repetition_penalty = 4.0f;
  p.penalty_last_n = -1;
  p.n_top_logprobs = 4;
  Sampler sampler(p, 4);
  sampler.Accept(1, /*is_prompt=*/true);
  for (int i = 0; i < 500; ++i) sampler.Accept(2, /*is_prompt=*/false);
  const auto adjusted = AdjustedRelativeTo(sampler, logits, 0);
  EXPECT_NEAR(adjusted[1], 0.5f, 1e-5);
  EXPECT_NEAR(adjusted[2], 0.5f, 1e-5);
  EXPECT_NEAR(adjusted[3], 2.0f, 1e-5);
}

TEST(SamplerTest, PresencePenaltySubtractsOnceForGeneratedTokensOnly) {
  const std::vector<float> logits = {0.0f, 1.0f, 1.0f, 1.0f};
  SamplingParams p = Seeded(0.0f);
  p.presence_penalty = 0.75f;
  p.n_top_logprobs = 4;
  Sampler sampler(p, 4);
  sampler.Accept(1, /*is_prompt=*/true);  // prompt: not penalised
  sampler.Accept(2, /*is_prompt=*/false);
  sampler.Accept(2, /*is_prompt=*/false);
  sampler.Accept(3, /*is_prompt=*/false);
  const auto adjusted = AdjustedRelativeTo(sampler, logits, 0);
  EXPECT_NEAR(adjusted[1], 1.0f, 1e-5);
  EXPECT_NEAR(adjusted[2], 0.25f, 1e-5);
  EXPECT_NEAR(adjusted[3], 0.25f, 1e-5);
}

TEST(SamplerTest, FrequencyPenaltySubtractsPerGeneratedOccurrence) {
  const std::vector<float> logits = {0.0f, 1.0f, 1.0f, 1.0f};
  SamplingParams p = Seeded(0.0f);
  p.frequency_penalty = 0.5f;
  p.presence_penalty = -0.25f;  // negative values encourage repeats
  p.n_top_logprobs = 4;
  Sampler sampler(p, 4);
  sampler.Accept(1, /*is_prompt=*/true);
  for (int i = 0; i < 3; ++i) sampler.Accept(2, /*is_prompt=*/false);
  sampler.Accept(3, /*is_prompt=*/false);
  const auto adjusted = AdjustedRelativeTo(sampler, logits, 0);
  EXPECT_NEAR(adjusted[1], 1.0f, 1e-5);
  EXPECT_NEAR(adjusted[2], 1.0f - 1.5f + 0.25f, 1e-5);
  EXPECT_NEAR(adjusted[3], 1.0f - 0.5f + 0.25f, 1e-5);
}

TEST(SamplerTest, PenaltiesApplyAfterLogitBias) {
  const std::vector<float> logits = {0.0f, 1.0f, 0.0f};
  SamplingParams p = Seeded(0.0f);
  p.logit_bias = {{1, 3.0f}, {2, -2.0f}};
  p.repetition_penalty = 2.0f;
  p.n_top_logprobs = 3;
  Sampler sampler(p, 3);
  sampler.Accept(1, /*is_prompt=*/true);
  sampler.Accept(2, /*is_prompt=*/true);
  const auto adjusted = AdjustedRelativeTo(sampler, logits, 0);
  EXPECT_NEAR(adjusted[1], 2.0f, 1e-5);   // (1 + 3) / 2
  EXPECT_NEAR(adjusted[2], -4.0f, 1e-5);  // (0 - 2) * 2
}

// ------------------------------------------------------------ logit bias ----

TEST(SamplerTest, LogitBiasMinus100BansTheMostLikelyToken) {
  const std::vector<float> logits = {0.0f, 8.0f, 1.0f, 0.5f};
  SamplingParams p = Seeded(2.0f);
  p.logit_bias = {{1, -100.0f}};
  Sampler sampler(p, 4);
  EXPECT_EQ(Counts(sampler, logits, 20000)[1], 0);

  p.temperature = 0.0f;
  Sampler greedy(p, 4);
  EXPECT_EQ(greedy.Sample(logits.data()).token, 2);
}

TEST(SamplerTest, LogitBiasPlus100ForcesTheLeastLikelyToken) {
  const std::vector<float> logits = RandomLogits(32000, 19);
  const int32_t worst =
      static_cast<int32_t>(std::min_element(logits.begin(), logits.end()) - logits.begin());
  SamplingParams p = Seeded(1.0f);
  p.logit_bias = {{worst, 100.0f}};
  Sampler sampler(p, 32000);
  for (int i = 0; i < 500; ++i) ASSERT_EQ(sampler.Sample(logits.data()).token, worst);
}

// --------------------------------------------------------------- seeding ----

std::vector<int32_t> Sequence(const SamplingParams& p, const std::vector<float>& logits, int n) {
  Sampler sampler(p, static_cast<int32_t>(logits.size()));
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    const int32_t t = sampler.Sample(logits.data()).token;
    sampler.Accept(t, /*is_prompt=*/false);
    out.push_back(t);
  }
  return out;
}

TEST(SamplerTest, SameSeedGivesTheSameSequence) {
  const std::vector<float> logits = RandomLogits(1000, 23, 1.0f);
  SamplingParams p = Seeded(0.9f);
  p.top_k = 200;
  p.top_p = 0.95f;
  p.min_p = 0.01f;
  p.frequency_penalty = 0.3f;
  EXPECT_EQ(Sequence(p, logits, 100), Sequence(p, logits, 100));
}

TEST(SamplerTest, DifferentSeedsGiveDifferentSequences) {
  const std::vector<float> logits = RandomLogits(1000, 23, 1.0f);
  SamplingParams a = Seeded(1.0f);
  SamplingParams b = Seeded(1.0f);
  b.seed = kSeed + 1;
  EXPECT_NE(Sequence(a, logits, 100), Sequence(b, logits, 100));
}

TEST(SamplerTest, UnseededSamplersDiffer) {
  const std::vector<float> logits(1000, 0.0f);
  SamplingParams p;
  p.temperature = 1.0f;
  EXPECT_NE(Sequence(p, logits, 50), Sequence(p, logits, 50));
}

}  // namespace
}  // namespace reprise::engine
