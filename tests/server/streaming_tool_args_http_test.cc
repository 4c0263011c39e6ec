// Black-box: tool-call arguments stream as they are generated, over all three
// APIs. A scripted model (one token per piece, so one engine event per piece)
// replies with reasoning, then a Hermes call whose arguments arrive in many
// pieces (strings with escapes, a number, an array), then a second call; Qwen
// 3's own chat template. Checks, per API: the call's opening event comes
// first (id, name, empty arguments / input), then several argument fragments
// in separate events before the call ends, whose concatenation equals the
// final arguments exactly and parses as JSON; the second call gets the next
// index; the whole (non-streamed) reply carries the same arguments; and a
// call cut off by max_tokens ends with the length finish reason.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "server/server_test_util.h"
#include "testing/fixtures.h"

namespace reprise::server::testing {
namespace {

const std::vector<std::string> kScript = {"<think>\n",
                                          "Write the file, then check the time.",
                                          "\n</think>\n\n",
                                          "<tool_call>\n{\"name\": \"write_file\", ",
                                          "\"arguments\": {",
                                          "\"path\": \"notes/a.txt\", ",
                                          "\"content\": \"line one\\n",
                                          "line two ",
                                          "\\u00e9t\\u00e9 \\\"q\\\"\", ",
                                          "\"mode\": 420, ",
                                          "\"tags\": [\"a\", ",
                                          "\"b\"]",
                                          "}}\n",
                                          "</tool_call>",
                                          "\n<tool_call>\n{\"name\": \"get_time\", ",
                                          "\"arguments\": {\"zone\": ",
                                          "\"CET\"}}\n",
                                          "</tool_call>"};
// What the arguments must be: the parsed object, serialized compactly.
const char kWriteArgs[] =
    "{\"path\":\"notes/a.txt\",\"content\":\"line one\\nline two \xc3\xa9t\xc3\xa9 \\\"q\\\"\","
    "\"mode\":420,\"tags\":[\"a\",\"b\"]}";
const char kTimeArgs[] = "{\"zone\":\"CET\"}";
const char kReasoning[] = "Write the file, then check the time.";

class StreamingToolArgsHttpTest : public ::testing::Test {
 protected:
  void SetUp() override { REQUIRE_FIXTURE(Qwen3TemplatePath()); }
  static void TearDownTestSuite() { server_.reset(); }

