// Output parsing on real-format samples: Hermes/Qwen <tool_call>, Llama 3 JSON
// and <|python_tag|>, Mistral [TOOL_CALLS] (both forms), <think> reasoning.
// Malformed and truncated calls and prose that mentions tags come back as
// plain content, byte for byte; streaming in any chunking equals whole parsing.
#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/tool_parser.h"
#include "testing/fixtures.h"

namespace reprise::chat {
namespace {

OutputFormat Hermes() { return {ToolCallFormat::kHermes, false, false}; }
OutputFormat Qwen3() { return {ToolCallFormat::kHermes, true, false}; }
OutputFormat Llama3() { return {ToolCallFormat::kLlama3, false, false}; }
OutputFormat Mistral() { return {ToolCallFormat::kMistral, false, false}; }

ParsedOutput Collect(const std::vector<StreamEvent>& events) {
  ParsedOutput out;
  for (const auto& e : events) {
    switch (e.kind) {
      case StreamEvent::Kind::kContent: out.content += e.text; break;
      case StreamEvent::Kind::kReasoning: out.reasoning_content += e.text; break;
      case StreamEvent::Kind::kToolCallStart:
        EXPECT_EQ(e.index, static_cast<int>(out.tool_calls.size()));
        out.tool_calls.push_back({e.id, e.name, ""});
        break;
      case StreamEvent::Kind::kToolCallArguments: out.tool_calls.at(e.index).arguments += e.text; break;
    }
  }
  return out;
}

// Feeds `text` in pieces of `chunk` bytes; *arg_deltas counts the arguments
// events (if given).
std::vector<StreamEvent> Stream(const std::string& text, const OutputFormat& f, size_t chunk,
                                bool stream_arguments, StreamParser** keep = nullptr) {
  static thread_local std::unique_ptr<StreamParser> last;
  last = std::make_unique<StreamParser>(f, "call_", stream_arguments);
  std::vector<StreamEvent> events;
  for (size_t i = 0; i < text.size(); i += chunk) {
    for (auto& e : last->Feed(std::string_view(text).substr(i, chunk))) events.push_back(std::move(e));
  }
  for (auto& e : last->Finish()) events.push_back(std::move(e));
  if (keep != nullptr) *keep = last.get();
  return events;
}

void ExpectSame(const ParsedOutput& s, const ParsedOutput& whole, const std::string& what, bool ids = true) {
  EXPECT_EQ(s.content, whole.content) << what;
  EXPECT_EQ(s.reasoning_content, whole.reasoning_content) << what;
  EXPECT_EQ(s.tool_calls.size(), whole.tool_calls.size()) << what;
  for (size_t k = 0; k < s.tool_calls.size() && k < whole.tool_calls.size(); ++k) {
    EXPECT_EQ(s.tool_calls[k].name, whole.tool_calls[k].name) << what;
    EXPECT_EQ(s.tool_calls[k].arguments, whole.tool_calls[k].arguments) << what;
    if (ids) {
      EXPECT_EQ(s.tool_calls[k].id, whole.tool_calls[k].id) << what;
    }
  }
}

// Parses whole and streamed in several chunkings, with and (unless
// `whole_only_when_streaming_args`) without argument streaming; all must agree.
ParsedOutput ParseAll(const std::string& text, const OutputFormat& f, bool streaming_args_agree = true) {
  ParsedOutput whole = ParseOutput(text, f);
  for (size_t chunk : {1, 2, 3, 7, 64}) {
    ExpectSame(Collect(Stream(text, f, chunk, false)), whole, "chunk " + std::to_string(chunk));
    if (streaming_args_agree) {
      ExpectSame(Collect(Stream(text, f, chunk, true)), whole,
                 "streaming arguments, chunk " + std::to_string(chunk));
    }
  }
  return whole;
}

void ExpectPlainContent(const std::string& text, const OutputFormat& f, bool streaming_args_agree = true) {
  ParsedOutput o = ParseAll(text, f, streaming_args_agree);
  EXPECT_EQ(o.content, text);
  EXPECT_TRUE(o.tool_calls.empty()) << text;
  EXPECT_TRUE(o.reasoning_content.empty()) << text;
}

const char kWeatherCall[] =
    "{\"name\": \"get_current_weather\", \"arguments\": {\"location\": \"Paris, France\", \"unit\": \"celsius\"}}";

TEST(HermesToolCalls, ParsesOneCallWithoutContent) {
  ParsedOutput o = ParseAll(std::string("<tool_call>\n") + kWeatherCall + "\n</tool_call>", Hermes());
  EXPECT_EQ(o.content, "");
  ASSERT_EQ(o.tool_calls.size(), 1u);
  EXPECT_EQ(o.tool_calls[0].name, "get_current_weather");
  EXPECT_EQ(o.tool_calls[0].arguments, R"({"location":"Paris, France","unit":"celsius"})");
  EXPECT_EQ(o.tool_calls[0].id, "call_0");
}

TEST(HermesToolCalls, ParsesSeveralCallsAndLeadingContent) {
  std::string text = std::string("Let me check both.\n<tool_call>\n") + kWeatherCall +
                     "\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>\n";
  ParsedOutput o = ParseAll(text, Hermes());
  EXPECT_EQ(o.content, "Let me check both.\n");
  ASSERT_EQ(o.tool_calls.size(), 2u);
  EXPECT_EQ(o.tool_calls[1].name, "get_time");
  EXPECT_EQ(o.tool_calls[1].arguments, "{}");
  EXPECT_EQ(o.tool_calls[1].id, "call_1");
}

TEST(HermesToolCalls, ArgumentsGivenAsAJsonStringArePassedThrough) {
  ParsedOutput o = ParseAll("<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"a\\\": 1}\"}</tool_call>", Hermes());
  ASSERT_EQ(o.tool_calls.size(), 1u);
  EXPECT_EQ(o.tool_calls[0].arguments, "{\"a\": 1}");
}

TEST(HermesToolCalls, ProseMentioningTheTagIsContent) {
  ExpectPlainContent("Wrap calls in <tool_call> tags, like <tool_call>{\"name\": \"f\"}</tool_call>.", Hermes());
  ExpectPlainContent("The JSON {\"name\": \"f\", \"arguments\": {}} is an example.", Hermes());
}

TEST(HermesToolCalls, MalformedAndTruncatedCallsAreContent) {
  // Committed once its arguments began when streamed piece by piece (below).
  ExpectPlainContent("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": }\n</tool_call>", Hermes(),
                     /*streaming_args_agree=*/false);
  ExpectPlainContent("<tool_call>\n{\"arguments\": {}}\n</tool_call>", Hermes());
  ExpectPlainContent("<tool_call>\n{\"name\": \"get_current_weather\", \"argum", Hermes());
  ExpectPlainContent("<tool_ca", Hermes());
  ExpectPlainContent("<tool_call>", Hermes());
}

// Model output bracketed far too deep inside a call (a prompt-injected model
// can be made to write it) is content, not a call: nlohmann's parse and
// copies recurse, and at 100,000 levels that crashed the server. Past 128
// levels the JSON is not parsed at all (20,000 here keeps the test fast;
// streaming arguments commits the call as it begins, as for any malformed
// one).
TEST(HermesToolCalls, ArgumentsNestedFarTooDeepAreContentNotACrash) {
  const int depth = 20000;
  const std::string text = "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": " +
                           std::string(depth, '[') + std::string(depth, ']') + "}}</tool_call>";
  ExpectPlainContent(text, Hermes(), /*streaming_args_agree=*/false);
  // 100 levels are still a call.
  const std::string ok = "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": " +
                         std::string(100, '[') + std::string(100, ']') + "}}</tool_call>";
  ASSERT_EQ(ParseAll(ok, Hermes()).tool_calls.size(), 1u);
}

TEST(HermesToolCalls, StreamingHoldsBackAPossibleTagAndEmitsTheCallOnce) {
  StreamParser p(Hermes(), "call_x_");
  auto e1 = p.Feed("Checking.\n<tool_");
  ASSERT_EQ(e1.size(), 1u);
  EXPECT_EQ(e1[0].text, "Checking.\n");
  EXPECT_TRUE(p.Feed("call>\n{\"name\": \"get_time\", ").empty());
  auto e2 = p.Feed("\"arguments\": {\"tz\": \"UTC\"}}\n</tool_call>");
  ASSERT_EQ(e2.size(), 2u);
  EXPECT_EQ(e2[0].kind, StreamEvent::Kind::kToolCallStart);
  EXPECT_EQ(e2[0].id, "call_x_0");
  EXPECT_EQ(e2[0].name, "get_time");
  EXPECT_EQ(e2[1].kind, StreamEvent::Kind::kToolCallArguments);
  EXPECT_EQ(e2[1].text, R"({"tz":"UTC"})");
  EXPECT_TRUE(p.Finish().empty());
  EXPECT_EQ(p.tool_call_count(), 1);
}

TEST(Reasoning, SplitsThinkBlockFromContentAndCalls) {
  std::string text = std::string("<think>\nThe user wants the weather.\n</think>\n\n<tool_call>\n") + kWeatherCall +
                     "\n</tool_call>";
  ParsedOutput o = ParseAll(text, Qwen3());
  EXPECT_EQ(o.reasoning_content, "The user wants the weather.");
  EXPECT_EQ(o.content, "");
  ASSERT_EQ(o.tool_calls.size(), 1u);
  o = ParseAll("<think>\nShort.\n</think>\n\nParis is the capital of France.", Qwen3());
  EXPECT_EQ(o.reasoning_content, "Short.");
  EXPECT_EQ(o.content, "Paris is the capital of France.");
}

TEST(Reasoning, OutputMayStartInsideReasoningWhenThePromptOpenedIt) {
  OutputFormat f{ToolCallFormat::kNone, true, true};
  ParsedOutput o = ParseAll("Okay, 2+2.\n\nThat is 4.\n</think>\n\nThe answer is 4.", f);
  EXPECT_EQ(o.reasoning_content, "Okay, 2+2.\n\nThat is 4.");
  EXPECT_EQ(o.content, "The answer is 4.");
}

TEST(Reasoning, TruncatedReasoningStaysReasoningAndMidTextTagsAreContent) {
  ParsedOutput o = ParseAll("<think>\nHmm, let me", Qwen3());
  EXPECT_EQ(o.reasoning_content, "Hmm, let me");
  EXPECT_EQ(o.content, "");
  ExpectPlainContent("I never use <think> tags mid-answer.", Qwen3());
  o = ParseAll("<th", Qwen3());
  EXPECT_EQ(o.content, "<th");
}

TEST(Llama3ToolCalls, ParsesJsonCallAtTheStart) {
  ParsedOutput o = ParseAll(
      "{\"name\": \"get_current_weather\", \"parameters\": {\"location\": \"Paris, France\", \"unit\": \"celsius\"}}",
      Llama3());
  EXPECT_EQ(o.content, "");
  ASSERT_EQ(o.tool_calls.size(), 1u);
  EXPECT_EQ(o.tool_calls[0].name, "get_current_weather");
  EXPECT_EQ(o.tool_calls[0].arguments, R"({"location":"Paris, France","unit":"celsius"})");
  o = ParseAll("{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {\"x\": 1}}", Llama3());
  ASSERT_EQ(o.tool_calls.size(), 2u);
  EXPECT_EQ(o.tool_calls[1].name, "b");
}

TEST(Llama3ToolCalls, ParsesPythonTagForms) {
  ParsedOutput o = ParseAll("<|python_tag|>brave_search.call(query=\"weather in Paris\")", Llama3());
  ASSERT_EQ(o.tool_calls.size(), 1u);
  EXPECT_EQ(o.tool_calls[0].name, "brave_search");
  EXPECT_EQ(o.tool_calls[0].arguments, R"({"query":"weather in Paris"})");
  o = ParseAll("<|python_tag|>{\"name\": \"f\", \"parameters\": {\"a\": 1}}<|eom_id|>", Llama3());
  ASSERT_EQ(o.tool_calls.size(), 1u);
  EXPECT_EQ(o.tool_calls[0].arguments, R"({"a":1})");
  EXPECT_EQ(o.content, "");
}

TEST(Llama3ToolCalls, JsonThatIsNotACallOrNotAtTheStartIsContent) {
  ExpectPlainContent("Sure: {\"name\": \"x\", \"parameters\": {}}", Llama3());
  ExpectPlainContent("{\"city\": \"Paris\"} is the JSON you asked for.", Llama3());
  // Committed once its parameters began when streamed piece by piece (below).
  ExpectPlainContent("{\"name\": \"f\", \"parameters\": {\"a\"", Llama3(), /*streaming_args_agree=*/false);
  ExpectPlainContent("<|python_tag|>print(1 +", Llama3());
}

TEST(MistralToolCalls, ParsesJsonArrayForm) {
  // Streamed with stream_arguments, these calls get Mistral-shaped ids of
  // their own (see StreamingArguments.MistralArrayCallsGetMistralShapedIds).
  ParsedOutput o = ParseAll(
      "[TOOL_CALLS][{\"name\": \"get_current_weather\", \"arguments\": {\"location\": \"Paris, France\"}, "
      "\"id\": \"abcDEF123\"}, {\"name\": \"get_time\", \"arguments\": {}}]</s>",
      Mistral(), /*streaming_args_agree=*/false);
  ASSERT_EQ(o.tool_calls.size(), 2u);
  EXPECT_EQ(o.tool_calls[0].id, "abcDEF123");
  EXPECT_EQ(o.tool_calls[0].arguments, R"({"location":"Paris, France"})");
  EXPECT_EQ(o.tool_calls[1].id, "call_1");
  EXPECT_EQ(o.content, "</s>");
}

TEST(MistralToolCalls, ParsesNameArgsForm) {
  ParsedOutput o =
      ParseAll("[TOOL_CALLS]get_current_weather[ARGS]{\"location\": \"Paris\"}[TOOL_CALLS]get_time[ARGS]{}", Mistral());
  ASSERT_EQ(o.tool_calls.size(), 2u);
  EXPECT_EQ(o.tool_calls[0].name, "get_current_weather");
  EXPECT_EQ(o.tool_calls[0].arguments, R"({"location":"Paris"})");
  EXPECT_EQ(o.tool_calls[1].name, "get_time");
  o = ParseAll("[TOOL_CALLS]f[CALL_ID]a1b2c3d4e[ARGS]{\"k\": true}", Mistral());
  ASSERT_EQ(o.tool_calls.size(), 1u);
  EXPECT_EQ(o.tool_calls[0].id, "a1b2c3d4e");
}

TEST(MistralToolCalls, MalformedAndTruncatedCallsAreContent) {
  // These two are committed once their arguments began when streamed piece by piece.
  ExpectPlainContent("[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"a\"", Mistral(), false);
  ExpectPlainContent("[TOOL_CALLS][{\"arguments\": {}}]", Mistral());
  ExpectPlainContent("[TOOL_CALLS]not a call\nsecond line", Mistral());
  ExpectPlainContent("[TOOL_CALLS]f[ARGS]{\"a\": ", Mistral(), false);
  ExpectPlainContent("[TOOL_CA", Mistral());
}

TEST(NoToolFormat, EverythingIsContent) {
  ExpectPlainContent("<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>", OutputFormat{});
  ExpectPlainContent("  leading and trailing  \n", OutputFormat{});
}

// --- stream_arguments: Hermes call arguments stream as they are generated.

int ArgumentEvents(const std::vector<StreamEvent>& events, int index) {
  int n = 0;
  for (const auto& e : events) n += e.kind == StreamEvent::Kind::kToolCallArguments && e.index == index;
  return n;
}

TEST(StreamingArguments, ArgumentsArriveInManyDeltasThatConcatenateToTheWholeParse) {
  const std::string text = std::string("<think>\nWeather.\n</think>\n\n<tool_call>\n") + kWeatherCall +
                           "\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";
  const ParsedOutput whole = ParseAll(text, Qwen3());
  ASSERT_EQ(whole.tool_calls.size(), 2u);
  std::vector<StreamEvent> events = Stream(text, Qwen3(), 1, true);
  // The start of call 0 comes before any of its arguments, and its
  // arguments are many deltas, all before call 1 starts.
  int starts = 0;
  int deltas_before_start1 = 0;
  for (const auto& e : events) {
    if (e.kind == StreamEvent::Kind::kToolCallStart) {
      EXPECT_EQ(e.index, starts++);
    } else if (e.kind == StreamEvent::Kind::kToolCallArguments) {
      EXPECT_EQ(e.index, starts - 1);
      if (starts == 1) ++deltas_before_start1;
    }
  }
  EXPECT_EQ(starts, 2);
  EXPECT_GT(deltas_before_start1, 10);
  EXPECT_EQ(ArgumentEvents(events, 1), 2);  // "{}" fed a byte at a time: "{", "}"
  ExpectSame(Collect(events), whole, "chunk 1");
  // Without stream_arguments: one delta per call.
  EXPECT_EQ(ArgumentEvents(Stream(text, Qwen3(), 1, false), 0), 1);
}

TEST(StreamingArguments, TheStartGoesOutWhenTheArgumentsObjectOpens) {
  StreamParser p(Hermes(), "call_x_", /*stream_arguments=*/true);
  EXPECT_TRUE(p.Feed("<tool_call>\n{\"name\": \"get_time\", ").empty());
  EXPECT_TRUE(p.Feed("\"arguments\": ").empty());
  auto e = p.Feed("{\"tz\": \"UT");
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].kind, StreamEvent::Kind::kToolCallStart);
  EXPECT_EQ(e[0].name, "get_time");
  EXPECT_EQ(e[0].id, "call_x_0");
  EXPECT_EQ(e[1].kind, StreamEvent::Kind::kToolCallArguments);
  EXPECT_EQ(e[1].text, "{\"tz\":\"UT");
  e = p.Feed("C\"}}\n</tool_");  // the object closes; a possible </tool_call> is held
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].text, "C\"}");
  EXPECT_TRUE(p.Feed("call>").empty());
  EXPECT_TRUE(p.Finish().empty());
  EXPECT_FALSE(p.call_unfinished());
}

