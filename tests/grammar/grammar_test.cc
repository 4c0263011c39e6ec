// The grammar compiler and matcher on hand-built grammars: determinization,
// calls and returns, recursion, nullable loops, text-until, left-recursion
// and emptiness errors, size limits, arena compaction, the ambiguity bound,
// and token masks against a brute-force check of every token.
#include "grammar/grammar.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "grammar/grammar_test_util.h"
#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "grammar/token_trie.h"
#include "testing/fixtures.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab_convert.h"

namespace reprise::grammar {
namespace {

using State = GrammarBuilder::State;
using Rule = GrammarBuilder::Rule;
using testing::ExpectMaskMatchesBruteForce;
using testing::JsonishTrie;

std::shared_ptr<const Grammar> MustCompile(const GrammarBuilder& b, Rule root) {
  auto g = Grammar::Compile(b, root);
  EXPECT_TRUE(g.ok()) << g.status().message();
  return g.ok() ? *g : nullptr;
}

// Whether the whole string is a sentence / a prefix of one.
bool Matches(const std::shared_ptr<const Grammar>& g, const std::string& s) {
  Matcher m(g);
  return m.AcceptBytes(s) && m.IsComplete();
}
bool IsPrefix(const std::shared_ptr<const Grammar>& g, const std::string& s) {
  Matcher m(g);
  return m.AcceptBytes(s);
}

// Balanced parentheses with letters: S := ( "(" S ")" | [a-c] )*
std::shared_ptr<const Grammar> Parens() {
  GrammarBuilder b;
  const Rule s = b.NewRule("S");
  const State st = b.Start(s);
  b.SetAccepting(st);
  const State open = b.Literal(st, "(");
  const State inner = b.NewState(s);
  b.AddCall(open, inner, s);
  b.AddLiteral(inner, st, ")");
  b.AddBytes(st, st, 'a', 'c');
  return MustCompile(b, s);
}

TEST(GrammarTest, RecursiveRulesMatchExactlyTheirSentences) {
  auto g = Parens();
  ASSERT_NE(g, nullptr);
  for (const char* yes : {"", "a", "()", "(a)(b)", "((c))a", "(((())))"}) {
    EXPECT_TRUE(Matches(g, yes)) << yes;
  }
  for (const char* no : {"(", ")", "(()", "d", "())", "(a))"}) EXPECT_FALSE(Matches(g, no)) << no;
  EXPECT_TRUE(IsPrefix(g, "(((a"));
  EXPECT_FALSE(IsPrefix(g, "a)"));
}

TEST(GrammarTest, AlternativesSharingPrefixesAreDeterminized) {
  GrammarBuilder b;
  const Rule r = b.NewRule("words");
  const State end = b.NewState(r);
  b.SetAccepting(end);
  for (const char* w : {"ab", "abc", "abd", "b"}) b.AddLiteral(b.Start(r), end, w);
  auto g = MustCompile(b, r);
  for (const char* yes : {"ab", "abc", "abd", "b"}) EXPECT_TRUE(Matches(g, yes)) << yes;
  for (const char* no : {"a", "abe", "bb", "abcd", ""}) EXPECT_FALSE(Matches(g, no)) << no;
  Matcher m(g);
  ASSERT_TRUE(m.AcceptBytes("ab"));
  EXPECT_TRUE(m.IsComplete());
  EXPECT_TRUE(m.CanContinue());  // c or d may follow
  ASSERT_TRUE(m.AcceptBytes("c"));
  EXPECT_FALSE(m.CanContinue());
  EXPECT_EQ(m.config_count(), 0u);
}

TEST(GrammarTest, RejectedBytesLeaveTheStateUnchanged) {
  auto g = Parens();
  Matcher m(g);
  ASSERT_TRUE(m.AcceptBytes("(("));
  EXPECT_FALSE(m.AcceptBytes("a)x"));  // all or nothing
  EXPECT_TRUE(m.AcceptBytes("a))"));
  EXPECT_TRUE(m.IsComplete());
}

TEST(GrammarTest, LeftRecursionIsRefusedNotLooped) {
  GrammarBuilder b;
  const Rule s = b.NewRule("S");
  const State end = b.NewState(s);
  b.SetAccepting(end);
  const State mid = b.NewState(s);
  b.AddCall(b.Start(s), mid, s);  // S := S "a" | "b"
  b.AddLiteral(mid, end, "a");
  b.AddLiteral(b.Start(s), end, "b");
  auto g = Grammar::Compile(b, s);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("left-recursive"), std::string::npos) << g.status().message();
  // Through a nullable rule too: S := E S "a" | "b", E := "" | "e".
  GrammarBuilder b2;
  const Rule s2 = b2.NewRule("S"), e2 = b2.NewRule("E");
  b2.SetAccepting(b2.Start(e2));
  b2.AddLiteral(b2.Start(e2), b2.Start(e2), "e");
  const State end2 = b2.NewState(s2), a2 = b2.NewState(s2), c2 = b2.NewState(s2);
  b2.SetAccepting(end2);
  b2.AddCall(b2.Start(s2), a2, e2);
  b2.AddCall(a2, c2, s2);
  b2.AddLiteral(c2, end2, "a");
  b2.AddLiteral(b2.Start(s2), end2, "b");
  auto g2 = Grammar::Compile(b2, s2);
  ASSERT_FALSE(g2.ok());
  EXPECT_NE(g2.status().message().find("left-recursive"), std::string::npos);
}

TEST(GrammarTest, LoopsOfNullableCallsTerminate) {
  // S := E* "x" where E := "" | "e".
  GrammarBuilder b;
  const Rule s = b.NewRule("S"), e = b.NewRule("E");
  b.SetAccepting(b.Start(e));
  const State ee = b.NewState(e);
  b.SetAccepting(ee);
  b.AddLiteral(b.Start(e), ee, "e");
  b.AddCall(b.Start(s), b.Start(s), e);
  const State end = b.NewState(s);
  b.SetAccepting(end);
  b.AddLiteral(b.Start(s), end, "x");
  auto g = MustCompile(b, s);
  for (const char* yes : {"x", "ex", "eeeex"}) EXPECT_TRUE(Matches(g, yes)) << yes;
  EXPECT_FALSE(Matches(g, "e"));
  EXPECT_FALSE(Matches(g, "xe"));
}

TEST(GrammarTest, AGrammarThatMatchesNothingIsAnError) {
  GrammarBuilder b;
  const Rule s = b.NewRule("S");
  b.AddLiteral(b.Start(s), b.NewState(s), "never accepted");
  auto g = Grammar::Compile(b, s);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("matches nothing"), std::string::npos);
  // Dead branches are trimmed: a live rule with a dead alternative works,
  // and the dead alternative is never allowed, not even as a prefix.
  GrammarBuilder b2;
  const Rule t = b2.NewRule("T");
  const State end = b2.NewState(t);
  b2.SetAccepting(end);
  b2.AddLiteral(b2.Start(t), end, "ok");
  b2.AddLiteral(b2.Start(t), b2.NewState(t), "dead");
  auto g2 = MustCompile(b2, t);
  EXPECT_TRUE(Matches(g2, "ok"));
  EXPECT_FALSE(IsPrefix(g2, "d"));
}

