// KV cache precision against the transformers references: the prompt logits
// of every reference case computed with F32, F16 and Q8_0 KV (one forward
// pass, so each position attends over the stored KV of all earlier ones),
// compared with transformers' logits: the largest difference relative to
// max(1, max|ref|), and how often the argmax agrees with the reference's.
// F32 KV is the 1e-5 golden path; F16 and Q8_0 must stay within the bounds
// below (measured, then fixed here with headroom; BENCHMARKS.md has the
// figures). Prints one line per case and type.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "golden_util.h"
#include "kernels/kv_format.h"
#include "testing/fixtures.h"

namespace reprise::testing {
namespace {

using nlohmann::json;

struct KvError {
  float rel = 0;       // max |got - ref| / max(1, max|ref|)
  int agree = 0, n = 0;  // argmax agreement over the prompt positions
};

std::string Slurp(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return "";
  std::string s;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) s.append(buf, n);
  std::fclose(f);
  return s;
}

class KvPrecision : public ::testing::TestWithParam<std::string> {};

TEST_P(KvPrecision, F16AndQ8KvStayNearTheReference) {
  const std::string name = GetParam();
  const std::string dir = FixturePath("reference/" + name);
  REQUIRE_FIXTURE(dir + "/reference.json");
  const json ref = json::parse(Slurp(dir + "/reference.json"));
  if (ref.contains("parent_case")) GTEST_SKIP() << "long variant: covered by its parent case";
  GoldenModel g = LoadGoldenModel(dir + "/" + name + ".gguf", 2);
  ASSERT_TRUE(g.model != nullptr);
  const model::ModelConfig& c = g.model->config();
  const int64_t V = c.n_vocab;
  std::vector<int32_t> input = ref["input_ids"].is_string()
                                   ? json::parse(ref["input_ids"].get<std::string>())
                                         .get<std::vector<int32_t>>()
                                   : ref["input_ids"].get<std::vector<int32_t>>();
  const std::vector<float> want = ReadF32(dir + "/logits.f32");
  ASSERT_EQ(want.size(), input.size() * V);
  const float scale = std::max(1.0f, MaxAbs(want));
  auto measure = [&](DType kv) {
    engine::SessionConfig sc;
    sc.kv_type = kv;
    sc.ctx_size = 1024;
    sc.prefill_chunk = static_cast<int32_t>(input.size());
    auto s = engine::Session::Create(*g.model, sc);
    EXPECT_TRUE(s.ok()) << s.status().message();
    std::vector<float> got(input.size() * V);
    EXPECT_TRUE((*s)->AppendAll(input, got.data()).ok());
    KvError e;
    e.rel = MaxAbsDiff(got, want) / scale;
    for (size_t t = 0; t < input.size(); ++t) {
      ++e.n;
      e.agree += Argmax(got.data() + t * V, V) == Argmax(want.data() + t * V, V);
    }
    return e;
  };
  const int64_t hk = c.k_dim() / c.n_kv_heads, hv = c.v_dim() / c.n_kv_heads;
  const KvError f32 = measure(DType::kF32), f16 = measure(DType::kF16);
  std::printf("[ kv precision ] %-22s f32 %.2e (%d/%d)  f16 %.2e (%d/%d)", name.c_str(), f32.rel,
              f32.agree, f32.n, f16.rel, f16.agree, f16.n);
  EXPECT_LE(f32.rel, 1e-5f);
  EXPECT_LE(f16.rel, 1e-3f) << "F16 KV";  // measured: at most 2.9e-4
  if (!kernels::KvTypeUnsupported(DType::kQ8_0, hk, hv).empty()) {
    std::printf("  q8_0 n/a (head sizes %lld/%lld)\n", static_cast<long long>(hk),
                static_cast<long long>(hv));
    return;
  }
  const KvError q8 = measure(DType::kQ8_0);
  std::printf("  q8_0 %.2e (%d/%d)\n", q8.rel, q8.agree, q8.n);
  EXPECT_LE(q8.rel, 2e-2f) << "Q8_0 KV";  // measured: at most 6.0e-3
  EXPECT_GE(q8.agree, q8.n * 9 / 10) << "Q8_0 KV greedy agreement";  // measured: 23-24 of 24
}

INSTANTIATE_TEST_SUITE_P(Cases, KvPrecision, ::testing::ValuesIn(TransformersCaseNames()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace reprise::testing
