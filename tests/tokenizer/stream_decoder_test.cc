// StreamDecoder and fuzz tests: token-by-token output never contains broken
// UTF-8, equals Decode() for valid text, strips the SPM dummy-prefix space
// once; random byte strings never crash the encoders, and byte-level BPE /
// SPM decode(encode(s)) == s for valid UTF-8.
#include <gtest/gtest.h>

#include <random>

#include "test_util.h"
#include "testing/fixtures.h"
#include "tokenizer/unicode.h"

namespace reprise::tokenizer {
namespace {

using ::reprise::testing::FixturePath;

std::string StreamAll(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip_special,
                      std::vector<std::string>* chunks) {
  StreamDecoder dec(tok, skip_special);
  std::string all;
  for (int32_t id : ids) {
    std::string piece = dec.Feed(id);
    EXPECT_TRUE(IsValidUtf8(piece)) << "broken UTF-8 after id " << id;
    chunks->push_back(piece);
    all += piece;
  }
  std::string tail = dec.Flush();
  EXPECT_TRUE(IsValidUtf8(tail));
  chunks->push_back(tail);
  return all + tail;
}

TEST(IncompleteUtf8Tail, HoldsBackOnlyProperPrefixes) {
  EXPECT_EQ(IncompleteUtf8Tail("abc"), 0u);
  EXPECT_EQ(IncompleteUtf8Tail("a\xe2"), 1u);
  EXPECT_EQ(IncompleteUtf8Tail("a\xe2\x82"), 2u);
  EXPECT_EQ(IncompleteUtf8Tail("a\xe2\x82\xac"), 0u);  // complete '€'
  EXPECT_EQ(IncompleteUtf8Tail("\xf0\x9f\x98"), 3u);
  EXPECT_EQ(IncompleteUtf8Tail("\xed\xa0"), 0u);  // surrogate: never valid
  EXPECT_EQ(IncompleteUtf8Tail("\xc0"), 0u);      // overlong lead
  EXPECT_EQ(IncompleteUtf8Tail("\x80\x80"), 0u);
}

TEST(StreamDecoder, SpmHoldsBackSplitCharactersAndStripsPrefixSpace) {
  const std::string path = FixturePath("vocab/ggml-vocab-llama-spm.gguf");
  REQUIRE_FIXTURE(path);
  auto tok = testing::LoadTokenizer(path);
  ASSERT_NE(tok, nullptr);
  // Emoji and Khmer fall back to <0xXX> byte tokens: 4 ids for one character.
  const std::string text = "Hi 🦙 there កាន់តែ\n  end";
  auto ids = tok->Encode(text, /*add_special=*/true, false);
  std::vector<std::string> chunks;
  EXPECT_EQ(StreamAll(*tok, ids, /*skip_special=*/true, &chunks), text);
  EXPECT_EQ(*tok->Decode(ids, true), text);
  // Some chunk must have been empty: a byte token that completed nothing.
  EXPECT_NE(std::count(chunks.begin(), chunks.end(), std::string()), 0);
  // Without skipping, BOS renders and the space after it stays (as Decode).
  chunks.clear();
  EXPECT_EQ(StreamAll(*tok, ids, false, &chunks), *tok->Decode(ids, false));
  EXPECT_EQ(*tok->Decode(ids, false), "<s> " + text);
}

TEST(StreamDecoder, ContinuationKeepsLeadingSpace) {
  const std::string path = FixturePath("stories260K/stories260K.gguf");
  REQUIRE_FIXTURE(path);
  auto tok = testing::LoadTokenizer(path);
  ASSERT_NE(tok, nullptr);
  const auto ids = tok->Encode("a time", false, false);  // "▁a", "▁time"
  StreamDecoder start(*tok), continuation(*tok, false, /*at_sequence_start=*/false);
  std::string a, b;
  for (int32_t id : ids) {
    a += start.Feed(id);
    b += continuation.Feed(id);
  }
  EXPECT_EQ(a + start.Flush(), "a time");
  EXPECT_EQ(b + continuation.Flush(), " a time");
}

TEST(StreamDecoder, BpeMatchesDecodeTokenByToken) {
  const std::string path = FixturePath("vocab/ggml-vocab-gpt-2.gguf");
  REQUIRE_FIXTURE(path);
  auto tok = testing::LoadTokenizer(path);
  ASSERT_NE(tok, nullptr);
  const std::string text = "生活的真谛是 😶‍🌫️ ok";  // byte-level tokens split characters
  auto ids = tok->Encode(text, false, false);
  std::vector<std::string> chunks;
  EXPECT_EQ(StreamAll(*tok, ids, false, &chunks), text);
}

TEST(StreamDecoder, UnfinishedOrInvalidBytesBecomeReplacementCharacters) {
  const std::string path = FixturePath("vocab/ggml-vocab-llama-spm.gguf");
  REQUIRE_FIXTURE(path);
  auto tok = testing::LoadTokenizer(path);
  ASSERT_NE(tok, nullptr);
  const int32_t e2 = *tok->FindToken("<0xE2>");
  const int32_t x82 = *tok->FindToken("<0x82>");
  const int32_t ff = *tok->FindToken("<0xFF>");
  const int32_t a = *tok->FindToken("a");
  StreamDecoder dec(*tok);
  EXPECT_EQ(dec.Feed(a), "a");
  EXPECT_EQ(dec.Feed(e2), "");
  EXPECT_EQ(dec.Feed(x82), "");
  EXPECT_EQ(dec.Feed(ff), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // E2 82 FF: none valid
  EXPECT_EQ(dec.Feed(e2), "");
  EXPECT_EQ(dec.Flush(), "\xef\xbf\xbd");
  EXPECT_EQ(dec.Feed(tok->n_vocab() + 5), "");  // out of range: nothing
}

std::string RandomBytes(std::mt19937& rng, size_t max_len) {
  std::uniform_int_distribution<int> len_dist(0, static_cast<int>(max_len));
  std::uniform_int_distribution<int> byte_dist(0, 255);
  std::string s(len_dist(rng), '\0');
  for (char& c : s) c = static_cast<char>(byte_dist(rng));
  return s;
}

// Random valid UTF-8 drawn from a mix of scripts, whitespace and punctuation.
std::string RandomUtf8(std::mt19937& rng, size_t max_chars) {
  static const uint32_t kRanges[][2] = {{0x20, 0x7E}, {0x09, 0x0D}, {0xA0, 0x24F},
                                        {0x400, 0x4FF}, {0x1780, 0x17FF}, {0x3000, 0x30FF},
                                        {0x4E00, 0x9FFF}, {0xAC00, 0xD7A3}, {0x1F300, 0x1FAFF},
                                        {0x200B, 0x200D}, {0xFE00, 0xFE0F}, {0x10000, 0x10FFF}};
  std::uniform_int_distribution<int> len_dist(0, static_cast<int>(max_chars));
  std::uniform_int_distribution<int> range_dist(0, std::size(kRanges) - 1);
  std::string s;
  for (int i = len_dist(rng); i > 0; --i) {
    const auto& r = kRanges[range_dist(rng)];
    std::uniform_int_distribution<uint32_t> cp_dist(r[0], r[1]);
    AppendUtf8(cp_dist(rng), &s);
  }
  return s;
}

class FuzzTest : public ::testing::TestWithParam<const char*> {};

TEST_P(FuzzTest, RandomBytesNeverCrashAndValidUtf8RoundTrips) {
  const std::string path = FixturePath(std::string("vocab/ggml-vocab-") + GetParam() + ".gguf");
  REQUIRE_FIXTURE(path);
  auto tok = testing::LoadTokenizer(path);
  ASSERT_NE(tok, nullptr);
  std::mt19937 rng(1234);
  const ByteUnicodeMap byte_map;
  for (int i = 0; i < 300; ++i) {
    const std::string bytes = RandomBytes(rng, 64);
    const auto ids = tok->Encode(bytes, true, true);
    for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < tok->n_vocab());
    auto back = tok->Decode(ids, /*skip_special=*/true);
    ASSERT_TRUE(back.ok());
    if (tok->is_spm()) {
      EXPECT_EQ(*back, bytes) << "SPM keeps every byte";
    } else {
      // Invalid bytes become U+FFFD; a byte whose byte-level character is not
      // in the vocabulary (starcoder lacks a few, e.g. 0xF1) is dropped, as
      // the references do for a BPE model without an unknown token.
      std::string expected;
      for (char c : SanitizeUtf8(bytes)) {
        if (tok->FindToken(byte_map.Encode(static_cast<uint8_t>(c))).has_value()) expected += c;
      }
      EXPECT_EQ(*back, expected);
    }
    std::vector<std::string> chunks;
    StreamAll(*tok, ids, true, &chunks);
  }
  for (int i = 0; i < 300; ++i) {
    const std::string text = RandomUtf8(rng, 40);
    const auto ids = tok->Encode(text, false, false);
    auto back = tok->Decode(ids);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, text);
    std::vector<std::string> chunks;
    EXPECT_EQ(StreamAll(*tok, ids, false, &chunks), text);
  }
}

INSTANTIATE_TEST_SUITE_P(Vocabs, FuzzTest,
                         ::testing::Values("llama-spm", "gpt-2", "deepseek-llm", "starcoder"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) c = (c == '-') ? '_' : c;
                           return n;
                         });

}  // namespace
}  // namespace reprise::tokenizer

