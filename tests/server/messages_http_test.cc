// Black-box tests of POST /v1/messages and /v1/messages/count_tokens (the
// Anthropic Messages API) against scripted models (model/synthetic.h) with
// Qwen 3's chat template: request shapes (system blocks, tool_use /
// tool_result / thinking blocks, tools with input_schema, tool_choice,
// stop_sequences), whole and streamed replies (the SSE event order), stop
// reasons, usage with cache_read_input_tokens, Anthropic-shaped errors (also
// for 401 and malformed JSON), x-api-key, ?beta=true, and that Claude Code's
// per-request billing header does not defeat the prompt cache.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "server/server_test_util.h"
#include "testing/fixtures.h"

namespace reprise::server::testing {
namespace {

using Script = std::vector<std::string>;

const Script kCall = {"<tool_call>\n{\"name\": \"get_",
                      "weather\", \"arguments\": ", "{\"city\": \"Paris\"}}\n", "</tool_call>"};

Script Concat(Script a, const Script& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const std::map<std::string, Script>& Scripts() {
  static const std::map<std::string, Script> scripts = {
      {"call", kCall},
      {"think_call",
       Concat({"<think>\n", "The user asks about ", "Paris.", "\n</think>\n\n"}, kCall)},
      {"plain", {"Hello", " there", "!"}},
  };
  return scripts;
}

// One server per script (and per extra flag set), started on first use.
ServerProcess& Server(const std::string& script, const std::vector<std::string>& args = {}) {
  static std::map<std::string, std::unique_ptr<ServerProcess>> servers;
  std::string key = script;
  for (const std::string& a : args) key += " " + a;
  auto it = servers.find(key);
  if (it != servers.end()) return *it->second;
  const std::string model = ScriptedChatModel("messages_" + script, Scripts().at(script),
                                              reprise::testing::ReadFile(Qwen3TemplatePath()));
  EXPECT_FALSE(model.empty());
  std::string error;
  std::unique_ptr<ServerProcess> s = ServerProcess::Start(model, args, &error);
  EXPECT_NE(s, nullptr) << error;
  if (s == nullptr) std::abort();  // nothing below can run without it
  return *(servers[key] = std::move(s));
}

Json WeatherTool() {
  return {{"name", "get_weather"},
          {"description", "look up the weather"},
          {"input_schema",
           {{"type", "object"},
            {"properties", {{"city", {{"type", "string"}}}}},
            {"required", {"city"}}}}};
}

Json Ask(bool stream = false) {
  return {{"model", "any"},
          {"max_tokens", 64},
          {"system", "You are a helpful assistant."},
          {"messages", {{{"role", "user"}, {"content", "What is the weather in Paris?"}}}},
          {"tools", {WeatherTool()}},
          {"temperature", 0},
          {"stream", stream}};
}

struct SseEvent {
  std::string name;
  Json data;
};

// "event: NAME\ndata: JSON\n\n" blocks, in order.
std::vector<SseEvent> ParseEvents(const std::string& body) {
  std::vector<SseEvent> events;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) end = body.size();
    const std::string block = body.substr(pos, end - pos);
    pos = end + 2;
    SseEvent e;
    size_t line_start = 0;
    while (line_start < block.size()) {
      size_t eol = block.find('\n', line_start);
      if (eol == std::string::npos) eol = block.size();
      const std::string line = block.substr(line_start, eol - line_start);
      if (line.rfind("event: ", 0) == 0) e.name = line.substr(7);
      if (line.rfind("data: ", 0) == 0) e.data = Json::parse(line.substr(6), nullptr, false);
      line_start = eol + 1;
    }
    if (!e.name.empty() || !e.data.is_null()) events.push_back(std::move(e));
  }
  return events;
}

// Event names with runs of the same delta collapsed ("content_block_delta:text_delta").
std::vector<std::string> Shape(const std::vector<SseEvent>& events) {
  std::vector<std::string> shape;
  for (const SseEvent& e : events) {
    EXPECT_EQ(e.data.value("type", ""), e.name) << e.data.dump();
    std::string s = e.name;
    if (e.name == "content_block_start")
      s += ":" + e.data["content_block"]["type"].get<std::string>();
    if (e.name == "content_block_delta") s += ":" + e.data["delta"]["type"].get<std::string>();
    if (shape.empty() || shape.back() != s || e.name != "content_block_delta") shape.push_back(s);
  }
  return shape;
}

void ExpectAnthropicError(const HttpResult& r, int status, const std::string& type) {
  EXPECT_EQ(r.status, status) << r.body;
  EXPECT_EQ(r.json["type"], "error") << r.body;
  EXPECT_EQ(r.json["error"]["type"], type) << r.body;
  EXPECT_TRUE(r.json["error"]["message"].is_string()) << r.body;
  EXPECT_FALSE(r.json["error"].contains("code")) << r.body;
}

class MessagesHttpTest : public ::testing::Test {
 protected:
  void SetUp() override { REQUIRE_FIXTURE(Qwen3TemplatePath()); }
};

TEST_F(MessagesHttpTest, ToolUseComesBackAsAToolUseBlock) {
  HttpResult r = Server("call").Post("/v1/messages", Ask());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json["type"], "message");
  EXPECT_EQ(r.json["role"], "assistant");
  EXPECT_EQ(r.json["id"].get<std::string>().rfind("msg_", 0), 0u) << r.body;
  ASSERT_EQ(r.json["content"].size(), 1u) << r.body;
  const Json& block = r.json["content"][0];
  EXPECT_EQ(block["type"], "tool_use");
  EXPECT_EQ(block["name"], "get_weather");
  EXPECT_EQ(block["input"], Json({{"city", "Paris"}}));
  EXPECT_TRUE(block["id"].is_string() && !block["id"].get<std::string>().empty());
  EXPECT_EQ(r.json["stop_reason"], "tool_use");
  EXPECT_TRUE(r.json["stop_sequence"].is_null());
  const Json& u = r.json["usage"];
  EXPECT_EQ(u["output_tokens"], 4);  // one token per script piece
  EXPECT_GT(u["input_tokens"].get<int>(), 0);
  EXPECT_TRUE(u["cache_read_input_tokens"].is_number_integer()) << r.body;
}

