#include "loader.h"

#include <cstdio>
#include <cstdlib>

namespace reprise::tools {

Result<LoadedModel> LoadModel(const std::string& path, int n_threads, bool need_tokenizer,
                              const std::string& device) {
  LoadedModel lm;
  ASSIGN_OR_RETURN(kernels::DevicePreference pref, kernels::ParseDevicePreference(device));
  ASSIGN_OR_RETURN(std::unique_ptr<gguf::File> file, gguf::File::Open(path));
  lm.file = std::move(file);
  model::ModelOptions opts;
  opts.n_threads = n_threads;
  opts.device = pref;
  ASSIGN_OR_RETURN(lm.model, model::Model::Load(lm.file, opts));
  if (lm.file->Has("tokenizer.ggml.model")) {
    auto tok = tokenizer::Tokenizer::FromGguf(*lm.file);
    if (!tok.ok()) {
      if (need_tokenizer) return tok.status().WithContext(path + ": tokenizer");
    } else {
      lm.tokenizer = std::move(tok).value();
    }
  } else if (need_tokenizer) {
    return Errorf("%s: the file has no tokenizer (tokenizer.ggml.model); pass --prompt-tokens",
                  path.c_str());
  }
  return lm;
}

Result<std::vector<int32_t>> ParseTokenList(const std::string& text) {
  std::vector<int32_t> out;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find(',', i);
    if (j == std::string::npos) j = text.size();
    std::string item = text.substr(i, j - i);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || errno != 0 || v < 0 || v > INT32_MAX) {
      return Errorf("invalid token id '%s' in '%s'", item.c_str(), text.c_str());
    }
    out.push_back(static_cast<int32_t>(v));
    i = j + 1;
  }
  if (out.empty()) return Errorf("empty token list");
  return out;
}

Result<DType> ParseKvType(const std::string& text, const model::Model& model) {
  if (text == "auto") return model.DefaultKvType();
  if (text == "f16" || text == "F16") return DType::kF16;
  if (text == "f32" || text == "F32") return DType::kF32;
  return Errorf("invalid KV cache type '%s' (use auto, f16 or f32)", text.c_str());
}

int ReportError(const Status& status) {
  std::fprintf(stderr, "error: %s\n", status.message().c_str());
  return 1;
}

}  // namespace reprise::tools
