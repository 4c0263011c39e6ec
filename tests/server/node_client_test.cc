// Runs the real-client tests in tests/node against a `reprise serve` started
// here: openai_client.test.mjs (the official `openai` npm SDK: chat,
// completions, streaming, errors, cache usage) and tools_client.test.mjs (the
// `openai` SDK and the AI SDK's @ai-sdk/openai-compatible provider, tool
// calling against a scripted model that replies with reasoning and a tool
// call), and agent_apis_client.test.mjs (@anthropic-ai/sdk against
// /v1/messages and the openai SDK's responses.create against /v1/responses,
// the same scripted model), structured_output.test.mjs (the JSON schema
// corpus through the openai and Anthropic SDKs, validated by ajv), and the
// real Claude Code CLI (`claude -p`). Needs node and
// tests/node/node_modules (`make test` runs `npm ci`): skipped when missing, a failure under CI
// (CI=true).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "server/server_test_util.h"
#include "testing/fixtures.h"

namespace reprise::server::testing {
namespace {

using reprise::testing::FileExists;
using reprise::testing::RunningInCi;

const std::string kNodeDir = std::string(REPRISE_SOURCE_DIR) + "/tests/node";

// Empty when node and the packages are there; otherwise why not.
std::string MissingNodeSetup(const std::vector<std::string>& packages) {
  if (std::system("node --version >/dev/null 2>&1") != 0) return "node is not installed";
  for (const std::string& p : packages) {
    if (!FileExists(kNodeDir + "/node_modules/" + p + "/package.json")) {
      return "tests/node/node_modules/" + p + " is missing (run: cd tests/node && npm ci)";
    }
  }
  return "";
}

// Runs `node SCRIPT URL KEY` in tests/node; returns its exit status and output.
int RunNode(const std::string& script, const ServerProcess& s, const std::string& key,
            std::string* output) {
  const std::string cmd = "cd '" + kNodeDir + "' && node " + script +
                          " http://127.0.0.1:" + std::to_string(s.port()) + " " + key + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) output->append(buf, n);
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#define REQUIRE_NODE(...)                                    \
  do {                                                       \
    const std::string why = MissingNodeSetup({__VA_ARGS__}); \
    if (!why.empty()) {                                      \
      if (RunningInCi()) FAIL() << why;                      \
      GTEST_SKIP() << why;                                   \
    }                                                        \
  } while (0)

TEST(NodeOpenAiClientTest, OfficialSdkDrivesChatAndCompletions) {
  REQUIRE_NODE("openai");
  std::string error;
  auto s = ServerProcess::Start(TinyChatModel(), {"--api-key", "test-key"}, &error);
  ASSERT_NE(s, nullptr) << error;
  std::string output;
  EXPECT_EQ(RunNode("openai_client.test.mjs", *s, "test-key", &output), 0)
      << output << "\nserver log:\n"
      << s->Log();
  EXPECT_NE(output.find("# pass 7"), std::string::npos) << output;
  EXPECT_NE(output.find("# fail 0"), std::string::npos) << output;
  EXPECT_TRUE(s->WaitIdle());
  EXPECT_EQ(s->Stop(), 0);
}

TEST(NodeToolClientTest, OpenAiSdkAndAiSdkParseToolCallsAndSendResults) {
  REQUIRE_NODE("openai", "ai", "@ai-sdk/openai-compatible", "zod");
  REQUIRE_FIXTURE(Qwen3TemplatePath());
  // What tools_client.test.mjs expects, one token per piece.
  const std::string model =
      ScriptedChatModel("scripted_node_tools",
                        {"<think>\n", "The user asks about ", "Paris.", "\n</think>\n\n",
                         "<tool_call>\n{\"name\": \"get_",
                         "weather\", \"arguments\": ", "{\"city\": \"Paris\"}}\n", "</tool_call>"},
                        reprise::testing::ReadFile(Qwen3TemplatePath()));
  ASSERT_FALSE(model.empty());
  std::string error;
  auto s = ServerProcess::Start(model, {"--api-key", "tools-key"}, &error);
  ASSERT_NE(s, nullptr) << error;
  std::string output;
  EXPECT_EQ(RunNode("tools_client.test.mjs", *s, "tools-key", &output), 0)
      << output << "\nserver log:\n"
      << s->Log();
  EXPECT_NE(output.find("# pass 6"), std::string::npos) << output;
  EXPECT_NE(output.find("# fail 0"), std::string::npos) << output;
  EXPECT_TRUE(s->WaitIdle());
  EXPECT_EQ(s->Stop(), 0);
}

TEST(NodeAgentApisClientTest, AnthropicSdkAndOpenAiResponsesDriveToolRoundTrips) {
  REQUIRE_NODE("openai", "@anthropic-ai/sdk");
  REQUIRE_FIXTURE(Qwen3TemplatePath());
  // What agent_apis_client.test.mjs expects, one token per piece.
  const std::string model =
      ScriptedChatModel("scripted_node_agent_apis",
                        {"<think>\n", "The user asks about ", "Paris.", "\n</think>\n\n",
                         "<tool_call>\n{\"name\": \"get_",
                         "weather\", \"arguments\": ", "{\"city\": \"Paris\"}}\n", "</tool_call>"},
                        reprise::testing::ReadFile(Qwen3TemplatePath()));
  ASSERT_FALSE(model.empty());
  std::string error;
  auto s = ServerProcess::Start(model, {"--api-key", "agents-key"}, &error);
  ASSERT_NE(s, nullptr) << error;
  std::string output;
  EXPECT_EQ(RunNode("agent_apis_client.test.mjs", *s, "agents-key", &output), 0)
      << output << "\nserver log:\n"
      << s->Log();
  EXPECT_NE(output.find("# pass 8"), std::string::npos) << output;
  EXPECT_NE(output.find("# fail 0"), std::string::npos) << output;
  EXPECT_TRUE(s->WaitIdle());
  EXPECT_EQ(s->Stop(), 0);
}

// structured_output.test.mjs: the JSON schema corpus (tests/data) as
// response_format and as forced tool calls through the openai and Anthropic
// SDKs, every reply validated by ajv; a random-weight model at temperature 1
// with Qwen 2.5's template (Hermes tool calls).
TEST(NodeStructuredOutputTest, EveryConstrainedReplyPassesAjv) {
  REQUIRE_NODE("openai", "@anthropic-ai/sdk", "ajv", "ajv-formats");
  const std::string tmpl =
      reprise::testing::FixturePath("templates/llamacpp_vocab/Qwen-Qwen2.5-7B-Instruct.jinja");
  REQUIRE_FIXTURE(tmpl);
  const std::string model =
      ChatModel("node_structured", 64, 2, 8192, reprise::testing::ReadFile(tmpl));
  ASSERT_FALSE(model.empty());
  std::string error;
  auto s = ServerProcess::Start(model, {"--api-key", "structured-key"}, &error);
  ASSERT_NE(s, nullptr) << error;
  std::string output;
  EXPECT_EQ(RunNode("structured_output.test.mjs", *s, "structured-key", &output), 0)
      << output << "\nserver log:\n"
      << s->Log();
  // 1 corpus check + 35 schemas + the total + Responses + 2 tool tests + the 400.
  EXPECT_NE(output.find("# pass 41"), std::string::npos) << output;
  EXPECT_NE(output.find("# fail 0"), std::string::npos) << output;
  EXPECT_TRUE(s->WaitIdle());
  EXPECT_EQ(s->Stop(), 0);
}

// The real Claude Code CLI (`claude -p`, pinned in package.json) against
// /v1/messages: its system prompt (replaced by a short one) and its Read tool,
// a scripted model that calls Read on a file, Claude Code runs the tool and
// sends the result back; the follow-up reuses the cache. The model calls Read
// on every turn, so the run ends at --max-turns 2 (error_max_turns).
TEST(NodeClaudeCodeTest, ClaudeCodeRunsAToolAndItsFollowUpHitsTheCache) {
  REQUIRE_NODE("@anthropic-ai/claude-code");
  REQUIRE_FIXTURE(Qwen3TemplatePath());
  const std::string home = reprise::testing::TempDir() + "/claude_home";
  const std::string file = home + "/notes.txt";
  const std::string secret(400, 'q');
  ASSERT_EQ(
      std::system(("mkdir -p '" + home + "' && printf '" + secret + "' > '" + file + "'").c_str()),
      0);
  const std::string model =
      ScriptedChatModel("scripted_claude_code",
                        {"<tool_call>\n{\"name\": \"Read\", ",
                         "\"arguments\": {\"file_path\": \"" + file + "\"}}\n", "</tool_call>"},
                        reprise::testing::ReadFile(Qwen3TemplatePath()), /*n_ctx=*/16384);
  ASSERT_FALSE(model.empty());
  std::string error;
  auto s = ServerProcess::Start(model, {"--api-key", "cc-key"}, &error);
  ASSERT_NE(s, nullptr) << error;
  // Offline: no telemetry, updates or error reports; a small output budget
  // (prompt + max_tokens must fit the context until budgets are clamped).
  const std::string cmd =
      "cd '" + home + "' && HOME='" + home +
      "' ANTHROPIC_BASE_URL=http://127.0.0.1:" + std::to_string(s->port()) +
      " ANTHROPIC_API_KEY=cc-key CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_TELEMETRY=1 "
      "DISABLE_AUTOUPDATER=1 DISABLE_ERROR_REPORTING=1 CLAUDE_CODE_MAX_OUTPUT_TOKENS=256 "
      "timeout 120 '" +
      kNodeDir +
      "/node_modules/.bin/claude' -p 'Read notes.txt' --model "
      "claude-sonnet-4-5 --system-prompt 'You are terse.' --tools Read --max-turns 2 "
      "--output-format json 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) output.append(buf, n);
  pclose(pipe);
  const Json result = Json::parse(output, nullptr, false);
  ASSERT_TRUE(result.is_object()) << output << "\nserver log:\n" << s->Log();
  EXPECT_EQ(result["subtype"], "error_max_turns") << output;
  EXPECT_EQ(result["stop_reason"], "tool_use") << output;
  EXPECT_GT(result["usage"]["cache_read_input_tokens"].get<int>(), 0) << output;
  // The server's request lines: turn 2 carries the file (the tool ran) and
  // reads turn 1 from the cache.
  ASSERT_TRUE(s->WaitIdle());
  std::vector<std::pair<int, int>> turns;  // (prompt, cached)
  const std::string log = s->Log();
  for (size_t at = log.find("chat msg"); at != std::string::npos;
       at = log.find("chat msg", at + 1)) {
    int prompt = 0, cached = 0;
    const size_t p = log.find(": prompt ", at);
    if (p != std::string::npos &&
        std::sscanf(log.c_str() + p, ": prompt %d tokens (cached %d)", &prompt, &cached) == 2) {
      turns.emplace_back(prompt, cached);
    }
  }
  ASSERT_EQ(turns.size(), 2u) << log;
  EXPECT_GE(turns[1].first, turns[0].first + static_cast<int>(secret.size())) << log;
  EXPECT_GE(turns[1].second, turns[0].first) << log;
  EXPECT_EQ(s->Stop(), 0);
}

}  // namespace
}  // namespace reprise::server::testing