TEST(StreamingArguments, APossibleCloseTagInsideAStringIsHeldBack) {
  StreamParser p(Hermes(), "call_", true);
  auto e = p.Feed("<tool_call>{\"name\": \"f\", \"arguments\": {\"s\": \"a</tool_");
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[1].text, "{\"s\":\"a");
  e = p.Feed("x\"}}</tool_call>");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].text, "</tool_x\"}");
}

TEST(StreamingArguments, ACallCutOffMidArgumentsStaysACallAndIsUnfinished) {
  StreamParser* p = nullptr;
  auto events = Stream("Sure.\n<tool_call>\n{\"name\": \"write\", \"arguments\": {\"text\": \"hel", Hermes(), 1,
                       true, &p);
  ParsedOutput o = Collect(events);
  EXPECT_EQ(o.content, "Sure.\n");
  ASSERT_EQ(o.tool_calls.size(), 1u);
  EXPECT_EQ(o.tool_calls[0].name, "write");
  EXPECT_EQ(o.tool_calls[0].arguments, "{\"text\":\"hel");
  EXPECT_TRUE(p->call_unfinished());
  // Cut off before the arguments began: not committed, content as before.
  events = Stream("<tool_call>\n{\"name\": \"write\", \"argu", Hermes(), 1, true, &p);
  o = Collect(events);
  EXPECT_TRUE(o.tool_calls.empty());
  EXPECT_EQ(o.content, "<tool_call>\n{\"name\": \"write\", \"argu");
  EXPECT_FALSE(p->call_unfinished());
  // A malformed call that began streaming stays a call (not retracted).
  o = Collect(Stream("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": }\n</tool_call>", Hermes(), 1, true, &p));
  ASSERT_EQ(o.tool_calls.size(), 1u);
  EXPECT_EQ(o.tool_calls[0].arguments, "{\"a\":}");
  EXPECT_EQ(o.content, "");
  EXPECT_FALSE(p->call_unfinished());  // it closed
}

TEST(StreamingArguments, OtherShapesAreEmittedWholeWhenTheyClose) {
  for (const std::string body : {"{\"arguments\": {\"a\": 1}, \"name\": \"f\"}",
                                 "{\"name\": \"f\", \"arguments\": \"{\\\"a\\\": 1}\"}",
                                 "{\"name\": \"f\"}", "{\"name\": \"f\", \"id\": \"x\", \"arguments\": {\"a\": [1, 2]}}"}) {
    const std::string text = "<tool_call>" + body + "</tool_call>";
    const ParsedOutput whole = ParseAll(text, Hermes());
    ASSERT_EQ(whole.tool_calls.size(), 1u) << body;
    EXPECT_EQ(ArgumentEvents(Stream(text, Hermes(), 1, true), 0), 1) << body;
  }
}

// Random JSON written with arbitrary whitespace, escapes (\/, \uXXXX,
// surrogate pairs, short escapes written as \u00XX) and number spellings:
// the streamed canonical text equals dump() of the parsed value.
std::string RandomSpace(std::mt19937& rng) {
  static const char* kWs[] = {"", "", " ", "\n  ", "\t", "\r\n"};
  return kWs[rng() % 6];
}

std::string RandomString(std::mt19937& rng) {
  std::string s = "\"";
  const int n = static_cast<int>(rng() % 8);
  for (int i = 0; i < n; ++i) {
    switch (rng() % 12) {
      case 0: s += "\\n"; break;
      case 1: s += "\\\""; break;
      case 2: s += "\\\\"; break;
      case 3: s += "\\/"; break;
      case 4: s += "\\u00e9"; break;
      case 5: s += "\\u0007"; break;
      case 6: s += "\\ud83d\\ude00"; break;
      case 7: s += "\xc3\xa9t\xc3\xa9"; break;  // UTF-8 as is
      case 8: s += "\\u000A\\u0022\\u005c\\u001F"; break;
      case 9: s += "\\t\\b\\f\\r"; break;
      case 10: s += "</tool"; break;
      default: s += "abc xyz"; break;
    }
  }
  return s + "\"";
}

std::string RandomNumber(std::mt19937& rng) {
  static const char* kNums[] = {"0", "-0", "12", "-7", "1.50", "1e5", "2E-3", "-0.0", "3.14159265358979323846",
                                "18446744073709551615", "18446744073709551616", "1.0", "100000000000000000000"};
  return kNums[rng() % 13];
}

std::string RandomValue(std::mt19937& rng, int depth) {
  const int kind = static_cast<int>(rng() % (depth > 3 ? 4 : 6));
  switch (kind) {
    case 0: return RandomString(rng);
    case 1: return RandomNumber(rng);
    case 2: return rng() % 2 ? "true" : "null";
    case 3: return "false";
    case 4: {
      std::string a = "[" + RandomSpace(rng);
      const int n = static_cast<int>(rng() % 4);
      for (int i = 0; i < n; ++i) a += (i ? "," + RandomSpace(rng) : "") + RandomValue(rng, depth + 1) + RandomSpace(rng);
      return a + "]";
    }
    default: {
      std::string o = "{" + RandomSpace(rng);
      const int n = static_cast<int>(rng() % 4);
      for (int i = 0; i < n; ++i) {
        o += (i ? "," + RandomSpace(rng) : "") + "\"k" + std::to_string(i) + "\"" + RandomSpace(rng) + ":" +
             RandomSpace(rng) + RandomValue(rng, depth + 1) + RandomSpace(rng);
      }
      return o + "}";
    }
  }
}

TEST(StreamingArguments, CanonicalTextEqualsDumpOfTheParsedArguments) {
  std::mt19937 rng(7);
  for (int iter = 0; iter < 400; ++iter) {
    std::string args = "{" + RandomSpace(rng);
    const int n = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < n; ++i) {
      args += (i ? "," + RandomSpace(rng) : "") + "\"a" + std::to_string(i) + "\"" + RandomSpace(rng) + ":" +
              RandomSpace(rng) + RandomValue(rng, 0) + RandomSpace(rng);
    }
    args += "}";
    const nlohmann::ordered_json parsed = nlohmann::ordered_json::parse(args, nullptr, false);
    ASSERT_FALSE(parsed.is_discarded()) << args;
    const std::string text = "<tool_call>\n{\"name\": \"f\"," + RandomSpace(rng) + "\"arguments\": " + args +
                             RandomSpace(rng) + "}\n</tool_call>";
    const ParsedOutput whole = ParseOutput(text, Hermes());
    ASSERT_EQ(whole.tool_calls.size(), 1u) << text;
    ASSERT_EQ(whole.tool_calls[0].arguments, parsed.dump()) << text;
    for (size_t chunk : {1, 2, 5}) {
      std::vector<StreamEvent> events = Stream(text, Hermes(), chunk, true);
      const ParsedOutput s = Collect(events);
      ASSERT_EQ(s.tool_calls.size(), 1u) << text;
      ASSERT_EQ(s.tool_calls[0].arguments, whole.tool_calls[0].arguments) << "chunk " << chunk << ": " << text;
      if (chunk == 1) {
        EXPECT_GT(ArgumentEvents(events, 0), 1) << text;
      }
    }
  }
}

