// Black-box tool calling over HTTP with real model output: scripted models
// (model/synthetic.h) replay a fixed reply — a Hermes <tool_call> split over
// several tokens, <think> reasoning then a call, plain text, two calls,
// malformed and truncated calls — through the real tokenizer, Qwen 3's own
// chat template (read in place from ../shared/fixtures), engine and server;
// and a Llama 3.1 JSON call through Llama 3.1's template. Checks the OpenAI
// response shapes, whole and streamed, and tool_choice.
// Request validation (400s) lives in tool_request_http_test.cc.
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
const std::string kCallText =
    "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";

Script Concat(Script a, const Script& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// name -> script; each gets its own model and server, started on first use.
const std::map<std::string, Script>& Scripts() {
  static const std::map<std::string, Script> scripts = {
      {"call", kCall},
      {"think_call",
       Concat({"<think>\n", "The user asks about ", "Paris.", "\n</think>\n\n"}, kCall)},
      {"plain", {"Hello", " there", "!"}},
      {"two_calls", Concat(kCall, {"\n<tool_call>\n{\"name\": \"get_time\", ",
                                   "\"arguments\": {\"zone\": \"CET\"}}\n</tool_call>"})},
      {"malformed",
       {"<tool_call>\n{\"name\": \"get_weather\", ", "\"arguments\": {\"city\": }}\n",
        "</tool_call>"}},
      {"truncated", {"<tool_call>\n{\"name\": \"get_weather\", ", "\"arguments\": {\"city\""}},
  };
  return scripts;
}

std::string ScriptText(const std::string& name) {
  std::string text;
  for (const std::string& piece : Scripts().at(name)) text += piece;
  return text;
}

class ToolCallingHttpTest : public ::testing::Test {
 protected:
  void SetUp() override { REQUIRE_FIXTURE(Qwen3TemplatePath()); }
  static void TearDownTestSuite() { servers_.clear(); }

  // The server for one script (started once per test binary).
  static ServerProcess& Server(const std::string& name) {
    auto it = servers_.find(name);
    if (it != servers_.end()) return *it->second;
    const std::string model = ScriptedChatModel("scripted_" + name, Scripts().at(name),
                                                reprise::testing::ReadFile(Qwen3TemplatePath()));
    EXPECT_FALSE(model.empty());
    std::string error;
    std::unique_ptr<ServerProcess> s = ServerProcess::Start(model, {}, &error);
    EXPECT_NE(s, nullptr) << error;
    if (s == nullptr) std::abort();  // nothing below can run without it
    return *(servers_[name] = std::move(s));
  }
  static std::map<std::string, std::unique_ptr<ServerProcess>> servers_;
};
std::map<std::string, std::unique_ptr<ServerProcess>> ToolCallingHttpTest::servers_;

Json Tool(const std::string& name, const std::string& param) {
  return {{"type", "function"},
          {"function",
           {{"name", name},
            {"description", "look up " + param},
            {"parameters",
             {{"type", "object"},
              {"properties", {{param, {{"type", "string"}}}}},
              {"required", {param}}}}}}};
}

Json Ask(bool stream = false) {
  return {{"messages", {{{"role", "user"}, {"content", "What is the weather in Paris?"}}}},
          {"tools", {Tool("get_weather", "city"), Tool("get_time", "zone")}},
          {"temperature", 0},
          {"max_tokens", 64},
          {"stream", stream}};
}

// A stream put back together the way an SDK does it.
struct Streamed {
  std::string content, reasoning, finish, role;
  Json calls = Json::array();  // [{"id","type","function":{"name","arguments"}}] by index
  bool done = false;
  std::string warning;
  std::vector<Json> call_deltas;  // every delta.tool_calls entry, in order
};

Streamed Collect(const HttpResult& r) {
  Streamed s;
  EXPECT_EQ(r.status, 200) << r.body;
  for (const Json& chunk : ParseSse(r.body, &s.done)) {
    EXPECT_EQ(chunk["object"], "chat.completion.chunk") << chunk.dump();
    if (chunk.contains("warning")) s.warning = chunk["warning"];
    if (chunk["choices"].empty()) continue;
    const Json& choice = chunk["choices"][0];
    if (!choice["finish_reason"].is_null()) s.finish = choice["finish_reason"];
    const Json& d = choice["delta"];
    if (d.contains("role")) s.role = d["role"];
    if (d.contains("content") && d["content"].is_string()) s.content += d["content"];
    if (d.contains("reasoning_content")) s.reasoning += d["reasoning_content"].get<std::string>();
    if (!d.contains("tool_calls")) continue;
    for (const Json& tc : d["tool_calls"]) {
      s.call_deltas.push_back(tc);
      const size_t index = tc.at("index").get<size_t>();
      if (tc.contains("id")) {  // the first delta of a call names it
        EXPECT_EQ(index, s.calls.size()) << tc.dump();
        s.calls.push_back({{"id", tc["id"]},
                           {"type", tc["type"]},
                           {"function", {{"name", tc["function"]["name"]}, {"arguments", ""}}}});
      }
      EXPECT_LT(index, s.calls.size()) << tc.dump();
      if (index >= s.calls.size()) continue;
      if (tc.contains("function") && tc["function"].contains("arguments")) {
        std::string& args = s.calls[index]["function"]["arguments"].get_ref<std::string&>();
        args += tc["function"]["arguments"].get<std::string>();
      }
    }
  }
  return s;
}

void ExpectWeatherCall(const Json& call) {
  EXPECT_TRUE(call["id"].is_string() && call["id"].get<std::string>().rfind("call_", 0) == 0)
      << call.dump();
  EXPECT_EQ(call["type"], "function");
  EXPECT_EQ(call["function"]["name"], "get_weather");
  ASSERT_TRUE(call["function"]["arguments"].is_string()) << call.dump();
  EXPECT_EQ(Json::parse(call["function"]["arguments"].get<std::string>()),
            Json({{"city", "Paris"}}));
}

TEST_F(ToolCallingHttpTest, ToolCallComesBackAsOpenAiToolCalls) {
  HttpResult r = Server("call").Post("/v1/chat/completions", Ask());
  ASSERT_EQ(r.status, 200) << r.body;
  const Json& choice = r.json["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
  const Json& m = choice["message"];
  EXPECT_EQ(m["role"], "assistant");
  EXPECT_TRUE(m["content"].is_null()) << r.body;
  EXPECT_FALSE(m.contains("reasoning_content")) << r.body;
  ASSERT_EQ(m["tool_calls"].size(), 1u) << r.body;
  ExpectWeatherCall(m["tool_calls"][0]);
  EXPECT_EQ(r.json["usage"]["completion_tokens"], 4);  // one token per script piece
  EXPECT_FALSE(r.json.contains("warning"));
}

TEST_F(ToolCallingHttpTest, StreamedToolCallIsOpenAiDeltas) {
  Streamed s = Collect(Server("call").Post("/v1/chat/completions", Ask(/*stream=*/true)));
  EXPECT_TRUE(s.done);
  EXPECT_EQ(s.role, "assistant");
  EXPECT_EQ(s.finish, "tool_calls");
  EXPECT_EQ(s.content, "");  // nothing of the call leaks into content
  EXPECT_EQ(s.reasoning, "");
  ASSERT_EQ(s.calls.size(), 1u);
  ExpectWeatherCall(s.calls[0]);
  // The first delta carries index, id, type and name (arguments start empty).
  ASSERT_FALSE(s.call_deltas.empty());
  const Json& first = s.call_deltas[0];
  EXPECT_EQ(first["index"], 0);
  EXPECT_EQ(first["type"], "function");
  EXPECT_EQ(first["function"]["name"], "get_weather");
  EXPECT_EQ(first["function"]["arguments"], "");
  for (size_t i = 1; i < s.call_deltas.size(); ++i) {
    EXPECT_FALSE(s.call_deltas[i].contains("id")) << s.call_deltas[i].dump();
  }
}

TEST_F(ToolCallingHttpTest, ReasoningIsSplitFromTheCallWholeAndStreamed) {
  HttpResult r = Server("think_call").Post("/v1/chat/completions", Ask());
  ASSERT_EQ(r.status, 200) << r.body;
  const Json& m = r.json["choices"][0]["message"];
  EXPECT_EQ(m["reasoning_content"], "The user asks about Paris.") << r.body;
  EXPECT_TRUE(m["content"].is_null()) << r.body;
  ASSERT_EQ(m["tool_calls"].size(), 1u) << r.body;
  ExpectWeatherCall(m["tool_calls"][0]);
  EXPECT_EQ(r.json["choices"][0]["finish_reason"], "tool_calls");

  Streamed s = Collect(Server("think_call").Post("/v1/chat/completions", Ask(true)));
  EXPECT_EQ(s.reasoning, "The user asks about Paris.");
  EXPECT_EQ(s.content, "");
  ASSERT_EQ(s.calls.size(), 1u);
  ExpectWeatherCall(s.calls[0]);
  EXPECT_EQ(s.finish, "tool_calls");
}

TEST_F(ToolCallingHttpTest, PlainReplyWithToolsOfferedIsContent) {
  HttpResult r = Server("plain").Post("/v1/chat/completions", Ask());
  ASSERT_EQ(r.status, 200) << r.body;
  const Json& m = r.json["choices"][0]["message"];
  EXPECT_EQ(m["content"], "Hello there!");
  EXPECT_FALSE(m.contains("tool_calls")) << r.body;
  EXPECT_EQ(r.json["choices"][0]["finish_reason"], "stop");
  Streamed s = Collect(Server("plain").Post("/v1/chat/completions", Ask(true)));
  EXPECT_EQ(s.content, "Hello there!");
  EXPECT_TRUE(s.calls.empty());
  EXPECT_EQ(s.finish, "stop");
}

TEST_F(ToolCallingHttpTest, TwoCallsInOneReplyHaveTheirOwnIndexAndId) {
  HttpResult r = Server("two_calls").Post("/v1/chat/completions", Ask());
  ASSERT_EQ(r.status, 200) << r.body;
  const Json& calls = r.json["choices"][0]["message"]["tool_calls"];
  ASSERT_EQ(calls.size(), 2u) << r.body;
  ExpectWeatherCall(calls[0]);
  EXPECT_EQ(calls[1]["function"]["name"], "get_time");
  EXPECT_EQ(Json::parse(calls[1]["function"]["arguments"].get<std::string>()),
            Json({{"zone", "CET"}}));
  EXPECT_NE(calls[0]["id"], calls[1]["id"]);
  Streamed s = Collect(Server("two_calls").Post("/v1/chat/completions", Ask(true)));
  ASSERT_EQ(s.calls.size(), 2u);
  ExpectWeatherCall(s.calls[0]);
  EXPECT_EQ(s.calls[1]["function"]["name"], "get_time");
  EXPECT_EQ(s.calls[1]["function"]["arguments"], calls[1]["function"]["arguments"]);
  EXPECT_NE(s.calls[0]["id"], s.calls[1]["id"]);
  EXPECT_EQ(s.content, "");
  EXPECT_EQ(s.finish, "tool_calls");
}

TEST_F(ToolCallingHttpTest, MalformedAndTruncatedCallsAreContentWholeAndStayCallsOnceStreamed) {
  for (const std::string name : {"malformed", "truncated"}) {
    HttpResult r = Server(name).Post("/v1/chat/completions", Ask());
    ASSERT_EQ(r.status, 200) << r.body;
    const Json& m = r.json["choices"][0]["message"];
    EXPECT_EQ(m["content"], ScriptText(name)) << name;
    EXPECT_FALSE(m.contains("tool_calls")) << name << ": " << r.body;
    EXPECT_EQ(r.json["choices"][0]["finish_reason"], "stop") << name;
    // Streamed, a call is committed once its name and the start of its
    // arguments are in (the arguments then stream): it stays a call with
    // what streamed; one the output ended inside finishes with the
    // generation's reason, not tool_calls.
    Streamed s = Collect(Server(name).Post("/v1/chat/completions", Ask(true)));
    EXPECT_EQ(s.content, "") << name;
    ASSERT_EQ(s.calls.size(), 1u) << name;
    EXPECT_EQ(s.calls[0]["function"]["name"], "get_weather");
    EXPECT_EQ(s.calls[0]["function"]["arguments"],
              name == "malformed" ? "{\"city\":}" : "{\"city\"")
        << name;
    EXPECT_EQ(s.finish, name == "malformed" ? "tool_calls" : "stop") << name;
  }
  // A call cut off by max_tokens is content too, with finish_reason length.
  Json ask = Ask();
  ask["max_tokens"] = 2;
  HttpResult r = Server("call").Post("/v1/chat/completions", ask);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json["choices"][0]["message"]["content"],
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": ");
  EXPECT_EQ(r.json["choices"][0]["finish_reason"], "length");
}

TEST_F(ToolCallingHttpTest, WithoutToolsOrWithToolChoiceNoneACallIsPlainContent) {
  ServerProcess& server = Server("call");
  Json none = Ask();
  none["tool_choice"] = "none";
  Json no_tools = Ask();
  no_tools.erase("tools");
  HttpResult with_tools = server.Post("/v1/chat/completions", Ask());
  for (const Json& body : {none, no_tools}) {
    HttpResult r = server.Post("/v1/chat/completions", body);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json["choices"][0]["message"]["content"], kCallText);
    EXPECT_FALSE(r.json["choices"][0]["message"].contains("tool_calls"));
    EXPECT_EQ(r.json["choices"][0]["finish_reason"], "stop");
  }
  // tool_choice none renders no tools: the prompt is the tool-less one.
  HttpResult a = server.Post("/v1/chat/completions", none);
  HttpResult b = server.Post("/v1/chat/completions", no_tools);
  EXPECT_EQ(a.json["usage"]["prompt_tokens"], b.json["usage"]["prompt_tokens"]);
  EXPECT_GT(with_tools.json["usage"]["prompt_tokens"].get<int>(),
            a.json["usage"]["prompt_tokens"].get<int>() + 200);
}

