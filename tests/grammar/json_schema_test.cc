// The JSON Schema compiler: every supported keyword accepts what it should
// and rejects what it should (whole texts), exact integer ranges, number
// bounds, string lengths in code points, formats, extra properties that never
// repeat a declared name, $ref recursion, errors that name unsupported
// keywords and their place, hostile schemas that fail fast, and random
// outputs of the schema corpus (tests/data/json_schema_corpus.json) that all
// parse and validate (tests/testing/json_schema_check.h, written apart).
#include "grammar/json_schema.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "grammar/grammar_test_util.h"
#include "grammar/matcher.h"
#include "testing/json_schema_check.h"

namespace reprise::grammar {
namespace {

using json = nlohmann::ordered_json;

std::shared_ptr<const Grammar> Compile(const std::string& schema) {
  auto g = CompileJsonSchema(json::parse(schema));
  EXPECT_TRUE(g.ok()) << schema << ": " << g.status().message();
  return g.ok() ? *g : nullptr;
}

bool Accepts(const std::shared_ptr<const Grammar>& g, const std::string& text) {
  Matcher m(g);
  return m.AcceptBytes(text) && m.IsComplete();
}

std::string CompileError(const std::string& schema) {
  auto g = CompileJsonSchema(json::parse(schema));
  return g.ok() ? "" : g.status().message();
}

struct Case {
  const char* schema;
  std::vector<std::string> yes, no;
};

TEST(JsonSchemaTest, EveryKeywordAcceptsAndRejectsWholeTexts) {
  const std::vector<Case> cases = {
      {R"({"type":"string"})",
       {R"("")", R"("a b")", R"("\u00e9\n\"")", "\"\xC3\xA9\xF0\x9F\x98\x80\""},
       {"a", R"("a)", R"("\x")", "\"\x01\"", "\"\xC3\"", "\"\xED\xA0\x80\"", R"("\ud800")", "1"}},
      {R"({"type":"integer"})",
       {"0", "-7", "1234567890123456"},
       {"01", "1.0", "-", "1e3", "12345678901234567", "-0.5"}},
      {R"({"type":"number"})",
       {"0", "-1.25", "3e+10", "2E-5", "0.0001"},
       {".5", "1.", "01", "1e", "1e123", "+1", "NaN"}},
      {R"({"type":"boolean"})", {"true", "false"}, {"True", "1", "null"}},
      {R"({"type":"null"})", {"null"}, {"nil", "\"null\""}},
      {R"({"type":["string","null"]})", {"null", R"("x")"}, {"1"}},
      {R"({"type":"integer","nullable":true})", {"null", "3"}, {"\"3\""}},
      {R"({"enum":["a",1,null,{"k":[true]}]})",
       {R"("a")", "1", "null", R"({"k":[true]})"},
       {R"("b")", "2", R"({"k":[false]})"}},
      {R"({"type":"string","enum":["a",1,"bb"],"maxLength":1})", {R"("a")"}, {"1", R"("bb")"}},
      {R"({"const":"fixed"})", {R"("fixed")"}, {R"("other")"}},
      {R"({"const":2,"enum":[1,2]})", {"2"}, {"1"}},
      {R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"}},"required":["b"]})",
       {R"({"b":"x"})", R"({"a":1,"b":"x"})", R"({ "a" : 1 , "b" : "x" })"},
       {R"({})", R"({"a":1})", R"({"b":"x","a":1})", R"({"b":"x","c":1})", R"({"b":"x","b":"y"})"}},
      {R"({"type":"object","properties":{"a":{"type":"integer"}},"additionalProperties":true})",
       {R"({"a":1,"z":[1,{"q":null}]})", R"({"zz":"s"})"},
       {R"({"a":1,"a":2})", R"({"a":"s"})"}},
      {R"({"type":"object","properties":{"ab":{"type":"integer"}},"additionalProperties":{"type":"string"}})",
       {R"({"ab":1,"a":"s","abc":"t"})", R"({"b":""})"},
       {R"({"ab":"s"})", R"({"x":1})", R"({"ab":1,"ab":2})", R"({"a\u0062":"s"})"}},
      {R"({"type":"object"})", {R"({})", R"({"a":[1,{"b":null}]})"}, {R"([])", "{"}},
      {R"({"type":"object","required":["x"]})", {R"({"x":1})", R"({"x":1,"y":2})"}, {R"({})"}},
      {R"({"type":"object","properties":{"a":false,"b":{}}})",
       {R"({"b":1})", R"({})"},
       {R"({"a":1})"}},
      {R"({"type":"array","items":{"type":"integer"},"minItems":1,"maxItems":3})",
       {"[1]", "[1,2,3]", "[ 1 , 2 ]"},
       {"[]", "[1,2,3,4]", "[\"a\"]", "[1,]"}},
      {R"({"type":"array"})", {"[]", R"([1,"a",[null]])"}, {"{}"}},
      {R"({"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}],"items":false})",
       {R"([])", R"(["a"])", R"(["a",1])"},
       {R"([1])", R"(["a",1,2])"}},
      {R"({"type":"array","items":[{"type":"string"}],"additionalItems":{"type":"boolean"}})",
       {R"(["a",true,false])"},
       {R"(["a",1])", R"([true])"}},
      {R"({"type":"array","prefixItems":[{"const":0}],"minItems":3,"items":{"type":"null"}})",
       {"[0,null,null]", "[0,null,null,null]"},
       {"[0,null]", "[0,0,null]"}},
      {R"({"type":"string","minLength":2,"maxLength":3})",
       {R"("ab")", R"("abc")", "\"\xC3\xA9\xF0\x9F\x98\x80\"", R"("\n\u00e9")"},
       {R"("a")", R"("abcd")"}},
      {R"({"type":"string","minLength":1})", {R"("a")", R"("abcdefgh")"}, {R"("")"}},
      {R"({"type":"string","format":"date"})",
       {R"("2024-02-28")", R"("1999-12-31")", R"("2023-04-30")"},
       {R"("2024-02-29")", R"("2024-02-30")", R"("2023-04-31")", R"("2023-13-01")",
        R"("2023-00-10")", R"("23-01-01")"}},
      {R"({"type":"string","format":"time"})",
       {R"("23:59:59Z")", R"("00:00:00.123+05:30")"},
       {R"("24:00:00Z")", R"("12:60:00Z")", R"("12:00:00")", R"("12:00Z")"}},
      {R"({"type":"string","format":"date-time"})",
       {R"("2024-01-31T08:30:00-02:00")"},
       {R"("2024-01-31 08:30:00Z")", R"("2024-01-31")"}},
      {R"({"type":"string","format":"uuid"})",
       {R"("3f2b8c1e-9a4d-4e6b-8f0a-1c2d3e4f5a6B")"},
       {R"("3f2b8c1e9a4d4e6b8f0a1c2d3e4f5a6b")", R"("3f2b8c1e-9a4d-4e6b-8f0a-1c2d3e4f5a6")"}},
      {R"({"type":"integer","format":"int32"})", {"2147483647", "-2147483648"}, {"2147483648"}},
      {R"({"type":"number","multipleOf":1})", {"3", "-3"}, {"3.5"}},
      {R"({"anyOf":[{"type":"integer"},{"type":"string","maxLength":1}]})",
       {"1", R"("a")"},
       {R"("ab")", "1.5"}},
      {R"({"oneOf":[{"type":"boolean"},{"type":"null"}]})", {"true", "null"}, {"0"}},
      {R"({"allOf":[{"type":"integer","minimum":5}]})", {"5"}, {"4"}},
      {R"({"$defs":{"p":{"type":"integer"}},"type":"object","properties":{"x":{"$ref":"#/$defs/p"}},"required":["x"]})",
       {R"({"x":1})"},
       {R"({"x":"1"})"}},
      {R"({"definitions":{"p":{"type":"boolean"}},"type":"array","items":{"$ref":"#/definitions/p"}})",
       {"[true,false]"},
       {"[1]"}},
      {R"({"type":"object","properties":{"v":{"type":"integer"},"next":{"$ref":"#"}},"required":["v"]})",
       {R"({"v":1,"next":{"v":2,"next":{"v":3}}})"},
       {R"({"v":1,"next":{}})"}},
      {R"({"properties":{"a/b":{"type":"integer"},"t~":{"$ref":"#/properties/a~1b"}},"required":["t~"]})",
       {R"({"t~":4})", R"({"a/b":1,"t~":4})"},
       {R"({"t~":"x"})"}},
      {R"({})", {"1", "\"s\"", "[{}]", "null"}, {"", "nope"}},
      {R"(true)", {"false", "{}"}, {"}"}},
      {R"({"title":"t","description":"d","examples":[1],"default":1,"x-vendor":{"a":1},"$comment":"c","type":"integer"})",
       {"1"},
       {"\"1\""}},
  };
  for (const Case& c : cases) {
    auto g = Compile(c.schema);
    if (g == nullptr) continue;
    for (const std::string& text : c.yes) {
      EXPECT_TRUE(Accepts(g, text)) << c.schema << " should accept " << text;
      EXPECT_EQ(reprise::testing::SchemaViolation(json::parse(text), json::parse(c.schema)), "")
          << "the test's own case is wrong: " << c.schema << " / " << text;
    }
    for (const std::string& text : c.no) {
      EXPECT_FALSE(Accepts(g, text)) << c.schema << " should reject " << text;
    }
  }
}

