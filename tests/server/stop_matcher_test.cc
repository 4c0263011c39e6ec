// StopMatcher: stop strings are matched on text, held back while they could
// still match, never released in part, and stripped.
#include "server/stop_matcher.h"

#include <gtest/gtest.h>

namespace reprise::server {
namespace {

// Feeds `pieces` one by one; returns everything released and whether it matched.
std::pair<std::string, bool> Feed(std::vector<std::string> stops, std::vector<std::string> pieces) {
  StopMatcher m(std::move(stops));
  std::string out;
  for (const std::string& p : pieces) {
    out += m.Push(p);
    if (m.matched()) return {out, true};
  }
  out += m.Flush();
  return {out, false};
}

TEST(StopMatcherTest, NoStopsPassesEverythingThrough) {
  StopMatcher m({});
  EXPECT_EQ(m.Push("abc"), "abc");
  EXPECT_EQ(m.Flush(), "");
  EXPECT_FALSE(m.matched());
}

TEST(StopMatcherTest, StripsStopInsideOnePiece) {
  auto [text, matched] = Feed({"END"}, {"hello END world"});
  EXPECT_TRUE(matched);
  EXPECT_EQ(text, "hello ");
}

TEST(StopMatcherTest, MatchesAcrossPiecesWithoutReleasingAPrefix) {
  StopMatcher m({"<stop>"});
  EXPECT_EQ(m.Push("abc<st"), "abc");  // "<st" may begin the stop string
  EXPECT_EQ(m.Push("o"), "");
  EXPECT_EQ(m.Push("p>tail"), "");
  EXPECT_TRUE(m.matched());
  EXPECT_EQ(m.Push("more"), "");
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcherTest, ReleasesHeldTextWhenItStopsMatching) {
  StopMatcher m({"<stop>"});
  EXPECT_EQ(m.Push("a<s"), "a");
  EXPECT_EQ(m.Push("x"), "<sx");
  EXPECT_FALSE(m.matched());
}

TEST(StopMatcherTest, FlushReleasesAPartialStopAtTheEnd) {
  auto [text, matched] = Feed({"STOP"}, {"abc", "ST"});
  EXPECT_FALSE(matched);
  EXPECT_EQ(text, "abcST");
}

TEST(StopMatcherTest, EarliestOfSeveralStopsWins) {
  auto [text, matched] = Feed({"world", "lo"}, {"hello world"});
  EXPECT_TRUE(matched);
  EXPECT_EQ(text, "hel");
}

TEST(StopMatcherTest, ByteByByteEqualsWhole) {
  const std::string s = "The quick brown fox jumps over the lazy dog";
  for (const std::string stop : {"fox", "dog", "he", "z", "jumps over"}) {
    std::vector<std::string> bytes;
    for (char c : s) bytes.emplace_back(1, c);
    auto whole = Feed({stop}, {s});
    auto split = Feed({stop}, bytes);
    EXPECT_EQ(whole, split) << stop;
    EXPECT_EQ(whole.first, s.substr(0, s.find(stop))) << stop;
  }
}

TEST(StopMatcherTest, OverlappingPrefixIsHeldCorrectly) {
  // "aab": after "aa" the suffix "a" and "aa" are both prefixes of "aab".
  auto [text, matched] = Feed({"aab"}, {"xa", "a", "a", "b"});
  EXPECT_TRUE(matched);
  EXPECT_EQ(text, "xa");
}

TEST(StopMatcherTest, MultiByteUtf8StopString) {
  auto [text, matched] = Feed({"é!"}, {"caf", "\xc3\xa9", "!", "x"});
  EXPECT_TRUE(matched);
  EXPECT_EQ(text, "caf");
}

}  // namespace
}  // namespace reprise::server
