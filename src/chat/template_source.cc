// Chat template and special-token lookup in GGUF metadata (see
// template_source.h).
#include "chat/template_source.h"

namespace reprise::chat {
namespace {

constexpr std::string_view kTemplateKey = "tokenizer.chat_template";

Result<std::optional<std::string>> TokenString(const gguf::File& file, std::string_view id_key) {
  if (!file.Has(id_key)) return std::optional<std::string>();
  ASSIGN_OR_RETURN(int64_t id, file.GetInt(id_key));
  const gguf::Value* tokens = file.Find("tokenizer.ggml.tokens");
  if (tokens == nullptr || tokens->type != gguf::ValueType::kArray ||
      tokens->elem_type != gguf::ValueType::kString) {
    return Errorf("%s: tokenizer.ggml.tokens is missing or not a string array", file.path().c_str());
  }
  if (id < 0 || static_cast<uint64_t>(id) >= tokens->items.size()) return std::optional<std::string>();
  return std::optional<std::string>(tokens->items[id].s);
}

}  // namespace

Result<std::string> TemplateFromGguf(const gguf::File& file, std::string_view name) {
  std::string key(kTemplateKey);
  if (!name.empty()) key += "." + std::string(name);
  if (!file.Has(key)) {
    std::string msg = name.empty()
                          ? StrFormat("%s has no chat template (%s); pass --chat-template-file",
                                      file.path().c_str(), key.c_str())
                          : StrFormat("%s has no chat template named '%s' (%s)", file.path().c_str(),
                                      std::string(name).c_str(), key.c_str());
    std::vector<std::string> names = TemplateNamesInGguf(file);
    if (!names.empty()) {
      msg += "; available:";
      for (const auto& n : names) msg += " " + n;
    }
    return Status::Error(msg);
  }
  return file.GetString(key);
}

std::vector<std::string> TemplateNamesInGguf(const gguf::File& file) {
  std::vector<std::string> names;
  const std::string prefix = std::string(kTemplateKey) + ".";
  for (const auto& [key, value] : file.metadata()) {
    if (key.size() > prefix.size() && key.compare(0, prefix.size(), prefix) == 0 &&
        value.type == gguf::ValueType::kString) {
      names.push_back(key.substr(prefix.size()));
    }
  }
  return names;
}

Result<SpecialTokenStrings> SpecialTokensFromGguf(const gguf::File& file) {
  SpecialTokenStrings out;
  ASSIGN_OR_RETURN(out.bos_token, TokenString(file, "tokenizer.ggml.bos_token_id"));
  ASSIGN_OR_RETURN(out.eos_token, TokenString(file, "tokenizer.ggml.eos_token_id"));
  return out;
}

}  // namespace reprise::chat