TEST_F(MessagesHttpTest, StreamedThinkingAndToolUseFollowAnthropicsEventOrder) {
  HttpResult r = Server("think_call").Post("/v1/messages", Ask(/*stream=*/true));
  ASSERT_EQ(r.status, 200) << r.body;
  const std::vector<SseEvent> events = ParseEvents(r.body);
  const std::vector<std::string> expected = {"message_start",
                                             "ping",
                                             "content_block_start:thinking",
                                             "content_block_delta:thinking_delta",
                                             "content_block_stop",
                                             "content_block_start:tool_use",
                                             "content_block_delta:input_json_delta",
                                             "content_block_stop",
                                             "message_delta",
                                             "message_stop"};
  EXPECT_EQ(Shape(events), expected) << r.body;
  std::string thinking, json_text;
  for (const SseEvent& e : events) {
    if (e.name == "content_block_delta" && e.data["delta"]["type"] == "thinking_delta") {
      EXPECT_EQ(e.data["index"], 0);
      thinking += e.data["delta"]["thinking"].get<std::string>();
    }
    if (e.name == "content_block_delta" && e.data["delta"]["type"] == "input_json_delta") {
      EXPECT_EQ(e.data["index"], 1);
      json_text += e.data["delta"]["partial_json"].get<std::string>();
    }
    if (e.name == "content_block_start" && e.data["content_block"]["type"] == "tool_use") {
      EXPECT_EQ(e.data["content_block"]["name"], "get_weather");
      EXPECT_EQ(e.data["content_block"]["input"], Json::object());
    }
    if (e.name == "message_start") {
      EXPECT_EQ(e.data["message"]["role"], "assistant");
      EXPECT_TRUE(e.data["message"]["content"].empty());
      EXPECT_GT(e.data["message"]["usage"]["input_tokens"].get<int>(), 0);
    }
    if (e.name == "message_delta") {
      EXPECT_EQ(e.data["delta"]["stop_reason"], "tool_use");
      EXPECT_EQ(e.data["usage"]["output_tokens"], 8);
      EXPECT_TRUE(e.data["usage"]["cache_read_input_tokens"].is_number_integer());
    }
  }
  EXPECT_EQ(thinking, "The user asks about Paris.");
  EXPECT_EQ(Json::parse(json_text), Json({{"city", "Paris"}}));
}