// A forced tool_choice constrains decoding (server/structured_output.h): a
// model that complies is unchanged; one that wants something else is made to
// write the call's syntax and the named function. These scripted models then
// never finish their arguments (every other token ties), so the reply is cut
// by max_tokens: finish_reason "length", and the warning says no call came.
TEST_F(ToolCallingHttpTest, ForcedToolChoiceConstrainsTheReplyAndWarnsWhenItIsCut) {
  Json required = Ask();
  required["tool_choice"] = "required";
  HttpResult called = Server("call").Post("/v1/chat/completions", required);
  EXPECT_EQ(called.json["choices"][0]["finish_reason"], "tool_calls") << called.body;
  EXPECT_FALSE(called.json.contains("warning")) << called.body;

  HttpResult plain = Server("plain").Post("/v1/chat/completions", required);
  ASSERT_EQ(plain.status, 200) << plain.body;
  EXPECT_EQ(plain.json["choices"][0]["finish_reason"], "length") << plain.body;
  EXPECT_FALSE(plain.json["choices"][0]["message"].contains("tool_calls"));
  EXPECT_NE(plain.json.value("warning", "").find("required"), std::string::npos) << plain.body;
  required["stream"] = true;
  Streamed s = Collect(Server("plain").Post("/v1/chat/completions", required));
  EXPECT_EQ(s.finish, "length");
  EXPECT_NE(s.warning.find("required"), std::string::npos);

  Json named = Ask();
  named["tool_choice"] = {{"type", "function"}, {"function", {{"name", "get_weather"}}}};
  HttpResult ok = Server("call").Post("/v1/chat/completions", named);
  EXPECT_EQ(ok.json["choices"][0]["message"]["tool_calls"].size(), 1u) << ok.body;
  EXPECT_FALSE(ok.json.contains("warning")) << ok.body;
  // The template sees only the named tool: get_time's schema is not rendered.
  HttpResult all = Server("call").Post("/v1/chat/completions", Ask());
  EXPECT_LT(ok.json["usage"]["prompt_tokens"].get<int>(),
            all.json["usage"]["prompt_tokens"].get<int>());
  named["tool_choice"]["function"]["name"] = "get_time";
  HttpResult other = Server("call").Post("/v1/chat/completions", named);
  ASSERT_EQ(other.status, 200) << other.body;
  // The model wanted get_weather; the grammar made it name get_time.
  EXPECT_EQ(other.json["choices"][0]["message"]["content"].get<std::string>().rfind(
                "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {", 0),
            0u)
      << other.body;
  EXPECT_EQ(other.json["choices"][0]["finish_reason"], "length") << other.body;
  EXPECT_NE(other.json.value("warning", "").find("get_time"), std::string::npos) << other.body;
}

