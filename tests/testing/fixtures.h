// Locating ../shared/fixtures from tests. When the folder (or a file in it) is
// missing, tests fail under CI (CI=true) and skip with a clear message
// elsewhere: REQUIRE_FIXTURE(path) does exactly that.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace reprise::testing {

// Absolute path of the fixtures folder (REPRISE_FIXTURES_DIR at configure time).
std::string FixturesDir();
// FixturesDir() + "/" + relative.
std::string FixturePath(const std::string& relative);
bool FileExists(const std::string& path);
bool RunningInCi();
// Path of a built binary, e.g. BinaryPath("reprise").
std::string BinaryPath(const std::string& name);
// Reads a whole file (empty string if unreadable).
std::string ReadFile(const std::string& path);
// A fresh temporary directory for this test process.
std::string TempDir();

// Running the CLI in black-box tests.
struct CliResult {
  int exit_code = -1;  // -1 when the process did not exit normally
  std::string out;     // stdout
  std::string err;     // stderr
};
// Runs the built `reprise` binary with `args` (each shell-quoted).
CliResult RunReprise(const std::vector<std::string>& args);
// Runs a shell command line; returns its stdout and sets *exit_code.
std::string RunShell(const std::string& command, int* exit_code);
std::string ShellQuote(const std::string& s);

}  // namespace reprise::testing

// Skips (or fails in CI) when `path` does not exist.
#define REQUIRE_FIXTURE(path)                                                          \
  do {                                                                                 \
    const std::string reprise_fixture_path_ = (path);                                  \
    if (!::reprise::testing::FileExists(reprise_fixture_path_)) {                      \
      if (::reprise::testing::RunningInCi()) {                                         \
        FAIL() << "fixture missing in CI: " << reprise_fixture_path_;                  \
      } else {                                                                         \
        GTEST_SKIP() << "fixture missing (set REPRISE_FIXTURES_DIR): "                 \
                     << reprise_fixture_path_;                                         \
      }                                                                                \
    }                                                                                  \
  } while (0)

// Skips (or fails in CI) when the reprise CLI has not been built.
#define REQUIRE_REPRISE_BINARY() REQUIRE_FIXTURE(::reprise::testing::BinaryPath("reprise"))
