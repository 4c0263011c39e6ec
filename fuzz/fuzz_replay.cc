// Runs a libFuzzer target without libFuzzer: every file of the corpus
// directories given, then `mutations` random byte-level mutations of them
// (fixed seed), so the test suite exercises the target with any compiler.
// --slowest N prints the N corpus inputs that took longest, with their time.
//   fuzz_replay [--mutations N] [--slowest N] DIR...
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  long mutations = 0, slowest = 0;
  std::vector<std::string> inputs, names;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--mutations") == 0 && i + 1 < argc) {
      mutations = std::atol(argv[++i]);
      continue;
    }
    if (std::strcmp(argv[i], "--slowest") == 0 && i + 1 < argc) {
      slowest = std::atol(argv[++i]);
      continue;
    }
    for (const auto& e : std::filesystem::directory_iterator(argv[i])) {
      std::ifstream in(e.path(), std::ios::binary);
      inputs.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      names.push_back(e.path().string());
    }
  }
  if (inputs.empty()) {
    std::fprintf(stderr, "no corpus files\n");
    return 2;
  }
  std::vector<std::pair<double, size_t>> times;  // (ms, input)
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(inputs[i].data()), inputs[i].size());
    const std::chrono::duration<double, std::milli> ms = std::chrono::steady_clock::now() - t0;
    times.emplace_back(ms.count(), i);
  }
  std::sort(times.begin(), times.end(), std::greater<>());
  for (long k = 0; k < slowest && k < static_cast<long>(times.size()); ++k) {
    std::printf("%9.2f ms  %s\n", times[k].first, names[times[k].second].c_str());
  }
  std::mt19937_64 rng(16);
  const char kJsonBytes[] = "{}[]\",:0123456789.eE+-tfnul \\u\n";
  for (long m = 0; m < mutations; ++m) {
    std::string s = inputs[rng() % inputs.size()];
    const int edits = 1 + static_cast<int>(rng() % 8);
    for (int k = 0; k < edits; ++k) {
      const size_t at = s.empty() ? 0 : rng() % (s.size() + 1);
      switch (rng() % 4) {
        case 0: s.insert(s.begin() + at, kJsonBytes[rng() % (sizeof(kJsonBytes) - 1)]); break;
        case 1: if (at < s.size()) s.erase(at, 1 + rng() % 4); break;
        case 2: if (at < s.size()) s[at] = static_cast<char>(rng()); break;
        default: s.insert(at, s.substr(at < s.size() ? at : 0, rng() % 16)); break;
      }
    }
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }
  std::printf("%zu corpus inputs, %ld mutations: no crash\n", inputs.size(), mutations);
  return 0;
}
