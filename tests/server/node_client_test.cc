// Runs the real-client tests in tests/node against a `reprise serve` started
// here: openai_client.test.mjs (the official `openai` npm SDK: chat,
// completions, streaming, errors, cache usage) and tools_client.test.mjs (the
// `openai` SDK and the AI SDK's @ai-sdk/openai-compatible provider, tool
// calling against a scripted model that replies with reasoning and a tool
// call), and agent_apis_client.test.mjs (@anthropic-ai/sdk against
// /v1/messages and the openai SDK's responses.create against /v1/responses,
// the same scripted model). Needs node and tests/node/node_modules (`make test` runs `npm ci`):
// skipped when missing, a failure under CI (CI=true).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>
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

}  // namespace
}  // namespace reprise::server::testing