namespace reprise::tokenizer {
namespace {

// Long runs that make naive regexes or merges slow: a long whitespace run
// before digits (deepseek-llm's `\s+$` backtracks over it), one very long
// word, a long run of one character. Must finish and round-trip.
class LongInputTest : public ::testing::TestWithParam<const char*> {};

TEST_P(LongInputTest, LongRunsFinishAndRoundTrip) {
  const std::string path = FixturePath(std::string("vocab/ggml-vocab-") + GetParam() + ".gguf");
  REQUIRE_FIXTURE(path);
  auto tok = testing::LoadTokenizer(path);
  ASSERT_NE(tok, nullptr);
  const std::string inputs[] = {
      std::string(20000, ' ') + "123 abc", std::string(100000, 'a'),
      std::string(50000, '\n') + "x" + std::string(50000, '\t'),
      "word " + std::string(30000, '!') + " end",
  };
  for (const std::string& text : inputs) {
    const auto ids = tok->Encode(text, false, false);
    auto back = tok->Decode(ids);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, text) << "length " << text.size();
  }
}

INSTANTIATE_TEST_SUITE_P(Vocabs, LongInputTest,
                         ::testing::Values("llama-spm", "gpt-2", "deepseek-llm", "deepseek-coder",
                                           "starcoder"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) c = (c == '-') ? '_' : c;
                           return n;
                         });

}  // namespace
}  // namespace reprise::tokenizer