// --- stream_arguments for the Llama 3 and Mistral formats.

// Every sample of a format: streamed with argument streaming at every chunk
// size, the result equals the whole parse.
TEST(StreamingArguments, Llama3SamplesAgreeStreamedAndWholeAtEveryChunkSize) {
  const std::vector<std::string> samples = {
      "{\"name\": \"get_current_weather\", \"parameters\": {\"location\": \"Paris, France\", \"unit\": \"celsius\"}}",
      "{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {\"x\": 1}}",
      "  {\"name\" :\"a\",\n \"parameters\" : { \"q\" : [1, 2.50, {\"z\": null}] } } ;\n{\"name\": \"b\", "
      "\"arguments\": {\"s\": \"\\u00e9\"}}\n",
      "{\"name\": \"f\", \"parameters\": {\"a\": 1}} trailing text",
      "<|python_tag|>{\"name\": \"f\", \"parameters\": {\"a\": 1}}<|eom_id|>",
      "<|python_tag|>{\"name\": \"f\", \"parameters\": {\"s\": \"x <|eom\"}}",
      "<|python_tag|>{\"name\": \"f\", \"parameters\": {\"a\": 1}}; {\"name\": \"g\", \"parameters\": {}}<|eot_id|>",
      "Let me look.<|python_tag|>{\"name\": \"f\", \"parameters\": {\"k\": true}}",
      "<|python_tag|>brave_search.call(query=\"weather in Paris\")",
      "<|python_tag|>[{\"name\": \"f\", \"parameters\": {}}]",
      "{\"parameters\": {\"a\": 1}, \"name\": \"f\"}",
  };
  for (const std::string& text : samples) {
    const ParsedOutput whole = ParseOutput(text, Llama3());
    for (size_t chunk = 1; chunk <= text.size(); ++chunk) {
      ExpectSame(Collect(Stream(text, Llama3(), chunk, true)), whole, "chunk " + std::to_string(chunk) + ": " + text);
    }
  }
}

