// Black-box structured output and forced tool calls over HTTP
// (server/structured_output.h): random-weight models sampling at temperature
// 1 with many seeds under JSON schemas and forced tool_choice, through the
// chat templates of Qwen 2.5 (Hermes), Llama 3.1 (JSON) and Mistral Nemo
// ([TOOL_CALLS]); every reply that finishes parses and validates
// (tests/testing/json_schema_check.h). Also: the response shapes of the three
// APIs (chat completions response_format, Responses text.format, Anthropic
// tool_choice any/tool), whole and streamed; reasoning before the
// constrained part (Qwen 3 with a scripted model); 400s in each API's error
// shape for what cannot be guaranteed; and a reply cut by max_tokens.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "server/server_test_util.h"
#include "testing/fixtures.h"
#include "testing/json_schema_check.h"

namespace reprise::server::testing {
namespace {

using reprise::testing::FixturePath;
using reprise::testing::ReadFile;
using reprise::testing::SchemaViolation;

std::string TemplatePath(const std::string& name) {
  return FixturePath("templates/llamacpp_vocab/" + name + ".jinja");
}

// "" when `text` is one JSON value valid under `schema`.
std::string Invalid(const std::string& text, const Json& schema) {
  const Json v = Json::parse(text, nullptr, false);
  if (v.is_discarded()) return "does not parse: " + text;
  const std::string why = SchemaViolation(v, schema);
  return why.empty() ? "" : why + " in " + text;
}

Json Corpus(const std::string& name) {
  static const Json corpus = Json::parse(
      ReadFile(std::string(REPRISE_SOURCE_DIR) + "/tests/data/json_schema_corpus.json"));
  for (const Json& e : corpus) {
    if (e["name"] == name) return e["schema"];
  }
  ADD_FAILURE() << "no schema " << name << " in the corpus";
  return Json::object();
}

Json Ask(const std::string& text = "Answer in JSON.") {
  return {{"messages", {{{"role", "user"}, {"content", text}}}}, {"max_tokens", 2000}};
}

Json WithSchema(Json body, const Json& schema) {
  body["response_format"] = {
      {"type", "json_schema"},
      {"json_schema", {{"name", "answer"}, {"schema", schema}, {"strict", true}}}};
  return body;
}

Json Tool(const std::string& name, Json parameters) {
  return {
      {"type", "function"},
      {"function", {{"name", name}, {"description", "d"}, {"parameters", std::move(parameters)}}}};
}

const Json& Tools() {
  static const Json tools = {
      Tool("get_weather", {{"type", "object"},
                           {"properties",
                            {{"city", {{"type", "string"}, {"maxLength", 12}}},
                             {"days", {{"type", "integer"}, {"minimum", 1}, {"maximum", 7}}}}},
                           {"required", {"city"}}}),
      Tool("get_time", {{"type", "object"},
                        {"properties", {{"zone", {{"enum", {"UTC", "CET", "JST"}}}}}},
                        {"required", {"zone"}},
                        {"additionalProperties", false}}),
      Tool("set_alarm",
           {{"type", "object"},
            {"properties",
             {{"at", {{"type", "string"}, {"format", "time"}}},
              {"repeat", {{"type", "array"}, {"items", {{"type", "boolean"}}}, {"maxItems", 3}}}}},
            {"required", {"at"}}})};
  return tools;
}

const Json* ToolSchema(const std::string& name) {
  for (const Json& t : Tools()) {
    if (t["function"]["name"] == name) return &t["function"]["parameters"];
  }
  return nullptr;
}

class StructuredOutputHttpTest : public ::testing::Test {
 protected:
  static void TearDownTestSuite() { servers_.clear(); }
  // A random-weight model with the named template ("" = ChatML), started once.
  static ServerProcess& Server(const std::string& tmpl) {
    auto it = servers_.find(tmpl);
    if (it != servers_.end()) return *it->second;
    const std::string model =
        ChatModel("structured_" + (tmpl.empty() ? std::string("chatml") : tmpl), 64, 2, 4096,
                  tmpl.empty() ? "" : ReadFile(TemplatePath(tmpl)));
    EXPECT_FALSE(model.empty());
    std::string error;
    std::unique_ptr<ServerProcess> s = ServerProcess::Start(model, {"--parallel", "4"}, &error);
    EXPECT_NE(s, nullptr) << error;
    if (s == nullptr) std::abort();
    return *(servers_[tmpl] = std::move(s));
  }
  static std::map<std::string, std::unique_ptr<ServerProcess>> servers_;
};
std::map<std::string, std::unique_ptr<ServerProcess>> StructuredOutputHttpTest::servers_;

TEST_F(StructuredOutputHttpTest, JsonSchemaRepliesAlwaysValidateUnderRandomSampling) {
  ServerProcess& s = Server("");
  int replies = 0;
  for (const char* name : {"person", "order", "tree", "shape_anyof", "tuple_rest", "event_formats",
                           "counters", "expression"}) {
    const Json schema = Corpus(name);
    for (int seed = 1; seed <= 12; ++seed) {
      Json body = WithSchema(Ask(), schema);
      body["temperature"] = 1.0;
      body["seed"] = seed;
      HttpResult r = s.Post("/v1/chat/completions", body);
      ASSERT_EQ(r.status, 200) << r.body;
      const Json& choice = r.json["choices"][0];
      ASSERT_EQ(choice["finish_reason"], "stop") << name << " seed " << seed << ": " << r.body;
      EXPECT_EQ(Invalid(choice["message"]["content"], schema), "") << name << " seed " << seed;
      ++replies;
    }
  }
  EXPECT_EQ(replies, 96);
}

TEST_F(StructuredOutputHttpTest, StreamedJsonIsTheWholeReply) {
  ServerProcess& s = Server("");
  const Json schema = Corpus("records");
  for (int seed = 1; seed <= 4; ++seed) {
    Json body = WithSchema(Ask(), schema);
    body["temperature"] = 1.0;
    body["seed"] = seed;
    HttpResult whole = s.Post("/v1/chat/completions", body);
    ASSERT_EQ(whole.status, 200) << whole.body;
    body["stream"] = true;
    HttpResult streamed = s.Post("/v1/chat/completions", body);
    bool done = false;
    const std::vector<Json> chunks = ParseSse(streamed.body, &done);
    EXPECT_TRUE(done);
    EXPECT_EQ(StreamedText(chunks), whole.json["choices"][0]["message"]["content"]);
    EXPECT_EQ(Invalid(StreamedText(chunks), schema), "");
    EXPECT_EQ(chunks.back()["choices"][0]["finish_reason"], "stop");
  }
}

TEST_F(StructuredOutputHttpTest, JsonObjectModeRepliesWithAnObject) {
  ServerProcess& s = Server("");
  for (int seed = 1; seed <= 16; ++seed) {
    Json body = Ask();
    body["response_format"] = {{"type", "json_object"}};
    body["temperature"] = 1.0;
    body["seed"] = seed;
    HttpResult r = s.Post("/v1/chat/completions", body);
    ASSERT_EQ(r.status, 200) << r.body;
    ASSERT_EQ(r.json["choices"][0]["finish_reason"], "stop") << r.body;
    const Json v =
        Json::parse(r.json["choices"][0]["message"]["content"].get<std::string>(), nullptr, false);
    EXPECT_TRUE(v.is_object()) << r.body;
  }
}

TEST_F(StructuredOutputHttpTest, ATextFormatChangesNothing) {
  ServerProcess& s = Server("");
  Json plain = Ask();
  plain["max_tokens"] = 40;
  plain["temperature"] = 0;
  Json text = plain;
  text["response_format"] = {{"type", "text"}};
  HttpResult a = s.Post("/v1/chat/completions", plain);
  HttpResult b = s.Post("/v1/chat/completions", text);
  ASSERT_EQ(a.status, 200);
  EXPECT_EQ(a.json["choices"][0]["message"], b.json["choices"][0]["message"]);
}

TEST_F(StructuredOutputHttpTest, CompletionsAndAnthropicOutputFormatAreConstrainedToo) {
  ServerProcess& s = Server("");
  const Json schema = Corpus("settings");
  for (int seed = 1; seed <= 6; ++seed) {
    Json c = {{"prompt", "Settings:"},
              {"max_tokens", 2000},
              {"temperature", 1.0},
              {"seed", seed},
              {"response_format",
               {{"type", "json_schema"}, {"json_schema", {{"name", "s"}, {"schema", schema}}}}}};
    HttpResult r = s.Post("/v1/completions", c);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json["choices"][0]["finish_reason"], "stop") << r.body;
    EXPECT_EQ(Invalid(r.json["choices"][0]["text"], schema), "") << r.body;
    Json m = {{"model", "m"},
              {"max_tokens", 2000},
              {"temperature", 1.0},
              {"messages", {{{"role", "user"}, {"content", "Settings?"}}}}};
    // The current API's output_config.format and the beta's output_format.
    const Json format = {{"type", "json_schema"}, {"schema", schema}};
    if (seed % 2 == 0) {
      m["output_config"] = {{"format", format}};
    } else {
      m["output_format"] = format;
    }
    HttpResult a = s.Post("/v1/messages", m);
    ASSERT_EQ(a.status, 200) << a.body;
    EXPECT_EQ(a.json["stop_reason"], "end_turn") << a.body;
    ASSERT_EQ(a.json["content"][0]["type"], "text") << a.body;
    EXPECT_EQ(Invalid(a.json["content"][0]["text"], schema), "") << a.body;
  }
  Json m = {{"model", "m"},
            {"max_tokens", 20},
            {"messages", {{{"role", "user"}, {"content", "x"}}}},
            {"output_format",
             {{"type", "json_schema"}, {"schema", {{"type", "string"}, {"pattern", "a"}}}}}};
  HttpResult bad = s.Post("/v1/messages", m);
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_EQ(bad.json["type"], "error") << bad.body;
  EXPECT_NE(
      bad.json["error"]["message"].get<std::string>().find("output_format.schema: unsupported "
                                                           "JSON Schema keyword 'pattern'"),
      std::string::npos)
      << bad.body;
  m.erase("output_format");
  const Json bad_schema = {{"type", "string"}, {"pattern", "a"}};
  m["output_config"] = {{"format", {{"type", "json_schema"}, {"schema", bad_schema}}}};
  bad = s.Post("/v1/messages", m);
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_NE(bad.json["error"]["message"].get<std::string>().find(
                "output_config.format.schema: unsupported JSON Schema keyword 'pattern'"),
            std::string::npos)
      << bad.body;
  m["output_format"] = {{"type", "json_schema"}, {"schema", {{"type", "string"}}}};
  bad = s.Post("/v1/messages", m);
  EXPECT_EQ(bad.status, 400) << bad.body;  // both at once
  Json c = {
      {"prompt", "x"},
      {"response_format", {{"type", "json_schema"}, {"json_schema", {{"schema", {{"not", {}}}}}}}}};
  HttpResult bad_c = s.Post("/v1/completions", c);
  EXPECT_EQ(bad_c.status, 400) << bad_c.body;
  EXPECT_EQ(bad_c.json["error"]["param"], "response_format.json_schema.schema") << bad_c.body;
}

// response_format with tools and tool_choice auto: the reply is the JSON
// value or tool calls, whichever the model starts.
TEST_F(StructuredOutputHttpTest, JsonOrToolCallsWhenToolsAreOfferedWithAuto) {
  REQUIRE_FIXTURE(TemplatePath("Qwen-Qwen2.5-7B-Instruct"));
  ServerProcess& s = Server("Qwen-Qwen2.5-7B-Instruct");
  const Json schema = Corpus("person");
  int json_replies = 0, call_replies = 0;
  for (int seed = 1; seed <= 24; ++seed) {
    Json body = WithSchema(Ask(), schema);
    body["tools"] = Tools();
    body["temperature"] = 1.0;
    body["seed"] = seed;
    HttpResult r = s.Post("/v1/chat/completions", body);
    ASSERT_EQ(r.status, 200) << r.body;
    const Json& c = r.json["choices"][0];
    if (c["finish_reason"] == "tool_calls") {
      ++call_replies;
      for (const Json& call : c["message"]["tool_calls"]) {
        EXPECT_EQ(Invalid(call["function"]["arguments"], *ToolSchema(call["function"]["name"])),
                  "");
      }
    } else {
      ++json_replies;
      EXPECT_EQ(c["finish_reason"], "stop") << r.body;
      EXPECT_EQ(Invalid(c["message"]["content"], schema), "") << r.body;
    }
  }
  EXPECT_EQ(json_replies + call_replies, 24);
  EXPECT_GT(json_replies, 0);  // seeded: both kinds occur
  EXPECT_GT(call_replies, 0);
}

TEST_F(StructuredOutputHttpTest, ForcedToolCallsAreGuaranteedInEveryTemplateSyntax) {
  const std::vector<std::string> templates = {"Qwen-Qwen2.5-7B-Instruct",
                                              "meta-llama-Llama-3.1-8B-Instruct",
                                              "mistralai-Mistral-Nemo-Instruct-2407"};
  for (const std::string& tmpl : templates) {
    REQUIRE_FIXTURE(TemplatePath(tmpl));
    ServerProcess& s = Server(tmpl);
    for (const std::string& choice :
         std::vector<std::string>{"required", "get_time", "set_alarm", "get_weather"}) {
      for (int seed = 1; seed <= 5; ++seed) {
        Json body = Ask("What now?");
        body["tools"] = Tools();
        body["temperature"] = 1.0;
        body["seed"] = seed;
        body["tool_choice"] = choice == "required"
                                  ? Json("required")
                                  : Json{{"type", "function"}, {"function", {{"name", choice}}}};
        HttpResult r = s.Post("/v1/chat/completions", body);
        const std::string where = tmpl + " " + choice + " seed " + std::to_string(seed);
        ASSERT_EQ(r.status, 200) << where << ": " << r.body;
        const Json& c = r.json["choices"][0];
        ASSERT_EQ(c["finish_reason"], "tool_calls") << where << ": " << r.body;
        EXPECT_FALSE(r.json.contains("warning")) << where;
        const Json& calls = c["message"]["tool_calls"];
        ASSERT_GE(calls.size(), 1u) << where;
        if (choice != "required") {
          EXPECT_EQ(calls.size(), 1u) << where;
        }
        for (const Json& call : calls) {
          const std::string name = call["function"]["name"];
          if (choice != "required") {
            EXPECT_EQ(name, choice) << where;
          }
          const Json* schema = ToolSchema(name);
          ASSERT_NE(schema, nullptr) << where << ": " << name;
          EXPECT_EQ(Invalid(call["function"]["arguments"], *schema), "") << where;
        }
      }
    }
  }
}

TEST_F(StructuredOutputHttpTest, ParallelToolCallsFalseMeansOneCall) {
  REQUIRE_FIXTURE(TemplatePath("Qwen-Qwen2.5-7B-Instruct"));
  ServerProcess& s = Server("Qwen-Qwen2.5-7B-Instruct");
  for (int seed = 1; seed <= 8; ++seed) {
    Json body = Ask("Go.");
    body["tools"] = Tools();
    body["tool_choice"] = "required";
    body["parallel_tool_calls"] = false;
    body["temperature"] = 1.0;
    body["seed"] = seed;
    HttpResult r = s.Post("/v1/chat/completions", body);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json["choices"][0]["message"]["tool_calls"].size(), 1u) << r.body;
  }
}

