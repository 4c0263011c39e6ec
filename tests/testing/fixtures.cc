#include "testing/fixtures.h"

#include <sys/stat.h>
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

}  // namespace reprise::testing