// The assistant's earlier call and the tool's result, as clients replay them.
Json RoundTrip(Json arguments, Json content) {
  Json body = Ask();
  body["messages"].push_back(
      {{"role", "assistant"},
       {"content", std::move(content)},
       {"tool_calls",
        {{{"id", "call_7"},
          {"type", "function"},
          {"function", {{"name", "get_weather"}, {"arguments", std::move(arguments)}}}}}}});
  body["messages"].push_back({{"role", "tool"}, {"tool_call_id", "call_7"}, {"content", "sunny"}});
  return body;
}

TEST_F(ToolCallingHttpTest, ReplayedCallsRenderOnceWhetherArgumentsAreAStringOrAnObject) {
  // The plain script's pieces never occur in these prompts, so every prompt
  // byte is one token (the call script's pieces would match the replayed call).
  ServerProcess& server = Server("plain");
  // content null is what the OpenAI SDK sends with a call; Qwen 3's template
  // cannot take it, so it renders as "".
  HttpResult as_string =
      server.Post("/v1/chat/completions", RoundTrip("{\"city\": \"Paris\"}", nullptr));
  HttpResult as_object =
      server.Post("/v1/chat/completions", RoundTrip({{"city", "Paris"}}, nullptr));
  HttpResult empty_content =
      server.Post("/v1/chat/completions", RoundTrip({{"city", "Paris"}}, ""));
  ASSERT_EQ(as_string.status, 200) << as_string.body;
  ASSERT_EQ(as_object.status, 200) << as_object.body;
  ASSERT_EQ(empty_content.status, 200) << empty_content.body;
  // Not double-encoded: the string form renders exactly like the object form.
  EXPECT_EQ(as_string.json["usage"]["prompt_tokens"], as_object.json["usage"]["prompt_tokens"]);
  EXPECT_EQ(as_object.json["usage"]["prompt_tokens"], empty_content.json["usage"]["prompt_tokens"]);
  // The replayed call is in the prompt: tool call, result and all.
  HttpResult first = server.Post("/v1/chat/completions", Ask());
  EXPECT_GT(as_object.json["usage"]["prompt_tokens"].get<int>(),
            first.json["usage"]["prompt_tokens"].get<int>() + 40);
  // Arguments that are not JSON are kept as the client sent them.
  HttpResult raw = server.Post("/v1/chat/completions", RoundTrip("city=Paris", nullptr));
  ASSERT_EQ(raw.status, 200) << raw.body;
  EXPECT_LT(raw.json["usage"]["prompt_tokens"].get<int>(),
            as_object.json["usage"]["prompt_tokens"].get<int>());
  EXPECT_EQ(as_object.json["usage"]["prompt_tokens"].get<int>() -
                raw.json["usage"]["prompt_tokens"].get<int>(),
            static_cast<int>(std::string("{\"city\": \"Paris\"}").size() -
                             std::string("city=Paris").size()));
  EXPECT_EQ(raw.json["choices"][0]["message"]["content"], "Hello there!");
}

