// Black-box tests of POST /v1/responses (the OpenAI Responses API) against
// scripted models (model/synthetic.h) with Qwen 3's chat template: input as a
// string and as items (messages with input_text / output_text parts,
// function_call, function_call_output, reasoning), instructions, flat
// function tools, whole and streamed replies (the event order and
// sequence_number), reasoning and function_call output items, usage with
// input_tokens_details.cached_tokens, incomplete on max_output_tokens, 400s
// (previous_response_id among them), and that a conversation moves between
// the three APIs without losing the prompt cache.
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

ServerProcess& Server(const std::string& script) {
  static const std::map<std::string, Script> scripts = {
      {"think_call",
       {"<think>\n", "The user asks about ", "Paris.", "\n</think>\n\n", kCall[0], kCall[1],
        kCall[2], kCall[3]}},
      {"plain", {"Hello", " there", "!"}},
  };
  static std::map<std::string, std::unique_ptr<ServerProcess>> servers;
  auto it = servers.find(script);
  if (it != servers.end()) return *it->second;
  const std::string model = ScriptedChatModel("responses_" + script, scripts.at(script),
                                              reprise::testing::ReadFile(Qwen3TemplatePath()));
  EXPECT_FALSE(model.empty());
  std::string error;
  std::unique_ptr<ServerProcess> s = ServerProcess::Start(model, {}, &error);
  EXPECT_NE(s, nullptr) << error;
  if (s == nullptr) std::abort();
  return *(servers[script] = std::move(s));
}

Json WeatherTool() {
  return {{"type", "function"},
          {"name", "get_weather"},
          {"description", "look up the weather"},
          {"parameters",
           {{"type", "object"},
            {"properties", {{"city", {{"type", "string"}}}}},
            {"required", {"city"}}}}};
}

struct Event {
  std::string name;
  Json data;
};

std::vector<Event> ParseEvents(const std::string& body) {
  std::vector<Event> events;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) end = body.size();
    const std::string block = body.substr(pos, end - pos);
    pos = end + 2;
    Event e;
    for (size_t start = 0; start < block.size();) {
      size_t eol = block.find('\n', start);
      if (eol == std::string::npos) eol = block.size();
      const std::string line = block.substr(start, eol - start);
      if (line.rfind("event: ", 0) == 0) e.name = line.substr(7);
      if (line.rfind("data: ", 0) == 0) e.data = Json::parse(line.substr(6), nullptr, false);
      start = eol + 1;
    }
    if (!e.name.empty()) events.push_back(std::move(e));
  }
  return events;
}

class ResponsesHttpTest : public ::testing::Test {
 protected:
  void SetUp() override { REQUIRE_FIXTURE(Qwen3TemplatePath()); }
};

