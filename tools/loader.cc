#include "loader.h"

#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <span>

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

namespace {

void HashValue(const gguf::Value& v, kv::BlockKey* k) {
  const uint64_t scalars[4] = {static_cast<uint64_t>(v.type), v.u, static_cast<uint64_t>(v.i),
                               static_cast<uint64_t>(v.items.size())};
  *k = kv::ChainKey(*k, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(scalars),
                                                 sizeof(scalars)));
  *k = kv::ChainKey(*k, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&v.f),
                                                 sizeof(v.f)));
  *k = kv::ChainString(*k, v.s);
  for (const gguf::Value& item : v.items) HashValue(item, k);
}

}  // namespace

kv::BlockKey ModelIdentity(const gguf::File& file) {
  kv::BlockKey k = kv::ChainString(kv::BlockKey{}, "reprise model identity v1");
  for (const auto& [key, value] : file.metadata()) {
    k = kv::ChainString(k, key);
    HashValue(value, &k);
  }
  for (const gguf::TensorInfo& t : file.tensors()) {
    k = kv::ChainString(k, t.name);
    std::vector<int64_t> shape = {static_cast<int64_t>(t.type), static_cast<int64_t>(t.offset),
                                  static_cast<int64_t>(t.n_bytes)};
    shape.insert(shape.end(), t.ne.begin(), t.ne.end());
    k = kv::ChainKey(k, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(shape.data()),
                                                 shape.size() * sizeof(int64_t)));
    if (t.data != nullptr) {
      k = kv::ChainKey(k, std::span<const uint8_t>(t.data, std::min<uint64_t>(t.n_bytes, 4096)));
    }
  }
  return k;
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
  if (text == "q8_0" || text == "Q8_0") return DType::kQ8_0;
  return Errorf("invalid KV cache type '%s' (use auto, f16, f32 or q8_0)", text.c_str());
}

int ReportError(const Status& status) {
  std::fprintf(stderr, "error: %s\n", status.message().c_str());
  return 1;
}

}  // namespace reprise::tools