TEST(LlamaToolCallingHttpTest, Llama31JsonCallWithItsOwnTemplate) {
  // Llama 3.1 writes a call as bare JSON with "parameters"; its template
  // puts the tools into the first user message.
  const std::string path = reprise::testing::FixturePath(
      "templates/llamacpp_vocab/meta-llama-Llama-3.1-8B-Instruct.jinja");
  REQUIRE_FIXTURE(path);
  const std::string model =
      ScriptedChatModel("scripted_llama31_call",
                        {"{\"name\": \"get_weather\", ", "\"parameters\": {\"city\": \"Paris\"}}"},
                        reprise::testing::ReadFile(path));
  std::string error;
  auto s = ServerProcess::Start(model, {}, &error);
  ASSERT_NE(s, nullptr) << error;
  HttpResult r = s->Post("/v1/chat/completions", Ask());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json["choices"][0]["finish_reason"], "tool_calls") << r.body;
  ASSERT_EQ(r.json["choices"][0]["message"]["tool_calls"].size(), 1u) << r.body;
  ExpectWeatherCall(r.json["choices"][0]["message"]["tool_calls"][0]);
  Streamed st = Collect(s->Post("/v1/chat/completions", Ask(true)));
  ASSERT_EQ(st.calls.size(), 1u);
  ExpectWeatherCall(st.calls[0]);
  EXPECT_EQ(st.content, "");
  // Without tools the same output is just text.
  Json no_tools = Ask();
  no_tools.erase("tools");
  HttpResult plain = s->Post("/v1/chat/completions", no_tools);
  EXPECT_EQ(plain.json["choices"][0]["message"]["content"],
            "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}");
}

}  // namespace
}  // namespace reprise::server::testing
