// Exactness against Hugging Face transformers outputs, wherever the
// vocabulary is among the fixtures:
//  - hf-tokenizers/tokenizer_tests.json: distilgpt2 (gpt-2 vocab),
//    coreml-projects/Llama-2-7b-chat-coreml (llama-spm vocab),
//    pcuenq/Llama-3.2-1B-Instruct-tokenizer (Llama 3 vocab built from
//    llama3.2-bpe). Not covered (vocabulary absent): bert, falcon, gemma,
//    whisper, t5, distilbert.
//  - TinyLlama__TinyLlama-1.1B-Chat-v1.0.json (Llama 2 vocab = llama-spm) and
//    openai-community__gpt2.json. Not covered: Qwen__Qwen2.5-0.5B.json (no
//    Qwen vocabulary among the fixtures).
//  - stories260K/reference.json: llama2.c's prompt ids and decoded output.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.h"
#include "testing/fixtures.h"

namespace reprise::tokenizer {
namespace {

using ::reprise::testing::FixturePath;
using ::reprise::testing::ReadFile;
using testing::CleanUpTokenizationSpaces;
using testing::IdsToString;

nlohmann::json LoadJson(const std::string& path) {
  return nlohmann::json::parse(ReadFile(path), nullptr, /*allow_exceptions=*/false);
}

std::string MaybeCleanUp(const std::string& s, bool clean_up) {
  return clean_up ? CleanUpTokenizationSpaces(s) : s;
}

void CheckTokenizerTestsJson(const Tokenizer& tok, const std::string& model, bool clean_up) {
  const auto all = LoadJson(FixturePath("hf-tokenizers/tokenizer_tests.json"));
  ASSERT_TRUE(all.contains(model)) << model;
  int n = 0;
  for (const auto& c : all[model]) {
    const std::string input = c["input"];
    const auto expected = c["encoded"]["input_ids"].get<std::vector<int32_t>>();
    // transformers' encode adds BOS per the tokenizer and parses special tokens.
    const auto ids = tok.Encode(input, /*add_special=*/true, /*parse_special=*/true);
    EXPECT_EQ(IdsToString(ids), IdsToString(expected)) << model << " input: '" << input << "'";
    auto with_special = tok.Decode(expected, /*skip_special=*/false);
    auto without_special = tok.Decode(expected, /*skip_special=*/true);
    ASSERT_TRUE(with_special.ok() && without_special.ok());
    EXPECT_EQ(MaybeCleanUp(*with_special, clean_up), c["decoded_with_special"].get<std::string>())
        << model << " input: '" << input << "'";
    EXPECT_EQ(MaybeCleanUp(*without_special, clean_up),
              c["decoded_without_special"].get<std::string>())
        << model << " input: '" << input << "'";
    ++n;
  }
  EXPECT_GE(n, 18);
}

TEST(HfTokenizerTestsJson, Distilgpt2MatchesIdsAndDecodes) {
  const std::string vocab = FixturePath("vocab/ggml-vocab-gpt-2.gguf");
  REQUIRE_FIXTURE(vocab);
  REQUIRE_FIXTURE(FixturePath("hf-tokenizers/tokenizer_tests.json"));
  auto tok = testing::LoadTokenizer(vocab);
  ASSERT_NE(tok, nullptr);
  CheckTokenizerTestsJson(*tok, "distilgpt2", /*clean_up=*/true);
}

TEST(HfTokenizerTestsJson, Llama2MatchesIdsAndDecodes) {
  const std::string vocab = FixturePath("vocab/ggml-vocab-llama-spm.gguf");
  REQUIRE_FIXTURE(vocab);
  REQUIRE_FIXTURE(FixturePath("hf-tokenizers/tokenizer_tests.json"));
  auto tok = testing::LoadTokenizer(vocab);
  ASSERT_NE(tok, nullptr);
  CheckTokenizerTestsJson(*tok, "coreml-projects/Llama-2-7b-chat-coreml", /*clean_up=*/false);
}

TEST(HfTokenizerTestsJson, Llama32MatchesIdsAndDecodes) {
  REQUIRE_FIXTURE(FixturePath("hf-tokenizers/llama3.2-bpe/encoder.json"));
  REQUIRE_FIXTURE(FixturePath("hf-tokenizers/tokenizer_tests.json"));
  auto tok = testing::LoadTokenizer(testing::Llama3VocabPath());
  ASSERT_NE(tok, nullptr);
  CheckTokenizerTestsJson(*tok, "pcuenq/Llama-3.2-1B-Instruct-tokenizer", /*clean_up=*/true);
}

// The per-model files list ids and token strings but not the input text. The
// input is recovered by decoding the ids (lossless for these vocabularies);
// re-encoding it must give transformers' ids, the pieces must be the token
// strings, and the decodes must be transformers' decodes.
void CheckModelJson(const Tokenizer& tok, const std::string& file, bool clean_up) {
  const auto doc = LoadJson(FixturePath("hf-tokenizers/" + file));
  ASSERT_TRUE(doc.contains("entries")) << file;
  int n = 0;
  for (const auto& [name, e] : doc["entries"].items()) {
    const auto expected = e["input_ids"].get<std::vector<int32_t>>();
    const auto pieces = e["tokens"].get<std::vector<std::string>>();
    ASSERT_EQ(expected.size(), pieces.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(tok.TokenPiece(expected[i]), pieces[i]) << file << " " << name << " #" << i;
    }
    auto skip = tok.Decode(expected, /*skip_special=*/true);
    auto with = tok.Decode(expected, /*skip_special=*/false);
    ASSERT_TRUE(skip.ok() && with.ok());
    EXPECT_EQ(MaybeCleanUp(*skip, clean_up), e["decoded_skip_special"].get<std::string>())
        << file << " " << name;
    EXPECT_EQ(MaybeCleanUp(*with, clean_up), e["decoded_with_special"].get<std::string>())
        << file << " " << name;
    const auto ids = tok.Encode(*skip, /*add_special=*/true, /*parse_special=*/true);
    EXPECT_EQ(IdsToString(ids), IdsToString(expected)) << file << " " << name;
    ++n;
  }
  EXPECT_GE(n, 30) << file;
}

TEST(HfModelJson, TinyLlamaMatchesIdsPiecesAndDecodes) {
  const std::string vocab = FixturePath("vocab/ggml-vocab-llama-spm.gguf");
  REQUIRE_FIXTURE(vocab);
  REQUIRE_FIXTURE(FixturePath("hf-tokenizers/TinyLlama__TinyLlama-1.1B-Chat-v1.0.json"));
  auto tok = testing::LoadTokenizer(vocab);
  ASSERT_NE(tok, nullptr);
  CheckModelJson(*tok, "TinyLlama__TinyLlama-1.1B-Chat-v1.0.json", /*clean_up=*/false);
}

// transformers 4.57.1 rendered these gpt2 decodes without
// clean_up_tokenization_spaces (e.g. "for 'ship'" keeps its space).
TEST(HfModelJson, Gpt2MatchesIdsPiecesAndDecodes) {
  const std::string vocab = FixturePath("vocab/ggml-vocab-gpt-2.gguf");
  REQUIRE_FIXTURE(vocab);
  REQUIRE_FIXTURE(FixturePath("hf-tokenizers/openai-community__gpt2.json"));
  auto tok = testing::LoadTokenizer(vocab);
  ASSERT_NE(tok, nullptr);
  CheckModelJson(*tok, "openai-community__gpt2.json", /*clean_up=*/false);
}

TEST(Stories260K, PromptIdsAndDecodedOutputMatchLlama2c) {
  const std::string model = FixturePath("stories260K/stories260K.gguf");
  REQUIRE_FIXTURE(model);
  auto tok = testing::LoadTokenizer(model);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(IdsToString(tok->Encode("Once upon a time", true, false)),
            IdsToString({1, 403, 407, 261, 378}));
  const auto ref = LoadJson(FixturePath("stories260K/reference.json"));
  int checked = 0;
  for (const auto& c : ref["cases"]) {
    const std::string cmd = c["cmd"];
    if (!c.contains("prompt_ids")) continue;
    const auto prompt_ids = c["prompt_ids"].get<std::vector<int32_t>>();
    // The prompt is the -i argument ('...'), or empty.
    std::string prompt;
    const size_t q = cmd.find("-i '");
    if (q != std::string::npos) prompt = cmd.substr(q + 4, cmd.find('\'', q + 4) - (q + 4));
    EXPECT_EQ(IdsToString(tok->Encode(prompt, true, false)), IdsToString(prompt_ids)) << cmd;
    // llama2.c prints the decoded tokens after BOS; its stdout is the decode.
    std::string stdout_text = c.value("stdout", "");
    if (c.contains("stdout_file")) {
      stdout_text = ReadFile(FixturePath("stories260K/" + c["stdout_file"].get<std::string>()));
    }
    if (c.contains("generated_ids") && !stdout_text.empty()) {
      auto ids = c["generated_ids"].get<std::vector<int32_t>>();
      ids.insert(ids.begin(), prompt_ids.front());  // BOS
      auto text = tok->Decode(ids, /*skip_special=*/true);
      ASSERT_TRUE(text.ok());
      while (!stdout_text.empty() && stdout_text.back() == '\n') stdout_text.pop_back();
      std::string got = *text;
      while (!got.empty() && got.back() == '\n') got.pop_back();
      EXPECT_EQ(got, stdout_text) << cmd;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 3);
}

}  // namespace
}  // namespace reprise::tokenizer
