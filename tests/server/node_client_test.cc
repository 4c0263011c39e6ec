// Runs the real-client test (tests/node/openai_client.test.mjs, the official
// `openai` npm SDK) against a `reprise serve` started here. Needs node and
// tests/node/node_modules (`make test` runs `npm ci`): skipped when missing,
// a failure under CI (CI=true).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "server/server_test_util.h"
#include "testing/fixtures.h"

namespace reprise::server::testing {
namespace {

using reprise::testing::FileExists;
using reprise::testing::RunningInCi;

TEST(NodeOpenAiClientTest, OfficialSdkDrivesChatAndCompletions) {
  const std::string dir = std::string(REPRISE_SOURCE_DIR) + "/tests/node";
  const bool have_node = std::system("node --version >/dev/null 2>&1") == 0;
  if (!have_node || !FileExists(dir + "/node_modules/openai/package.json")) {
    const std::string why =
        !have_node ? "node is not installed"
                   : "tests/node/node_modules is missing (run: cd tests/node && npm ci)";
    if (RunningInCi()) FAIL() << why;
    GTEST_SKIP() << why;
  }
  std::string error;
  auto s = ServerProcess::Start(TinyChatModel(), {"--api-key", "test-key"}, &error);
  ASSERT_NE(s, nullptr) << error;
  const std::string cmd = "cd '" + dir + "' && node openai_client.test.mjs http://127.0.0.1:" +
                          std::to_string(s->port()) + " test-key 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) output.append(buf, n);
  const int status = pclose(pipe);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << output << "\nserver log:\n"
                                                             << s->Log();
  EXPECT_NE(output.find("# pass 7"), std::string::npos) << output;
  EXPECT_NE(output.find("# fail 0"), std::string::npos) << output;
  EXPECT_TRUE(s->WaitIdle());
  EXPECT_EQ(s->Stop(), 0);
}

}  // namespace
}  // namespace reprise::server::testing