TEST(JsonSchemaTest, IntegerRangesAreExact) {
  const std::vector<std::pair<int64_t, int64_t>> ranges = {
      {0, 0}, {0, 9}, {1, 10}, {-5, 5}, {-120, -3}, {7, 1234}, {99, 101}, {-1000, 999}, {42, 42}};
  for (const auto& [lo, hi] : ranges) {
    const std::string schema = "{\"type\":\"integer\",\"minimum\":" + std::to_string(lo) +
                               ",\"maximum\":" + std::to_string(hi) + "}";
    auto g = Compile(schema);
    ASSERT_NE(g, nullptr);
    for (int64_t v = lo - 150; v <= hi + 150; ++v) {
      EXPECT_EQ(Accepts(g, std::to_string(v)), v >= lo && v <= hi) << schema << " " << v;
    }
    EXPECT_FALSE(Accepts(g, "-0"));
    if (lo <= 7 && 7 <= hi) {
      EXPECT_FALSE(Accepts(g, "07"));
    }
  }
  // Exclusive and fractional bounds; one side open (up to 16 digits).
  auto g = Compile(R"({"type":"integer","exclusiveMinimum":-2.5,"exclusiveMaximum":3})");
  for (int v = -5; v <= 5; ++v) EXPECT_EQ(Accepts(g, std::to_string(v)), v >= -2 && v <= 2) << v;
  g = Compile(R"({"type":"integer","minimum":10})");
  EXPECT_TRUE(Accepts(g, "9999999999999999"));
  EXPECT_FALSE(Accepts(g, "9"));
  EXPECT_FALSE(Accepts(g, "-10"));
  g = Compile(
      R"({"type":"integer","minimum":3,"exclusiveMinimum":true,"maximum":5,"exclusiveMaximum":true})");
  EXPECT_TRUE(Accepts(g, "4"));
  EXPECT_FALSE(Accepts(g, "3"));
  EXPECT_FALSE(Accepts(g, "5"));
}

