// Black-box tests of chat features that come from the model's template
// (issue 5 wiring): tools and tool messages reach the template, bad tool
// input is a 400 naming the field, and a template that opens <think> makes
// the reply come back as reasoning_content (whole and streamed).
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "server/server_test_util.h"
#include "testing/fixtures.h"

namespace reprise::server::testing {
namespace {

constexpr const char* kToolTemplate = R"({%- if tools %}<|im_start|>system
# Tools
{% for t in tools %}{{ t | tojson }}
{% endfor %}Call one as <tool_call>{"name": .., "arguments": ..}</tool_call><|im_end|>
{% endif %}{%- for m in messages %}<|im_start|>{{ m.role }}
{% if m.content %}{{ m.content }}{% endif %}{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>{{ c.function | tojson }}</tool_call>{% endfor %}{% endif %}<|im_end|>
{% endfor %}{%- if add_generation_prompt %}<|im_start|>assistant
<think>
{% endif %})";

class ChatToolsHttpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path = reprise::testing::TempDir() + "/tool_template.jinja";
    std::ofstream(path) << kToolTemplate;
    std::string error;
    server_ =
        ServerProcess::Start(TinyChatModel(), {"--chat-template-file", path}, &error).release();
    ASSERT_NE(server_, nullptr) << error;
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr); }
  static ServerProcess* server_;
};
ServerProcess* ChatToolsHttpTest::server_ = nullptr;

Json Weather() {
  return {
      {"type", "function"},
      {"function",
       {{"name", "get_weather"},
        {"description", "Weather for a city"},
        {"parameters", {{"type", "object"}, {"properties", {{"city", {{"type", "string"}}}}}}}}}};
}

Json Body(Json messages) {
  return {{"messages", std::move(messages)},
          {"max_tokens", 4},
          {"temperature", 0},
          {"logit_bias", {{"97", 100}, {"98", 100}}}};
}

TEST_F(ChatToolsHttpTest, ToolsAndToolResultsReachTheTemplate) {
  Json messages = {{{"role", "user"}, {"content", "Weather in Paris?"}}};
  HttpResult plain = server_->Post("/v1/chat/completions", Body(messages));
  ASSERT_EQ(plain.status, 200) << plain.body;
  Json with_tools = Body(messages);
  with_tools["tools"] = {Weather()};
  HttpResult r = server_->Post("/v1/chat/completions", with_tools);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_GT(r.json["usage"]["prompt_tokens"].get<int>(),
            plain.json["usage"]["prompt_tokens"].get<int>() + 50);
  // A full tool round trip: the assistant's call (arguments as a JSON
  // string, as the SDK sends them) and the tool's answer.
  messages.push_back(
      {{"role", "assistant"},
       {"content", nullptr},
       {"tool_calls",
        {{{"id", "call_1"},
          {"type", "function"},
          {"function", {{"name", "get_weather"}, {"arguments", "{\"city\":\"Paris\"}"}}}}}}});
  messages.push_back({{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "sunny"}});
  Json round_trip = Body(messages);
  round_trip["tools"] = {Weather()};
  HttpResult t = server_->Post("/v1/chat/completions", round_trip);
  ASSERT_EQ(t.status, 200) << t.body;
  HttpResult rendered =
      server_->Post("/tokenize", {{"content",
                                   "<tool_call>{\"arguments\": {\"city\": \"Paris\"}, \"name\": "
                                   "\"get_weather\"}</tool_call>"}});
  EXPECT_GT(t.json["usage"]["prompt_tokens"].get<int>(),
            r.json["usage"]["prompt_tokens"].get<int>() +
                static_cast<int>(rendered.json["tokens"].size()) / 2);
}

TEST_F(ChatToolsHttpTest, OpenThinkTagMakesTheReplyReasoning) {
  HttpResult r =
      server_->Post("/v1/chat/completions", Body({{{"role", "user"}, {"content", "Think."}}}));
  ASSERT_EQ(r.status, 200) << r.body;
  const Json& m = r.json["choices"][0]["message"];
  EXPECT_EQ(m["reasoning_content"].get<std::string>().size(), 4u) << r.body;
  EXPECT_EQ(m["content"], "");
  Json body = Body({{{"role", "user"}, {"content", "Think."}}});
  body["stream"] = true;
  HttpResult s = server_->Post("/v1/chat/completions", body);
  bool done = false;
  std::string reasoning;
  for (const Json& c : ParseSse(s.body, &done)) {
    if (c["choices"].empty()) continue;
    const Json& d = c["choices"][0]["delta"];
    if (d.contains("reasoning_content")) reasoning += d["reasoning_content"].get<std::string>();
    EXPECT_FALSE(d.contains("content") && !d["content"].get<std::string>().empty()) << c.dump();
  }
  EXPECT_TRUE(done);
  EXPECT_EQ(reasoning, m["reasoning_content"]);
}

TEST_F(ChatToolsHttpTest, BadToolInputIs400NamingTheField) {
  Json messages = {{{"role", "user"}, {"content", "x"}}};
  Json bad_schema = Body(messages);
  Json tool = Weather();
  tool["function"]["parameters"] = "not an object";
  bad_schema["tools"] = {tool};
  HttpResult a = server_->Post("/v1/chat/completions", bad_schema);
  EXPECT_EQ(a.status, 400);
  EXPECT_EQ(a.json["error"]["param"], "tools[0].function.parameters") << a.body;
  Json orphan = Body({{{"role", "user"}, {"content", "x"}},
                      {{"role", "tool"}, {"tool_call_id", "nope"}, {"content", "42"}}});
  HttpResult b = server_->Post("/v1/chat/completions", orphan);
  EXPECT_EQ(b.status, 400);
  EXPECT_EQ(b.json["error"]["param"], "messages[1].tool_call_id") << b.body;
  Json choice = Body(messages);
  choice["tools"] = {Weather()};
  choice["tool_choice"] = {{"type", "function"}, {"function", {{"name", "missing"}}}};
  HttpResult c = server_->Post("/v1/chat/completions", choice);
  EXPECT_EQ(c.status, 400);
  EXPECT_EQ(c.json["error"]["param"], "tool_choice") << c.body;
  choice["tool_choice"] = "sometimes";
  EXPECT_EQ(server_->Post("/v1/chat/completions", choice).status, 400);
  choice["tool_choice"] = "required";
  EXPECT_EQ(server_->Post("/v1/chat/completions", choice).status, 200);
}

TEST(ChatTemplateHttpTest, ModelWithoutTemplateRefusesChatWithAClearError) {
  // stories260K has a tokenizer but no chat template.
  const std::string model = reprise::testing::FixturePath("stories260K/stories260K.gguf");
  REQUIRE_FIXTURE(model);
  std::string error;
  auto s = ServerProcess::Start(model, {}, &error);
  ASSERT_NE(s, nullptr) << error;
  HttpResult r =
      s->Post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "hi"}}}}});
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.json["error"]["message"].get<std::string>().find("chat template"), std::string::npos);
  HttpResult c = s->Post("/v1/completions",
                         {{"prompt", "Once upon a time"}, {"max_tokens", 8}, {"temperature", 0}});
  EXPECT_EQ(c.status, 200) << c.body;
  EXPECT_EQ(c.json["usage"]["completion_tokens"], 8);
}

}  // namespace
}  // namespace reprise::server::testing