TEST(GrammarTest, TextUntilStopsAtTheFirstOccurrence) {
  for (const std::string& stop : {std::string("</think>"), std::string("aab")}) {
    GrammarBuilder b;
    const Rule r = b.NewRule("R");
    const State mid = b.NewState(r), end = b.NewState(r);
    b.SetAccepting(end);
    b.AddTextUntil(b.Start(r), mid, stop);
    b.AddLiteral(mid, end, "!");
    auto g = MustCompile(b, r);
    EXPECT_TRUE(Matches(g, stop + "!"));
    EXPECT_TRUE(Matches(g, "any \xff bytes <" + stop + "!"));
    EXPECT_FALSE(Matches(g, stop + stop + "!"));  // ends at the first one
    EXPECT_FALSE(Matches(g, "!"));
  }
  // Overlapping prefixes (KMP failure links): "aaab" contains "aab".
  GrammarBuilder b;
  const Rule r = b.NewRule("R");
  const State end = b.NewState(r);
  b.SetAccepting(end);
  b.AddTextUntil(b.Start(r), end, "aab");
  auto g = MustCompile(b, r);
  EXPECT_TRUE(Matches(g, "aaab"));
  EXPECT_TRUE(Matches(g, "abaab"));
  EXPECT_FALSE(Matches(g, "aaba"));
}

