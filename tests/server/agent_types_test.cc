// Request translation of the agent APIs into chat bodies (anthropic_types,
// responses_types): message and block mapping, the billing-header rule,
// errors naming the Anthropic / Responses field; Anthropic error bodies.
#include <gtest/gtest.h>

#include "server/anthropic_types.h"
#include "server/responses_types.h"

namespace reprise::server {
namespace {

using Json = nlohmann::ordered_json;

Json Messages(const Json& body, bool strip = true) {
  MessagesTranslateOptions o;
  o.strip_billing_header = strip;
  auto r = MessagesToChatBody(body, o);
  EXPECT_TRUE(std::holds_alternative<Json>(r))
      << (std::holds_alternative<ApiError>(r) ? std::get<ApiError>(r).message : "");
  return std::holds_alternative<Json>(r) ? std::get<Json>(r) : Json();
}

ApiError MessagesError(const Json& body) {
  auto r = MessagesToChatBody(body, {});
  EXPECT_TRUE(std::holds_alternative<ApiError>(r)) << body.dump();
  return std::holds_alternative<ApiError>(r) ? std::get<ApiError>(r) : ApiError{};
}

TEST(BillingHeaderTest, DropsOnlyALeadingBillingHeaderLine) {
  const std::string h =
      "x-anthropic-billing-header: cc_version=2.1.37.3a1; cc_entrypoint=cli; cch=ab12c;";
  EXPECT_EQ(StripBillingHeader(h), "");
  EXPECT_EQ(StripBillingHeader(h + "\nYou are Claude Code."), "You are Claude Code.");
  EXPECT_EQ(StripBillingHeader("\n" + h + "\nrest"), "rest");
  EXPECT_EQ(StripBillingHeader("You are Claude Code.\n" + h), "You are Claude Code.\n" + h);
  EXPECT_EQ(StripBillingHeader("plain"), "plain");
}

TEST(MessagesToChatTest, MapsSystemBlocksToolUseToolResultAndThinking) {
  const Json body = {
      {"model", "claude"},
      {"max_tokens", 10},
      {"system",
       {{{"type", "text"}, {"text", "x-anthropic-billing-header: cc_version=1; cch=1;"}},
        {{"type", "text"}, {"text", "A"}},
        {{"type", "text"}, {"text", "B"}}}},
      {"messages",
       {{{"role", "user"}, {"content", "q"}},
        {{"role", "assistant"},
         {"content",
          {{{"type", "thinking"}, {"thinking", "hmm"}, {"signature", "s"}},
           {{"type", "text"}, {"text", "let me see"}},
           {{"type", "tool_use"}, {"id", "t1"}, {"name", "f"}, {"input", {{"a", 1}}}}}}},
        {{"role", "user"},
         {"content",
          {{{"type", "tool_result"}, {"tool_use_id", "t1"}, {"content", "r1"}},
           {{"type", "text"}, {"text", "and?"}}}}}}},
      {"stop_sequences", {"END"}},
      {"tool_choice", {{"type", "any"}}},
      {"tools", {{{"name", "f"}, {"input_schema", {{"type", "object"}}}}}}};
  const Json chat = Messages(body);
  const Json expected_messages = {{{"role", "system"}, {"content", "A\nB"}},
                                  {{"role", "user"}, {"content", "q"}},
                                  {{"role", "assistant"},
                                   {"content", "let me see"},
                                   {"reasoning_content", "hmm"},
                                   {"tool_calls",
                                    {{{"id", "t1"},
                                      {"type", "function"},
                                      {"function", {{"name", "f"}, {"arguments", {{"a", 1}}}}}}}}},
                                  {{"role", "tool"}, {"tool_call_id", "t1"}, {"content", "r1"}},
                                  {{"role", "user"}, {"content", "and?"}}};
  EXPECT_EQ(chat["messages"], expected_messages) << chat.dump(1);
  EXPECT_EQ(chat["stop"], Json({"END"}));
  EXPECT_EQ(chat["tool_choice"], "required");
  EXPECT_EQ(chat["tools"][0]["function"]["parameters"], Json({{"type", "object"}}));
  // Kept when asked to.
  EXPECT_EQ(Messages(body, /*strip=*/false)["messages"][0]["content"],
            "x-anthropic-billing-header: cc_version=1; cch=1;\nA\nB");
}

TEST(MessagesToChatTest, ErrorsNameTheAnthropicField) {
  const Json ok = {{"max_tokens", 5}, {"messages", {{{"role", "user"}, {"content", "q"}}}}};
  Json b = ok;
  b["messages"][0]["role"] = "system";
  EXPECT_EQ(MessagesError(b).param, "messages[0].role");
  b = ok;
  b["messages"][0]["content"] = {{{"type", "image"}}};
  EXPECT_EQ(MessagesError(b).param, "messages[0].content[0].type");
  b = ok;
  b["tools"] = {{{"type", "web_search_20250305"}, {"name", "web_search"}}};
  EXPECT_EQ(MessagesError(b).param, "tools[0].type");
  b = ok;
  b["tools"] = {{{"name", "f"}}};
  EXPECT_EQ(MessagesError(b).param, "tools[0].input_schema");
  b = ok;
  b["thinking"] = {{"type", "sometimes"}};
  EXPECT_EQ(MessagesError(b).param, "thinking.type");
  b = ok;
  b["stop_sequences"] = {1};
  EXPECT_EQ(MessagesError(b).param, "stop_sequences[0]");
  b = ok;
  b.erase("max_tokens");
  EXPECT_EQ(MessagesError(b).param, "max_tokens");
}

TEST(AnthropicErrorTest, TypesByStatusAndRewritesOpenAiBodies) {
  ApiError e = InvalidParam("x", "bad x");
  EXPECT_EQ(AnthropicErrorJson(e),
            Json({{"type", "error"},
                  {"error", {{"type", "invalid_request_error"}, {"message", "bad x"}}}}));
  EXPECT_STREQ(AnthropicErrorType(401), "authentication_error");
  EXPECT_STREQ(AnthropicErrorType(404), "not_found_error");
  EXPECT_STREQ(AnthropicErrorType(413), "request_too_large");
  EXPECT_STREQ(AnthropicErrorType(503), "overloaded_error");
  EXPECT_STREQ(AnthropicErrorType(500), "api_error");
  EXPECT_EQ(Json::parse(AnthropicErrorBodyFrom(ErrorBody(Unauthorized("no key")), 401)),
            Json({{"type", "error"},
                  {"error", {{"type", "authentication_error"}, {"message", "no key"}}}}));
  EXPECT_EQ(AnthropicErrorBodyFrom("not json", 400), "not json");
}

Json Responses(const Json& body) {
  auto r = ResponsesToChatBody(body);
  EXPECT_TRUE(std::holds_alternative<Json>(r))
      << (std::holds_alternative<ApiError>(r) ? std::get<ApiError>(r).message : "");
  return std::holds_alternative<Json>(r) ? std::get<Json>(r) : Json();
}

TEST(ResponsesToChatTest, MapsItemsIntoChatMessages) {
  const Json body = {
      {"instructions", "I"},
      {"input",
       {{{"type", "message"}, {"role", "developer"}, {"content", "D"}},
        {{"role", "user"}, {"content", {{{"type", "input_text"}, {"text", "q"}}}}},
        {{"type", "reasoning"},
         {"summary", Json::array()},
         {"content", {{{"type", "reasoning_text"}, {"text", "think"}}}}},
        {{"type", "message"},
         {"role", "assistant"},
         {"content", {{{"type", "output_text"}, {"text", "calling"}}}}},
        {{"type", "function_call"}, {"call_id", "c1"}, {"name", "f"}, {"arguments", "{}"}},
        {{"type", "function_call"}, {"call_id", "c2"}, {"name", "g"}, {"arguments", "{\"x\":1}"}},
        {{"type", "function_call_output"}, {"call_id", "c1"}, {"output", "o1"}},
        {{"type", "function_call_output"},
         {"call_id", "c2"},
         {"output", {{{"type", "input_text"}, {"text", "o2"}}}}}}},
      {"tools", {{{"type", "function"}, {"name", "f"}, {"parameters", {{"type", "object"}}}}}},
      {"tool_choice", {{"type", "function"}, {"name", "f"}}},
      {"max_output_tokens", 7},
      {"stream", true}};
  const Json chat = Responses(body);
  const Json expected = {
      {{"role", "system"}, {"content", "I"}},
      {{"role", "system"}, {"content", "D"}},
      {{"role", "user"}, {"content", "q"}},
      {{"role", "assistant"},
       {"content", "calling"},
       {"reasoning_content", "think"},
       {"tool_calls",
        {{{"id", "c1"}, {"type", "function"}, {"function", {{"name", "f"}, {"arguments", "{}"}}}},
         {{"id", "c2"},
          {"type", "function"},
          {"function", {{"name", "g"}, {"arguments", "{\"x\":1}"}}}}}}},
      {{"role", "tool"}, {"tool_call_id", "c1"}, {"content", "o1"}},
      {{"role", "tool"}, {"tool_call_id", "c2"}, {"content", "o2"}}};
  EXPECT_EQ(chat["messages"], expected) << chat.dump(1);
  EXPECT_EQ(chat["max_tokens"], 7);
  EXPECT_EQ(chat["stream"], true);
  EXPECT_EQ(chat["tool_choice"], Json({{"type", "function"}, {"function", {{"name", "f"}}}}));
  EXPECT_EQ(chat["tools"][0],
            Json({{"type", "function"},
                  {"function", {{"name", "f"}, {"parameters", {{"type", "object"}}}}}}));
  // Namespace tools are flattened, hosted tools left out.
  const Json codex_tools =
      Responses({{"input", "q"},
                 {"tools",
                  {{{"type", "function"}, {"name", "exec_command"}},
                   {{"type", "namespace"},
                    {"name", "multi_agent_v1"},
                    {"tools", {{{"type", "function"}, {"name", "close_agent"}}}}},
                   {{"type", "web_search"}, {"external_web_access", false}}}}});
  EXPECT_EQ(codex_tools["tools"],
            Json({{{"type", "function"}, {"function", {{"name", "exec_command"}}}},
                  {{"type", "function"}, {"function", {{"name", "close_agent"}}}}}));
  const Json hosted_only = Responses({{"input", "q"}, {"tools", {{{"type", "file_search"}}}}});
  EXPECT_FALSE(hosted_only.contains("tools"));
  // A function_call with no assistant message before it gets its own.
  const Json alone = Responses(
      {{"input",
        {{{"role", "user"}, {"content", "q"}},
         {{"type", "function_call"}, {"call_id", "c"}, {"name", "f"}, {"arguments", "{}"}}}}});
  EXPECT_EQ(alone["messages"][1]["role"], "assistant");
  EXPECT_TRUE(alone["messages"][1]["content"].is_null());
}

}  // namespace
}  // namespace reprise::server
