#include "golden_util.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>

#include "testing/fixtures.h"

namespace reprise::testing {

GoldenModel LoadGoldenModel(const std::string& path, int n_threads,
                            kernels::DevicePreference device) {
  GoldenModel g;
  auto file = gguf::File::Open(path);
  if (!file.ok()) {
    ADD_FAILURE() << file.status().message();
    return g;
  }
  g.file = std::move(file).value();
  model::ModelOptions opts;
  opts.n_threads = n_threads;
  opts.device = device;
  auto m = model::Model::Load(g.file, opts);
  if (!m.ok()) {
    ADD_FAILURE() << m.status().message();
    return g;
  }
  g.model = std::move(m).value();
  return g;
}

std::vector<float> ReadF32(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  std::vector<float> v;
  if (!in) return v;
  const auto size = static_cast<size_t>(in.tellg());
  v.resize(size / sizeof(float));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
  return v;
}

float MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

float MaxAbs(const std::vector<float>& a) {
  float m = 0;
  for (float x : a) m = std::max(m, std::fabs(x));
  return m;
}

int32_t Argmax(const float* v, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (v[i] > v[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

namespace {

using nlohmann::json;

engine::SessionConfig F32Session(int32_t ctx) {
  engine::SessionConfig sc;
  sc.kv_type = DType::kF32;
  sc.ctx_size = ctx;
  return sc;
}

std::string StoriesModel() { return FixturePath("stories260K/stories260K.gguf"); }

// Greedy continuation as run.c does it: forced prompt tokens, then argmax.
std::vector<int32_t> RunC(model::Model& m, const std::vector<int32_t>& prompt, size_t n_out,
                          DType kv_type) {
  engine::SessionConfig sc;
  sc.kv_type = kv_type;
  auto s = engine::Session::Create(m, sc);
  EXPECT_TRUE(s.ok());
  const int64_t n_vocab = m.config().n_vocab;
  std::vector<float> logits(n_vocab);
  EXPECT_TRUE((*s)->Append(prompt, logits.data()).ok());
  std::vector<int32_t> out(prompt.begin() + 1, prompt.end());
  while (out.size() < n_out) {
    const int32_t t = Argmax(logits.data(), n_vocab);
    out.push_back(t);
    const int32_t next[1] = {t};
    EXPECT_TRUE((*s)->Append(next, logits.data()).ok());
  }
  return out;
}

}  // namespace

std::vector<std::string> TransformersCaseNames() {
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

void CheckTransformersCase(const std::string& name, kernels::DevicePreference device,
                           float rel_tol) {
  REQUIRE_FIXTURE(FixturePath("reference/index.json"));
  const std::string dir = FixturePath("reference/" + name);
  const std::string ref_path = dir + "/reference.json";
  REQUIRE_FIXTURE(ref_path);
  json ref = json::parse(ReadFile(ref_path));
  const bool is_long = ref.contains("parent_case");
  const std::string gguf_path =
      is_long ? dir + "/" + ref["gguf_file"].get<std::string>() : dir + "/" + name + ".gguf";
  GoldenModel g = LoadGoldenModel(gguf_path, 2, device);
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
    const float tol = rel_tol * std::max(1.0f, MaxAbs(want));
    EXPECT_LE(MaxAbsDiff(got, want), tol) << name << " last-8 logits";
    return;
  }
  std::vector<float> want = ReadF32(dir + "/logits.f32");
  ASSERT_EQ(want.size(), logits.size());
  const float tol = rel_tol * std::max(1.0f, MaxAbs(want));
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
    if (i + 1 < greedy.size()) {
      ASSERT_TRUE(s.Append(next, step.data()).ok());
    }
  }
  EXPECT_EQ(got_tokens, greedy) << name << " greedy tokens";
  const float step_tol = rel_tol * std::max(1.0f, MaxAbs(step_want));
  EXPECT_LE(MaxAbsDiff(step_all, step_want), step_tol) << name << " step logits";
}


void CheckStoriesCases(kernels::DevicePreference device, DType kv_type) {
  REQUIRE_FIXTURE(StoriesModel());
  json ref = json::parse(ReadFile(FixturePath("stories260K/reference.json")));
  GoldenModel g = LoadGoldenModel(StoriesModel(), 2, device);
  ASSERT_TRUE(g.model != nullptr);
  int n_cases = 0;
  for (const auto& c : ref["cases"]) {
    if (!c.contains("generated_ids") || !c.contains("prompt_ids")) continue;
    auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    auto want = c["generated_ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(RunC(*g.model, prompt, want.size(), kv_type), want) << c["cmd"];
    ++n_cases;
  }
  EXPECT_GE(n_cases, 2);
}

}  // namespace reprise::testing
