#include "testing/fixtures.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace reprise::testing {

std::string FixturesDir() {
  char buf[4096];
  const char* dir = REPRISE_FIXTURES_DIR;
  if (realpath(dir, buf) != nullptr) return buf;
  return dir;
}

std::string FixturePath(const std::string& relative) { return FixturesDir() + "/" + relative; }

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

bool RunningInCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

std::string BinaryPath(const std::string& name) {
  return std::string(REPRISE_BINARY_DIR) + "/bin/" + name;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string TempDir() {
  static std::string dir = [] {
    std::string tmpl = "/tmp/reprise_test_XXXXXX";
    char* d = mkdtemp(tmpl.data());
    return std::string(d ? d : "/tmp");
  }();
  return dir;
}

std::string ShellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string RunShell(const std::string& command, int* exit_code) {
  std::string out;
  *exit_code = -1;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), p)) > 0;) out.append(buf, n);
  const int status = pclose(p);
  *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

CliResult RunReprise(const std::vector<std::string>& args) {
  static int calls = 0;
  const std::string err_path = TempDir() + "/cli_stderr_" + std::to_string(++calls) + ".txt";
  std::string cmd = ShellQuote(BinaryPath("reprise"));
  for (const auto& a : args) cmd += " " + ShellQuote(a);
  cmd += " 2>" + ShellQuote(err_path);
  CliResult r;
  r.out = RunShell(cmd, &r.exit_code);
  r.err = ReadFile(err_path);
  return r;
}

}  // namespace reprise::testing
