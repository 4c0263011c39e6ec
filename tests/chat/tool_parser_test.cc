// Output parsing on real-format samples: Hermes/Qwen <tool_call>, Llama 3 JSON
// and <|python_tag|>, Mistral [TOOL_CALLS] (both forms), <think> reasoning.
// Malformed and truncated calls and prose that mentions tags come back as
// plain content, byte for byte; streaming in any chunking equals whole parsing.
#include <gtest/gtest.h>

#include <string>
#include <vector>

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

// Parses whole and streamed in several chunkings; all must agree.
ParsedOutput ParseAll(const std::string& text, const OutputFormat& f) {
  ParsedOutput whole = ParseOutput(text, f);
  for (size_t chunk : {1, 2, 3, 7, 64}) {
    StreamParser p(f);
    std::vector<StreamEvent> events;
    for (size_t i = 0; i < text.size(); i += chunk) {
      for (auto& e : p.Feed(std::string_view(text).substr(i, chunk))) events.push_back(std::move(e));
    }
    for (auto& e : p.Finish()) events.push_back(std::move(e));
    ParsedOutput s = Collect(events);
    EXPECT_EQ(s.content, whole.content) << "chunk " << chunk;
    EXPECT_EQ(s.reasoning_content, whole.reasoning_content) << "chunk " << chunk;
    EXPECT_EQ(s.tool_calls.size(), whole.tool_calls.size()) << "chunk " << chunk;
    for (size_t k = 0; k < s.tool_calls.size() && k < whole.tool_calls.size(); ++k) {
      EXPECT_EQ(s.tool_calls[k].name, whole.tool_calls[k].name);
      EXPECT_EQ(s.tool_calls[k].arguments, whole.tool_calls[k].arguments);
      EXPECT_EQ(s.tool_calls[k].id, whole.tool_calls[k].id);
    }
  }
  return whole;
}

void ExpectPlainContent(const std::string& text, const OutputFormat& f) {
  ParsedOutput o = ParseAll(text, f);
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
  ExpectPlainContent("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": }\n</tool_call>", Hermes());
  ExpectPlainContent("<tool_call>\n{\"arguments\": {}}\n</tool_call>", Hermes());
  ExpectPlainContent("<tool_call>\n{\"name\": \"get_current_weather\", \"argum", Hermes());
  ExpectPlainContent("<tool_ca", Hermes());
  ExpectPlainContent("<tool_call>", Hermes());
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
  ExpectPlainContent("{\"name\": \"f\", \"parameters\": {\"a\"", Llama3());
  ExpectPlainContent("<|python_tag|>print(1 +", Llama3());
}

TEST(MistralToolCalls, ParsesJsonArrayForm) {
  ParsedOutput o = ParseAll(
      "[TOOL_CALLS][{\"name\": \"get_current_weather\", \"arguments\": {\"location\": \"Paris, France\"}, "
      "\"id\": \"abcDEF123\"}, {\"name\": \"get_time\", \"arguments\": {}}]</s>",
      Mistral());
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
  ExpectPlainContent("[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"a\"", Mistral());
  ExpectPlainContent("[TOOL_CALLS][{\"arguments\": {}}]", Mistral());
  ExpectPlainContent("[TOOL_CALLS]not a call\nsecond line", Mistral());
  ExpectPlainContent("[TOOL_CALLS]f[ARGS]{\"a\": ", Mistral());
  ExpectPlainContent("[TOOL_CA", Mistral());
}

TEST(NoToolFormat, EverythingIsContent) {
  ExpectPlainContent("<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>", OutputFormat{});
  ExpectPlainContent("  leading and trailing  \n", OutputFormat{});
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
