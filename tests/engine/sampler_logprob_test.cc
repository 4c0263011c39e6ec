// Sampler tests: log-probabilities, parameter validation and constraints
// (engine/constraint.h). Helpers: sampler_test_util.h.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "engine/sampler_test_util.h"

namespace reprise::engine {
namespace {

using namespace sampler_testing;  // NOLINT: the shared helpers

// ------------------------------------------------------ log-probabilities ----

TEST(SamplerTest, LogprobsAreNormalisedAndTopListIsOrdered) {
  const std::vector<float> logits = RandomLogits(20, 29);
  SamplingParams p = Seeded(1.0f);
  p.n_top_logprobs = 20;
  Sampler sampler(p, 20);
  const SampleResult r = sampler.Sample(logits.data());
  ASSERT_EQ(r.top_logprobs.size(), 20u);
  double mass = 0.0;
  for (const auto& [id, lp] : r.top_logprobs) mass += std::exp(static_cast<double>(lp));
  EXPECT_NEAR(mass, 1.0, 1e-5);
  for (size_t i = 1; i < r.top_logprobs.size(); ++i) {
    EXPECT_GE(r.top_logprobs[i - 1].second, r.top_logprobs[i].second);
  }
  const auto chosen = std::find_if(r.top_logprobs.begin(), r.top_logprobs.end(),
                                   [&](const auto& e) { return e.first == r.token; });
  ASSERT_NE(chosen, r.top_logprobs.end());
  EXPECT_FLOAT_EQ(chosen->second, r.logprob);
  const std::vector<double> probs = Softmax(logits, 1.0);
  for (const auto& [id, lp] : r.top_logprobs) EXPECT_NEAR(lp, std::log(probs[id]), 1e-5);
}

TEST(SamplerTest, TopLogprobsAreTheNMostLikelyWithTiesByLowerId) {
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f, 2.0f, 0.0f};
  SamplingParams p = Seeded(0.0f);
  p.n_top_logprobs = 4;
  Sampler sampler(p, 7);
  const SampleResult r = sampler.Sample(logits.data());
  ASSERT_EQ(r.top_logprobs.size(), 4u);
  EXPECT_EQ(r.top_logprobs[0].first, 1);
  EXPECT_EQ(r.top_logprobs[1].first, 3);
  EXPECT_EQ(r.top_logprobs[2].first, 2);
  EXPECT_EQ(r.top_logprobs[3].first, 5);
  EXPECT_EQ(r.token, 1);
  EXPECT_FLOAT_EQ(r.logprob, r.top_logprobs[0].second);
}

TEST(SamplerTest, LogprobsIgnoreTemperatureAndTruncation) {
  const std::vector<float> logits = RandomLogits(100, 31);
  SamplingParams plain = Seeded(1.0f);
  plain.n_top_logprobs = 5;
  SamplingParams shaped = plain;
  shaped.temperature = 0.3f;
  shaped.top_k = 3;
  shaped.top_p = 0.5f;
  shaped.min_p = 0.2f;
  Sampler a(plain, 100);
  Sampler b(shaped, 100);
  const SampleResult ra = a.Sample(logits.data());
  const SampleResult rb = b.Sample(logits.data());
  EXPECT_EQ(ra.top_logprobs, rb.top_logprobs);
}

TEST(SamplerTest, LogprobsReflectBias) {
  const std::vector<float> logits = {0.0f, 0.0f};
  SamplingParams p = Seeded(0.0f);
  p.logit_bias = {{1, 100.0f}};
  p.n_top_logprobs = 0;
  Sampler sampler(p, 2);
  const SampleResult r = sampler.Sample(logits.data());
  EXPECT_EQ(r.token, 1);
  EXPECT_NEAR(r.logprob, 0.0f, 1e-6);
  EXPECT_TRUE(r.top_logprobs.empty());
}

TEST(SamplerTest, NoLogprobsWhenNotRequested) {
  const std::vector<float> logits = {0.0f, 1.0f, 2.0f};
  Sampler sampler(Seeded(1.0f), 3);
  const SampleResult r = sampler.Sample(logits.data());
  EXPECT_EQ(r.logprob, 0.0f);
  EXPECT_TRUE(r.top_logprobs.empty());
}

TEST(SamplerTest, SampleIntoReusesTopLogprobsStorage) {
  const std::vector<float> logits = RandomLogits(5000, 37);
  SamplingParams p = Seeded(1.0f);
  p.n_top_logprobs = 8;
  Sampler sampler(p, 5000);
  SampleResult r;
  sampler.Sample(logits.data(), &r);
  const auto* storage = r.top_logprobs.data();
  for (int i = 0; i < 10; ++i) {
    sampler.Sample(logits.data(), &r);
    EXPECT_EQ(r.top_logprobs.data(), storage);
    EXPECT_EQ(r.top_logprobs.size(), 8u);
  }
}

// ------------------------------------------------------------ validation ----

void ExpectInvalid(const SamplingParams& p, const std::string& field) {
  const Status s = ValidateSamplingParams(p, 100);
  ASSERT_FALSE(s.ok()) << field;
  EXPECT_EQ(s.message().rfind(field, 0), 0u) << s.message();
}

TEST(SamplerTest, DefaultParamsAreValid) {
  EXPECT_TRUE(ValidateSamplingParams(SamplingParams{}, 100).ok());
  SamplingParams edge;
  edge.temperature = 2.0f;
  edge.top_p = 1.0f;
  edge.min_p = 1.0f;
  edge.presence_penalty = -2.0f;
  edge.frequency_penalty = 2.0f;
  edge.penalty_last_n = -1;
  edge.logit_bias = {{0, -100.0f}, {99, 100.0f}};
  edge.n_top_logprobs = kMaxTopLogprobs;
  EXPECT_TRUE(ValidateSamplingParams(edge, 100).ok());
}

TEST(SamplerTest, ValidationMessagesNameTheParameter) {
  SamplingParams p;
  p.temperature = 2.5f;
  ExpectInvalid(p, "temperature");
  p = {};
  p.temperature = -0.1f;
  ExpectInvalid(p, "temperature");
  p = {};
  p.temperature = NAN;
  ExpectInvalid(p, "temperature");
  p = {};
  p.top_k = -1;
  ExpectInvalid(p, "top_k");
  p = {};
  p.top_p = 0.0f;
  ExpectInvalid(p, "top_p");
  p = {};
  p.top_p = 1.01f;
  ExpectInvalid(p, "top_p");
  p = {};
  p.min_p = 1.5f;
  ExpectInvalid(p, "min_p");
  p = {};
  p.repetition_penalty = 0.0f;
  ExpectInvalid(p, "repetition_penalty");
  p = {};
  p.presence_penalty = 2.5f;
  ExpectInvalid(p, "presence_penalty");
  p = {};
  p.frequency_penalty = -3.0f;
  ExpectInvalid(p, "frequency_penalty");
  p = {};
  p.penalty_last_n = -2;
  ExpectInvalid(p, "penalty_last_n");
  p = {};
  p.logit_bias = {{100, 1.0f}};
  ExpectInvalid(p, "logit_bias");
  p = {};
  p.logit_bias = {{-1, 1.0f}};
  ExpectInvalid(p, "logit_bias");
  p = {};
  p.logit_bias = {{5, 101.0f}};
  ExpectInvalid(p, "logit_bias");
  p = {};
  p.n_top_logprobs = kMaxTopLogprobs + 1;
  ExpectInvalid(p, "top_logprobs");
  p = {};
  p.n_top_logprobs = -2;
  ExpectInvalid(p, "top_logprobs");
}

TEST(SamplerTest, ValidationMessageQuotesTheRangeAndValue) {
  SamplingParams p;
  p.temperature = 3.0f;
  EXPECT_EQ(ValidateSamplingParams(p, 10).message(), "temperature must be in [0, 2], got 3");
  p = {};
  p.logit_bias = {{10, 1.0f}};
  EXPECT_EQ(ValidateSamplingParams(p, 10).message(),
            "logit_bias: token id 10 is out of range [0, 10)");
}

// ---- Constraints (engine/constraint.h) ----

// Allows only the tokens in `allowed`; counts calls.
class SetConstraint : public Constraint {
 public:
  explicit SetConstraint(std::set<int32_t> allowed) : allowed_(std::move(allowed)) {}
  int64_t Mask(float* logits, int32_t n_vocab) override {
    ++masks;
    for (int32_t t = 0; t < n_vocab; ++t) {
      if (allowed_.count(t) == 0) logits[t] = -std::numeric_limits<float>::infinity();
    }
    return static_cast<int64_t>(allowed_.size());
  }
  bool Accept(int32_t token) override { return allowed_.count(token) != 0; }
  bool Done() const override { return false; }
  int masks = 0;

