// Black-box tests of `reprise tokenize`, `reprise detokenize` and
// `reprise convert-vocab`: JSON on stdout, errors on stderr with a non-zero
// exit code, vocab-only GGUFs accepted as --model.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "testing/fixtures.h"

namespace reprise::tokenizer {
namespace {

using ::reprise::testing::BinaryPath;
using ::reprise::testing::CliResult;
using ::reprise::testing::RunReprise;
using ::reprise::testing::FileExists;
using ::reprise::testing::FixturePath;
using ::reprise::testing::ReadFile;
using ::reprise::testing::TempDir;

TEST(TokenizeCli, PrintsTokensJsonForVocabOnlyGguf) {
  REQUIRE_REPRISE_BINARY();
  const std::string vocab = FixturePath("vocab/ggml-vocab-llama-spm.gguf");
  REQUIRE_FIXTURE(vocab);
  auto r = RunReprise({"tokenize", "--model", vocab, "--text", "Hello world"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out), nlohmann::json::parse(R"({"tokens":[1,15043,3186]})"));
  r = RunReprise({"tokenize", "--model", vocab, "--text", "Hello world", "--no-bos"});
  EXPECT_EQ(nlohmann::json::parse(r.out), nlohmann::json::parse(R"({"tokens":[15043,3186]})"));
  r = RunReprise({"tokenize", "--model", vocab, "--text", "</s>", "--no-bos", "--special"});
  EXPECT_EQ(nlohmann::json::parse(r.out), nlohmann::json::parse(R"({"tokens":[2]})"));
}

TEST(TokenizeCli, ReadsTextFile) {
  REQUIRE_REPRISE_BINARY();
  const std::string model = FixturePath("stories260K/stories260K.gguf");
  REQUIRE_FIXTURE(model);
  const std::string path = TempDir() + "/prompt.txt";
  FILE* f = fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  fputs("Once upon a time", f);
  fclose(f);
  auto r = RunReprise({"tokenize", "--model", model, "--text-file", path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out),
            nlohmann::json::parse(R"({"tokens":[1,403,407,261,378]})"));
}

TEST(DetokenizeCli, PrintsTextAndRejectsBadIds) {
  REQUIRE_REPRISE_BINARY();
  const std::string vocab = FixturePath("vocab/ggml-vocab-gpt-2.gguf");
  REQUIRE_FIXTURE(vocab);
  auto r = RunReprise({"detokenize", "--model", vocab, "--tokens", "15496,995"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["text"], "Hello world");
  r = RunReprise({"detokenize", "--model", vocab, "--tokens", "1,99999"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(r.out.empty());
  EXPECT_NE(r.err.find("out of range"), std::string::npos) << r.err;
  r = RunReprise({"detokenize", "--model", vocab, "--tokens", "1,abc"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("abc"), std::string::npos) << r.err;
}

TEST(TokenizeCli, MissingModelOrTextIsAnError) {
  REQUIRE_REPRISE_BINARY();
  auto r = RunReprise({"tokenize", "--model", TempDir() + "/absent.gguf", "--text", "x"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_FALSE(r.err.empty());
  const std::string vocab = FixturePath("vocab/ggml-vocab-gpt-2.gguf");
  REQUIRE_FIXTURE(vocab);
  r = RunReprise({"tokenize", "--model", vocab});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--text"), std::string::npos) << r.err;
}

TEST(ConvertVocabCli, BuildsLlama3VocabThatTokenizes) {
  REQUIRE_REPRISE_BINARY();
  const std::string dir = FixturePath("hf-tokenizers/llama3.2-bpe");
  REQUIRE_FIXTURE(dir + "/encoder.json");
  const std::string out = TempDir() + "/cli-llama3.gguf";
  auto r = RunReprise({"convert-vocab", "--encoder-json", dir + "/encoder.json", "--vocab-bpe",
                dir + "/vocab.bpe", "--pre", "llama-bpe", "--out", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["n_vocab"], 128256);
  r = RunReprise({"tokenize", "--model", out, "--text", "Hello world<|eot_id|>", "--special"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out),
            nlohmann::json::parse(R"({"tokens":[128000,9906,1917,128009]})"));
}

}  // namespace
}  // namespace reprise::tokenizer