  static ServerProcess& S() {
    if (server_ != nullptr) return *server_;
    const std::string model = ScriptedChatModel("scripted_streaming_args", kScript,
                                                reprise::testing::ReadFile(Qwen3TemplatePath()));
    EXPECT_FALSE(model.empty());
    std::string error;
    server_ = ServerProcess::Start(model, {}, &error);
    EXPECT_NE(server_, nullptr) << error;
    if (server_ == nullptr) std::abort();
    return *server_;
  }
  static std::unique_ptr<ServerProcess> server_;
};
std::unique_ptr<ServerProcess> StreamingToolArgsHttpTest::server_;

Json Schema(const std::vector<std::string>& params) {
  Json props = Json::object();
  for (const std::string& p : params) props[p] = {{"type", "string"}};
  return {{"type", "object"}, {"properties", props}};
}

const char kAsk[] = "Write notes/a.txt and tell me the time in CET.";

Json ChatAsk(bool stream, int max_tokens = 64) {
  return {{"messages", {{{"role", "user"}, {"content", kAsk}}}},
          {"tools",
           {{{"type", "function"},
             {"function", {{"name", "write_file"}, {"parameters", Schema({"path", "content"})}}}},
            {{"type", "function"},
             {"function", {{"name", "get_time"}, {"parameters", Schema({"zone"})}}}}}},
          {"temperature", 0},
          {"max_tokens", max_tokens},
          {"stream", stream}};
}

Json ResponsesAsk(bool stream, int max_tokens = 64) {
  return {
      {"input", kAsk},
      {"tools",
       {{{"type", "function"}, {"name", "write_file"}, {"parameters", Schema({"path", "content"})}},
        {{"type", "function"}, {"name", "get_time"}, {"parameters", Schema({"zone"})}}}},
      {"temperature", 0},
      {"max_output_tokens", max_tokens},
      {"stream", stream}};
}

Json MessagesAsk(bool stream, int max_tokens = 64) {
  return {{"model", "any"},
          {"max_tokens", max_tokens},
          {"messages", {{{"role", "user"}, {"content", kAsk}}}},
          {"tools",
           {{{"name", "write_file"}, {"input_schema", Schema({"path", "content"})}},
            {{"name", "get_time"}, {"input_schema", Schema({"zone"})}}}},
          {"temperature", 0},
          {"stream", stream}};
}

struct SseEvent {
  std::string name;  // empty for chat completions' data-only events
  Json data;
};

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

void ExpectParsesTo(const std::string& text, const std::string& expected) {
  const Json j = Json::parse(text, nullptr, false);
  ASSERT_TRUE(j.is_object()) << text;
  EXPECT_EQ(j, Json::parse(expected));
}

// --- /v1/chat/completions

TEST_F(StreamingToolArgsHttpTest, ChatCompletionsStreamsArgumentsInManyDeltas) {
  HttpResult whole = S().Post("/v1/chat/completions", ChatAsk(false));
  ASSERT_EQ(whole.status, 200) << whole.body;
  const Json& m = whole.json["choices"][0]["message"];
  ASSERT_EQ(m["tool_calls"].size(), 2u) << whole.body;
  EXPECT_EQ(m["tool_calls"][0]["function"]["arguments"], kWriteArgs);
  EXPECT_EQ(m["tool_calls"][1]["function"]["arguments"], kTimeArgs);
  EXPECT_EQ(m["reasoning_content"], kReasoning);

  HttpResult r = S().Post("/v1/chat/completions", ChatAsk(true));
  ASSERT_EQ(r.status, 200) << r.body;
  bool done = false;
  const std::vector<Json> chunks = ParseSse(r.body, &done);
  EXPECT_TRUE(done);
  std::vector<std::string> args(2);
  std::vector<int> deltas(2, 0);
  std::vector<Json> ids(2);
  int started = 0;
  std::string reasoning, finish;
  for (const Json& chunk : chunks) {
    if (chunk["choices"].empty()) continue;
    const Json& choice = chunk["choices"][0];
    if (!choice["finish_reason"].is_null()) finish = choice["finish_reason"];
    const Json& d = choice["delta"];
    if (d.contains("reasoning_content")) {
      EXPECT_EQ(started, 0) << "reasoning after a call started";
      reasoning += d["reasoning_content"].get<std::string>();
    }
    if (!d.contains("tool_calls")) continue;
    ASSERT_EQ(d["tool_calls"].size(), 1u) << chunk.dump();
    const Json& tc = d["tool_calls"][0];
    const int index = tc["index"];
    if (tc.contains("id")) {  // a call's first delta: id, type, name, arguments ""
      ASSERT_EQ(index, started++) << chunk.dump();
      ids[index] = tc["id"];
      EXPECT_EQ(tc["type"], "function");
      EXPECT_EQ(tc["function"]["name"], m["tool_calls"][index]["function"]["name"]);
      EXPECT_EQ(tc["function"]["arguments"], "");
      continue;
    }
    ASSERT_EQ(index, started - 1) << "an argument delta of an earlier call: " << chunk.dump();
    EXPECT_FALSE(tc["function"].contains("name")) << chunk.dump();
    const std::string fragment = tc["function"]["arguments"];
    EXPECT_FALSE(fragment.empty()) << chunk.dump();
    args[index] += fragment;
    ++deltas[index];
  }
  EXPECT_EQ(reasoning, kReasoning);
  EXPECT_EQ(started, 2);
  EXPECT_GE(deltas[0], 6) << r.body;  // one per argument piece of the script
  EXPECT_EQ(args[0], kWriteArgs);
  EXPECT_EQ(args[1], kTimeArgs);
  ExpectParsesTo(args[0], kWriteArgs);
  EXPECT_NE(ids[0], ids[1]);
  EXPECT_EQ(finish, "tool_calls");
}

TEST_F(StreamingToolArgsHttpTest, ChatCompletionsCallCutOffByMaxTokensEndsWithLength) {
  // 7 tokens: the reasoning (3), the call's head, "arguments": {, path, the
  // start of content.
  HttpResult r = S().Post("/v1/chat/completions", ChatAsk(true, 7));
  ASSERT_EQ(r.status, 200) << r.body;
  bool done = false;
  std::string args, finish;
  int calls = 0;
  for (const Json& chunk : ParseSse(r.body, &done)) {
    if (chunk["choices"].empty()) continue;
    const Json& choice = chunk["choices"][0];
    if (!choice["finish_reason"].is_null()) finish = choice["finish_reason"];
    if (!choice["delta"].contains("tool_calls")) continue;
    const Json& tc = choice["delta"]["tool_calls"][0];
    calls += tc.contains("id");
    args += tc["function"]["arguments"].get<std::string>();
  }
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(args, "{\"path\":\"notes/a.txt\",\"content\":\"line one\\n");
  EXPECT_EQ(finish, "length");
  // Whole: the unfinished call is content, as before.
  HttpResult whole = S().Post("/v1/chat/completions", ChatAsk(false, 7));
  ASSERT_EQ(whole.status, 200) << whole.body;
  EXPECT_EQ(whole.json["choices"][0]["finish_reason"], "length");
  EXPECT_FALSE(whole.json["choices"][0]["message"].contains("tool_calls")) << whole.body;
}

// --- /v1/responses

TEST_F(StreamingToolArgsHttpTest, ResponsesStreamsFunctionCallArgumentsDeltas) {
  HttpResult whole = S().Post("/v1/responses", ResponsesAsk(false));
  ASSERT_EQ(whole.status, 200) << whole.body;
  const Json& output = whole.json["output"];
  ASSERT_EQ(output.size(), 3u) << whole.body;  // reasoning, two function calls
  EXPECT_EQ(output[1]["arguments"], kWriteArgs);
  EXPECT_EQ(output[2]["arguments"], kTimeArgs);

  HttpResult r = S().Post("/v1/responses", ResponsesAsk(true));
  ASSERT_EQ(r.status, 200) << r.body;
  const std::vector<SseEvent> events = ParseEvents(r.body);
  // Per function call item: added (arguments ""), >= 1 deltas, done, item done.
  std::vector<std::string> args(3);
  std::vector<int> deltas(3, 0);
  std::vector<std::string> phase(3);  // "added" -> "delta" -> "done" -> "item_done"
  std::vector<Json> item_ids(3);
  for (const SseEvent& e : events) {
    const Json& d = e.data;
    if (!d.contains("output_index")) continue;
    const size_t i = d["output_index"];
    ASSERT_LT(i, 3u) << d.dump();
    if (e.name == "response.output_item.added") {
      EXPECT_EQ(phase[i], "") << d.dump();
      if (i > 0) {
        EXPECT_EQ(phase[i - 1], "item_done")
            << "item " << i << " opened before " << i - 1 << " closed";
      }
      phase[i] = "added";
      item_ids[i] = d["item"]["id"];
      if (i > 0) {
        EXPECT_EQ(d["item"]["type"], "function_call");
        EXPECT_EQ(d["item"]["arguments"], "");
        EXPECT_EQ(d["item"]["name"], output[i]["name"]);
      }
    } else if (e.name == "response.function_call_arguments.delta") {
      EXPECT_TRUE(phase[i] == "added" || phase[i] == "delta") << d.dump();
      phase[i] = "delta";
      EXPECT_EQ(d["item_id"], item_ids[i]);
      args[i] += d["delta"].get<std::string>();
      ++deltas[i];
    } else if (e.name == "response.function_call_arguments.done") {
      EXPECT_EQ(phase[i], "delta") << d.dump();
      phase[i] = "done";
      EXPECT_EQ(d["arguments"], args[i]);
    } else if (e.name == "response.output_item.done") {
      phase[i] = "item_done";
      if (i > 0) {
        EXPECT_EQ(d["item"]["arguments"], args[i]);
        EXPECT_EQ(d["item"]["status"], "completed");
      }
    }
  }
  EXPECT_EQ(phase[1], "item_done");
  EXPECT_EQ(phase[2], "item_done");
  EXPECT_GE(deltas[1], 6) << r.body;
  EXPECT_EQ(args[1], kWriteArgs);
  EXPECT_EQ(args[2], kTimeArgs);
  ExpectParsesTo(args[1], kWriteArgs);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().name, "response.completed");
  const Json& streamed = events.back().data["response"]["output"];
  ASSERT_EQ(streamed.size(), 3u);
  for (size_t i = 1; i < 3; ++i) {
    EXPECT_EQ(streamed[i]["name"], output[i]["name"]);
    EXPECT_EQ(streamed[i]["arguments"], output[i]["arguments"]);
    EXPECT_EQ(streamed[i]["id"], item_ids[i]);
  }
}

TEST_F(StreamingToolArgsHttpTest, ResponsesCallCutOffByMaxOutputTokensIsIncomplete) {
  HttpResult r = S().Post("/v1/responses", ResponsesAsk(true, 7));
  ASSERT_EQ(r.status, 200) << r.body;
  const std::vector<SseEvent> events = ParseEvents(r.body);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().name, "response.incomplete") << r.body;
  const Json& out = events.back().data["response"]["output"];
  ASSERT_EQ(out.size(), 2u) << r.body;
  EXPECT_EQ(out[1]["arguments"], "{\"path\":\"notes/a.txt\",\"content\":\"line one\\n");
}