TEST_F(StructuredOutputHttpTest, ResponsesTextFormatIsGuaranteedWholeAndStreamed) {
  ServerProcess& s = Server("");
  const Json schema = Corpus("defs_graph");
  for (int i = 0; i < 8; ++i) {  // unseeded: a different reply each time
    Json body = {{"input", "Describe a customer."},
                 {"max_output_tokens", 2000},
                 {"temperature", 1.0},
                 {"text",
                  {{"format",
                    {{"type", "json_schema"},
                     {"name", "customer"},
                     {"schema", schema},
                     {"strict", true}}}}}};
    HttpResult r = s.Post("/v1/responses", body);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json["status"], "completed") << r.body;
    EXPECT_EQ(r.json["text"]["format"]["type"], "json_schema");
    const Json& item = r.json["output"].back();
    ASSERT_EQ(item["type"], "message") << r.body;
    EXPECT_EQ(Invalid(item["content"][0]["text"], schema), "") << r.body;
  }
  Json body = {{"input", "x"},
               {"max_output_tokens", 2000},
               {"stream", true},
               {"text", {{"format", {{"type", "json_object"}}}}}};
  HttpResult r = s.Post("/v1/responses", body);
  ASSERT_EQ(r.status, 200);
  std::string deltas, final_text;
  for (size_t at = r.body.find("data: "); at != std::string::npos;
       at = r.body.find("data: ", at + 1)) {
    const Json e =
        Json::parse(r.body.substr(at + 6, r.body.find('\n', at) - at - 6), nullptr, false);
    if (e.is_discarded()) continue;
    if (e["type"] == "response.output_text.delta") deltas += e["delta"].get<std::string>();
    if (e["type"] == "response.completed") {
      final_text = e["response"]["output"].back()["content"][0]["text"];
    }
  }
  EXPECT_EQ(deltas, final_text);
  EXPECT_TRUE(Json::parse(final_text, nullptr, false).is_object()) << r.body;
}

