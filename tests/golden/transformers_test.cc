// Golden tests against Hugging Face transformers (fixtures/reference/): for
// every case in index.json, the full-prompt logits, the 32 greedy tokens and
// the incremental step logits, and the *_long cases' last-8 logits. The
// tolerance is the one the fixtures document: 1e-5 * max(1, max|ref|).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "golden_util.h"
#include "testing/fixtures.h"

namespace reprise::testing {
namespace {

using nlohmann::json;

std::vector<std::string> CaseNames() {
  std::vector<std::string> names;
  std::string text = ReadFile(FixturePath("reference/index.json"));
  if (text.empty()) return {"index_json_missing"};
  json index = json::parse(text, nullptr, false);
  if (index.is_discarded()) return {"index_json_invalid"};
  for (const auto& c : index["cases"]) {
    if (c.value("status", "") == "ok") names.push_back(c["case"].get<std::string>());
  }
  return names;
}

class TransformersGolden : public ::testing::TestWithParam<std::string> {};

engine::SessionConfig F32Session(int32_t ctx) {
  engine::SessionConfig sc;
  sc.kv_type = DType::kF32;
  sc.ctx_size = ctx;
  return sc;
}

TEST_P(TransformersGolden, MatchesReference) {
  const std::string name = GetParam();
  REQUIRE_FIXTURE(FixturePath("reference/index.json"));
  const std::string dir = FixturePath("reference/" + name);
  const std::string ref_path = dir + "/reference.json";
  REQUIRE_FIXTURE(ref_path);
  json ref = json::parse(ReadFile(ref_path));
  const bool is_long = ref.contains("parent_case");
  const std::string gguf_path =
      is_long ? dir + "/" + ref["gguf_file"].get<std::string>() : dir + "/" + name + ".gguf";
  GoldenModel g = LoadGoldenModel(gguf_path);
  ASSERT_TRUE(g.model != nullptr);
  const int64_t n_vocab = g.model->config().n_vocab;

  std::vector<int32_t> input;
  if (ref["input_ids"].is_string()) {
    input = json::parse(ref["input_ids"].get<std::string>()).get<std::vector<int32_t>>();
  } else {
    input = ref["input_ids"].get<std::vector<int32_t>>();
  }
  ASSERT_FALSE(input.empty());

  auto session = engine::Session::Create(*g.model, F32Session(1024));
  ASSERT_TRUE(session.ok()) << session.status().message();
  engine::Session& s = **session;

  // One forward pass over the whole prompt.
  std::vector<float> logits(input.size() * n_vocab);
  {
    engine::SessionConfig one_pass = F32Session(1024);
    one_pass.prefill_chunk = static_cast<int32_t>(input.size());
    auto s1 = engine::Session::Create(*g.model, one_pass);
    ASSERT_TRUE(s1.ok());
    Status st = (*s1)->AppendAll(input, logits.data());
    ASSERT_TRUE(st.ok()) << st.message();
  }
  if (is_long) {
    std::vector<float> want = ReadF32(dir + "/logits_last8.f32");
    ASSERT_EQ(want.size(), static_cast<size_t>(8 * n_vocab));
    std::vector<float> got(logits.end() - 8 * n_vocab, logits.end());
    const float tol = 1e-5f * std::max(1.0f, MaxAbs(want));
    EXPECT_LE(MaxAbsDiff(got, want), tol) << name << " last-8 logits";
    return;
  }
  std::vector<float> want = ReadF32(dir + "/logits.f32");
  ASSERT_EQ(want.size(), logits.size());
  const float tol = 1e-5f * std::max(1.0f, MaxAbs(want));
  EXPECT_LE(MaxAbsDiff(logits, want), tol) << name << " prompt logits";

  // Incremental greedy decoding: prefill, then one token at a time.
  std::vector<int32_t> greedy = ref["greedy_tokens"].get<std::vector<int32_t>>();
  std::vector<float> step_want = ReadF32(dir + "/greedy_step_logits.f32");
  ASSERT_EQ(step_want.size(), greedy.size() * n_vocab);
  std::vector<float> step(n_vocab), step_all(greedy.size() * n_vocab);
  ASSERT_TRUE(s.Append(input, step.data()).ok());
  std::vector<int32_t> got_tokens;
  for (size_t i = 0; i < greedy.size(); ++i) {
    std::copy(step.begin(), step.end(), step_all.begin() + i * n_vocab);
    const int32_t tok = Argmax(step.data(), n_vocab);
    got_tokens.push_back(tok);
    const int32_t next[1] = {tok};
    if (i + 1 < greedy.size()) ASSERT_TRUE(s.Append(next, step.data()).ok());
  }
  EXPECT_EQ(got_tokens, greedy) << name << " greedy tokens";
  const float step_tol = 1e-5f * std::max(1.0f, MaxAbs(step_want));
  EXPECT_LE(MaxAbsDiff(step_all, step_want), step_tol) << name << " step logits";
}

INSTANTIATE_TEST_SUITE_P(Cases, TransformersGolden, ::testing::ValuesIn(CaseNames()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace reprise::testing