TEST(JsonSchemaTest, NumberBoundsAreNeverLeft) {
  const std::vector<std::string> schemas = {
      R"({"type":"number","minimum":0,"maximum":1})",
      R"({"type":"number","minimum":-1.5,"maximum":2.5})",
      R"({"type":"number","exclusiveMinimum":0})",
      R"({"type":"number","exclusiveMaximum":-3,"minimum":-10})",
      R"({"type":"number","minimum":0.25,"maximum":7.75})",
  };
  for (const std::string& text : schemas) {
    auto g = Compile(text);
    ASSERT_NE(g, nullptr);
    TokenMasks masks(g, testing::JsonishTrie());
    std::mt19937 rng(3);
    int complete = 0;
    for (int i = 0; i < 200; ++i) {
      auto out = testing::RandomSentence(masks, rng, 40, 0.3, false);
      if (!out.complete) continue;
      ++complete;
      const json v = json::parse(out.text, nullptr, false);
      ASSERT_FALSE(v.is_discarded()) << text << ": " << out.text;
      EXPECT_EQ(reprise::testing::SchemaViolation(v, json::parse(text)), "")
          << text << ": " << out.text;
    }
    EXPECT_GT(complete, 100) << text;
  }
  auto g = Compile(R"({"type":"number","minimum":0,"maximum":1})");
  for (const char* yes : {"0", "1", "0.5", "0.999", "1.0"}) EXPECT_TRUE(Accepts(g, yes)) << yes;
  for (const char* no : {"-0.5", "1.5", "2", "1e0"}) EXPECT_FALSE(Accepts(g, no)) << no;
  g = Compile(R"({"type":"number","exclusiveMinimum":0})");
  EXPECT_TRUE(Accepts(g, "0.5"));
  EXPECT_FALSE(Accepts(g, "0"));
  EXPECT_FALSE(Accepts(g, "-0.5"));
}

