// Chat renderers: built-in ChatML and the model's Jinja template (see
// chat_renderer.h).
#include "server/chat_renderer.h"

#include "chat/template.h"

namespace reprise::server {
namespace {

class ChatMlRenderer : public ChatRenderer {
 public:
  Result<std::string> Render(const nlohmann::ordered_json& messages,
                             const nlohmann::ordered_json& tools,
                             bool add_generation_prompt) const override {
    if (!tools.is_null() && !tools.empty()) {
      return Errorf("tools are not supported by the built-in ChatML renderer");
    }
    std::string out;
    for (const nlohmann::ordered_json& m : messages) {
      out += "<|im_start|>";
      out += m.at("role").get<std::string>();
      out += "\n";
      const nlohmann::ordered_json& content = m.at("content");
      if (content.is_string()) out += content.get<std::string>();
      out += "<|im_end|>\n";
    }
    if (add_generation_prompt) out += "<|im_start|>assistant\n";
    return out;
  }
  std::string name() const override { return "ChatML (built-in)"; }
};

class TemplateRenderer : public ChatRenderer {
 public:
  TemplateRenderer(chat::ChatTemplate tmpl, std::optional<chat::ChatTemplate> tool_use,
                   std::optional<std::string> bos, std::optional<std::string> eos)
      : tmpl_(std::move(tmpl)),
        tool_use_(std::move(tool_use)),
        bos_(std::move(bos)),
        eos_(std::move(eos)) {}
  Result<std::string> Render(const nlohmann::ordered_json& messages,
                             const nlohmann::ordered_json& tools,
                             bool add_generation_prompt) const override {
    chat::RenderOptions options;
    options.add_generation_prompt = add_generation_prompt;
    options.bos_token = bos_;
    options.eos_token = eos_;
    const bool has_tools = tools.is_array() && !tools.empty();
    const nlohmann::ordered_json no_tools(nullptr);
    return For(has_tools).Render(messages, has_tools ? tools : no_tools, options);
  }
  std::string name() const override {
    return tool_use_ ? "the model's Jinja template (+ tool_use variant)"
                     : "the model's Jinja template";
  }
  std::optional<chat::OutputFormat> OutputFormatFor(const std::string& rendered_prompt,
                                                    bool has_tools) const override {
    return chat::DetectOutputFormat(For(has_tools).source(), rendered_prompt);
  }

 private:
  const chat::ChatTemplate& For(bool has_tools) const {
    return has_tools && tool_use_ ? *tool_use_ : tmpl_;
  }
  chat::ChatTemplate tmpl_;
  std::optional<chat::ChatTemplate> tool_use_;
  std::optional<std::string> bos_;
  std::optional<std::string> eos_;
};

}  // namespace

Result<std::unique_ptr<ChatRenderer>> MakeTemplateRenderer(std::string source,
                                                           std::string tool_use_source,
                                                           std::optional<std::string> bos_token,
                                                           std::optional<std::string> eos_token) {
  ASSIGN_OR_RETURN(chat::ChatTemplate tmpl, chat::ChatTemplate::Parse(std::move(source)));
  std::optional<chat::ChatTemplate> tool_use;
  if (!tool_use_source.empty()) {
    auto parsed = chat::ChatTemplate::Parse(std::move(tool_use_source));
    if (!parsed.ok()) return parsed.status().WithContext("tool_use template");
    tool_use = std::move(parsed).value();
  }
  return std::unique_ptr<ChatRenderer>(std::make_unique<TemplateRenderer>(
      std::move(tmpl), std::move(tool_use), std::move(bos_token), std::move(eos_token)));
}

std::unique_ptr<ChatRenderer> MakeChatMlRenderer() { return std::make_unique<ChatMlRenderer>(); }

}  // namespace reprise::server
