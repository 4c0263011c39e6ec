// Turns a normalized chat (OpenAI `messages`, optional `tools`) into the
// prompt text the model expects. The server depends only on this interface;
// implementations: ChatML (the built-in fallback, what the demo model uses)
// and, once src/chat lands, the model's own Jinja template.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "chat/tool_parser.h"
#include "core/status.h"

namespace reprise::server {

class ChatRenderer {
 public:
  virtual ~ChatRenderer() = default;
  // `messages`: array of objects with string "role" and "content" string or null (as
  // ParseChatRequest normalizes them); `tools`: array or null. Errors carry a
  // message for a 400 (e.g. what the template raised).
  virtual Result<std::string> Render(const nlohmann::ordered_json& messages,
                                     const nlohmann::ordered_json& tools,
                                     bool add_generation_prompt) const = 0;
  virtual std::string name() const = 0;  // for the start-up log
  // How to parse the reply to a prompt rendered with `tools` (tool calls,
  // reasoning); unset: plain text.
  virtual std::optional<chat::OutputFormat> OutputFormatFor(const std::string& rendered_prompt,
                                                            bool has_tools) const {
    return std::nullopt;
  }
};

// <|im_start|>{role}\n{content}<|im_end|>\n ... <|im_start|>assistant\n
std::unique_ptr<ChatRenderer> MakeChatMlRenderer();

// The model's own Jinja template (chat::ChatTemplate), rendered as
// transformers does with the given special tokens (unset: undefined in the
// template). `tool_use_source`, when not empty, renders requests that carry
// tools (GGUF tokenizer.chat_template.tool_use). Errors: a template's parse
// error (with its line).
Result<std::unique_ptr<ChatRenderer>> MakeTemplateRenderer(std::string source,
                                                           std::string tool_use_source,
                                                           std::optional<std::string> bos_token,
                                                           std::optional<std::string> eos_token);

}  // namespace reprise::server