TEST(JsonSchemaTest, WhitespaceIsBoundedAndNeverTrails) {
  auto g = Compile(R"({"type":"array","items":{"type":"integer"}})");
  EXPECT_TRUE(Accepts(g, "[\n  1,\n\t2\n]"));
  EXPECT_TRUE(Accepts(g, " [1]"));  // a little leading whitespace
  EXPECT_TRUE(Accepts(g, "[\n" + std::string(20, ' ') + "1]"));
  EXPECT_FALSE(Accepts(g, "[\n" + std::string(21, ' ') + "1]"));
  EXPECT_FALSE(Accepts(g, "[  1]"));
  EXPECT_FALSE(Accepts(g, "[1] "));
  EXPECT_FALSE(Accepts(g, "[1]\n"));
  JsonSchemaOptions compact;
  compact.whitespace = false;
  auto c =
      CompileJsonSchema(json::parse(R"({"type":"array","items":{"type":"integer"}})"), compact);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(Accepts(*c, "[1,2]"));
  EXPECT_FALSE(Accepts(*c, "[1, 2]"));
}

TEST(JsonSchemaTest, UnsupportedKeywordsAreNamedWithTheirPlace) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"type":"string","pattern":"^a+$"})", "'pattern' at #"},
      {R"({"type":"object","properties":{"x":{"not":{"type":"null"}}}})",
       "'not' at #/properties/x"},
      {R"({"type":"object","patternProperties":{"^a":{}}})", "'patternProperties' at #"},
      {R"({"if":{"type":"string"},"then":{}})", "'if' at #"},
      {R"({"type":"array","uniqueItems":true})", "'uniqueItems'"},
      {R"({"type":"array","contains":{"type":"integer"}})", "'contains'"},
      {R"({"type":"object","maxProperties":2})", "'maxProperties'"},
      {R"({"type":"object","minProperties":2})", "'minProperties'"},
      {R"({"allOf":[{"type":"integer"},{"minimum":1}]})", "allOf with more than one"},
      {R"({"type":"string","format":"email"})", "format 'email'"},
      {R"({"type":"number","multipleOf":0.5})", "'multipleOf'"},
      {R"({"$ref":"https://example.com/s.json"})", "only references into the same schema"},
      {R"({"$ref":"#/$defs/missing"})", "points to nothing"},
      {R"({"anyOf":[{"type":"integer"}],"type":"string"})", "'anyOf' next to 'type'"},
      {R"({"enum":[1,2],"pattern":"x"})", "'pattern'"},
      {R"({"type":"strnig"})", "type must be object, array"},
      {R"({"type":"integer","minimum":5,"maximum":3})", "can never be satisfied"},
      {R"({"type":"object","properties":{"a":false},"required":["a"]})", "schema false"},
      {R"({"type":"object","additionalProperties":false,"required":["a"]})",
       "additionalProperties is false"},
      {R"({"enum":[]})", "non-empty"},
      {R"({"type":"string","enum":[1,2]})", "can never be satisfied"},
      {R"({"$defs":{"a":{"$ref":"#/$defs/b"},"b":{"anyOf":[{"$ref":"#/$defs/a"},{"type":"null"}]}},"$ref":"#/$defs/a"})",
       "left-recursive"},
      {R"({"type":"string","minLength":"3"})", "minLength must be a non-negative integer"},
      {R"({"type":"object","strict":true})", "'strict'"},
  };
  for (const auto& [schema, expected] : cases) {
    const std::string error = CompileError(schema);
    EXPECT_NE(error.find(expected), std::string::npos) << schema << " -> " << error;
  }
}

