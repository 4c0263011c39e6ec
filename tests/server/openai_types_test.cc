// Request parsing: OpenAI fields into native structs, errors naming the
// parameter; response shapes.
#include "server/openai_types.h"

#include <gtest/gtest.h>

namespace reprise::server {
namespace {

using Json = nlohmann::ordered_json;

RequestDefaults Defaults() {
  RequestDefaults d;
  d.sampling.temperature = 0.7f;
  d.sampling.top_k = 40;
  return d;
}

ApiError ChatError(const Json& body) {
  auto r = ParseChatRequest(body, Defaults());
  EXPECT_TRUE(std::holds_alternative<ApiError>(r)) << body.dump();
  return std::holds_alternative<ApiError>(r) ? std::get<ApiError>(r) : ApiError{};
}

Json Chat(Json extra) {
  Json body = {{"messages", {{{"role", "user"}, {"content", "hi"}}}}};
  for (auto& [k, v] : extra.items()) body[k] = v;
  return body;
}

TEST(OpenAiTypesTest, ParsesChatFieldsIntoNativeStructs) {
  auto r = ParseChatRequest(Chat({{"max_tokens", 12},
                                  {"temperature", 0.0},
                                  {"top_p", 0.5},
                                  {"top_k", 3},
                                  {"min_p", 0.1},
                                  {"presence_penalty", 0.5},
                                  {"frequency_penalty", -0.5},
                                  {"repetition_penalty", 1.1},
                                  {"seed", 42},
                                  {"stop", "END"},
                                  {"logit_bias", {{"65", 5}}},
                                  {"logprobs", true},
                                  {"top_logprobs", 3},
                                  {"stream", true},
                                  {"stream_options", {{"include_usage", true}}},
                                  {"user", "u1"},
                                  {"some_unknown_field", {1, 2, 3}}}),
                            Defaults());
  ASSERT_TRUE(std::holds_alternative<ChatRequest>(r));
  const ChatRequest& c = std::get<ChatRequest>(r);
  const GenerationOptions& o = c.options;
  EXPECT_EQ(o.max_tokens, 12);
  EXPECT_EQ(o.sampling.temperature, 0.0f);
  EXPECT_EQ(o.sampling.top_p, 0.5f);
  EXPECT_EQ(o.sampling.top_k, 3);
  EXPECT_FLOAT_EQ(o.sampling.min_p, 0.1f);
  EXPECT_FLOAT_EQ(o.sampling.repetition_penalty, 1.1f);
  EXPECT_EQ(o.sampling.seed, 42u);
  ASSERT_EQ(o.stop.size(), 1u);
  EXPECT_EQ(o.stop[0], "END");
  ASSERT_EQ(o.sampling.logit_bias.size(), 1u);
  EXPECT_EQ(o.sampling.logit_bias[0].first, 65);
  EXPECT_TRUE(o.logprobs);
  EXPECT_EQ(o.sampling.n_top_logprobs, 3);
  EXPECT_TRUE(o.stream);
  EXPECT_TRUE(o.include_usage);
  EXPECT_EQ(o.user, "u1");
}

TEST(OpenAiTypesTest, DefaultsApplyWhenFieldsAreAbsentOrNull) {
  auto r = ParseChatRequest(Chat({{"temperature", nullptr}, {"stop", nullptr}}), Defaults());
  ASSERT_TRUE(std::holds_alternative<ChatRequest>(r));
  const GenerationOptions& o = std::get<ChatRequest>(r).options;
  EXPECT_FLOAT_EQ(o.sampling.temperature, 0.7f);
  EXPECT_EQ(o.sampling.top_k, 40);
  EXPECT_FALSE(o.max_tokens.has_value());
  EXPECT_EQ(o.sampling.n_top_logprobs, -1);
}

TEST(OpenAiTypesTest, MaxCompletionTokensIsAnAlias) {
  auto r = ParseChatRequest(Chat({{"max_completion_tokens", 7}}), Defaults());
  ASSERT_TRUE(std::holds_alternative<ChatRequest>(r));
  EXPECT_EQ(std::get<ChatRequest>(r).options.max_tokens, 7);
}

TEST(OpenAiTypesTest, ContentPartsAreJoined) {
  Json body = {
      {"messages",
       {{{"role", "user"},
         {"content", {{{"type", "text"}, {"text", "a"}}, {{"type", "text"}, {"text", "b"}}}}}}}};
  auto r = ParseChatRequest(body, Defaults());
  ASSERT_TRUE(std::holds_alternative<ChatRequest>(r));
  EXPECT_EQ(std::get<ChatRequest>(r).messages[0]["content"], "ab");
}

TEST(OpenAiTypesTest, ErrorsNameTheParameter) {
  EXPECT_EQ(ChatError({{"model", "x"}}).param, "messages");
  EXPECT_EQ(ChatError({{"messages", "hi"}}).param, "messages");
  EXPECT_EQ(ChatError({{"messages", Json::array()}}).param, "messages");
  EXPECT_EQ(ChatError({{"messages", {{{"role", "wizard"}, {"content", "x"}}}}}).param,
            "messages[0].role");
  EXPECT_EQ(ChatError({{"messages", {{{"role", "user"}, {"content", 5}}}}}).param,
            "messages[0].content");
  EXPECT_EQ(ChatError(Chat({{"temperature", "hot"}})).param, "temperature");
  EXPECT_EQ(ChatError(Chat({{"max_tokens", 0}})).param, "max_tokens");
  EXPECT_EQ(ChatError(Chat({{"max_tokens", 1.5}})).param, "max_tokens");
  EXPECT_EQ(ChatError(Chat({{"n", 2}})).param, "n");
  EXPECT_EQ(ChatError(Chat({{"stop", 5}})).param, "stop");
  EXPECT_EQ(ChatError(Chat({{"stop", {"a", 1}}})).param, "stop[1]");
  EXPECT_EQ(ChatError(Chat({{"logit_bias", {{"abc", 1}}}})).param, "logit_bias");
  EXPECT_EQ(ChatError(Chat({{"top_logprobs", 2}})).param, "top_logprobs");  // needs logprobs
  EXPECT_EQ(ChatError(Chat({{"logprobs", true}, {"top_logprobs", 21}})).param, "top_logprobs");
  EXPECT_EQ(ChatError(Chat({{"stream", "yes"}})).param, "stream");
  EXPECT_EQ(ChatError(Chat({{"stream_options", {{"include_usage", 1}}}})).param,
            "stream_options.include_usage");
  const ApiError e = ChatError(Chat({{"top_k", -1}}));
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.type, "invalid_request_error");
}

Json WeatherTool(const std::string& name) {
  return {{"type", "function"},
          {"function", {{"name", name}, {"parameters", {{"type", "object"}}}}}};
}

TEST(OpenAiTypesTest, TheTemplateGetsToolsAsToolChoiceSelectsThem) {
  const Json tools = {WeatherTool("get_weather"), WeatherTool("get_time")};
  auto all = ParseChatRequest(Chat({{"tools", tools}}), Defaults());
  ASSERT_TRUE(std::holds_alternative<ChatRequest>(all));
  EXPECT_EQ(std::get<ChatRequest>(all).tools, tools);
  EXPECT_EQ(std::get<ChatRequest>(all).tool_choice, "auto");
  auto none = ParseChatRequest(Chat({{"tools", tools}, {"tool_choice", "none"}}), Defaults());
  ASSERT_TRUE(std::holds_alternative<ChatRequest>(none));
  EXPECT_TRUE(std::get<ChatRequest>(none).tools.is_null());  // as if no tools were sent
  auto named = ParseChatRequest(
      Chat({{"tools", tools},
            {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_time"}}}}}}),
      Defaults());
  ASSERT_TRUE(std::holds_alternative<ChatRequest>(named));
  EXPECT_EQ(std::get<ChatRequest>(named).tools, Json::array({WeatherTool("get_time")}));
  EXPECT_EQ(std::get<ChatRequest>(named).tool_choice, "get_time");
  auto empty = ParseChatRequest(Chat({{"tools", Json::array()}}), Defaults());
  ASSERT_TRUE(std::holds_alternative<ChatRequest>(empty));
  EXPECT_TRUE(std::get<ChatRequest>(empty).tools.is_null());
  EXPECT_EQ(ChatError(Chat({{"tool_choice", "required"}})).param, "tool_choice");
}

TEST(OpenAiTypesTest, ToolCallArgumentsStringsBecomeObjectsUnlessNotJsonObjects) {
  Json messages = {{{"role", "user"}, {"content", "hi"}}};
  for (const char* args : {"{\"city\": \"Paris\"}", "city=Paris", "[1, 2]"}) {
    messages.push_back({{"role", "assistant"},
                        {"tool_calls",
                         {{{"id", std::string("c") + std::to_string(messages.size())},
                           {"type", "function"},
                           {"function", {{"name", "f"}, {"arguments", args}}}}}}});
  }
  auto r = ParseChatRequest({{"messages", messages}}, Defaults());
  ASSERT_TRUE(std::holds_alternative<ChatRequest>(r));
  const Json& m = std::get<ChatRequest>(r).messages;
  EXPECT_EQ(m[1]["tool_calls"][0]["function"]["arguments"], Json({{"city", "Paris"}}));
  EXPECT_EQ(m[2]["tool_calls"][0]["function"]["arguments"], "city=Paris");
  EXPECT_EQ(m[3]["tool_calls"][0]["function"]["arguments"], "[1, 2]");
  EXPECT_TRUE(m[1]["content"].is_null());  // absent content is null for the template
}

TEST(OpenAiTypesTest, CompletionPromptForms) {
  auto text = ParseCompletionRequest({{"prompt", "hello"}}, Defaults());
  ASSERT_TRUE(std::holds_alternative<CompletionRequest>(text));
  EXPECT_EQ(std::get<std::string>(std::get<CompletionRequest>(text).prompt), "hello");
  auto ids = ParseCompletionRequest({{"prompt", {1, 2, 3}}}, Defaults());
  ASSERT_TRUE(std::holds_alternative<CompletionRequest>(ids));
  EXPECT_EQ(std::get<std::vector<int32_t>>(std::get<CompletionRequest>(ids).prompt),
            (std::vector<int32_t>{1, 2, 3}));
  auto batch1 = ParseCompletionRequest({{"prompt", {"only"}}}, Defaults());
  ASSERT_TRUE(std::holds_alternative<CompletionRequest>(batch1));
  auto batch2 = ParseCompletionRequest({{"prompt", {"a", "b"}}}, Defaults());
  ASSERT_TRUE(std::holds_alternative<ApiError>(batch2));
  EXPECT_EQ(std::get<ApiError>(batch2).param, "prompt");
  auto bad = ParseCompletionRequest({{"prompt", {1, -2}}}, Defaults());
  ASSERT_TRUE(std::holds_alternative<ApiError>(bad));
  auto legacy_lp = ParseCompletionRequest({{"prompt", "x"}, {"logprobs", 2}}, Defaults());
  ASSERT_TRUE(std::holds_alternative<CompletionRequest>(legacy_lp));
  EXPECT_EQ(std::get<CompletionRequest>(legacy_lp).options.sampling.n_top_logprobs, 2);
}

TEST(OpenAiTypesTest, UsageAlwaysHasCachedTokens) {
  Json u = UsageJson({10, 4, 3});
  EXPECT_EQ(u["prompt_tokens"], 10);
  EXPECT_EQ(u["completion_tokens"], 3);
  EXPECT_EQ(u["total_tokens"], 13);
  EXPECT_EQ(u["prompt_tokens_details"]["cached_tokens"], 4);
}

TEST(OpenAiTypesTest, ErrorEnvelope) {
  Json e = ErrorJson(InvalidParam("temperature", "bad"));
  EXPECT_EQ(e["error"]["param"], "temperature");
  EXPECT_EQ(e["error"]["message"], "bad");
  EXPECT_TRUE(e["error"].contains("type"));
  EXPECT_TRUE(e["error"].contains("code"));
  EXPECT_TRUE(ErrorJson(NotFound("x"))["error"]["param"].is_null());
}

}  // namespace
}  // namespace reprise::server
