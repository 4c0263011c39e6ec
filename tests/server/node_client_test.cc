// Runs the real-client tests in tests/node against a `reprise serve` started
// here: openai_client.test.mjs (the official `openai` npm SDK: chat,
// completions, streaming, errors, cache usage) and tools_client.test.mjs (the
// `openai` SDK and the AI SDK's @ai-sdk/openai-compatible provider, tool
// calling against a scripted model that replies with reasoning and a tool
// call), and agent_apis_client.test.mjs (@anthropic-ai/sdk against
// /v1/messages and the openai SDK's responses.create against /v1/responses,
// the same scripted model), structured_output.test.mjs (the JSON schema
// corpus through the openai and Anthropic SDKs, validated by ajv), and the
// real agent CLIs: Claude Code (`claude -p`,
// /v1/messages), OpenCode (`opencode run`, /v1/chat/completions through the AI
// SDK's openai-compatible provider) and Codex (`codex exec`, /v1/responses).
// Each CLI runs a tool the scripted model calls, sends its result back, and
// its follow-up request must read the first turn from the prompt cache; they
// run offline (their own telemetry/update/plugin opt-outs, HOME and XDG dirs
// in a temporary directory, and HTTP(S)_PROXY set to a local proxy that
// refuses and records every request: none may reach it). Needs node and
// tests/node/node_modules (`make test` runs `npm ci`): skipped when missing, a
// failure under CI (CI=true).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
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

// What tools_client.test.mjs and agent_apis_client.test.mjs expect, one token
// per piece: reasoning, then a call whose arguments take three tokens (so a
// streamed reply carries them as several deltas).
const std::vector<std::string> kWeatherScript = {"<think>\n",
                                                 "The user asks about ",
                                                 "Paris.",
                                                 "\n</think>\n\n",
                                                 "<tool_call>\n{\"name\": \"get_",
                                                 "weather\", \"arguments\": {\"city\": ",
                                                 "\"Par",
                                                 "is\"}}\n",
                                                 "</tool_call>"};

// A local HTTP(S) proxy that refuses every request and records its first line
// ("CONNECT host:443 HTTP/1.1"). The CLIs run with HTTP(S)_PROXY pointing
// here and NO_PROXY covering the server, so a request to anywhere else fails
// at once (no waiting on a network that is not there) and shows up in
// requests().
class RefusingProxy {
 public:
  RefusingProxy() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(fd_, 16) != 0 || getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~RefusingProxy() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return port_ > 0; }
  // HTTP_PROXY, HTTPS_PROXY, ALL_PROXY (both cases) and NO_PROXY assignments
  // for a shell command line.
  std::string Env() const {
    const std::string url = "http://127.0.0.1:" + std::to_string(port_);
    std::string env;
    for (const char* v :
         {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"}) {
      env += std::string(v) + "=" + url + " ";
    }
    return env + "NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost ";
  }
  std::vector<std::string> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void Serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      const int c = accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      std::string line;
      pollfd q{c, POLLIN, 0};
      char buf[512];
      if (poll(&q, 1, 1000) > 0) {
        const ssize_t n = read(c, buf, sizeof(buf));
        if (n > 0) line.assign(buf, static_cast<size_t>(n));
      }
      line = line.substr(0, line.find_first_of("\r\n"));
      close(c);
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(line.empty() ? "(a connection that sent nothing)" : line);
    }
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<std::string> requests_;
};

// The server log's request lines of `kind` (see RequestTokens), for the test
// output (BENCHMARKS.md quotes them).
void PrintRequestLines(const std::string& log, const std::string& kind) {
  for (size_t at = log.find(kind); at != std::string::npos; at = log.find(kind, at + 1)) {
    std::printf("  %s\n", log.substr(at, log.find('\n', at) - at).c_str());
  }
}

std::string Joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

// (prompt, cached) of each request line of the server log whose id starts
// with `kind` ("chat msg", "chat chatcmpl", "chat resp"), in order.
std::vector<std::pair<int, int>> RequestTokens(const std::string& log, const std::string& kind) {
  std::vector<std::pair<int, int>> turns;
  for (size_t at = log.find(kind); at != std::string::npos; at = log.find(kind, at + 1)) {
    int prompt = 0, cached = 0;
    const size_t p = log.find(": prompt ", at);
    if (p != std::string::npos &&
        std::sscanf(log.c_str() + p, ": prompt %d tokens (cached %d)", &prompt, &cached) == 2) {
      turns.emplace_back(prompt, cached);
    }
  }
  return turns;
}