TEST_F(MessagesHttpTest, TextStopReasonsEndTurnStopSequenceAndMaxTokens) {
  Json ask = Ask();
  ask.erase("tools");
  HttpResult r = Server("plain").Post("/v1/messages", ask);
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(r.json["content"].size(), 1u) << r.body;
  EXPECT_EQ(r.json["content"][0], Json({{"type", "text"}, {"text", "Hello there!"}}));
  EXPECT_EQ(r.json["stop_reason"], "end_turn");

  ask["stop_sequences"] = {"zzz", " there"};
  r = Server("plain").Post("/v1/messages", ask);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json["content"][0]["text"], "Hello");
  EXPECT_EQ(r.json["stop_reason"], "stop_sequence");
  EXPECT_EQ(r.json["stop_sequence"], " there");

  ask.erase("stop_sequences");
  ask["max_tokens"] = 1;
  ask["stream"] = true;
  r = Server("plain").Post("/v1/messages", ask);
  ASSERT_EQ(r.status, 200) << r.body;
  const std::vector<SseEvent> events = ParseEvents(r.body);
  const std::vector<std::string> expected = {"message_start",
                                             "ping",
                                             "content_block_start:text",
                                             "content_block_delta:text_delta",
                                             "content_block_stop",
                                             "message_delta",
                                             "message_stop"};
  EXPECT_EQ(Shape(events), expected) << r.body;
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[events.size() - 2].data["delta"]["stop_reason"], "max_tokens");
  EXPECT_EQ(events[3].data["delta"]["text"], "Hello");
}

// The whole Anthropic conversation shape: system blocks, a thinking block and
// tool_use in the assistant turn, tool_result blocks (string and blocks) in
// the user turn. It renders exactly as the same conversation sent to
// /v1/chat/completions (same prompt tokens), and continuing it reuses the cache.
TEST_F(MessagesHttpTest, ToolRoundTripRendersLikeChatCompletionsAndHitsTheCache) {
  ServerProcess& s = Server("plain");
  const Json messages = {
      {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "Weather in Paris?"}}}}},
      {{"role", "assistant"},
       {"content",
        {{{"type", "thinking"}, {"thinking", "I should look it up."}, {"signature", "sig"}},
         {{"type", "tool_use"},
          {"id", "toolu_1"},
          {"name", "get_weather"},
          {"input", {{"city", "Paris"}}}}}}},
      {{"role", "user"},
       {"content",
        {{{"type", "tool_result"},
          {"tool_use_id", "toolu_1"},
          {"content", {{{"type", "text"}, {"text", "sunny, 21 C"}}}}}}}}};
  Json ask = {{"model", "m"},         {"max_tokens", 16},
              {"temperature", 0},     {"system", {{{"type", "text"}, {"text", "Be brief."}}}},
              {"messages", messages}, {"tools", {WeatherTool()}}};
  HttpResult count = s.Post("/v1/messages/count_tokens", ask);
  ASSERT_EQ(count.status, 200) << count.body;
  const int input_tokens = count.json["input_tokens"].get<int>();

  const Json chat = {
      {"messages",
       {{{"role", "system"}, {"content", "Be brief."}},
        {{"role", "user"}, {"content", "Weather in Paris?"}},
        {{"role", "assistant"},
         {"content", nullptr},
         {"reasoning_content", "I should look it up."},
         {"tool_calls",
          {{{"id", "toolu_1"},
            {"type", "function"},
            {"function", {{"name", "get_weather"}, {"arguments", "{\"city\": \"Paris\"}"}}}}}}},
        {{"role", "tool"}, {"tool_call_id", "toolu_1"}, {"content", "sunny, 21 C"}}}},
      {"tools",
       {{{"type", "function"},
         {"function",
          {{"name", "get_weather"},
           {"description", "look up the weather"},
           {"parameters", WeatherTool()["input_schema"]}}}}}},
      {"max_tokens", 16},
      {"temperature", 0}};
  HttpResult c = s.Post("/v1/chat/completions", chat);
  ASSERT_EQ(c.status, 200) << c.body;
  EXPECT_EQ(c.json["usage"]["prompt_tokens"], input_tokens);

  HttpResult r = s.Post("/v1/messages", ask);  // same prompt: served from the cache
  ASSERT_EQ(r.status, 200) << r.body;
  const Json& u = r.json["usage"];
  EXPECT_EQ(u["input_tokens"].get<int>() + u["cache_read_input_tokens"].get<int>(), input_tokens);
  EXPECT_GE(u["cache_read_input_tokens"].get<int>(), input_tokens - 1) << r.body;
  EXPECT_EQ(r.json["content"][0]["text"], "Hello there!");
}

