// Unit tests on small hand-built vocabularies (no fixture files): SPM merges
// by score, byte fallback, dummy prefix, special-token matching, BOS/EOS,
// BPE merges by rank, load errors, decode errors, and GGUF round trips.
#include <gtest/gtest.h>

#include "test_util.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"

namespace reprise::tokenizer {
namespace {

using testing::IdsToString;

constexpr const char* kSp = "\xe2\x96\x81";  // '▁'

// <unk> <s> </s> <0x00>..<0xFF> then pieces with scores.
VocabSpec SmallSpm() {
  VocabSpec spec;
  spec.model = "llama";
  spec.tokens = {"<unk>", "<s>", "</s>"};
  spec.token_types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    spec.tokens.push_back(buf);
    spec.token_types.push_back(6);
  }
  const std::pair<std::string, float> pieces[] = {
      {kSp, -1}, {"h", -2}, {"e", -2}, {"l", -2}, {"o", -2}, {std::string(kSp) + "h", -3},
      {"ll", -1.5}, {"he", -4}, {std::string(kSp) + "hell", -5}, {"ell", -6},
      {std::string(kSp) + "he", -3.5}, {"<|user|>", 0},
  };
  for (const auto& [p, s] : pieces) {
    spec.tokens.push_back(p);
    spec.token_types.push_back(p == "<|user|>" ? 3 : 1);
  }
  spec.scores.assign(spec.tokens.size(), 0.0f);
  for (size_t i = 0; i < std::size(pieces); ++i) spec.scores[259 + i] = pieces[i].second;
  return spec;
}

std::unique_ptr<Tokenizer> Make(VocabSpec spec) {
  auto tok = Tokenizer::FromSpec(std::move(spec));
  EXPECT_TRUE(tok.ok()) << tok.status().message();
  return tok.ok() ? std::move(tok).value() : nullptr;
}

int32_t Id(const Tokenizer& tok, const std::string& piece) {
  auto id = tok.FindToken(piece);
  EXPECT_TRUE(id.has_value()) << piece;
  return id.value_or(-1);
}

TEST(SpmTokenizer, MergesHighestScoringPairFirstWithDummyPrefix) {
  auto tok = Make(SmallSpm());
  ASSERT_NE(tok, nullptr);
  // "▁hello": ll (-1.5) first, then ▁h (-3), ▁he? no: "▁h"+"e" = "▁he" (-3.5),
  // then "▁he"+"ll" = "▁hell" (-5); "o" stays.
  const auto ids = tok->Encode("hello", false, false);
  EXPECT_EQ(IdsToString(ids), IdsToString({Id(*tok, std::string(kSp) + "hell"), Id(*tok, "o")}));
  auto text = tok->Decode(ids);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "hello");
}