TEST(StreamingArguments, Llama3JsonCallArgumentsArriveInManyDeltas) {
  const std::string text =
      "{\"name\": \"get_current_weather\", \"parameters\": {\"location\": \"Paris, France\", \"unit\": \"celsius\"}}; "
      "{\"name\": \"get_time\", \"parameters\": {}}";
  std::vector<StreamEvent> events = Stream(text, Llama3(), 1, true);
  EXPECT_GT(ArgumentEvents(events, 0), 10);
  EXPECT_EQ(ArgumentEvents(events, 1), 2);  // "{", "}"
  ExpectSame(Collect(events), ParseOutput(text, Llama3()), "chunk 1");
  EXPECT_EQ(ArgumentEvents(Stream(text, Llama3(), 1, false), 0), 1);

  const std::string tagged = "<|python_tag|>{\"name\": \"f\", \"parameters\": {\"query\": \"weather in Paris\"}}";
  events = Stream(tagged, Llama3(), 1, true);
  EXPECT_GT(ArgumentEvents(events, 0), 10);
  ExpectSame(Collect(events), ParseOutput(tagged, Llama3()), "python_tag, chunk 1");
}

TEST(StreamingArguments, Llama3TheStartGoesOutWhenTheParametersObjectOpens) {
  StreamParser p(Llama3(), "call_x_", true);
  EXPECT_TRUE(p.Feed("{\"name\": \"get_time\", ").empty());
  EXPECT_TRUE(p.Feed("\"parameters\": ").empty());
  auto e = p.Feed("{\"tz\": \"UT");
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].kind, StreamEvent::Kind::kToolCallStart);
  EXPECT_EQ(e[0].name, "get_time");
  EXPECT_EQ(e[1].text, "{\"tz\":\"UT");
  e = p.Feed("C\"}}");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].text, "C\"}");
  EXPECT_TRUE(p.Finish().empty());
  EXPECT_FALSE(p.call_unfinished());
  // After <|python_tag|>, text that may be <|eom_id|> is held back.
  StreamParser q(Llama3(), "call_", true);
  e = q.Feed("<|python_tag|>{\"name\": \"f\", \"parameters\": {\"s\": \"a<|eo");
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[1].text, "{\"s\":\"a");
  e = q.Feed("x\"}}<|eom_id|>");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].text, "<|eox\"}");
}