TEST(GrammarTest, SizeLimitsAreErrorsNotGrowth) {
  GrammarLimits limits;
  limits.max_nfa_states = 1000;
  GrammarBuilder b(limits);
  const Rule r = b.NewRule("R");
  State at = b.Start(r);
  for (int i = 0; i < 2000; ++i) at = b.Literal(at, "x");
  b.SetAccepting(at);
  EXPECT_FALSE(b.status().ok());
  EXPECT_FALSE(Grammar::Compile(b, r).ok());
  // Compiled states: an enum of many literals under a small DFA limit.
  GrammarLimits small;
  small.max_dfa_states = 50;
  GrammarBuilder b2;
  const Rule r2 = b2.NewRule("R");
  const State e2 = b2.NewState(r2);
  b2.SetAccepting(e2);
  for (int i = 0; i < 100; ++i) b2.AddLiteral(b2.Start(r2), e2, "word" + std::to_string(i * 7919));
  auto g = Grammar::Compile(b2, r2, small);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("compiled states"), std::string::npos);
  // The subset construction's work: the same grammar under a small budget of
  // builder states summed over the interned sets.
  GrammarLimits little_work;
  little_work.max_subset_work = 200;
  auto w = Grammar::Compile(b2, r2, little_work);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find("too large to compile"), std::string::npos);
  EXPECT_TRUE(Grammar::Compile(b2, r2).ok());  // the default budget is far above it
}

TEST(GrammarTest, EndOfGenerationIsAllowedExactlyWhenComplete) {
  GrammarBuilder b;
  const Rule r = b.NewRule("R");
  const State end = b.NewState(r);
  b.SetAccepting(end);
  b.AddLiteral(b.Start(r), end, "null");
  auto masks = std::make_shared<TokenMasks>(MustCompile(b, r), JsonishTrie());
  const TokenTrie& trie = masks->trie();
  const int32_t eos = trie.eog()[0];
  Matcher m(masks->grammar_ptr());
  std::vector<uint64_t> bits(masks->words());
  auto allowed = [&](int32_t t) { return (bits[t >> 6] >> (t & 63)) & 1; };
  EXPECT_GT(m.FillMask(*masks, bits.data()), 0);
  EXPECT_FALSE(allowed(eos));
  ASSERT_TRUE(m.AcceptBytes("nul"));
  EXPECT_EQ(m.FillMask(*masks, bits.data()), 1);  // only "l"
  EXPECT_FALSE(allowed(eos));
  ASSERT_TRUE(m.AcceptBytes("l"));
  EXPECT_EQ(m.FillMask(*masks, bits.data()), 1);  // only end-of-generation
  EXPECT_TRUE(allowed(eos));
  EXPECT_FALSE(m.CanContinue());
}

TEST(GrammarTest, MasksEqualBruteForceOnRandomPaths) {
  // JSON grammars with calls, returns, recursion, ambiguity (anyOf of two
  // overlapping objects) and inline and called strings.
  const std::vector<std::string> schemas = {
      R"({"type":"object","properties":{"a":{"type":"string"},"b":{"type":"array","items":{"type":"integer"}}},"required":["a"]})",
      R"({"$defs":{"n":{"type":"object","properties":{"v":{"type":"number"},"k":{"type":"array","items":{"$ref":"#/$defs/n"},"maxItems":2}},"required":["v"]}},"$ref":"#/$defs/n"})",
      R"({"anyOf":[{"type":"object","properties":{"x":{"type":"string"}},"required":["x"]},{"type":"object","properties":{"x":{"type":"string"},"y":{"type":"boolean"}},"required":["x","y"]}]})",
      R"({"type":"object"})",
      R"({"type":"array","items":{"type":["string","null"],"maxLength":3},"minItems":1,"maxItems":4})",
  };
  for (bool inline_strings : {true, false}) {
    for (const std::string& text : schemas) {
      JsonSchemaOptions options;
      options.inline_strings = inline_strings;
      auto g = CompileJsonSchema(nlohmann::ordered_json::parse(text), options);
      ASSERT_TRUE(g.ok()) << g.status().message();
      TokenMasks masks(*g, JsonishTrie());
      std::mt19937 rng(42);
      for (int run = 0; run < 4; ++run) {
        auto out = testing::RandomSentence(masks, rng, 60, 0.3, /*check=*/true);
        if (::testing::Test::HasFailure()) {
          FAIL() << text << " inline_strings=" << inline_strings << " after '" << out.text << "'";
        }
      }
    }
  }
}

