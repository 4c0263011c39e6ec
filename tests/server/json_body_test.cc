// ParseJsonBounded (the request path's JSON parser): the same values as
// nlohmann::ordered_json::parse for what it accepts, refusals for nesting
// past the limit, and linear time for objects with many keys.
#include "server/json_body.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace reprise::server {
namespace {

using json = nlohmann::ordered_json;

TEST(JsonBody, SameValuesAsNlohmannParse) {
  for (const char* text : {
           R"({"a":1,"b":[1,2.5,-3,true,false,null,"s"],"c":{"d":{"e":[]}},"f":{}})",
           R"([1,{"x":"\u00e9\ud83d\ude00"},[[[]]]])",
           R"("just a string")", "42", "-0.0", "18446744073709551615",
           R"({"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,
               "k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,
               "k3":33,"k17":77,"k0":100})",
           R"({"dup":1,"other":2,"dup":3})",
       }) {
    JsonParseResult r = ParseJsonBounded(text);
    ASSERT_TRUE(r.ok) << text << ": " << r.error;
    const json want = json::parse(text);
    EXPECT_EQ(r.value, want) << text;
    EXPECT_EQ(r.value.dump(), want.dump()) << text;  // same key order too
  }
}

TEST(JsonBody, InvalidJsonIsAnErrorWithAReason) {
  for (const char* text : {"", "{", "[1,]", "{\"a\" 1}", "nul", "[1] x", "\"\\x\""}) {
    JsonParseResult r = ParseJsonBounded(text);
    EXPECT_FALSE(r.ok) << text;
    EXPECT_FALSE(r.too_deep) << text;
    EXPECT_NE(r.error.find("not valid JSON"), std::string::npos) << r.error;
  }
}

TEST(JsonBody, NestingPastTheLimitIsRefused) {
  const int limit = 16;
  auto nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  EXPECT_TRUE(ParseJsonBounded(nested(limit), limit).ok);
  JsonParseResult deep = ParseJsonBounded(nested(limit + 1), limit);
  EXPECT_FALSE(deep.ok);
  EXPECT_TRUE(deep.too_deep);
  // Refused when reached: a 10 MB unterminated '[' run costs no memory.
  JsonParseResult huge = ParseJsonBounded(std::string(10'000'000, '['));
  EXPECT_TRUE(huge.too_deep);
  EXPECT_NE(huge.error.find("deeper than 128"), std::string::npos) << huge.error;
}

TEST(JsonBody, ManyKeysParseInLinearTime) {
  auto object = [](int n) {
    std::string s = "{";
    for (int i = 0; i < n; ++i) s += (i ? ",\"" : "\"") + std::to_string(i) + "\":1";
    return s + "}";
  };
  const std::string big = object(400000);
  const auto t0 = std::chrono::steady_clock::now();
  JsonParseResult r = ParseJsonBounded(big);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.value.size(), 400000u);
  EXPECT_EQ(r.value["399999"], 1);
  // nlohmann's ordered_json::parse takes minutes here (quadratic).
  EXPECT_LT(ms, 5000.0);
}

}  // namespace
}  // namespace reprise::server