// Claude Code's first system block carries per-request hashes; dropped, two
// consecutive turns share their prefix; kept (--keep-billing-header), the
// cache match ends at the first hash.
TEST_F(MessagesHttpTest, ClaudeCodeBillingHeaderDoesNotDefeatTheCache) {
  const std::string system_text(800, 'x');
  auto turn = [&](const std::string& cch, bool second) {
    Json messages = {{{"role", "user"}, {"content", {{{"type", "text"}, {"text", "hi there"}}}}}};
    if (second) {
      messages.push_back(
          {{"role", "assistant"}, {"content", {{{"type", "text"}, {"text", "Hello there!"}}}}});
      messages.push_back({{"role", "user"}, {"content", "and now?"}});
    }
    return Json{
        {"model", "claude-sonnet-4-5"},
        {"max_tokens", 32},
        {"temperature", 0},
        {"stream", true},
        {"system",
         {{{"type", "text"},
           {"text", "x-anthropic-billing-header: cc_version=2.1.37." + cch +
                        "; cc_entrypoint=cli; cch=" + cch + "00;"}},
          {{"type", "text"}, {"text", system_text}, {"cache_control", {{"type", "ephemeral"}}}}}},
        {"messages", messages}};
  };
  auto usage_of = [](const HttpResult& r) {
    EXPECT_EQ(r.status, 200) << r.body;
    Json usage;
    for (const SseEvent& e : ParseEvents(r.body)) {
      if (e.name == "message_delta") usage = e.data["usage"];
    }
    return usage;
  };
  for (bool keep : {false, true}) {
    ServerProcess& s = Server("plain", keep ? std::vector<std::string>{"--keep-billing-header"}
                                            : std::vector<std::string>{});
    const Json u1 = usage_of(s.Post("/v1/messages?beta=true", turn("a1b", false)));
    const Json u2 = usage_of(s.Post("/v1/messages?beta=true", turn("c2d", true)));
    const int prompt1 = u1["input_tokens"].get<int>() + u1["cache_read_input_tokens"].get<int>();
    const int cached2 = u2["cache_read_input_tokens"].get<int>();
    if (keep) {
      EXPECT_LT(cached2, 100) << u2.dump();  // diverges at the version hash
    } else {
      EXPECT_GT(prompt1, 800);
      EXPECT_GE(cached2, prompt1) << u1.dump() << u2.dump();
    }
  }
}