TEST(StreamingArguments, Llama3CallCutOffMidArgumentsStaysACallAndIsUnfinished) {
  StreamParser* p = nullptr;
  ParsedOutput o = Collect(Stream("{\"name\": \"write\", \"parameters\": {\"text\": \"hel", Llama3(), 1, true, &p));
  ASSERT_EQ(o.tool_calls.size(), 1u);
  EXPECT_EQ(o.tool_calls[0].arguments, "{\"text\":\"hel");
  EXPECT_EQ(o.content, "");
  EXPECT_TRUE(p->call_unfinished());
  o = Collect(Stream("<|python_tag|>{\"name\": \"write\", \"parameters\": {\"n\": 1", Llama3(), 1, true, &p));
  ASSERT_EQ(o.tool_calls.size(), 1u);
  EXPECT_TRUE(p->call_unfinished());
  // Before the arguments began: content, as in the whole parse.
  o = Collect(Stream("{\"name\": \"write\", \"param", Llama3(), 1, true, &p));
  EXPECT_TRUE(o.tool_calls.empty());
  EXPECT_EQ(o.content, "{\"name\": \"write\", \"param");
  EXPECT_FALSE(p->call_unfinished());
}

// Random argument objects (written as in CanonicalTextEqualsDumpOfTheParsedArguments).
std::string RandomArguments(std::mt19937& rng) {
  std::string args = "{" + RandomSpace(rng);
  const int n = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < n; ++i) {
    args += (i ? "," + RandomSpace(rng) : "") + "\"a" + std::to_string(i) + "\"" + RandomSpace(rng) + ":" +
            RandomSpace(rng) + RandomValue(rng, 0) + RandomSpace(rng);
  }
  return args + "}";
}

