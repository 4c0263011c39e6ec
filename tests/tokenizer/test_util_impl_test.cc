// Implementation of the shared tokenizer test helpers (test_util.h). Named
// *_test.cc so the tests/ glob compiles it into tokenizer_tests.
#include <gtest/gtest.h>

#include <sstream>

#include "testing/fixtures.h"
#include "test_util.h"
#include "tokenizer/vocab_convert.h"

namespace reprise::tokenizer::testing {

using ::reprise::testing::FileExists;
using ::reprise::testing::FixturePath;
using ::reprise::testing::ReadFile;
using ::reprise::testing::TempDir;

std::unique_ptr<Tokenizer> LoadTokenizer(const std::string& gguf_path) {
  auto file = gguf::File::Open(gguf_path);
  if (!file.ok()) {
    ADD_FAILURE() << file.status().message();
    return nullptr;
  }
  auto tok = Tokenizer::FromGguf(**file);
  if (!tok.ok()) {
    ADD_FAILURE() << gguf_path << ": " << tok.status().message();
    return nullptr;
  }
  return std::move(tok).value();
}

std::vector<VectorCase> ReadVectorFiles(const std::string& inp_path, const std::string& out_path) {
  const std::string inp = ReadFile(inp_path);
  const std::string out = ReadFile(out_path);
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  size_t pos = 0;
  for (size_t hit; (hit = inp.find(sep, pos)) != std::string::npos; pos = hit + sep.size()) {
    texts.push_back(inp.substr(pos, hit - pos));
  }
  if (pos < inp.size()) texts.push_back(inp.substr(pos));
  std::vector<std::vector<int32_t>> ids;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream nums(line);
    std::vector<int32_t> row;
    for (int32_t v; nums >> v;) row.push_back(v);
    ids.push_back(std::move(row));
  }
  if (texts.size() != ids.size() || texts.empty()) {
    ADD_FAILURE() << inp_path << ": " << texts.size() << " texts but " << ids.size() << " id lines";
    return {};
  }
  std::vector<VectorCase> cases;
  for (size_t i = 0; i < texts.size(); ++i) cases.push_back({texts[i], ids[i]});
  return cases;
}

std::string Llama3VocabPath() {
  static const std::string path = []() -> std::string {
    const std::string dir = FixturePath("hf-tokenizers/llama3.2-bpe");
    if (!FileExists(dir + "/encoder.json") || !FileExists(dir + "/vocab.bpe")) return "";
    auto writer = BuildBpeVocabGguf({dir + "/encoder.json", dir + "/vocab.bpe", "llama-bpe"});
    if (!writer.ok()) {
      ADD_FAILURE() << writer.status().message();
      return "";
    }
    const std::string out = TempDir() + "/llama3-vocab.gguf";
    const Status st = writer->WriteFile(out);
    if (!st.ok()) {
      ADD_FAILURE() << st.message();
      return "";
    }
    return out;
  }();
  return path;
}

std::string CleanUpTokenizationSpaces(std::string text) {
  const std::pair<const char*, const char*> kReplacements[] = {
      {" .", "."},   {" ?", "?"},   {" !", "!"},     {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
  };
  for (const auto& [from, to] : kReplacements) {
    const std::string f(from), t(to);
    for (size_t pos = 0; (pos = text.find(f, pos)) != std::string::npos; pos += t.size()) {
      text.replace(pos, f.size(), t);
    }
  }
  return text;
}

std::string IdsToString(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += " " + std::to_string(id);
  return s;
}

}  // namespace reprise::tokenizer::testing
