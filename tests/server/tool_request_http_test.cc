// Black-box request validation for tool calling: every malformed tools /
// tool_choice / tool_calls / tool message / role, and a chat template that
// raises, is a 400 in OpenAI's envelope naming the field and saying what is
// wrong (the template's own message when it raised). Scripted models with
// real templates read in place from ../shared/fixtures.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "server/server_test_util.h"
#include "testing/fixtures.h"

namespace reprise::server::testing {
namespace {

class ToolRequestHttpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string tmpl = reprise::testing::ReadFile(Qwen3TemplatePath());
    if (tmpl.empty()) return;  // SetUp skips (or fails in CI)
    std::string error;
    server_ =
        ServerProcess::Start(ScriptedChatModel("scripted_hello", {"Hello", "!"}, tmpl), {}, &error)
            .release();
    EXPECT_NE(server_, nullptr) << error;
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    REQUIRE_FIXTURE(Qwen3TemplatePath());
    ASSERT_NE(server_, nullptr);
  }

  // Posts `body` and checks a 400 naming `param` whose message contains `says`.
  static void Expect400(const Json& body, const std::string& param, const std::string& says) {
    HttpResult r = server_->Post("/v1/chat/completions", body);
    EXPECT_EQ(r.status, 400) << body.dump() << "\n" << r.body;
    ASSERT_TRUE(r.json.contains("error")) << r.body;
    const Json& e = r.json["error"];
    EXPECT_EQ(e["type"], "invalid_request_error") << r.body;
    EXPECT_EQ(e["param"], param) << r.body;
    EXPECT_NE(e["message"].get<std::string>().find(says), std::string::npos)
        << "wanted '" << says << "' in: " << r.body;
  }
  static ServerProcess* server_;
};
ServerProcess* ToolRequestHttpTest::server_ = nullptr;

Json Weather() {
  return {
      {"type", "function"},
      {"function",
       {{"name", "get_weather"},
        {"parameters", {{"type", "object"}, {"properties", {{"city", {{"type", "string"}}}}}}}}}};
}

Json User() { return {{"role", "user"}, {"content", "Weather in Paris?"}}; }

Json Call(Json id, Json function) {
  return {{"role", "assistant"},
          {"content", nullptr},
          {"tool_calls", {{{"id", std::move(id)}, {"type", "function"}, {"function", function}}}}};
}

Json Body(Json messages, Json tools = Json::array({Weather()})) {
  Json b = {{"messages", std::move(messages)}, {"max_tokens", 4}, {"temperature", 0}};
  if (!tools.is_null()) b["tools"] = std::move(tools);
  return b;
}

TEST_F(ToolRequestHttpTest, ToolSchemasMustBeFunctionObjectsWithNames) {
  Expect400(Body({User()}, Json::object()), "tools", "tools must be an array");
  Expect400(Body({User()}, {"get_weather"}), "tools[0]", "tools[0] must be an object");
  Json no_type = Weather();
  no_type.erase("type");
  Expect400(Body({User()}, {no_type}), "tools[0].type", "\"function\"");
  Json no_function = {{"type", "function"}};
  Expect400(Body({User()}, {no_function}), "tools[0].function", "must be an object");
  Json no_name = Weather();
  no_name["function"].erase("name");
  Expect400(Body({User()}, {Weather(), no_name}), "tools[1].function.name",
            "tools[1].function.name must be a non-empty string");
  Json bad_params = Weather();
  bad_params["function"]["parameters"] = Json::array();
  Expect400(Body({User()}, {bad_params}), "tools[0].function.parameters", "JSON Schema object");
}

TEST_F(ToolRequestHttpTest, ToolChoiceMustBeKnownAndMatchTheTools) {
  Json b = Body({User()});
  b["tool_choice"] = "sometimes";
  Expect400(b, "tool_choice", "auto, none, required or a function");
  b["tool_choice"] = {{"type", "function"}, {"function", {{"name", "get_time"}}}};
  Expect400(b, "tool_choice", "'get_time', which is not in tools");
  b["tool_choice"] = 3;
  Expect400(b, "tool_choice", "tool_choice must be a string or");
  Json no_tools = Body({User()}, nullptr);
  no_tools["tool_choice"] = "required";
  Expect400(no_tools, "tool_choice", "needs a non-empty tools array");
  no_tools["tool_choice"] = "none";  // fine without tools
  EXPECT_EQ(server_->Post("/v1/chat/completions", no_tools).status, 200);
}

