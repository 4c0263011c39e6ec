// Golden tests against llama2.c's run.c on stories260K (fixtures/stories260K):
// every greedy case token for token, through the model directly and through
// the `reprise generate` CLI, plus the decoded text of "Once upon a time".
#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "golden_util.h"
#include "testing/fixtures.h"

namespace reprise::testing {
namespace {

using nlohmann::json;

std::string StoriesModel() { return FixturePath("stories260K/stories260K.gguf"); }

class StoriesGolden : public ::testing::TestWithParam<DType> {};

TEST_P(StoriesGolden, EveryGreedyCaseMatchesRunC) {
  CheckStoriesCases(kernels::DevicePreference::kCpu, GetParam());
}

INSTANTIATE_TEST_SUITE_P(KvTypes, StoriesGolden, ::testing::Values(DType::kF32, DType::kF16),
                         [](const ::testing::TestParamInfo<DType>& info) {
                           return std::string(DTypeName(info.param));
                         });


TEST(StoriesCli, GenerateJsonMatchesRunCForOnceUponATime) {
  REQUIRE_FIXTURE(StoriesModel());
  json ref = json::parse(ReadFile(FixturePath("stories260K/reference.json")));
  const json* once = nullptr;
  for (const auto& c : ref["cases"]) {
    if (c.contains("stdout") && c["prompt_ids"] == json({1, 403, 407, 261, 378})) once = &c;
  }
  ASSERT_NE(once, nullptr);
  int status = 0;
  std::string out = RunShell(BinaryPath("reprise") + " generate --model " + StoriesModel() +
                                   " --prompt 'Once upon a time' --n-predict 60 --temp 0 "
                                   "--ignore-eos --json 2>/dev/null",
                               &status);
  ASSERT_EQ(status, 0) << out;
  json j = json::parse(out);
  EXPECT_EQ(j["prompt_tokens"], json({1, 403, 407, 261, 378}));
  EXPECT_EQ(j["tokens"].size(), 60u);
  // run.c prints the prompt (without the dummy-prefix space) then the text.
  const std::string want = (*once)["stdout"].get<std::string>();
  const std::string got = "Once upon a time" + j["text"].get<std::string>();
  EXPECT_EQ(got, want);
  EXPECT_GT(j["timings"]["gen_tok_per_s"].get<double>(), 0);
}

TEST(StoriesCli, BadInputExitsNonZeroWithMessage) {
  REQUIRE_FIXTURE(StoriesModel());
  int status = 0;
  std::string out = RunShell(BinaryPath("reprise") + " generate --model " + StoriesModel() +
                                   " --prompt-tokens 1,9999 --n-predict 4 2>&1",
                               &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("out of range"), std::string::npos) << out;
  out = RunShell(BinaryPath("reprise") + " generate --model /nonexistent.gguf 2>&1", &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("error:"), std::string::npos) << out;
}

}  // namespace
}  // namespace reprise::testing