TEST_F(MessagesHttpTest, BadRequestsGetAnthropicErrors) {
  ServerProcess& s = Server("plain");
  Json ask = Ask();
  ask.erase("max_tokens");
  ExpectAnthropicError(s.Post("/v1/messages", ask), 400, "invalid_request_error");
  ask = Ask();
  ask["messages"][0]["content"] = {{{"type", "image"}, {"source", {{"type", "base64"}}}}};
  HttpResult r = s.Post("/v1/messages", ask);
  ExpectAnthropicError(r, 400, "invalid_request_error");
  EXPECT_NE(r.json["error"]["message"].get<std::string>().find("image"), std::string::npos);
  ask = Ask();
  ask["tool_choice"] = {{"type", "tool"}, {"name", "nope"}};
  ExpectAnthropicError(s.Post("/v1/messages", ask), 400, "invalid_request_error");
  ask = Ask();
  ask["messages"].push_back(
      {{"role", "user"},
       {"content", {{{"type", "tool_result"}, {"tool_use_id", "unknown"}, {"content", "x"}}}}});
  ExpectAnthropicError(s.Post("/v1/messages", ask), 400, "invalid_request_error");
  ask = Ask();
  ask["stop_sequences"] = Json::array();
  for (int i = 0; i < 17; ++i) ask["stop_sequences"].push_back("s" + std::to_string(i));
  r = s.Post("/v1/messages", ask);
  ExpectAnthropicError(r, 400, "invalid_request_error");
  EXPECT_EQ(r.json["error"]["message"].get<std::string>().rfind("stop_sequences has 17", 0), 0u)
      << r.body;
  ask = Ask();
  ask["temperature"] = "hot";
  ExpectAnthropicError(s.Post("/v1/messages", ask), 400, "invalid_request_error");
  ExpectAnthropicError(s.PostRaw("/v1/messages", "{not json"), 400, "invalid_request_error");
  ExpectAnthropicError(s.PostRaw("/v1/messages/count_tokens", "[]"), 400, "invalid_request_error");
  ExpectAnthropicError(s.Get("/v1/messages"), 405, "invalid_request_error");
  // The OpenAI routes keep OpenAI's shape.
  HttpResult openai = s.PostRaw("/v1/chat/completions", "{not json");
  EXPECT_EQ(openai.status, 400);
  EXPECT_TRUE(openai.json["error"].contains("code")) << openai.body;
}

TEST_F(MessagesHttpTest, AcceptsXApiKeyAndAnswers401InAnthropicShape) {
  ServerProcess& s = Server("plain", {"--api-key", "sk-test"});
  Json ask = Ask();
  ask.erase("tools");
  ask["max_tokens"] = 2;
  ExpectAnthropicError(s.Post("/v1/messages", ask), 401, "authentication_error");
  ExpectAnthropicError(s.Post("/v1/messages", ask, {{"x-api-key", "wrong"}}), 401,
                       "authentication_error");
  EXPECT_EQ(s.Post("/v1/messages?beta=true", ask, {{"x-api-key", "sk-test"}}).status, 200);
  EXPECT_EQ(s.Post("/v1/messages", ask, {{"Authorization", "Bearer sk-test"}}).status, 200);
  HttpResult openai = s.Post("/v1/chat/completions", {{"messages", ask["messages"]}});
  EXPECT_EQ(openai.status, 401);
  EXPECT_TRUE(openai.json["error"].contains("code")) << openai.body;
}

TEST_F(MessagesHttpTest, ModelsByIdAndReasoningTokensInChatUsage) {
  ServerProcess& s = Server("think_call");
  HttpResult list = s.Get("/v1/models");
  ASSERT_EQ(list.status, 200);
  const std::string id = list.json["data"][0]["id"];
  HttpResult one = s.Get("/v1/models/" + id);
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(one.json, list.json["data"][0]);
  EXPECT_EQ(s.Get("/v1/models/not-" + id).status, 404);

  HttpResult c =
      s.Post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "Weather?"}}}},
                                      {"temperature", 0},
                                      {"max_tokens", 64}});
  ASSERT_EQ(c.status, 200) << c.body;
  // "The user asks about Paris.": the reasoning text, re-encoded.
  EXPECT_GT(c.json["usage"]["completion_tokens_details"]["reasoning_tokens"].get<int>(), 0)
      << c.body;
  HttpResult plain = Server("plain").Post(
      "/v1/chat/completions",
      {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"temperature", 0}});
  EXPECT_EQ(plain.json["usage"]["completion_tokens_details"]["reasoning_tokens"], 0) << plain.body;
}

}  // namespace
}  // namespace reprise::server::testing