TEST_F(ToolRequestHttpTest, ReplayedToolCallsAreChecked) {
  Expect400(Body({User(), {{"role", "assistant"}, {"content", nullptr}, {"tool_calls", "x"}}}),
            "messages[1].tool_calls", "must be an array");
  Expect400(Body({User(), Call("c1", {{"arguments", "{}"}})}),
            "messages[1].tool_calls[0].function.name", "non-empty string");
  Expect400(Body({User(), Call("c1", {{"name", "get_weather"}, {"arguments", 42}})}),
            "messages[1].tool_calls[0].function.arguments", "a JSON string or an object");
  Expect400(Body({User(), Call(7, {{"name", "get_weather"}, {"arguments", "{}"}})}),
            "messages[1].tool_calls[0].id", "must be a string");
}

TEST_F(ToolRequestHttpTest, ToolMessagesMustAnswerAnEarlierCall) {
  const Json call = Call("call_1", {{"name", "get_weather"}, {"arguments", "{}"}});
  Json orphan = {{"role", "tool"}, {"tool_call_id", "call_2"}, {"content", "sunny"}};
  Expect400(Body({User(), call, orphan}), "messages[2].tool_call_id",
            "'call_2' matches no tool call of an earlier assistant message");
  // The answer must come after the call, not before it.
  Json early = {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "sunny"}};
  Expect400(Body({User(), early, call}), "messages[1].tool_call_id", "matches no tool call");
  Json no_id = {{"role", "tool"}, {"content", "sunny"}};
  Expect400(Body({User(), call, no_id}), "messages[2].tool_call_id", "needs a string tool_call_id");
  early["tool_call_id"] = "call_1";
  HttpResult ok = server_->Post("/v1/chat/completions", Body({User(), call, early}));
  EXPECT_EQ(ok.status, 200) << ok.body;
}

TEST_F(ToolRequestHttpTest, MessagesMustBeAnArrayOfKnownRoles) {
  Expect400({{"messages", {{"role", "user"}, {"content", "hi"}}}}, "messages",
            "messages must be an array");
  Expect400({{"messages", "hi"}}, "messages", "messages must be an array");
  Expect400(Body({User(), {{"role", "robot"}, {"content", "beep"}}}), "messages[1].role",
            "unknown role 'robot'");
  Expect400(Body({{{"content", "no role"}}}), "messages[0].role", "must be a string");
}

TEST(ToolTemplateHttpTest, ATemplateThatRaisesIsA400WithItsOwnMessage) {
  // Llama 3.1's template refuses several calls in one assistant message.
  const std::string path = reprise::testing::FixturePath(
      "templates/llamacpp_vocab/meta-llama-Llama-3.1-8B-Instruct.jinja");
  REQUIRE_FIXTURE(path);
  std::string error;
  auto s = ServerProcess::Start(
      ScriptedChatModel("scripted_llama31", {"Hi"}, reprise::testing::ReadFile(path)), {}, &error);
  ASSERT_NE(s, nullptr) << error;
  Json two_calls = {{"role", "assistant"},
                    {"content", nullptr},
                    {"tool_calls",
                     {{{"id", "a"},
                       {"type", "function"},
                       {"function", {{"name", "get_weather"}, {"arguments", "{}"}}}},
                      {{"id", "b"},
                       {"type", "function"},
                       {"function", {{"name", "get_weather"}, {"arguments", "{}"}}}}}}};
  HttpResult r = s->Post("/v1/chat/completions", Body({User(), two_calls}));
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.json["error"]["param"], "messages") << r.body;
  EXPECT_NE(r.json["error"]["message"].get<std::string>().find(
                "This model only supports single tool-calls at once!"),
            std::string::npos)
      << r.body;
  // The same template renders a well-formed tool conversation.
  Json one_call = two_calls;
  one_call["tool_calls"].erase(1);
  HttpResult ok = s->Post(
      "/v1/chat/completions",
      Body({User(), one_call, {{"role", "tool"}, {"tool_call_id", "a"}, {"content", "sunny"}}}));
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(ok.json["choices"][0]["message"]["content"], "Hi") << ok.body;
}

}  // namespace
}  // namespace reprise::server::testing
