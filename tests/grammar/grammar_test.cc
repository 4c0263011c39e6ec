// The grammar compiler and matcher on hand-built grammars: determinization,
// calls and returns, recursion, left-recursion and emptiness errors, limits,
// and token masks against a brute-force check of every token.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "grammar/grammar.h"
#include "grammar/matcher.h"
#include "grammar/token_trie.h"

namespace reprise::grammar {
namespace {

using State = GrammarBuilder::State;
using Rule = GrammarBuilder::Rule;

std::shared_ptr<const Grammar> MustCompile(const GrammarBuilder& b, Rule root) {
  auto g = Grammar::Compile(b, root);
  EXPECT_TRUE(g.ok()) << g.status().message();
  return g.ok() ? *g : nullptr;
}

// Whether the whole string is a sentence.
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

}  // namespace
}  // namespace reprise::grammar