// --- /v1/messages

TEST_F(StreamingToolArgsHttpTest, MessagesStreamsInputJsonDeltas) {
  HttpResult whole = S().Post("/v1/messages", MessagesAsk(false));
  ASSERT_EQ(whole.status, 200) << whole.body;
  const Json& content = whole.json["content"];
  ASSERT_EQ(content.size(), 3u) << whole.body;  // thinking, two tool_use blocks
  EXPECT_EQ(content[1]["input"], Json::parse(kWriteArgs));
  EXPECT_EQ(content[2]["input"], Json::parse(kTimeArgs));
  EXPECT_EQ(whole.json["stop_reason"], "tool_use");

  HttpResult r = S().Post("/v1/messages", MessagesAsk(true));
  ASSERT_EQ(r.status, 200) << r.body;
  std::vector<std::string> json_text(3);
  std::vector<int> deltas(3, 0);
  std::vector<std::string> phase(3);
  std::string stop_reason;
  for (const SseEvent& e : ParseEvents(r.body)) {
    const Json& d = e.data;
    if (e.name == "message_delta") stop_reason = d["delta"]["stop_reason"];
    if (!d.contains("index")) continue;
    const size_t i = d["index"];
    ASSERT_LT(i, 3u) << d.dump();
    if (e.name == "content_block_start") {
      EXPECT_EQ(phase[i], "");
      if (i > 0) {
        EXPECT_EQ(phase[i - 1], "stop")
            << "block " << i << " opened before " << i - 1 << " stopped";
      }
      phase[i] = "start";
      if (i > 0) {
        EXPECT_EQ(d["content_block"]["type"], "tool_use");
        EXPECT_EQ(d["content_block"]["name"], content[i]["name"]);
        EXPECT_EQ(d["content_block"]["input"], Json::object());
      }
    } else if (e.name == "content_block_delta") {
      EXPECT_TRUE(phase[i] == "start" || phase[i] == "delta") << d.dump();
      phase[i] = "delta";
      if (i == 0) continue;
      EXPECT_EQ(d["delta"]["type"], "input_json_delta");
      json_text[i] += d["delta"]["partial_json"].get<std::string>();
      ++deltas[i];
    } else if (e.name == "content_block_stop") {
      EXPECT_EQ(phase[i], "delta") << d.dump();
      phase[i] = "stop";
    }
  }
  EXPECT_EQ(phase[2], "stop");
  EXPECT_GE(deltas[1], 6) << r.body;
  EXPECT_EQ(json_text[1], kWriteArgs);
  EXPECT_EQ(json_text[2], kTimeArgs);
  ExpectParsesTo(json_text[1], kWriteArgs);
  EXPECT_EQ(stop_reason, "tool_use");
}