// Counted states (a string under min/maxLength, a bounded array) far from
// their bounds share one behaviour class; masks stay exact near the bounds,
// where classes differ.
TEST(GrammarTest, SharedBehaviourClassesKeepMasksExact) {
  for (
      const char* text :
      {R"({"type":"string","minLength":40,"maxLength":100})",
       R"({"type":"array","items":{"type":"string","maxLength":3},"minItems":2,"maxItems":60})",
       R"({"type":"object","properties":{"a":{"type":"string","maxLength":70},"b":{"type":"string","maxLength":70}}})"}) {
    auto g = CompileJsonSchema(nlohmann::ordered_json::parse(text));
    ASSERT_TRUE(g.ok()) << g.status().message();
    TokenMasks masks(*g, JsonishTrie());
    EXPECT_LT(masks.behaviour_classes(), (*g)->state_count()) << text;
    std::mt19937 rng(8);
    for (int run = 0; run < 6; ++run) {
      auto out = testing::RandomSentence(masks, rng, 200, 0.05, /*check=*/true);
      ASSERT_FALSE(::testing::Test::HasFailure()) << text << " after '" << out.text << "'";
    }
  }
}

TEST(GrammarTest, TokenClassesStayInsideTheirByteBudget) {
  auto g = CompileJsonSchema(nlohmann::ordered_json::parse(
      R"({"type":"object","properties":{"s":{"type":"string","maxLength":30},"n":{"type":"array","items":{"type":"number"}}}})"));
  ASSERT_TRUE(g.ok()) << g.status().message();
  TokenMasks masks(*g, JsonishTrie(), /*max_bytes=*/1);  // keeps only the newest entry
  std::mt19937 rng(5);
  for (int run = 0; run < 5; ++run) testing::RandomSentence(masks, rng, 80, 0.2, /*check=*/true);
  EXPECT_LE(masks.cached_states(), 1u);
  TokenMasks roomy(*g, JsonishTrie());
  for (int run = 0; run < 5; ++run) testing::RandomSentence(roomy, rng, 80, 0.2, false);
  EXPECT_GT(roomy.cached_states(), 10u);
  EXPECT_GT(roomy.cached_bytes(), 0u);
}

TEST(GrammarTest, TheArenaStaysSmallOverLongOutputs) {
  auto g = CompileJsonSchema(nlohmann::ordered_json::parse(
      R"({"type":"array","items":{"type":"object","properties":{"a":{"type":"array","items":{"type":"integer"}}},"required":["a"]}})"));
  ASSERT_TRUE(g.ok()) << g.status().message();
  Matcher m(*g);
  ASSERT_TRUE(m.AcceptBytes("["));
  for (int i = 0; i < 20000; ++i)
    ASSERT_TRUE(m.AcceptBytes(i == 0 ? "{\"a\":[1]}" : ",{\"a\":[1]}"));
  ASSERT_TRUE(m.AcceptBytes("]"));
  EXPECT_TRUE(m.IsComplete());
  EXPECT_LT(m.arena_size(), 20000u);  // 40000 pushes: compaction keeps it down
}

