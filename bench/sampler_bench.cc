// Time per Sample() of one logits row (engine::Sampler, the engine thread's
// per-token CPU work after each step) for a vocabulary of V tokens: greedy,
// and temperature 0.7 with top-p 0.95 (typical agent settings), each with
// and without a repetition penalty. Logits are N(0, 3) with a few large
// ones. Median of R rows.
//   build/bin/sampler_bench [V=128256] [R=200]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "engine/sampler.h"

namespace {

double MedianUs(reprise::engine::SamplingParams p, int32_t vocab, int rows,
                const std::vector<float>& logits) {
  reprise::engine::Sampler s(p, vocab);
  for (int32_t t = 0; t < 64; ++t) s.Accept(t * 7 % vocab, true);
  std::vector<double> us;
  reprise::engine::SampleResult r;
  for (int i = 0; i < rows; ++i) {
    const float* row = logits.data() + static_cast<size_t>(i % 8) * vocab;
    const auto t0 = std::chrono::steady_clock::now();
    s.Sample(row, &r);
    const auto t1 = std::chrono::steady_clock::now();
    us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    s.Accept(r.token, false);
  }
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int32_t vocab = argc > 1 ? std::atoi(argv[1]) : 128256;
  const int rows = argc > 2 ? std::atoi(argv[2]) : 200;
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  std::vector<float> logits(static_cast<size_t>(8) * vocab);
  for (auto& v : logits) v = dist(rng);
  for (int k = 0; k < 8; ++k) logits[static_cast<size_t>(k) * vocab + (k * 1009) % vocab] += 25.0f;
  struct Case {
    const char* name;
    float temperature, top_p, repetition;
    int top_k;
  } cases[] = {{"greedy", 0.0f, 1.0f, 1.0f, 0},
               {"greedy + repetition 1.1", 0.0f, 1.0f, 1.1f, 0},
               {"t 0.7, top-p 0.95", 0.7f, 0.95f, 1.0f, 0},
               {"t 0.7, top-p 0.95, repetition 1.1", 0.7f, 0.95f, 1.1f, 0},
               {"t 0.6, top-k 20, top-p 0.95 (Qwen 3)", 0.6f, 0.95f, 1.0f, 20},
               {"t 1.0, no truncation", 1.0f, 1.0f, 1.0f, 0}};
  std::printf("vocabulary %d, median of %d rows, microseconds per Sample()\n", vocab, rows);
  for (const Case& c : cases) {
    reprise::engine::SamplingParams p;
    p.temperature = c.temperature;
    p.top_p = c.top_p;
    p.repetition_penalty = c.repetition;
    p.top_k = c.top_k;
    p.seed = 1;
    std::printf("%-36s %9.1f\n", c.name, MedianUs(p, vocab, rows, logits));
  }
  return 0;
}