TEST_F(StreamingToolArgsHttpTest, MessagesCallCutOffByMaxTokensStopsWithMaxTokens) {
  HttpResult r = S().Post("/v1/messages", MessagesAsk(true, 7));
  ASSERT_EQ(r.status, 200) << r.body;
  std::string stop_reason, json_text;
  for (const SseEvent& e : ParseEvents(r.body)) {
    if (e.name == "message_delta") stop_reason = e.data["delta"]["stop_reason"];
    if (e.name == "content_block_delta" && e.data["delta"]["type"] == "input_json_delta") {
      json_text += e.data["delta"]["partial_json"].get<std::string>();
    }
  }
  EXPECT_EQ(stop_reason, "max_tokens");
  EXPECT_EQ(json_text, "{\"path\":\"notes/a.txt\",\"content\":\"line one\\n");
}

// --- The Llama 3.1 and Mistral formats: the same argument streaming, with
// each model family's own chat template. One server per format; each API's
// stream must carry the write_file call's arguments in several fragments
// (one per script piece) joining to exactly the whole reply's arguments, then
// the get_time call.

const std::vector<std::string> kArgPieces = {"\"path\": \"notes/a.txt\", ",
                                             "\"content\": \"line one\\n",
                                             "line two ",
                                             "\\u00e9t\\u00e9 \\\"q\\\"\", ",
                                             "\"mode\": 420, ",
                                             "\"tags\": [\"a\", ",
                                             "\"b\"]"};

