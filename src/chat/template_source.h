// Where chat templates and the special-token strings they see come from: a
// GGUF's `tokenizer.chat_template` (or a named variant such as
// `tokenizer.chat_template.tool_use`) and `tokenizer.ggml.{bos,eos}_token_id`
// looked up in `tokenizer.ggml.tokens`. Reads metadata only.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "gguf/gguf.h"

namespace reprise::chat {

// The default template (`name` empty) or the named one. A clear error when the
// model has none (naming the available variants, if any).
Result<std::string> TemplateFromGguf(const gguf::File& file, std::string_view name = "");

// Names of the named variants present (`tokenizer.chat_template.<name>`).
std::vector<std::string> TemplateNamesInGguf(const gguf::File& file);

// The bos/eos token strings the template should see; unset when the model
// declares no such token (or the id is out of range).
struct SpecialTokenStrings {
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
};
Result<SpecialTokenStrings> SpecialTokensFromGguf(const gguf::File& file);

}  // namespace reprise::chat
