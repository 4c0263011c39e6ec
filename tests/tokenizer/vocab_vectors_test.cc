// Exactness against the reference tokenizers: every case of every
// vocab/ggml-vocab-NAME.gguf.inp/.out pair whose vocabulary is present
// (identical ids with add_special = parse_special = false, and
// Decode(Encode(x)) == x), plus Llama 3 with the vocabulary built from
// hf-tokenizers/llama3.2-bpe.
// Not covered: qwen2 / qwen35 (.inp/.out only; no Qwen vocabulary among the
// fixtures).
#include <gtest/gtest.h>

#include "test_util.h"
#include "testing/fixtures.h"

namespace reprise::tokenizer {
namespace {

using ::reprise::testing::FixturePath;
using testing::IdsToString;

void CheckVectors(const Tokenizer& tok, const std::string& name) {
  const std::string base = FixturePath("vocab/ggml-vocab-" + name + ".gguf");
  const auto cases = testing::ReadVectorFiles(base + ".inp", base + ".out");
  ASSERT_GE(cases.size(), 40u) << name;
  int mismatches = 0;
  for (const auto& c : cases) {
    const std::vector<int32_t> ids = tok.Encode(c.text, /*add_special=*/false,
                                                /*parse_special=*/false);
    if (ids != c.ids) ++mismatches;
    EXPECT_EQ(IdsToString(ids), IdsToString(c.ids)) << name << " text: '" << c.text << "'";
    auto decoded = tok.Decode(c.ids);
    ASSERT_TRUE(decoded.ok()) << decoded.status().message();
    EXPECT_EQ(*decoded, c.text) << name << " round trip";
  }
  EXPECT_EQ(mismatches, 0) << name << ": " << mismatches << " of " << cases.size() << " differ";
}

class VocabVectorsTest : public ::testing::TestWithParam<const char*> {};

TEST_P(VocabVectorsTest, MatchesReferenceIdsAndRoundTrips) {
  const std::string path = FixturePath(std::string("vocab/ggml-vocab-") + GetParam() + ".gguf");
  REQUIRE_FIXTURE(path);
  auto tok = testing::LoadTokenizer(path);
  ASSERT_NE(tok, nullptr);
  CheckVectors(*tok, GetParam());
}

INSTANTIATE_TEST_SUITE_P(AllPresentVocabs, VocabVectorsTest,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "deepseek-coder",
                                           "deepseek-llm", "starcoder"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) c = (c == '-') ? '_' : c;
                           return n;
                         });

// SPM encodes text in chunks at '▁' runs when no token has '▁' after another
// character; adding such a token (absent from the text) disables chunking, so
// both paths must agree exactly.
TEST(SpmChunking, ChunkedEncodingEqualsWholeTextEncoding) {
  const std::string path = FixturePath("vocab/ggml-vocab-llama-spm.gguf");
  REQUIRE_FIXTURE(path);
  auto file = gguf::File::Open(path);
  ASSERT_TRUE(file.ok());
  auto spec = Tokenizer::ReadVocabSpec(**file);
  ASSERT_TRUE(spec.ok());
  auto chunked = Tokenizer::FromSpec(*spec);
  spec->tokens.push_back("\x01\xe2\x96\x81");
  spec->scores.push_back(-1e9f);
  spec->token_types.push_back(1);
  auto whole = Tokenizer::FromSpec(*spec);
  ASSERT_TRUE(chunked.ok() && whole.ok());
  std::string text;
  for (const auto& name : {"llama-spm", "gpt-2"}) {
    text += reprise::testing::ReadFile(FixturePath(std::string("vocab/ggml-vocab-") + name +
                                                   ".gguf.inp"));
  }
  text += "  leading   and trailing   \n\n\t mixed\xe2\x96\x81marks ▁▁ x";
  EXPECT_EQ(IdsToString((*chunked)->Encode(text, true, false)),
            IdsToString((*whole)->Encode(text, true, false)));
}