std::vector<std::string> Concat(std::vector<std::string> a, const std::vector<std::string>& b,
                                const std::vector<std::string>& c) {
  a.insert(a.end(), b.begin(), b.end());
  a.insert(a.end(), c.begin(), c.end());
  return a;
}

struct FormatCase {
  std::string name;
  std::string template_file;  // under templates/llamacpp_vocab/
  std::vector<std::string> script;
};

std::ostream& operator<<(std::ostream& os, const FormatCase& c) { return os << c.name; }

FormatCase Llama31Case() {
  return {"Llama31", "meta-llama-Llama-3.1-8B-Instruct",
          Concat({"{\"name\": \"write_file\", ", "\"parameters\": {"}, kArgPieces,
                 {"}}", "; {\"name\": \"get_time\", ", "\"parameters\": {\"zone\": ", "\"CET\"}}"})};
}

FormatCase Llama31PythonTagCase() {
  return {"Llama31PythonTag", "meta-llama-Llama-3.1-8B-Instruct",
          Concat({"<|python_tag|>", "{\"name\": \"write_file\", ", "\"parameters\": {"}, kArgPieces,
                 {"}}", "; {\"name\": \"get_time\", ", "\"parameters\": {\"zone\": ", "\"CET\"}}"})};
}

FormatCase MistralNemoCase() {
  return {"MistralNemo", "mistralai-Mistral-Nemo-Instruct-2407",
          Concat({"[TOOL_CALLS][{\"name\": \"write_file\", ", "\"arguments\": {"}, kArgPieces,
                 {"}, \"id\": \"abcDEF123\"}", ", {\"name\": \"get_time\", ", "\"arguments\": {\"zone\": ",
                  "\"CET\"}, \"id\": \"ghiJKL456\"}]"})};
}

FormatCase MistralSmallArgsCase() {
  return {"MistralSmallArgs", "Mistral-Small-3.2-24B-Instruct-2506",
          Concat({"[TOOL_CALLS]write_file[ARGS]", "{"}, kArgPieces,
                 {"}", "[TOOL_CALLS]get_time[ARGS]{\"zone\": ", "\"CET\"}"})};
}

class OtherFormatsStreamingArgsHttpTest : public ::testing::TestWithParam<FormatCase> {};

struct StreamedCall {
  std::string name, arguments;
  int deltas = 0;
  std::string id;
};

std::vector<StreamedCall> ChatCompletionsCalls(const std::string& body) {
  std::vector<StreamedCall> calls;
  bool done = false;
  for (const Json& chunk : ParseSse(body, &done)) {
    if (chunk["choices"].empty() || !chunk["choices"][0]["delta"].contains("tool_calls")) continue;
    const Json& tc = chunk["choices"][0]["delta"]["tool_calls"][0];
    const size_t index = tc["index"];
    if (tc.contains("id")) {
      EXPECT_EQ(index, calls.size()) << chunk.dump();
      EXPECT_EQ(tc["function"]["arguments"], "");
      calls.push_back({tc["function"]["name"], "", 0, tc["id"]});
      continue;
    }
    EXPECT_EQ(index + 1, calls.size()) << "a delta of an earlier call: " << chunk.dump();
    if (index >= calls.size()) continue;
    calls[index].arguments += tc["function"]["arguments"].get<std::string>();
    ++calls[index].deltas;
  }
  EXPECT_TRUE(done);
  return calls;
}

std::vector<StreamedCall> ResponsesCalls(const std::string& body) {
  std::vector<StreamedCall> calls;
  std::vector<std::string> done_arguments;
  for (const SseEvent& e : ParseEvents(body)) {
    const Json& d = e.data;
    if (e.name == "response.output_item.added" && d["item"]["type"] == "function_call") {
      EXPECT_EQ(d["item"]["arguments"], "");
      calls.push_back({d["item"]["name"], "", 0, d["item"]["call_id"]});
    } else if (e.name == "response.function_call_arguments.delta") {
      if (calls.empty()) continue;
      calls.back().arguments += d["delta"].get<std::string>();
      ++calls.back().deltas;
    } else if (e.name == "response.function_call_arguments.done") {
      done_arguments.push_back(d["arguments"]);
    }
  }
  EXPECT_EQ(done_arguments.size(), calls.size());
  for (size_t i = 0; i < calls.size() && i < done_arguments.size(); ++i) {
    EXPECT_EQ(done_arguments[i], calls[i].arguments);
  }
  return calls;
}