void ExpectRandomArgumentsStream(const OutputFormat& f, const std::string& text, const std::string& args) {
  const nlohmann::ordered_json parsed = nlohmann::ordered_json::parse(args, nullptr, false);
  ASSERT_FALSE(parsed.is_discarded()) << args;
  const ParsedOutput whole = ParseOutput(text, f);
  ASSERT_EQ(whole.tool_calls.size(), 1u) << text;
  ASSERT_EQ(whole.tool_calls[0].arguments, parsed.dump()) << text;
  for (size_t chunk : {1, 2, 5}) {
    std::vector<StreamEvent> events = Stream(text, f, chunk, true);
    const ParsedOutput s = Collect(events);
    ASSERT_EQ(s.tool_calls.size(), 1u) << text;
    ASSERT_EQ(s.tool_calls[0].arguments, whole.tool_calls[0].arguments) << "chunk " << chunk << ": " << text;
    EXPECT_EQ(s.content, whole.content) << text;
    if (chunk == 1) {
      EXPECT_GT(ArgumentEvents(events, 0), 1) << text;
    }
  }
}

TEST(StreamingArguments, Llama3RandomArgumentsStreamToExactlyTheFinalText) {
  std::mt19937 rng(11);
  for (int iter = 0; iter < 300; ++iter) {
    const std::string args = RandomArguments(rng);
    const std::string head = "{\"name\": \"f\"," + RandomSpace(rng) + "\"parameters\": ";
    ExpectRandomArgumentsStream(Llama3(), RandomSpace(rng) + head + args + RandomSpace(rng) + "}", args);
    ExpectRandomArgumentsStream(Llama3(), "<|python_tag|>" + head + args + "}" + (iter % 2 ? "<|eom_id|>" : ""),
                                args);
  }
}