// A scripted model's replies for a two-turn agent run: the tool call (pieces
// 0..3), then, after kAfterToolResult, the final answer. Reply ends at piece 3.
const char kAfterToolResult[] = "<<after the tool result>>";

// Qwen 3's chat template with one addition: when the conversation ends with a
// tool result, the generation prompt is followed by kAfterToolResult. The
// scripted model (a one-token-context model: its reply depends only on the
// prompt's last token) then answers instead of calling the tool again. The
// prompt up to there is Qwen 3's own, so cache reuse is measured on it.
std::string TemplateMarkingToolResults() {
  std::string t = reprise::testing::ReadFile(Qwen3TemplatePath());
  const std::string gen = "{{- '<|im_start|>assistant\\n' }}";
  const size_t at = t.rfind(gen);
  if (at == std::string::npos) return "";
  t.insert(at + gen.size(), std::string("{%- if messages[-1].role == 'tool' %}{{- '") +
                                kAfterToolResult + "' }}{%- endif %}");
  return t;
}

bool WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  return static_cast<bool>(out);
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
  const std::string model = ScriptedChatModel("scripted_node_tools", kWeatherScript,
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
  const std::string model = ScriptedChatModel("scripted_node_agent_apis", kWeatherScript,
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
  // Offline: no telemetry, updates or error reports (and any other request is
  // refused by the proxy and fails the test); a small output budget.
  RefusingProxy proxy;
  ASSERT_TRUE(proxy.ok());
  const std::string cmd =
      "cd '" + home + "' && HOME='" + home +
      "' ANTHROPIC_BASE_URL=http://127.0.0.1:" + std::to_string(s->port()) +
      " ANTHROPIC_API_KEY=cc-key CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_TELEMETRY=1 "
      "DISABLE_AUTOUPDATER=1 DISABLE_ERROR_REPORTING=1 CLAUDE_CODE_MAX_OUTPUT_TOKENS=256 " +
      proxy.Env() + "timeout 120 '" + kNodeDir +
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
  EXPECT_EQ(proxy.requests(), std::vector<std::string>{})
      << "requests that were not to the server:\n"
      << Joined(proxy.requests());
  // The server's request lines: turn 2 carries the file (the tool ran) and
  // reads turn 1 from the cache.
  ASSERT_TRUE(s->WaitIdle());
  const std::string log = s->Log();
  const std::vector<std::pair<int, int>> turns =
      RequestTokens(log, "chat msg");  // (prompt, cached)
  ASSERT_EQ(turns.size(), 2u) << log;
  EXPECT_GE(turns[1].first, turns[0].first + static_cast<int>(secret.size())) << log;
  EXPECT_GE(turns[1].second, turns[0].first) << log;
  EXPECT_EQ(s->Stop(), 0);
}

// OpenCode's binary. tests/node pins the platform package opencode-linux-x64
// (an optional dependency: the binary that the opencode-ai package's
// postinstall would pick on x86-64 Linux), not opencode-ai itself: opencode-ai
// lists platform packages the registry does not serve to every machine, and
// a lock file without them fails `npm ci`. "" if it does not run here.
std::string OpenCodeBinary() {
  const std::string bin = kNodeDir + "/node_modules/opencode-linux-x64/bin/opencode";
  if (FileExists(bin) && std::system(("'" + bin + "' --version >/dev/null 2>&1").c_str()) == 0) {
    return bin;
  }
  return "";
}

// The real OpenCode CLI (`opencode run`, 1.18.33 pinned in package.json) with a
// provider whose baseURL is the server (the AI SDK's openai-compatible
// provider, /v1/chat/completions): the scripted model calls OpenCode's read
// tool on a file, OpenCode reads it and sends the result, the model answers;
// the follow-up reads the first turn from the cache. Offline: models.dev
// fetch, autoupdate, sharing, default plugins and LSP downloads are off, and
// npm_config_offline keeps OpenCode's config-directory dependency check
// (@opencode-ai/plugin, no opt-out of its own) off the registry; --title skips
// the title request.
TEST(NodeOpenCodeTest, OpenCodeRunsAToolAnswersAndItsFollowUpHitsTheCache) {
  REQUIRE_NODE("opencode-linux-x64");
  REQUIRE_FIXTURE(Qwen3TemplatePath());
  const std::string opencode = OpenCodeBinary();
  ASSERT_FALSE(opencode.empty())
      << "tests/node/node_modules/opencode-linux-x64/bin/opencode does not run";
  const std::string dir = reprise::testing::TempDir() + "/opencode";
  const std::string work = dir + "/work";
  const std::string home = dir + "/home";
  const std::string file = work + "/notes.txt";
  const std::string secret(400, 'q');
  ASSERT_EQ(std::system(("mkdir -p '" + work + "' '" + home + "'").c_str()), 0);
  ASSERT_TRUE(WriteFile(file, secret));
  const std::string tmpl = TemplateMarkingToolResults();
  ASSERT_FALSE(tmpl.empty()) << "Qwen 3's template changed: no generation prompt to mark";
  const std::string model =
      ScriptedChatModel("scripted_opencode",
                        {"<tool_call>\n{\"name\": \"read\", ",
                         "\"arguments\": {\"filePath\": ", "\"" + file + "\"}}\n", "</tool_call>",
                         kAfterToolResult, "The notes say: ", "reprise-opencode-ok", "."},
                        tmpl, /*n_ctx=*/65536, /*reply_ends=*/{3});
  ASSERT_FALSE(model.empty());
  std::string error;
  auto s = ServerProcess::Start(model, {"--api-key", "oc-key"}, &error);
  ASSERT_NE(s, nullptr) << error;
  const Json config = {
      {"$schema", "https://opencode.ai/config.json"},
      {"autoupdate", false},
      {"share", "disabled"},
      {"model", "reprise/scripted"},
      {"provider",
       {{"reprise",
         {{"npm", "@ai-sdk/openai-compatible"},
          {"name", "reprise"},
          {"options",
           {{"baseURL", "http://127.0.0.1:" + std::to_string(s->port()) + "/v1"},
            {"apiKey", "oc-key"}}},
          {"models",
           {{"scripted",
             {{"name", "scripted"}, {"limit", {{"context", 65536}, {"output", 1024}}}}}}}}}}}};
  ASSERT_TRUE(WriteFile(work + "/opencode.json", config.dump(2)));
  RefusingProxy proxy;
  ASSERT_TRUE(proxy.ok());
  const std::string cmd =
      "cd '" + work + "' && HOME='" + home + "' XDG_CONFIG_HOME='" + home +
      "/.config' XDG_DATA_HOME='" + home + "/.local/share' XDG_CACHE_HOME='" + home +
      "/.cache' XDG_STATE_HOME='" + home +
      "/.local/state' OPENCODE_DISABLE_AUTOUPDATE=1 OPENCODE_DISABLE_MODELS_FETCH=1 "
      "OPENCODE_DISABLE_SHARE=1 OPENCODE_DISABLE_DEFAULT_PLUGINS=1 OPENCODE_DISABLE_LSP_DOWNLOAD=1 "
      "npm_config_offline=true " +
      proxy.Env() + "timeout 300 '" + opencode +
      "' run --pure --title notes 'Read notes.txt' < /dev/null 2>&1";
  int rc = -1;
  const std::string output = reprise::testing::RunShell(cmd, &rc);
  ASSERT_TRUE(s->WaitIdle());
  const std::string log = s->Log();
  EXPECT_EQ(rc, 0) << output << "\nserver log:\n" << log;
  EXPECT_NE(output.find("The notes say: reprise-opencode-ok."), std::string::npos) << output;
  EXPECT_EQ(proxy.requests(), std::vector<std::string>{})
      << "requests that were not to the server:\n"
      << Joined(proxy.requests());
  // Turn 1 asked for the tool; turn 2 carries the file (the tool ran) and
  // reads turn 1 from the cache.
  const std::vector<std::pair<int, int>> turns = RequestTokens(log, "chat chatcmpl");
  ASSERT_EQ(turns.size(), 2u) << log;
  EXPECT_GE(turns[1].first, turns[0].first + static_cast<int>(secret.size())) << log;
  EXPECT_GE(turns[1].second, turns[0].first) << log;
  std::printf("[ opencode ] turn 1: %d prompt tokens; turn 2: %d of %d prompt tokens cached\n",
              turns[0].first, turns[1].second, turns[1].first);
  PrintRequestLines(log, "chat chatcmpl");
  EXPECT_EQ(s->Stop(), 0);
}

// The real Codex CLI (`codex exec`, pinned in package.json) with a model
// provider whose base_url is the server and wire_api = "responses"
// (/v1/responses): the scripted model calls Codex's exec_command tool
// (`cat notes.txt`), Codex runs it and sends the output back, the model
// answers; the follow-up reads the first turn from the cache. Offline:
// update check, analytics, feedback and the plugin/app features (which sync
// from GitHub and chatgpt.com) are off; --ephemeral writes no session files.
TEST(NodeCodexTest, CodexRunsACommandAnswersAndItsFollowUpHitsTheCache) {
  REQUIRE_NODE("@openai/codex");
  REQUIRE_FIXTURE(Qwen3TemplatePath());
  const std::string dir = reprise::testing::TempDir() + "/codex";
  const std::string work = dir + "/work";
  const std::string home = dir + "/home";
  const std::string codex_home = dir + "/codex_home";
  const std::string secret(400, 'q');
  ASSERT_EQ(std::system(("mkdir -p '" + work + "' '" + home + "' '" + codex_home + "'").c_str()),
            0);
  ASSERT_TRUE(WriteFile(work + "/notes.txt", secret));
  const std::string tmpl = TemplateMarkingToolResults();
  ASSERT_FALSE(tmpl.empty()) << "Qwen 3's template changed: no generation prompt to mark";
  const std::string model =
      ScriptedChatModel("scripted_codex",
                        {"<tool_call>\n{\"name\": \"exec_command\", ",
                         "\"arguments\": {\"cmd\": ", "\"cat notes.txt\"}}\n", "</tool_call>",
                         kAfterToolResult, "The notes say: ", "reprise-codex-ok", "."},
                        tmpl, /*n_ctx=*/65536, /*reply_ends=*/{3});
  ASSERT_FALSE(model.empty());
  std::string error;
  auto s = ServerProcess::Start(model, {"--api-key", "codex-key"}, &error);
  ASSERT_NE(s, nullptr) << error;
  ASSERT_TRUE(WriteFile(codex_home + "/config.toml",
                        "model = \"scripted\"\n"
                        "model_provider = \"reprise\"\n"
                        "check_for_update_on_startup = false\n\n"
                        "[analytics]\nenabled = false\n\n"
                        "[feedback]\nenabled = false\n\n"
                        "[features]\nplugins = false\nremote_plugin = false\napps = false\n\n"
                        "[model_providers.reprise]\n"
                        "name = \"reprise\"\n"
                        "base_url = \"http://127.0.0.1:" +
                            std::to_string(s->port()) +
                            "/v1\"\n"
                            "wire_api = \"responses\"\n"
                            "env_key = \"REPRISE_TEST_KEY\"\n"));
  RefusingProxy proxy;
  ASSERT_TRUE(proxy.ok());
  const std::string cmd = "cd '" + work + "' && HOME='" + home + "' CODEX_HOME='" + codex_home +
                          "' REPRISE_TEST_KEY=codex-key " + proxy.Env() + "timeout 300 '" +
                          kNodeDir +
                          "/node_modules/.bin/codex' exec --skip-git-repo-check --ephemeral "
                          "-s danger-full-access 'Read notes.txt' < /dev/null 2>&1";
  int rc = -1;
  const std::string output = reprise::testing::RunShell(cmd, &rc);
  ASSERT_TRUE(s->WaitIdle());
  const std::string log = s->Log();
  EXPECT_EQ(rc, 0) << output << "\nserver log:\n" << log;
  EXPECT_NE(output.find("The notes say: reprise-codex-ok."), std::string::npos) << output;
  EXPECT_NE(output.find(secret), std::string::npos) << "codex did not show the command's output:\n"
                                                    << output;
  EXPECT_EQ(proxy.requests(), std::vector<std::string>{})
      << "requests that were not to the server:\n"
      << Joined(proxy.requests());
  const std::vector<std::pair<int, int>> turns = RequestTokens(log, "chat resp");
  ASSERT_EQ(turns.size(), 2u) << log;
  EXPECT_GE(turns[1].first, turns[0].first + static_cast<int>(secret.size())) << log;
  EXPECT_GE(turns[1].second, turns[0].first) << log;
  std::printf("[ codex ] turn 1: %d prompt tokens; turn 2: %d of %d prompt tokens cached\n",
              turns[0].first, turns[1].second, turns[1].first);
  PrintRequestLines(log, "chat resp");
  EXPECT_EQ(s->Stop(), 0);
}

}  // namespace
}  // namespace reprise::server::testing
