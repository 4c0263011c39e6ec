// Black-box tests of the reprise CLI: JSON to stdout, errors to stderr with a
// non-zero exit. `logits` is checked against transformers' reference logits.
#include <gtest/gtest.h>

#include <cmath>
#include <sys/wait.h>

#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "testing/fixtures.h"

namespace reprise::testing {
namespace {

using nlohmann::json;

std::string RunCli(const std::string& args, int* status, bool merge_stderr = false) {
  return RunShell(BinaryPath("reprise") + " " + args + (merge_stderr ? " 2>&1" : " 2>/dev/null"),
                  status);
}

TEST(Cli, InfoJsonDescribesModel) {
  const std::string model = FixturePath("stories260K/stories260K.gguf");
  REQUIRE_FIXTURE(model);
  int status = 0;
  std::string out = RunCli("info --json --model " + model, &status);
  ASSERT_EQ(status, 0);
  json j = json::parse(out);
  EXPECT_NE(out.find("llama"), std::string::npos);
  EXPECT_NE(out.find("token_embd.weight"), std::string::npos);
  EXPECT_TRUE(j.is_object());
}

TEST(Cli, InfoRejectsNonGguf) {
  int status = 0;
  std::string out = RunCli("info --model /etc/hostname", &status, true);
  EXPECT_EQ(status, 1);
  EXPECT_NE(out.find("error:"), std::string::npos) << out;
}

TEST(Cli, LogitsMatchTransformersReference) {
  const std::string dir = FixturePath("reference/qwen3");
  REQUIRE_FIXTURE(dir + "/qwen3.gguf");
  json ref = json::parse(ReadFile(dir + "/reference.json"));
  std::string ids;
  for (int id : ref["input_ids"]) ids += (ids.empty() ? "" : ",") + std::to_string(id);
  const std::string out_path = TempDir() + "/qwen3_logits.f32";
  int status = 0;
  RunCli("logits --model " + dir + "/qwen3.gguf --prompt-tokens " + ids + " --out " + out_path,
      &status);
  ASSERT_EQ(status, 0);
  std::string got = ReadFile(out_path), want = ReadFile(dir + "/logits.f32");
  ASSERT_EQ(got.size(), want.size());
  const float* g = reinterpret_cast<const float*>(got.data());
  const float* w = reinterpret_cast<const float*>(want.data());
  float max_ref = 0, max_diff = 0;
  for (size_t i = 0; i < want.size() / 4; ++i) {
    max_ref = std::max(max_ref, std::fabs(w[i]));
    max_diff = std::max(max_diff, std::fabs(g[i] - w[i]));
  }
  EXPECT_LE(max_diff, 1e-5f * std::max(1.0f, max_ref));
  // --last keeps the final rows only.
  RunCli("logits --model " + dir + "/qwen3.gguf --prompt-tokens " + ids + " --last 3 --out " +
          out_path,
      &status);
  ASSERT_EQ(status, 0);
  std::string last = ReadFile(out_path);
  ASSERT_EQ(last.size(), 3u * 512 * 4);
  EXPECT_EQ(0, std::memcmp(last.data(), got.data() + got.size() - last.size(), last.size()));
}

TEST(Cli, MakeModelWritesLoadableModel) {
  const std::string path = TempDir() + "/tiny_q8.gguf";
  int status = 0;
  RunCli("make-model --out " + path +
          " --dim 64 --layers 1 --heads 4 --kv-heads 2 --ffn 64 --vocab 128 --type q8_0",
      &status);
  ASSERT_EQ(status, 0);
  std::string out = RunCli("generate --model " + path +
                            " --prompt-tokens 1,2,3 --n-predict 5 --temp 0 --ignore-eos --json",
                        &status);
  ASSERT_EQ(status, 0) << out;
  json j = json::parse(out);
  EXPECT_EQ(j["tokens"].size(), 5u);
  // Greedy is deterministic.
  std::string again = RunCli("generate --model " + path +
                              " --prompt-tokens 1,2,3 --n-predict 5 --temp 0 --ignore-eos --json",
                          &status);
  EXPECT_EQ(json::parse(again)["tokens"], j["tokens"]);
}

// A preset with shape options: the options win (gpu_check's MODEL_LAYERS
// makes a Llama-3-8B-shaped file of a few layers this way), the rest of the
// shape is the preset's, and the weights are the same bytes whoever writes
// them (one random stream over each matrix).
TEST(Cli, MakeModelShapeOptionsOverrideThePreset) {
  const std::string a = TempDir() + "/preset_a.gguf", b = TempDir() + "/preset_b.gguf";
  int status = 0;
  const std::string args = " --preset llama3-8b --layers 2 --ffn 256 --vocab 512 --ctx 4096 --type q4_k";
  RunCli("make-model --out " + a + args, &status);
  ASSERT_EQ(status, 0);
  const std::string info = RunCli("info --model " + a, &status);
  ASSERT_EQ(status, 0) << info;
  EXPECT_NE(info.find("block_count: 2"), std::string::npos) << info;
  EXPECT_NE(info.find("feed_forward_length: 256"), std::string::npos) << info;
  EXPECT_NE(info.find("context_length: 4096"), std::string::npos) << info;
  EXPECT_NE(info.find("embedding_length: 4096"), std::string::npos) << info;  // the preset's
  EXPECT_NE(info.find("attention.head_count_kv: 8"), std::string::npos) << info;
  RunCli("make-model --out " + b + args, &status);
  ASSERT_EQ(status, 0);
  EXPECT_EQ(ReadFile(a), ReadFile(b));
}

TEST(Cli, SeededSamplingIsReproducible) {
  const std::string model = FixturePath("stories260K/stories260K.gguf");
  REQUIRE_FIXTURE(model);
  int status = 0;
  const std::string args = "generate --model " + model +
                           " --prompt-tokens 1 --n-predict 20 --temp 1 --seed 7 --json";
  json a = json::parse(RunCli(args, &status));
  json b = json::parse(RunCli(args, &status));
  EXPECT_EQ(a["tokens"], b["tokens"]);
}

TEST(Cli, PromptLongerThanContextIsAnError) {
  const std::string model = FixturePath("stories260K/stories260K.gguf");
  REQUIRE_FIXTURE(model);
  std::string ids = "1";
  for (int i = 0; i < 2100; ++i) ids += ",300";  // context_length is 2048
  int status = 0;
  std::string out = RunCli("generate --model " + model + " --prompt-tokens " + ids, &status, true);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("context"), std::string::npos) << out;
}

// bench --batch B: B streams decoded together; total = B x per stream, and
// the bytes a step streams are reported; bad values are refused.
TEST(Cli, BenchBatchReportsTotalAndPerStreamSpeed) {
  const std::string model = FixturePath("stories260K/stories260K.gguf");
  REQUIRE_FIXTURE(model);
  int status = 0;
  const std::string out =
      RunCli("bench --model " + model + " --threads 1 --pp 16 --tg 8 --reps 1 --batch 3 --json",
             &status);
  ASSERT_EQ(status, 0) << out;
  const json j = json::parse(out);
  EXPECT_EQ(j["batch"], 3);
  const double total = j["tg_tok_per_s"], per_stream = j["tg_per_stream_tok_per_s"];
  EXPECT_GT(per_stream, 0.0);
  EXPECT_NEAR(total, 3 * per_stream, 1e-6 * total);
  EXPECT_GT(j["tg_weight_gb_per_s"].get<double>(), 0.0);
  EXPECT_GT(j["tg_kv_gb_per_s"].get<double>(), 0.0);
  const std::string bad = RunCli("bench --model " + model + " --batch 0", &status, true);
  EXPECT_NE(status, 0);
  EXPECT_NE(bad.find("--batch"), std::string::npos) << bad;
  const std::string too_long =
      RunCli("bench --model " + model + " --pp 4000 --tg 8 --batch 2", &status, true);
  EXPECT_NE(status, 0);
  EXPECT_NE(too_long.find("context"), std::string::npos) << too_long;
}

// --no-warmup (for profilers) skips the warm-up run and still measures.
TEST(Cli, BenchWithoutWarmupSkipsOnlyTheWarmup) {
  const std::string model = FixturePath("stories260K/stories260K.gguf");
  REQUIRE_FIXTURE(model);
  int status = 0;
  const std::string base = "bench --model " + model + " --threads 1 --pp 16 --tg 4 --reps 1";
  const std::string warm = RunCli(base, &status, true);
  ASSERT_EQ(status, 0) << warm;
  EXPECT_NE(warm.find("warm-up: pp16, tg4"), std::string::npos) << warm;
  const std::string cold = RunCli(base + " --no-warmup", &status, true);
  ASSERT_EQ(status, 0) << cold;
  EXPECT_EQ(cold.find("warm-up"), std::string::npos) << cold;
  EXPECT_NE(cold.find("rep 1: pp16"), std::string::npos) << cold;
}

}  // namespace
}  // namespace reprise::testing