bool MistralShaped(const std::string& id) {
  if (id.size() != 9) return false;
  for (char c : id) {
    if (!isalnum(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

TEST(StreamingArguments, MistralSamplesAgreeStreamedAndWholeAtEveryChunkSize) {
  // Array-form calls that stream get their own ids (below): ids not compared for those.
  const std::vector<std::pair<std::string, bool>> samples = {
      {"[TOOL_CALLS][{\"name\": \"get_current_weather\", \"arguments\": {\"location\": \"Paris, France\"}, "
       "\"id\": \"abcDEF123\"}, {\"name\": \"get_time\", \"arguments\": {}}]</s>", false},
      {"[TOOL_CALLS] [ {\"name\":\"a\" , \"arguments\" : {\"q\": [1, 2.50, {\"z\": null}], \"s\": \"\\u00e9\\n\"}}\n,"
       "{\"name\": \"b\", \"arguments\": {}}]", false},
      {"Sure.[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"a\": 1}}] and text", false},
      {"[TOOL_CALLS][{\"arguments\": {\"a\": 1}, \"name\": \"f\"}, {\"name\": \"g\", \"arguments\": {}}]", false},
      {"[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"a\": 1}}, {\"name\": \"g\", \"arguments\": \"{}\"}]", false},
      {"[TOOL_CALLS]get_current_weather[ARGS]{\"location\": \"Paris\"}[TOOL_CALLS]get_time[ARGS]{}", true},
      {"[TOOL_CALLS]f[CALL_ID]a1b2c3d4e[ARGS]{\"k\": true, \"s\": \"x [ARGS] y\"}", true},
      {"[TOOL_CALLS]f[ARGS] {\"k\" : [ 1e5 , -0.0 ] }\nafter", true},
      {"[TOOL_CALLS][{\"arguments\": {}}]", true},
      {"[TOOL_CALLS]not a call\nsecond line", true},
  };
  for (const auto& [text, ids] : samples) {
    const ParsedOutput whole = ParseOutput(text, Mistral());
    for (size_t chunk = 1; chunk <= text.size(); ++chunk) {
      ExpectSame(Collect(Stream(text, Mistral(), chunk, true)), whole, "chunk " + std::to_string(chunk) + ": " + text,
                 ids);
    }
  }
}

TEST(StreamingArguments, MistralCallsArgumentsArriveInManyDeltas) {
  const std::string array =
      "[TOOL_CALLS][{\"name\": \"get_current_weather\", \"arguments\": {\"location\": \"Paris, France\", "
      "\"unit\": \"celsius\"}, \"id\": \"abcDEF123\"}, {\"name\": \"get_time\", \"arguments\": {}, \"id\": \"x\"}]";
  std::vector<StreamEvent> events = Stream(array, Mistral(), 1, true);
  EXPECT_GT(ArgumentEvents(events, 0), 10);
  EXPECT_EQ(ArgumentEvents(events, 1), 2);  // "{", "}"
  ExpectSame(Collect(events), ParseOutput(array, Mistral()), "array, chunk 1", /*ids=*/false);
  EXPECT_EQ(ArgumentEvents(Stream(array, Mistral(), 1, false), 0), 1);

  const std::string args_form =
      "[TOOL_CALLS]get_current_weather[CALL_ID]a1b2c3d4e[ARGS]{\"location\": \"Paris, France\"}"
      "[TOOL_CALLS]get_time[ARGS]{}";
  events = Stream(args_form, Mistral(), 1, true);
  EXPECT_GT(ArgumentEvents(events, 0), 10);
  EXPECT_EQ(ArgumentEvents(events, 1), 2);
  ExpectSame(Collect(events), ParseOutput(args_form, Mistral()), "[ARGS], chunk 1");
}

TEST(StreamingArguments, MistralArrayCallsGetMistralShapedIds) {
  // The model's own id follows the arguments: the call has started by then,
  // so it gets an id of the shape Mistral's templates require back.
  StreamParser p(Mistral(), "call_abc_", true);
  auto e = p.Feed("[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"a\": ");
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].kind, StreamEvent::Kind::kToolCallStart);
  EXPECT_EQ(e[0].name, "f");
  EXPECT_TRUE(MistralShaped(e[0].id)) << e[0].id;
  EXPECT_EQ(e[1].text, "{\"a\":");
  e = p.Feed("1}, \"id\": \"abcDEF123\"}, {\"name\": \"g\", \"arguments\": {}}]");
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0].text, "1}");
  EXPECT_EQ(e[1].kind, StreamEvent::Kind::kToolCallStart);
  EXPECT_TRUE(MistralShaped(e[1].id)) << e[1].id;
  EXPECT_NE(e[1].id, e[0].id);
  EXPECT_EQ(e[2].text, "{}");
  EXPECT_TRUE(p.Finish().empty());
  // The [CALL_ID] form names its id before the arguments: kept.
  StreamParser q(Mistral(), "call_", true);
  e = q.Feed("[TOOL_CALLS]f[CALL_ID]a1b2c3d4e[ARGS]{\"k\"");
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].id, "a1b2c3d4e");
  EXPECT_EQ(e[1].text, "{\"k\"");
}