std::vector<StreamedCall> MessagesCalls(const std::string& body) {
  std::vector<StreamedCall> calls;
  for (const SseEvent& e : ParseEvents(body)) {
    const Json& d = e.data;
    if (e.name == "content_block_start" && d["content_block"]["type"] == "tool_use") {
      EXPECT_EQ(d["content_block"]["input"], Json::object());
      calls.push_back({d["content_block"]["name"], "", 0, d["content_block"]["id"]});
    } else if (e.name == "content_block_delta" && d["delta"]["type"] == "input_json_delta") {
      if (calls.empty()) continue;
      calls.back().arguments += d["delta"]["partial_json"].get<std::string>();
      ++calls.back().deltas;
    }
  }
  return calls;
}

void ExpectStreamedCalls(const std::vector<StreamedCall>& calls, const std::string& what) {
  ASSERT_EQ(calls.size(), 2u) << what;
  EXPECT_EQ(calls[0].name, "write_file") << what;
  EXPECT_EQ(calls[1].name, "get_time") << what;
  EXPECT_GE(calls[0].deltas, 6) << what;  // one per argument piece of the script
  EXPECT_GE(calls[1].deltas, 2) << what;
  EXPECT_EQ(calls[0].arguments, kWriteArgs) << what;
  EXPECT_EQ(calls[1].arguments, kTimeArgs) << what;
  ExpectParsesTo(calls[0].arguments, kWriteArgs);
  EXPECT_FALSE(calls[0].id.empty()) << what;
  EXPECT_NE(calls[0].id, calls[1].id) << what;
}

TEST_P(OtherFormatsStreamingArgsHttpTest, AllThreeApisStreamArgumentsInSeveralDeltas) {
  const FormatCase& c = GetParam();
  const std::string path = reprise::testing::FixturePath("templates/llamacpp_vocab/" + c.template_file + ".jinja");
  REQUIRE_FIXTURE(path);
  const std::string model =
      ScriptedChatModel("scripted_streaming_args_" + c.name, c.script, reprise::testing::ReadFile(path));
  ASSERT_FALSE(model.empty());
  std::string error;
  auto s = ServerProcess::Start(model, {}, &error);
  ASSERT_NE(s, nullptr) << error;

  // Whole replies: the arguments the streams must join to.
  HttpResult whole = s->Post("/v1/chat/completions", ChatAsk(false));
  ASSERT_EQ(whole.status, 200) << whole.body;
  const Json& m = whole.json["choices"][0]["message"];
  ASSERT_EQ(m["tool_calls"].size(), 2u) << whole.body;
  EXPECT_EQ(m["tool_calls"][0]["function"]["arguments"], kWriteArgs);
  EXPECT_EQ(m["tool_calls"][1]["function"]["arguments"], kTimeArgs);

  HttpResult r = s->Post("/v1/chat/completions", ChatAsk(true));
  ASSERT_EQ(r.status, 200) << r.body;
  ExpectStreamedCalls(ChatCompletionsCalls(r.body), "chat completions: " + r.body);

  r = s->Post("/v1/responses", ResponsesAsk(true));
  ASSERT_EQ(r.status, 200) << r.body;
  ExpectStreamedCalls(ResponsesCalls(r.body), "responses: " + r.body);

  r = s->Post("/v1/messages", MessagesAsk(true));
  ASSERT_EQ(r.status, 200) << r.body;
  ExpectStreamedCalls(MessagesCalls(r.body), "messages: " + r.body);
}

INSTANTIATE_TEST_SUITE_P(Formats, OtherFormatsStreamingArgsHttpTest,
                         ::testing::Values(Llama31Case(), Llama31PythonTagCase(), MistralNemoCase(),
                                           MistralSmallArgsCase()),
                         [](const ::testing::TestParamInfo<FormatCase>& info) { return info.param.name; });

}  // namespace
}  // namespace reprise::server::testing