TEST(SpmTokenizer, UnknownCharactersFallBackToByteTokens) {
  auto tok = Make(SmallSpm());
  ASSERT_NE(tok, nullptr);
  const auto ids = tok->Encode("h\xc3\xa9", false, false);  // "hé"
  EXPECT_EQ(IdsToString(ids),
            IdsToString({Id(*tok, std::string(kSp) + "h"), 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(*tok->Decode(ids), "h\xc3\xa9");
}

TEST(SpmTokenizer, InvalidUtf8SurvivesThroughByteFallback) {
  auto tok = Make(SmallSpm());
  ASSERT_NE(tok, nullptr);
  const std::string bad = "he\xff\xc3(\x80l";
  const auto ids = tok->Encode(bad, false, false);
  EXPECT_EQ(*tok->Decode(ids), bad);
}

TEST(SpmTokenizer, AddsBosPerMetadataAndEosOnlyWhenAsked) {
  VocabSpec spec = SmallSpm();
  spec.add_eos = true;
  auto tok = Make(spec);
  ASSERT_NE(tok, nullptr);
  const auto ids = tok->Encode("o", true, false);
  EXPECT_EQ(IdsToString(ids), IdsToString({1, Id(*tok, kSp), Id(*tok, "o"), 2}));
  EXPECT_EQ(IdsToString(tok->Encode("", true, false)), IdsToString({1, 2}));
  EXPECT_TRUE(tok->Encode("", false, false).empty());
  spec = SmallSpm();
  spec.add_bos = false;
  tok = Make(spec);
  EXPECT_EQ(IdsToString(tok->Encode("o", true, false)), IdsToString({Id(*tok, kSp), Id(*tok, "o")}));
}

TEST(SpmTokenizer, ControlTokensMatchOnlyWithParseSpecial) {
  auto tok = Make(SmallSpm());
  ASSERT_NE(tok, nullptr);
  const int32_t user = Id(*tok, "<|user|>");
  const auto parsed = tok->Encode("<|user|>o", false, true);
  // Text after a special token gets the dummy prefix again.
  EXPECT_EQ(IdsToString(parsed), IdsToString({user, Id(*tok, kSp), Id(*tok, "o")}));
  const auto literal = tok->Encode("<|user|>o", false, false);
  EXPECT_EQ(std::count(literal.begin(), literal.end(), user), 0);
  EXPECT_EQ(*tok->Decode(literal), "<|user|>o");
  EXPECT_EQ(*tok->Decode(parsed), "<|user|> o");
  EXPECT_EQ(*tok->Decode(parsed, /*skip_special=*/true), "o");
}

TEST(SpmTokenizer, DecodeRejectsIdsOutOfRange) {
  auto tok = Make(SmallSpm());
  ASSERT_NE(tok, nullptr);
  const int32_t bad[] = {1, tok->n_vocab()};
  auto r = tok->Decode(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("out of range"), std::string::npos);
  const int32_t negative[] = {-1};
  EXPECT_FALSE(tok->Decode(negative).ok());
}

TEST(SpmTokenizer, ExposesSpecialIdsAndEndOfGeneration) {
  VocabSpec spec = SmallSpm();
  spec.eot_id = static_cast<int32_t>(spec.tokens.size()) - 1;  // <|user|> as a stand-in
  auto tok = Make(spec);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_TRUE(tok->add_bos());
  EXPECT_TRUE(tok->IsEog(2));
  EXPECT_TRUE(tok->IsEog(spec.eot_id));
  EXPECT_FALSE(tok->IsEog(1));
  EXPECT_TRUE(tok->IsControl(1));
  EXPECT_FALSE(tok->IsControl(3));
  EXPECT_EQ(tok->TokenPiece(3), "<0x00>");
  EXPECT_FALSE(tok->FindToken("nope").has_value());
}

// Byte-level BPE over a tiny alphabet: every byte's character is a token.
VocabSpec SmallBpe() {
  VocabSpec spec;
  spec.model = "gpt2";
  spec.pre = "gpt-2";
  ByteUnicodeMap map;
  for (int b = 0; b < 256; ++b) spec.tokens.push_back(map.Encode(static_cast<uint8_t>(b)));
  // Merges, best first. "Ġ" is the character of ' '.
  spec.merges = {"l l", "h e", "he ll", "Ġ w", "o r", "Ġw or"};
  for (const auto& m : spec.merges) {
    std::string joined = m;
    joined.erase(joined.find(' '), 1);
    spec.tokens.push_back(joined);
  }
  spec.tokens.push_back("<|endoftext|>");
  spec.token_types.assign(spec.tokens.size(), 1);
  spec.token_types.back() = 3;
  spec.eos_id = static_cast<int32_t>(spec.tokens.size()) - 1;
  return spec;
}

TEST(BpeTokenizer, MergesLowestRankFirstWithinPreTokenizedWords) {
  auto tok = Make(SmallBpe());
  ASSERT_NE(tok, nullptr);
  const auto ids = tok->Encode("hello world", false, false);
  EXPECT_EQ(IdsToString(ids), IdsToString({Id(*tok, "hell"), Id(*tok, "o"), Id(*tok, "Ġwor"),
                                           Id(*tok, "l"), Id(*tok, "d")}));
  EXPECT_EQ(*tok->Decode(ids), "hello world");
  EXPECT_FALSE(tok->add_bos());
  EXPECT_TRUE(tok->IsEog(tok->eos_id()));
}

TEST(BpeTokenizer, InvalidUtf8BecomesReplacementCharacter) {
  auto tok = Make(SmallBpe());
  ASSERT_NE(tok, nullptr);
  const auto ids = tok->Encode("a\xff" "b", false, false);
  EXPECT_EQ(*tok->Decode(ids), "a\xef\xbf\xbd" "b");
}

TEST(BpeTokenizer, SpecialTextIsPlainTextUnlessParsed) {
  auto tok = Make(SmallBpe());
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(IdsToString(tok->Encode("<|endoftext|>", false, true)),
            IdsToString({tok->eos_id()}));
  EXPECT_GT(tok->Encode("<|endoftext|>", false, false).size(), 1u);
}

TEST(TokenizerLoad, UnknownModelOrPreIsAnError) {
  VocabSpec spec = SmallBpe();
  spec.pre = "no-such-pre";
  auto r = Tokenizer::FromSpec(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no-such-pre"), std::string::npos);
  spec = SmallBpe();
  spec.model = "bert";
  r = Tokenizer::FromSpec(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("bert"), std::string::npos);
  spec = SmallSpm();
  spec.scores.pop_back();
  EXPECT_FALSE(Tokenizer::FromSpec(spec).ok());
}

// A byte-level vocabulary with an empty merge list is valid (one token per
// byte); a gpt2 vocabulary whose file has no merges key at all is an error.
TEST(TokenizerLoad, EmptyMergeListIsValidButMissingMergesKeyIsAnError) {
  VocabSpec spec = SmallBpe();
  spec.merges.clear();
  EXPECT_TRUE(Tokenizer::FromSpec(spec).ok());
  gguf::Writer w;
  w.Set("tokenizer.ggml.model", gguf::Value::String("gpt2"));
  w.Set("tokenizer.ggml.tokens", gguf::Value::StringArray({"a", "b"}));
  auto file = gguf::File::FromBuffer(w.WriteToBuffer());
  ASSERT_TRUE(file.ok());
  auto r = Tokenizer::FromGguf(**file);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("tokenizer.ggml.merges"), std::string::npos);
}

TEST(TokenizerLoad, GgufWithoutTokenizerKeysIsAnError) {
  gguf::Writer w;
  w.Set("general.architecture", gguf::Value::String("llama"));
  auto file = gguf::File::FromBuffer(w.WriteToBuffer());
  ASSERT_TRUE(file.ok()) << file.status().message();
  auto r = Tokenizer::FromGguf(**file);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("tokenizer.ggml.model"), std::string::npos);
  w.Set("tokenizer.ggml.model", gguf::Value::String("llama"));
  file = gguf::File::FromBuffer(w.WriteToBuffer());
  ASSERT_TRUE(file.ok());
  r = Tokenizer::FromGguf(**file);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("tokenizer.ggml.tokens"), std::string::npos);
}

TEST(TokenizerLoad, GgufRoundTripKeepsBehaviour) {
  const VocabSpec spec = SmallSpm();
  gguf::Writer w;
  w.Set("tokenizer.ggml.model", gguf::Value::String("llama"));
  w.Set("tokenizer.ggml.tokens", gguf::Value::StringArray(spec.tokens));
  w.Set("tokenizer.ggml.scores", gguf::Value::Float32Array(spec.scores));
  w.Set("tokenizer.ggml.token_type", gguf::Value::Int32Array(spec.token_types));
  w.Set("tokenizer.ggml.add_bos_token", gguf::Value::Bool(false));
  w.Set("tokenizer.ggml.padding_token_id", gguf::Value::Uint32(0xFFFFFFFFu));
  auto file = gguf::File::FromBuffer(w.WriteToBuffer());
  ASSERT_TRUE(file.ok());
  auto tok = Tokenizer::FromGguf(**file);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  auto ref = Make(spec);
  EXPECT_FALSE((*tok)->add_bos());
  EXPECT_EQ((*tok)->Encode("hello", false, false), ref->Encode("hello", false, false));
}

TEST(PreTokenizer, SplitsGpt2StyleAndKeepsEveryByte) {
  auto pre = PreTokenizer::Create("gpt-2");
  ASSERT_TRUE(pre.ok());
  const std::string text = "Hello, world!  It's 2024\n\n";
  const auto words = (*pre)->Split(text);
  std::vector<std::string> got(words.begin(), words.end());
  EXPECT_EQ(got, (std::vector<std::string>{"Hello", ",", " world", "!", " ", " It", "'s", " 2024",
                                           "\n\n"}));
  auto llama3 = PreTokenizer::Create("llama-bpe");
  ASSERT_TRUE(llama3.ok());
  const auto digits = (*llama3)->Split("12345");
  EXPECT_EQ(std::vector<std::string>(digits.begin(), digits.end()),
            (std::vector<std::string>{"123", "45"}));
  EXPECT_FALSE(PreTokenizer::Create("nope").ok());
}

}  // namespace
}  // namespace reprise::tokenizer
