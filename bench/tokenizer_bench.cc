// Tokenizer throughput: encodes ~1 MB of English-like prose and ~1 MB of
// mixed code (several languages, indentation, operators, some non-ASCII)
// with each fixture vocabulary and prints the median of several runs.
// Usage: tokenizer_bench [FIXTURES_DIR] [RUNS]   (default ../shared/fixtures, 5)
// The text is generated deterministically (fixed seed) so runs compare.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab_convert.h"

namespace {

using reprise::tokenizer::Tokenizer;

constexpr size_t kTargetBytes = 1 << 20;

std::string EnglishText(std::mt19937& rng) {
  static const char* kWords[] = {
      "the", "of", "and", "to", "a", "in", "is", "was", "that", "for", "it", "with", "as", "on",
      "he", "she", "they", "be", "at", "by", "this", "had", "not", "are", "but", "from", "or",
      "have", "an", "which", "one", "you", "were", "all", "we", "her", "his", "there", "been",
      "if", "more", "when", "will", "would", "who", "so", "no", "time", "people", "year",
      "government", "children", "important", "information", "development", "between",
      "understanding", "community", "experience", "particularly", "environmental", "however",
      "Meanwhile", "London", "September", "university", "researchers", "algorithm", "quickly",
      "beautiful", "question", "answered", "don't", "it's", "we've", "they're", "I'll"};
  std::uniform_int_distribution<int> word(0, std::size(kWords) - 1);
  std::uniform_int_distribution<int> pct(0, 99);
  std::uniform_int_distribution<int> letter('a', 'z');
  std::uniform_int_distribution<int> num(0, 99999);
  std::string s;
  int in_sentence = 0;
  while (s.size() < kTargetBytes) {
    std::string w;
    const int p = pct(rng);
    if (p < 8) {  // a rare word
      for (int i = 3 + pct(rng) % 9; i > 0; --i) w.push_back(static_cast<char>(letter(rng)));
    } else if (p < 11) {
      w = std::to_string(num(rng));
    } else {
      w = kWords[word(rng)];
    }
    if (in_sentence == 0 && !w.empty()) w[0] = static_cast<char>(std::toupper(w[0]));
    s += w;
    ++in_sentence;
    const int q = pct(rng);
    if (in_sentence > 6 && q < 12) {
      s += q < 8 ? ". " : (q < 10 ? "? " : "!\n\n");
      in_sentence = 0;
    } else {
      s += q < 18 ? ", " : " ";
    }
  }
  return s;
}

std::string CodeText(std::mt19937& rng) {
  static const char* kSnippets[] = {
      "def {id}(self, {id2}: int = 0) -> list[str]:\n    \"\"\"Return the {id2} values.\"\"\"\n"
      "    return [str(x) for x in range({id2}) if x % 3 == 0]\n\n",
      "for (int {id} = 0; {id} < n_{id2}; ++{id}) {\n  total += data[{id}] * 0.5f;\n}\n",
      "const {id} = async ({id2}) => {\n\tconst res = await fetch(`/api/${{id2}}`);\n"
      "\treturn res.json();\n};\n",
      "    if err != nil {\n        return nil, fmt.Errorf(\"{id}: %w\", err)\n    }\n",
      "SELECT {id}, COUNT(*) FROM {id2} WHERE created_at >= '2024-01-01' GROUP BY {id};\n",
      "// TODO(x): handle the {id} case — ünïcödé in comments, 日本語のコメント, ✓\n",
      "    #[derive(Debug, Clone)]\n    pub struct {id} { pub {id2}: Vec<u8>, }\n",
      "<div class=\"{id}\">{{ {id2} | escape }}</div>\n",
      "x{id} = np.array([[1.0, 2.0], [3.0, 4.0]]) @ w_{id2}.T + 1e-6\n",
  };
  static const char* kIds[] = {"i", "idx", "value", "buffer_size", "userName", "kMaxLen",
                               "parse_tokens", "HttpRequest", "tmp", "result2"};
  std::uniform_int_distribution<int> snip(0, std::size(kSnippets) - 1);
  std::uniform_int_distribution<int> id(0, std::size(kIds) - 1);
  std::string s;
  while (s.size() < kTargetBytes) {
    std::string t = kSnippets[snip(rng)];
    for (const char* key : {"{id2}", "{id}"}) {
      for (size_t pos; (pos = t.find(key)) != std::string::npos;) {
        t.replace(pos, std::string(key).size(), kIds[id(rng)]);
      }
    }
    s += t;
  }
  return s;
}

std::unique_ptr<Tokenizer> FromGgufFile(const std::string& path) {
  auto file = reprise::gguf::File::Open(path);
  if (!file.ok()) return nullptr;
  auto tok = Tokenizer::FromGguf(**file);
  return tok.ok() ? std::move(tok).value() : nullptr;
}

std::unique_ptr<Tokenizer> Llama3(const std::string& dir) {
  auto writer = reprise::tokenizer::BuildBpeVocabGguf(
      {dir + "/hf-tokenizers/llama3.2-bpe/encoder.json",
       dir + "/hf-tokenizers/llama3.2-bpe/vocab.bpe", "llama-bpe"});
  if (!writer.ok()) return nullptr;
  auto file = reprise::gguf::File::FromBuffer(writer->WriteToBuffer());
  if (!file.ok()) return nullptr;
  auto tok = Tokenizer::FromGguf(**file);
  return tok.ok() ? std::move(tok).value() : nullptr;
}

double MedianMs(const Tokenizer& tok, const std::string& text, int runs, size_t* n_tokens) {
  std::vector<double> ms;
  for (int r = 0; r < runs; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto ids = tok.Encode(text, false, false);
    const auto t1 = std::chrono::steady_clock::now();
    *n_tokens = ids.size();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : "../shared/fixtures";
  const int runs = argc > 2 ? std::max(1, std::atoi(argv[2])) : 5;
  std::mt19937 rng(42);
  const std::string english = EnglishText(rng);
  const std::string code = CodeText(rng);
  std::printf("text: english %.2f MB, code %.2f MB; median of %d runs; budget 1000 ms per MB\n",
              english.size() / 1048576.0, code.size() / 1048576.0, runs);
  std::printf("%-16s %-8s %10s %10s %10s %12s\n", "vocab", "text", "ms", "MB/s", "tokens",
              "budget_ratio");
  struct Entry {
    const char* name;
    std::unique_ptr<Tokenizer> tok;
  };
  std::vector<Entry> entries;
  for (const char* name : {"llama-spm", "gpt-2", "deepseek-llm", "deepseek-coder", "starcoder"}) {
    entries.push_back(
        {name, FromGgufFile(dir + "/vocab/ggml-vocab-" + std::string(name) + ".gguf")});
  }
  entries.push_back({"llama3 (built)", Llama3(dir)});
  int missing = 0;
  for (const auto& e : entries) {
    if (e.tok == nullptr) {
      std::printf("%-16s (vocabulary not found under %s)\n", e.name, dir.c_str());
      ++missing;
      continue;
    }
    for (const auto& [label, text] : {std::pair{"english", &english}, std::pair{"code", &code}}) {
      size_t n_tokens = 0;
      const double ms = MedianMs(*e.tok, *text, runs, &n_tokens);
      const double mb = text->size() / 1048576.0;
      std::printf("%-16s %-8s %10.1f %10.2f %10zu %12.3f\n", e.name, label, ms, mb / (ms / 1e3),
                  n_tokens, ms / (1000.0 * mb));
    }
  }
  return missing == static_cast<int>(entries.size()) ? 1 : 0;
}