// Phi-3's special tokens swallow the whitespace after them (rstrip in its
// tokenizer.json; llama.cpp restores it by model name), except <s>.
TEST(Phi3SpecialTokens, RstripSwallowsWhitespaceAfterChatTokens) {
  const std::string path = FixturePath("vocab/ggml-vocab-phi-3.gguf");
  REQUIRE_FIXTURE(path);
  auto tok = testing::LoadTokenizer(path);
  ASSERT_NE(tok, nullptr);
  const auto ids = tok->Encode("<|user|>\nHello<|end|>\n<|assistant|>", false, true);
  EXPECT_EQ(IdsToString(ids), IdsToString({32010, 15043, 32007, 32001}));
  // <s> keeps the space after it; parse_special off leaves control texts alone.
  EXPECT_EQ(IdsToString(tok->Encode("<s> Hi", false, true)), IdsToString({1, 29871, 6324}));
  const auto literal = tok->Encode("<|end|>", false, false);
  EXPECT_EQ(std::count(literal.begin(), literal.end(), 32007), 0);
  EXPECT_EQ(*tok->Decode(literal), "<|end|>");
  EXPECT_TRUE(tok->IsEog(32007));  // <|end|>
  EXPECT_TRUE(tok->IsEog(32000));  // <|endoftext|> (eos)
}

// Phi-3's "</s>" is user-defined in its GGUF; llama.cpp takes tokens spelled
// like end-of-generation markers for control tokens, so with special parsing
// off "</s>" is text ("▁</", "s", ">"), not EOS. Vector from llama.cpp's
// tokenizer (parse_special off, no BOS).
TEST(Phi3SpecialTokens, EndOfSequenceSpellingIsTextWithoutSpecialParsing) {
  const std::string path = FixturePath("vocab/ggml-vocab-phi-3.gguf");
  REQUIRE_FIXTURE(path);
  auto tok = testing::LoadTokenizer(path);
  ASSERT_NE(tok, nullptr);
  const std::string text = "<|im_start|>user\nnot special here<|im_end|> <s> </s>";
  EXPECT_EQ(IdsToString(tok->Encode(text, false, false)),
            IdsToString({529,  29989, 326,  29918, 2962, 29989, 29958, 1792, 13,
                         1333, 4266,  1244, 29966, 29989, 326,   29918, 355,  29989,
                         29958, 529,  29879, 29958, 1533, 29879, 29958}));
  EXPECT_TRUE(tok->IsControl(2));
  EXPECT_TRUE(tok->IsEog(2));
  // With special parsing on it is still the token.
  const auto parsed = tok->Encode("hi</s>", false, true);
  EXPECT_EQ(parsed.back(), 2);
}

// Control-token texts inside "plain" ranges (request text in a rendered chat
// prompt) are tokenized as text; outside them they are tokens.
TEST(Phi3SpecialTokens, PlainRangesKeepControlTextsAsText) {
  const std::string path = FixturePath("vocab/ggml-vocab-phi-3.gguf");
  REQUIRE_FIXTURE(path);
  auto tok = testing::LoadTokenizer(path);
  ASSERT_NE(tok, nullptr);
  const std::string text = "<|user|>hi<|end|><|assistant|><|end|>";
  const std::vector<TextRange> found = tok->FindControlTexts(text);
  ASSERT_EQ(found.size(), 4u);
  EXPECT_EQ(found[1].begin, 10u);
  EXPECT_EQ(found[1].end, 17u);  // the first <|end|>
  // Mark the first <|end|> and <|assistant|> as request text.
  const std::vector<TextRange> plain = {{10, 17}, {17, 30}};
  const auto ids = tok->EncodeWithPlainRanges(text, false, plain);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 32010), 1);  // <|user|>: template
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 32001), 0);  // <|assistant|>: text
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 32007), 1);  // only the last <|end|>
  EXPECT_EQ(ids.back(), 32007);
  EXPECT_NE(tok->Decode(ids)->find("hi<|end|><|assistant|>"), std::string::npos);
  // No ranges: the same as Encode with special parsing.
  EXPECT_EQ(IdsToString(tok->EncodeWithPlainRanges(text, false, {})),
            IdsToString(tok->Encode(text, false, true)));
  EXPECT_TRUE(tok->FindControlTexts("plain words < | >").empty());
}

TEST(Llama3VocabTest, BuiltFromEncoderJsonMatchesLlamaBpeVectors) {
  REQUIRE_FIXTURE(FixturePath("hf-tokenizers/llama3.2-bpe/encoder.json"));
  REQUIRE_FIXTURE(FixturePath("vocab/ggml-vocab-llama-bpe.gguf.inp"));
  const std::string path = testing::Llama3VocabPath();
  ASSERT_FALSE(path.empty());
  auto tok = testing::LoadTokenizer(path);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->n_vocab(), 128256);
  EXPECT_EQ(tok->pre(), "llama-bpe");
  CheckVectors(*tok, "llama-bpe");
}

}  // namespace
}  // namespace reprise::tokenizer