TEST_F(StructuredOutputHttpTest, ResponsesAndAnthropicForcedToolChoiceIsGuaranteed) {
  REQUIRE_FIXTURE(TemplatePath("Qwen-Qwen2.5-7B-Instruct"));
  ServerProcess& s = Server("Qwen-Qwen2.5-7B-Instruct");
  Json flat = Json::array();       // Responses: flat function tools
  Json anthropic = Json::array();  // Anthropic: input_schema
  for (const Json& t : Tools()) {
    flat.push_back({{"type", "function"},
                    {"name", t["function"]["name"]},
                    {"parameters", t["function"]["parameters"]}});
    anthropic.push_back(
        {{"name", t["function"]["name"]}, {"input_schema", t["function"]["parameters"]}});
  }
  for (int i = 0; i < 6; ++i) {
    const bool named = i % 2 == 1;
    Json body = {
        {"input", "Go."}, {"tools", flat}, {"temperature", 1.0}, {"max_output_tokens", 2000}};
    body["tool_choice"] =
        named ? Json{{"type", "function"}, {"name", "set_alarm"}} : Json("required");
    HttpResult r = s.Post("/v1/responses", body);
    ASSERT_EQ(r.status, 200) << r.body;
    int calls = 0;
    for (const Json& item : r.json["output"]) {
      if (item["type"] != "function_call") continue;
      ++calls;
      if (named) {
        EXPECT_EQ(item["name"], "set_alarm");
      }
      const Json* schema = ToolSchema(item["name"]);
      ASSERT_NE(schema, nullptr) << r.body;
      EXPECT_EQ(Invalid(item["arguments"], *schema), "") << r.body;
    }
    EXPECT_GE(calls, 1) << r.body;

    Json msg = {{"model", "m"},
                {"max_tokens", 2000},
                {"tools", anthropic},
                {"temperature", 1.0},
                {"messages", {{{"role", "user"}, {"content", "Go."}}}}};
    msg["tool_choice"] =
        named ? Json{{"type", "tool"}, {"name", "get_time"}} : Json{{"type", "any"}};
    HttpResult m = s.Post("/v1/messages", msg);
    ASSERT_EQ(m.status, 200) << m.body;
    EXPECT_EQ(m.json["stop_reason"], "tool_use") << m.body;
    int uses = 0;
    for (const Json& block : m.json["content"]) {
      if (block["type"] != "tool_use") continue;
      ++uses;
      if (named) {
        EXPECT_EQ(block["name"], "get_time");
      }
      EXPECT_EQ(SchemaViolation(block["input"], *ToolSchema(block["name"])), "") << m.body;
    }
    EXPECT_GE(uses, 1) << m.body;
  }
}