 private:
  std::set<int32_t> allowed_;
};

TEST(SamplerConstraintTest, GreedyPicksTheBestAllowedTokenBeforeBiasAndPenalties) {
  const std::vector<float> logits = {5.0f, 1.0f, 3.0f, 2.0f, 4.0f};
  SetConstraint c({1, 3});
  Sampler plain(Seeded(0.0f), 5);
  EXPECT_EQ(plain.Sample(logits.data()).token, 0);
  Sampler greedy(Seeded(0.0f), 5);
  EXPECT_EQ(greedy.Sample(logits.data(), &c).token, 3);
  // A +100 bias on a masked token does not bring it back (the mask comes
  // first), and a bias among allowed tokens still counts.
  SamplingParams biased = Seeded(0.0f);
  biased.logit_bias = {{0, 100.0f}, {1, 10.0f}};
  Sampler b(biased, 5);
  EXPECT_EQ(b.Sample(logits.data(), &c).token, 1);
  EXPECT_EQ(c.masks, 2);
}

TEST(SamplerConstraintTest, SamplingNeverDrawsAMaskedTokenAndLogprobsLeaveThemOut) {
  std::vector<float> logits(1000);
  std::mt19937 rng(3);
  for (float& l : logits) l = std::normal_distribution<float>(0, 2)(rng);
  SetConstraint c({17, 400, 999});
  SamplingParams p = Seeded(1.0f);
  p.top_p = 0.9f;
  p.min_p = 0.01f;
  p.top_k = 50;
  p.n_top_logprobs = 5;
  Sampler s(p, 1000);
  for (int i = 0; i < 300; ++i) {
    SampleResult r = s.Sample(logits.data(), &c);
    EXPECT_TRUE(r.token == 17 || r.token == 400 || r.token == 999) << r.token;
    EXPECT_TRUE(std::isfinite(r.logprob));
    EXPECT_LE(r.top_logprobs.size(), 3u);
    double mass = 0;
    for (const auto& [id, lp] : r.top_logprobs) {
      EXPECT_TRUE(std::isfinite(lp));
      mass += std::exp(lp);
    }
    EXPECT_NEAR(mass, 1.0, 1e-4);  // the allowed tokens hold all the mass
    s.Accept(r.token, false);
  }
}

TEST(SamplerConstraintTest, NothingAllowedGivesNoToken) {
  const std::vector<float> logits = {1.0f, 2.0f};
  SetConstraint none({});
  Sampler s(Seeded(1.0f), 2);
  EXPECT_EQ(s.Sample(logits.data(), &none).token, -1);
}

TEST(SamplerConstraintTest, WithoutAConstraintResultsAreUnchanged) {
  std::vector<float> logits(5000);
  std::mt19937 rng(9);
  for (float& l : logits) l = std::normal_distribution<float>(0, 3)(rng);
  SamplingParams p = Seeded(0.8f);
  p.top_p = 0.95f;
  p.n_top_logprobs = 3;
  Sampler a(p, 5000), b(p, 5000);
  for (int i = 0; i < 50; ++i) {
    SampleResult x = a.Sample(logits.data());
    SampleResult y = b.Sample(logits.data(), static_cast<Constraint*>(nullptr));
    ASSERT_EQ(x.token, y.token);
    ASSERT_EQ(x.logprob, y.logprob);
    ASSERT_EQ(x.top_logprobs, y.top_logprobs);
  }
}

}  // namespace
}  // namespace reprise::engine
