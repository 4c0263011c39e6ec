// Vocab GGUF builder; see vocab_convert.h.
#include "tokenizer/vocab_convert.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

namespace reprise::tokenizer {
namespace {

Result<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Errorf("cannot open %s", path.c_str());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool IsLlama3Pre(const std::string& pre) { return pre == "llama-bpe" || pre == "llama3"; }

// Llama 3.1+ names of ids 128000..128255.
std::vector<std::string> Llama3SpecialTokens() {
  std::vector<std::string> names(256);
  const std::pair<int, const char*> fixed[] = {
      {0, "<|begin_of_text|>"}, {1, "<|end_of_text|>"},   {4, "<|finetune_right_pad_id|>"},
      {6, "<|start_header_id|>"}, {7, "<|end_header_id|>"}, {8, "<|eom_id|>"},
      {9, "<|eot_id|>"},        {10, "<|python_tag|>"},
  };
  for (const auto& [i, name] : fixed) names[i] = name;
  int reserved = 0;
  for (auto& n : names) {
    if (n.empty()) n = "<|reserved_special_token_" + std::to_string(reserved++) + "|>";
  }
  return names;
}

}  // namespace

Result<gguf::Writer> BuildBpeVocabGguf(const BpeVocabSource& source) {
  ASSIGN_OR_RETURN(std::string encoder_text, ReadWholeFile(source.encoder_json_path));
  ASSIGN_OR_RETURN(std::string merges_text, ReadWholeFile(source.vocab_bpe_path));
  nlohmann::json encoder = nlohmann::json::parse(encoder_text, nullptr, /*allow_exceptions=*/false);
  if (!encoder.is_object()) {
    return Errorf("%s: not a JSON object of token -> id", source.encoder_json_path.c_str());
  }
  std::vector<std::string> tokens(encoder.size());
  std::vector<bool> seen(encoder.size(), false);
  for (auto it = encoder.begin(); it != encoder.end(); ++it) {
    if (!it.value().is_number_integer()) {
      return Errorf("%s: id of '%s' is not an integer", source.encoder_json_path.c_str(),
                    it.key().c_str());
    }
    const int64_t id = it.value().get<int64_t>();
    if (id < 0 || id >= static_cast<int64_t>(tokens.size()) || seen[id]) {
      return Errorf("%s: ids must be 0..%zu without repeats ('%s' -> %lld)",
                    source.encoder_json_path.c_str(), tokens.size() - 1, it.key().c_str(),
                    static_cast<long long>(id));
    }
    seen[id] = true;
    tokens[id] = it.key();
  }
  std::vector<int32_t> types(tokens.size(), 1);  // normal

  std::vector<std::string> merges;
  std::istringstream lines(merges_text);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (merges.empty() && line.rfind("#version", 0) == 0)) continue;
    if (line.find(' ', 1) == std::string::npos) {
      return Errorf("%s: merge line '%s' is not \"left right\"", source.vocab_bpe_path.c_str(),
                    line.c_str());
    }
    merges.push_back(std::move(line));
  }

  gguf::Writer writer;
  writer.Set("general.architecture", gguf::Value::String("llama"));
  writer.Set("tokenizer.ggml.model", gguf::Value::String("gpt2"));
  writer.Set("tokenizer.ggml.pre", gguf::Value::String(source.pre));
  if (IsLlama3Pre(source.pre)) {
    if (tokens.size() != 128000) {
      return Errorf("Llama 3 vocabularies have 128000 regular tokens, %s has %zu",
                    source.encoder_json_path.c_str(), tokens.size());
    }
    for (const auto& name : Llama3SpecialTokens()) {
      tokens.push_back(name);
      types.push_back(3);  // control
    }
    writer.Set("tokenizer.ggml.bos_token_id", gguf::Value::Uint32(128000));
    writer.Set("tokenizer.ggml.eos_token_id", gguf::Value::Uint32(128001));
    writer.Set("tokenizer.ggml.eom_token_id", gguf::Value::Uint32(128008));
    writer.Set("tokenizer.ggml.eot_token_id", gguf::Value::Uint32(128009));
    writer.Set("tokenizer.ggml.add_bos_token", gguf::Value::Bool(true));
    writer.Set("tokenizer.ggml.add_eos_token", gguf::Value::Bool(false));
  }
  writer.Set("tokenizer.ggml.tokens", gguf::Value::StringArray(tokens));
  writer.Set("tokenizer.ggml.token_type", gguf::Value::Int32Array(types));
  writer.Set("tokenizer.ggml.merges", gguf::Value::StringArray(merges));
  return writer;
}

}  // namespace reprise::tokenizer