TEST_F(StructuredOutputHttpTest, ReasoningComesBeforeTheConstrainedPart) {
  REQUIRE_FIXTURE(Qwen3TemplatePath());
  const std::string model = ScriptedChatModel(
      "scripted_structured_think",
      {"<think>\n", "Weather ", "first.", "\n</think>\n\n", "<tool_call>\n{\"name\": \"get_",
       "weather\", \"arguments\": ", "{\"city\": \"Paris\"}}\n", "</tool_call>"},
      ReadFile(Qwen3TemplatePath()));
  ASSERT_FALSE(model.empty());
  std::string error;
  auto s = ServerProcess::Start(model, {}, &error);
  ASSERT_NE(s, nullptr) << error;
  Json body = Ask("Weather in Paris?");
  body["tools"] = Tools();
  body["temperature"] = 0;
  body["tool_choice"] = "required";
  HttpResult r = s->Post("/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  const Json& m = r.json["choices"][0]["message"];
  EXPECT_EQ(m["reasoning_content"], "Weather first.") << r.body;
  ASSERT_EQ(m["tool_calls"].size(), 1u) << r.body;
  EXPECT_EQ(m["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(Json::parse(m["tool_calls"][0]["function"]["arguments"].get<std::string>()),
            Json({{"city", "Paris"}}));
  EXPECT_FALSE(r.json.contains("warning"));
  // The scripted reply already satisfies the constraint: same tokens as
  // unconstrained (greedy takes the best allowed token, which is its own).
  body.erase("tool_choice");
  HttpResult plain = s->Post("/v1/chat/completions", body);
  const Json& pm = plain.json["choices"][0]["message"];
  EXPECT_EQ(pm["reasoning_content"], m["reasoning_content"]);
  EXPECT_EQ(pm["tool_calls"][0]["function"], m["tool_calls"][0]["function"]);
  EXPECT_EQ(plain.json["usage"]["completion_tokens"], r.json["usage"]["completion_tokens"]);
}

TEST_F(StructuredOutputHttpTest, WhatCannotBeGuaranteedIsA400InEachApisShape) {
  ServerProcess& chatml = Server("");
  auto expect_400 = [](const HttpResult& r, const std::string& param, const std::string& words) {
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_EQ(r.json["error"]["param"], param) << r.body;
    EXPECT_NE(r.json["error"]["message"].get<std::string>().find(words), std::string::npos)
        << r.body;
  };
  Json pattern = {{"type", "object"},
                  {"properties", {{"code", {{"type", "string"}, {"pattern", "^[A-Z]+$"}}}}}};
  expect_400(chatml.Post("/v1/chat/completions", WithSchema(Ask(), pattern)),
             "response_format.json_schema.schema", "'pattern' at #/properties/code");
  Json bad = Ask();
  bad["response_format"] = {{"type", "xml"}};
  expect_400(chatml.Post("/v1/chat/completions", bad), "response_format.type", "json_schema");
  bad["response_format"] = {{"type", "json_schema"}, {"json_schema", {{"name", "x"}}}};
  expect_400(chatml.Post("/v1/chat/completions", bad), "response_format.json_schema.schema",
             "is required");
  expect_400(chatml.Post("/v1/chat/completions",
                         WithSchema(Ask(), {{"type", "integer"}, {"minimum", 3}, {"maximum", 1}})),
             "response_format.json_schema.schema", "can never be satisfied");
  expect_400(chatml.Post("/v1/chat/completions", WithSchema(Ask(), {{"$ref", "#/$defs/nope"}})),
             "response_format.json_schema.schema", "points to nothing");
  Json chain = {{"$defs", Json::object()}, {"$ref", "#/$defs/d0"}};
  for (int i = 0; i < 80; ++i) {
    chain["$defs"]["d" + std::to_string(i)] = {
        {"type", "array"}, {"items", {{"$ref", "#/$defs/d" + std::to_string(i + 1)}}}};
  }
  chain["$defs"]["d80"] = {{"type", "null"}};
  expect_400(chatml.Post("/v1/chat/completions", WithSchema(Ask(), chain)),
             "response_format.json_schema.schema", "deeper than 64");
  // A template without a tool-call syntax cannot guarantee a call.
  Json tools = Ask();
  tools["tools"] = Tools();
  tools["tool_choice"] = "required";
  expect_400(chatml.Post("/v1/chat/completions", tools), "tool_choice", "cannot be guaranteed");
  // Responses: the same errors, named text.format.
  Json resp = {
      {"input", "x"},
      {"text", {{"format", {{"type", "json_schema"}, {"name", "n"}, {"schema", pattern}}}}}};
  expect_400(chatml.Post("/v1/responses", resp), "text.format.schema", "'pattern'");
  resp["text"]["format"] = {{"type", "yaml"}};
  expect_400(chatml.Post("/v1/responses", resp), "text.format.type", "json_schema");
  // A forced call whose parameters use an unsupported keyword (Hermes model).
  REQUIRE_FIXTURE(TemplatePath("Qwen-Qwen2.5-7B-Instruct"));
  ServerProcess& qwen = Server("Qwen-Qwen2.5-7B-Instruct");
  Json not_schema = {{"type", "object"}, {"properties", {{"a", {{"not", {{"type", "null"}}}}}}}};
  Json forced = Ask();
  forced["tools"] = {Tool("f", not_schema)};
  forced["tool_choice"] = "required";
  expect_400(qwen.Post("/v1/chat/completions", forced), "tools", "'not' at #/properties/a");
  forced["tool_choice"] = "auto";  // not forced: nothing to compile
  EXPECT_EQ(qwen.Post("/v1/chat/completions", forced).status, 200);
  // Anthropic: its own error shape.
  Json msg = {{"model", "m"},
              {"max_tokens", 50},
              {"messages", {{{"role", "user"}, {"content", "x"}}}},
              {"tools", {{{"name", "f"}, {"input_schema", not_schema}}}},
              {"tool_choice", {{"type", "any"}}}};
  HttpResult m = qwen.Post("/v1/messages", msg);
  EXPECT_EQ(m.status, 400) << m.body;
  EXPECT_EQ(m.json["type"], "error") << m.body;
  EXPECT_EQ(m.json["error"]["type"], "invalid_request_error") << m.body;
  EXPECT_NE(m.json["error"]["message"].get<std::string>().find("'not'"), std::string::npos)
      << m.body;
}

TEST_F(StructuredOutputHttpTest, AReplyCutByMaxTokensSaysLengthAndTheToolWarningStays) {
  ServerProcess& s = Server("");
  Json body = WithSchema(Ask(), Corpus("person"));
  body["max_tokens"] = 3;
  HttpResult r = s.Post("/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json["choices"][0]["finish_reason"], "length");
  REQUIRE_FIXTURE(TemplatePath("Qwen-Qwen2.5-7B-Instruct"));
  Json tools = Ask();
  tools["tools"] = Tools();
  tools["tool_choice"] = "required";
  tools["max_tokens"] = 5;
  HttpResult t = Server("Qwen-Qwen2.5-7B-Instruct").Post("/v1/chat/completions", tools);
  ASSERT_EQ(t.status, 200) << t.body;
  EXPECT_EQ(t.json["choices"][0]["finish_reason"], "length");
  EXPECT_NE(t.json.value("warning", "").find("required"), std::string::npos) << t.body;
}

}  // namespace
}  // namespace reprise::server::testing