TEST(GrammarTest, ExponentialAmbiguityIsBoundedNotAHang) {
  // Two different rules for one recursive language: A and B are both
  // "[" (A|B)* "]"; every nesting level doubles the ways to read a prefix.
  GrammarBuilder b;
  const Rule a = b.NewRule("A"), bb = b.NewRule("B");
  for (Rule r : {a, bb}) {
    const State open = b.Literal(b.Start(r), "[");
    const State end = b.NewState(r);
    b.SetAccepting(end);
    b.AddLiteral(open, end, "]");
    b.AddCall(open, open, a);
    b.AddCall(open, open, bb);
  }
  auto g = MustCompile(b, a);
  Matcher m(g);
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(m.AcceptBytes("["));
  EXPECT_LE(m.config_count(), kMaxConfigs);
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(m.AcceptBytes("]"));
  EXPECT_TRUE(m.IsComplete());
}

// Llama 3's 128k vocabulary (built from the fixtures): masks along a real
// tokenization of a valid document equal brute force over every token.
TEST(GrammarTest, MasksOnALargeRealVocabularyEqualBruteForce) {
  const std::string dir = reprise::testing::FixturePath("hf-tokenizers/llama3.2-bpe");
  REQUIRE_FIXTURE(dir + "/encoder.json");
  auto writer =
      tokenizer::BuildBpeVocabGguf({dir + "/encoder.json", dir + "/vocab.bpe", "llama-bpe"});
  ASSERT_TRUE(writer.ok()) << writer.status().message();
  auto file = gguf::File::FromBuffer(writer->WriteToBuffer());
  ASSERT_TRUE(file.ok());
  auto tok = tokenizer::Tokenizer::FromGguf(**file);
  ASSERT_TRUE(tok.ok());
  std::shared_ptr<const TokenTrie> trie = TokenTrie::FromTokenizer(**tok);
  EXPECT_EQ(trie->n_vocab(), 128256);
  // Control tokens print nothing: never in the trie; end-of-generation apart.
  EXPECT_TRUE(trie->bytes(128000).empty());  // <|begin_of_text|>
  EXPECT_NE(std::find(trie->eog().begin(), trie->eog().end(), 128009), trie->eog().end());
  auto g = CompileJsonSchema(nlohmann::ordered_json::parse(
      R"({"type":"object","properties":{"name":{"type":"string","maxLength":40},"n":{"type":"integer","minimum":-5,"maximum":500},"tags":{"type":"array","items":{"enum":["x","yz"]}},"more":{"type":"object"}},"required":["name","n"]})"));
  ASSERT_TRUE(g.ok()) << g.status().message();
  TokenMasks masks(*g, trie);
  const std::string doc =
      R"({"name": "Grace \"Amazing\" Hopper", "n": 42, "tags": ["yz", "x"], "more": {"a": [1, {"b": null}], "c": "d"}})";
  const std::vector<int32_t> ids = (*tok)->Encode(doc, false, false);
  Matcher m(*g);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i % 3 == 0) ExpectMaskMatchesBruteForce(masks, m);
    ASSERT_FALSE(::testing::Test::HasFailure()) << "at token " << i;
    ASSERT_TRUE(m.AcceptBytes(trie->bytes(ids[i]))) << i;
  }
  EXPECT_TRUE(m.IsComplete());
  ExpectMaskMatchesBruteForce(masks, m);
}

TEST(TokenTrieTest, PreorderLayoutCoversEveryTokenOnce) {
  auto trie = JsonishTrie();
  std::vector<int> seen(trie->n_vocab(), 0);
  for (int32_t id : trie->token_ids()) ++seen[id];
  for (int32_t id = 0; id < trie->n_vocab(); ++id) {
    EXPECT_EQ(seen[id], trie->bytes(id).empty() ? 0 : 1) << id;
  }
  // Walking a token's bytes from the root reaches the node it ends at.
  for (uint32_t i = 0; i < trie->node_count(); ++i) {
    EXPECT_LE(trie->skip(i), trie->node_count());
    EXPECT_GT(trie->skip(i), i);
    if (i + 1 < trie->node_count()) {
      EXPECT_LE(trie->depth(i + 1), trie->depth(i) + 1);
    }
  }
}

}  // namespace
}  // namespace reprise::grammar