TEST(StreamingArguments, MistralCallCutOffMidArgumentsStaysACallAndIsUnfinished) {
  StreamParser* p = nullptr;
  ParsedOutput o = Collect(Stream("[TOOL_CALLS][{\"name\": \"w\", \"arguments\": {\"t\": \"hel", Mistral(), 1, true, &p));
  ASSERT_EQ(o.tool_calls.size(), 1u);
  EXPECT_EQ(o.tool_calls[0].arguments, "{\"t\":\"hel");
  EXPECT_EQ(o.content, "");
  EXPECT_TRUE(p->call_unfinished());
  o = Collect(Stream("[TOOL_CALLS]w[ARGS]{\"t\": \"hel", Mistral(), 1, true, &p));
  ASSERT_EQ(o.tool_calls.size(), 1u);
  EXPECT_EQ(o.tool_calls[0].arguments, "{\"t\":\"hel");
  EXPECT_TRUE(p->call_unfinished());
  o = Collect(Stream("[TOOL_CALLS][{\"name\": \"w\", \"argu", Mistral(), 1, true, &p));
  EXPECT_TRUE(o.tool_calls.empty());
  EXPECT_EQ(o.content, "[TOOL_CALLS][{\"name\": \"w\", \"argu");
  EXPECT_FALSE(p->call_unfinished());
}

TEST(StreamingArguments, MistralRandomArgumentsStreamToExactlyTheFinalText) {
  std::mt19937 rng(13);
  for (int iter = 0; iter < 300; ++iter) {
    const std::string args = RandomArguments(rng);
    ExpectRandomArgumentsStream(Mistral(),
                                "[TOOL_CALLS]" + RandomSpace(rng) + "[{\"name\": \"f\"," + RandomSpace(rng) +
                                    "\"arguments\": " + args + RandomSpace(rng) + ", \"id\": \"abcDEF123\"}]",
                                args);
    ExpectRandomArgumentsStream(Mistral(), "[TOOL_CALLS]f[ARGS]" + args + (iter % 2 ? "</s>" : ""), args);
  }
}

TEST(DetectOutputFormat, ChoosesFromRealTemplates) {
  auto read = [](const char* f) { return testing::ReadFile(testing::FixturePath(std::string("templates/") + f)); };
  REQUIRE_FIXTURE(testing::FixturePath("templates/llamacpp_vocab/Qwen-Qwen3-0.6B.jinja"));
  EXPECT_EQ(DetectOutputFormat(read("llamacpp_vocab/Qwen-Qwen2.5-7B-Instruct.jinja")).tool_calls,
            ToolCallFormat::kHermes);
  OutputFormat q3 = DetectOutputFormat(read("llamacpp_vocab/Qwen-Qwen3-0.6B.jinja"));
  EXPECT_EQ(q3.tool_calls, ToolCallFormat::kHermes);
  EXPECT_TRUE(q3.reasoning);
  EXPECT_EQ(DetectOutputFormat(read("llamacpp_vocab/meta-llama-Llama-3.1-8B-Instruct.jinja")).tool_calls,
            ToolCallFormat::kLlama3);
  EXPECT_EQ(DetectOutputFormat(read("llamacpp_vocab/mistralai-Mistral-Nemo-Instruct-2407.jinja")).tool_calls,
            ToolCallFormat::kMistral);
  EXPECT_EQ(DetectOutputFormat(read("llamacpp_vocab/google-gemma-2-2b-it.jinja")).tool_calls, ToolCallFormat::kNone);
  OutputFormat r1 = DetectOutputFormat(read("llamacpp_vocab/deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja"),
                                       "<｜User｜>Hi<｜Assistant｜><think>\n");
  EXPECT_TRUE(r1.reasoning);
  EXPECT_TRUE(r1.starts_in_reasoning);
  EXPECT_FALSE(DetectOutputFormat(read("llamacpp_vocab/Qwen-Qwen3-0.6B.jinja"),
                                  "<|im_start|>assistant\n<think>\n\n</think>\n\n")
                   .starts_in_reasoning);
}

}  // namespace
}  // namespace reprise::chat