TEST_F(ResponsesHttpTest, StringInputGivesAMessageItemWithUsage) {
  HttpResult r = Server("plain").Post("/v1/responses", {{"model", "m"},
                                                        {"instructions", "Be brief."},
                                                        {"input", "Hi!"},
                                                        {"temperature", 0},
                                                        {"store", false}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json["object"], "response");
  EXPECT_EQ(r.json["status"], "completed");
  EXPECT_EQ(r.json["id"].get<std::string>().rfind("resp_", 0), 0u) << r.body;
  EXPECT_EQ(r.json["instructions"], "Be brief.");
  ASSERT_EQ(r.json["output"].size(), 1u) << r.body;
  const Json& item = r.json["output"][0];
  EXPECT_EQ(item["type"], "message");
  EXPECT_EQ(item["role"], "assistant");
  EXPECT_EQ(item["status"], "completed");
  EXPECT_EQ(item["content"][0]["type"], "output_text");
  EXPECT_EQ(item["content"][0]["text"], "Hello there!");
  const Json& u = r.json["usage"];
  EXPECT_EQ(u["output_tokens"], 3);
  EXPECT_GT(u["input_tokens"].get<int>(), 0);
  EXPECT_EQ(u["total_tokens"], u["input_tokens"].get<int>() + 3);
  EXPECT_TRUE(u["input_tokens_details"]["cached_tokens"].is_number_integer()) << r.body;
  EXPECT_EQ(u["output_tokens_details"]["reasoning_tokens"], 0);

  // Streamed text: a message item with one output_text part.
  r = Server("plain").Post("/v1/responses",
                           {{"input", "Hi!"}, {"temperature", 0}, {"stream", true}});
  ASSERT_EQ(r.status, 200) << r.body;
  std::vector<std::string> shape;
  std::string text;
  for (const Event& e : ParseEvents(r.body)) {
    if (shape.empty() || shape.back() != e.name) shape.push_back(e.name);
    if (e.name == "response.output_text.delta") text += e.data["delta"].get<std::string>();
    if (e.name == "response.output_text.done") {
      EXPECT_EQ(e.data["text"], "Hello there!");
    }
  }
  EXPECT_EQ(text, "Hello there!");
  const std::vector<std::string> expected = {
      "response.created",           "response.in_progress",
      "response.output_item.added", "response.content_part.added",
      "response.output_text.delta", "response.output_text.done",
      "response.content_part.done", "response.output_item.done",
      "response.completed"};
  EXPECT_EQ(shape, expected) << r.body;

  r = Server("plain").Post("/v1/responses",
                           {{"input", "Hi!"}, {"temperature", 0}, {"max_output_tokens", 1}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json["status"], "incomplete");
  EXPECT_EQ(r.json["incomplete_details"]["reason"], "max_output_tokens");
  EXPECT_EQ(r.json["output"][0]["content"][0]["text"], "Hello");
}

TEST_F(ResponsesHttpTest, StreamedReasoningAndFunctionCallFollowTheEventSequence) {
  HttpResult r = Server("think_call")
                     .Post("/v1/responses", {{"input", "Weather in Paris?"},
                                             {"tools", {WeatherTool()}},
                                             {"reasoning", {{"effort", "low"}}},
                                             {"parallel_tool_calls", false},
                                             {"temperature", 0},
                                             {"stream", true}});
  ASSERT_EQ(r.status, 200) << r.body;
  const std::vector<Event> events = ParseEvents(r.body);
  std::vector<std::string> shape;
  std::string reasoning, arguments;
  for (size_t i = 0; i < events.size(); ++i) {
    const Event& e = events[i];
    EXPECT_EQ(e.data["type"], e.name);
    EXPECT_EQ(e.data["sequence_number"], i);
    if (shape.empty() || shape.back() != e.name || e.name.find(".delta") == std::string::npos) {
      shape.push_back(e.name);
    }
    if (e.name == "response.reasoning_text.delta") reasoning += e.data["delta"].get<std::string>();
    if (e.name == "response.function_call_arguments.delta") {
      arguments += e.data["delta"].get<std::string>();
      EXPECT_EQ(e.data["output_index"], 1);
    }
  }
  const std::vector<std::string> expected = {"response.created",
                                             "response.in_progress",
                                             "response.output_item.added",
                                             "response.reasoning_text.delta",
                                             "response.reasoning_text.done",
                                             "response.output_item.done",
                                             "response.output_item.added",
                                             "response.function_call_arguments.delta",
                                             "response.function_call_arguments.done",
                                             "response.output_item.done",
                                             "response.completed"};
  EXPECT_EQ(shape, expected) << r.body;
  EXPECT_EQ(reasoning, "The user asks about Paris.");
  EXPECT_EQ(Json::parse(arguments), Json({{"city", "Paris"}}));
  ASSERT_FALSE(events.empty());
  const Json& response = events.back().data["response"];
  EXPECT_EQ(response["status"], "completed");
  ASSERT_EQ(response["output"].size(), 2u) << response.dump();
  EXPECT_EQ(response["output"][0]["type"], "reasoning");
  EXPECT_EQ(response["output"][0]["content"][0]["text"], "The user asks about Paris.");
  const Json& call = response["output"][1];
  EXPECT_EQ(call["type"], "function_call");
  EXPECT_EQ(call["name"], "get_weather");
  EXPECT_EQ(call["status"], "completed");
  EXPECT_EQ(Json::parse(call["arguments"].get<std::string>()), Json({{"city", "Paris"}}));
  EXPECT_TRUE(call["call_id"].is_string());
  EXPECT_GT(response["usage"]["output_tokens_details"]["reasoning_tokens"].get<int>(), 0);
  // The first events carry the response in progress.
  EXPECT_EQ(events[0].data["response"]["status"], "in_progress");
  EXPECT_EQ(events[2].data["item"]["type"], "reasoning");
}

// A tool round trip as Codex sends it renders like the same conversation on
// /v1/chat/completions and /v1/messages; turn 2 on one API reuses what turn 1
// on another cached.
TEST_F(ResponsesHttpTest, ToolRoundTripSharesThePromptCacheAcrossTheThreeApis) {
  ServerProcess& s = Server("plain");
  const std::string sys(300, 's');
  const Json input = {
      {{"type", "message"}, {"role", "developer"}, {"content", sys}},
      {{"type", "message"},
       {"role", "user"},
       {"content", {{{"type", "input_text"}, {"text", "Weather in Paris?"}}}}},
      {{"type", "function_call"},
       {"call_id", "call_7"},
       {"name", "get_weather"},
       {"arguments", "{\"city\":\"Paris\"}"}},
      {{"type", "function_call_output"}, {"call_id", "call_7"}, {"output", "sunny"}}};
  HttpResult r1 =
      s.Post("/v1/responses", {{"input", input}, {"tools", {WeatherTool()}}, {"temperature", 0}});
  ASSERT_EQ(r1.status, 200) << r1.body;
  EXPECT_EQ(r1.json["output"][0]["content"][0]["text"], "Hello there!");
  const int prompt1 = r1.json["usage"]["input_tokens"].get<int>();

  // Turn 2 over chat completions: the whole turn 1 is a cached prefix.
  const Json chat_tools = {{{"type", "function"},
                            {"function",
                             {{"name", "get_weather"},
                              {"description", "look up the weather"},
                              {"parameters", WeatherTool()["parameters"]}}}}};
  Json chat_messages = {
      {{"role", "system"}, {"content", sys}},
      {{"role", "user"}, {"content", "Weather in Paris?"}},
      {{"role", "assistant"},
       {"content", nullptr},
       {"tool_calls",
        {{{"id", "call_7"},
          {"type", "function"},
          {"function", {{"name", "get_weather"}, {"arguments", "{\"city\":\"Paris\"}"}}}}}}},
      {{"role", "tool"}, {"tool_call_id", "call_7"}, {"content", "sunny"}},
      {{"role", "assistant"}, {"content", "Hello there!"}},
      {{"role", "user"}, {"content", "Thanks!"}}};
  HttpResult r2 = s.Post("/v1/chat/completions",
                         {{"messages", chat_messages}, {"tools", chat_tools}, {"temperature", 0}});
  ASSERT_EQ(r2.status, 200) << r2.body;
  EXPECT_GE(r2.json["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), prompt1)
      << r2.body;
  const int prompt2 = r2.json["usage"]["prompt_tokens"].get<int>();

  // Turn 3 over /v1/responses again, with the assistant text as an output_text item.
  Json input3 = input;
  input3.push_back({{"type", "message"},
                    {"role", "assistant"},
                    {"content", {{{"type", "output_text"}, {"text", "Hello there!"}}}}});
  input3.push_back({{"role", "user"}, {"content", "Thanks!"}});
  input3.push_back({{"type", "message"}, {"role", "assistant"}, {"content", "Hello there!"}});
  input3.push_back({{"role", "user"}, {"content", "Bye."}});
  HttpResult r3 =
      s.Post("/v1/responses", {{"input", input3}, {"tools", {WeatherTool()}}, {"temperature", 0}});
  ASSERT_EQ(r3.status, 200) << r3.body;
  EXPECT_GE(r3.json["usage"]["input_tokens_details"]["cached_tokens"].get<int>(), prompt2)
      << r3.body;
}

TEST_F(ResponsesHttpTest, BadRequestsAre400sNamingTheField) {
  ServerProcess& s = Server("plain");
  auto expect_400 = [&](const Json& body, const std::string& param) {
    HttpResult r = s.Post("/v1/responses", body);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_EQ(r.json["error"]["param"], param) << r.body;
    EXPECT_TRUE(r.json["error"]["message"].is_string()) << r.body;
    return r;
  };
  HttpResult r =
      expect_400({{"input", "hi"}, {"previous_response_id", "resp_1"}}, "previous_response_id");
  EXPECT_NE(r.json["error"]["message"].get<std::string>().find("not supported"), std::string::npos);
  expect_400({{"model", "m"}}, "input");
  expect_400({{"input", Json::array()}}, "input");
  expect_400({{"input", 5}}, "input");
  expect_400({{"input", {{{"type", "item_reference"}, {"id", "x"}}}}}, "input[0].type");
  expect_400({{"input", {{{"role", "user"}, {"content", {{{"type", "input_image"}}}}}}}},
             "input[0].content[0].type");
  expect_400({{"input", "hi"}, {"tools", {{{"type", "local_shell"}}}}}, "tools[0].type");
  expect_400({{"input", "hi"}, {"max_output_tokens", 0}}, "max_output_tokens");
  expect_400({{"input", "hi"}, {"text", {{"format", {{"type", "yaml"}}}}}}, "text.format.type");
  expect_400(
      {{"input", {{{"type", "function_call_output"}, {"call_id", "nope"}, {"output", "x"}}}}},
      "input");
}

}  // namespace
}  // namespace reprise::server::testing