TEST(JsonSchemaTest, HostileSchemasFailFastWithAnError) {
  auto timed_error = [](const json& schema) {
    const auto t0 = std::chrono::steady_clock::now();
    auto g = CompileJsonSchema(schema);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(s, 10.0);
    return g.ok() ? std::string() : g.status().message();
  };
  json deep = {{"type", "integer"}};
  for (int i = 0; i < 100; ++i) deep = {{"type", "array"}, {"items", deep}};
  EXPECT_NE(timed_error(deep).find("deeper than 64"), std::string::npos);
  json big_enum = {{"enum", json::array()}};
  for (int i = 0; i < 200000; ++i) big_enum["enum"].push_back("value-" + std::to_string(i));
  EXPECT_NE(timed_error(big_enum).find("enum/const values take more than"), std::string::npos);
  EXPECT_NE(
      timed_error(json::parse(R"({"type":"string","maxLength":1000000000})")).find("supported"),
      std::string::npos);
  EXPECT_NE(timed_error(json::parse(R"({"type":"array","minItems":100000000})")).find("supported"),
            std::string::npos);
  // Many wide objects: the automaton limit, not memory, stops it.
  json wide = {{"type", "object"}, {"properties", json::object()}};
  for (int i = 0; i < 3000; ++i) {
    wide["properties"]["p" + std::to_string(i)] = {{"type", "string"}, {"maxLength", 60}};
  }
  EXPECT_NE(timed_error(wide).find("states"), std::string::npos);
  // Pure $ref cycles.
  EXPECT_NE(timed_error(json::parse(R"({"$ref":"#"})")), "");
  EXPECT_NE(
      timed_error(json::parse(
          R"({"$defs":{"a":{"$ref":"#/$defs/b"},"b":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"})")),
      "");
}

json LoadCorpus() {
  std::ifstream in(std::string(REPRISE_SOURCE_DIR) + "/tests/data/json_schema_corpus.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str(), nullptr, false);
}

TEST(JsonSchemaTest, RandomOutputsOfTheCorpusParseAndValidate) {
  const json corpus = LoadCorpus();
  ASSERT_TRUE(corpus.is_array()) << "tests/data/json_schema_corpus.json";
  ASSERT_GE(corpus.size(), 30u);
  for (const json& entry : corpus) {
    const json& schema = entry["schema"];
    auto g = CompileJsonSchema(schema);
    ASSERT_TRUE(g.ok()) << entry["name"] << ": " << g.status().message();
    TokenMasks masks(*g, testing::JsonishTrie());
    std::mt19937 rng(11);
    int complete = 0;
    for (int i = 0; i < 40; ++i) {
      auto out = testing::RandomSentence(masks, rng, 400, 0.5, /*check=*/i < 2);
      ASSERT_FALSE(::testing::Test::HasFailure()) << entry["name"];
      if (!out.complete) continue;
      ++complete;
      const json v = json::parse(out.text, nullptr, false);
      ASSERT_FALSE(v.is_discarded()) << entry["name"] << ": " << out.text;
      EXPECT_EQ(reprise::testing::SchemaViolation(v, schema), "")
          << entry["name"] << ": " << out.text;
    }
    EXPECT_GE(complete, 20) << entry["name"];
  }
}

}  // namespace
}  // namespace reprise::grammar
