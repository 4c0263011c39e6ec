// Chat renderers: built-in ChatML and the model's Jinja template (see
// chat_renderer.h).
#include "server/chat_renderer.h"

#include "chat/template.h"

namespace reprise::server {
namespace {

class ChatMlRenderer : public ChatRenderer {
 public:
  Result<std::string> Render(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
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
  TemplateRenderer(chat::ChatTemplate tmpl, std::string bos, std::string eos)
      : tmpl_(std::move(tmpl)), bos_(std::move(bos)), eos_(std::move(eos)) {}
  Result<std::string> Render(const nlohmann::ordered_json& messages,
                             const nlohmann::ordered_json& tools,
                             bool add_generation_prompt) const override {
    chat::RenderOptions options;
    options.add_generation_prompt = add_generation_prompt;
    options.bos_token = bos_;
    options.eos_token = eos_;
    const nlohmann::ordered_json no_tools(nullptr);
    return tmpl_.Render(messages, tools.is_array() && !tools.empty() ? tools : no_tools, options);
  }
  std::string name() const override { return "the model's Jinja template"; }

 private:
  chat::ChatTemplate tmpl_;
  std::string bos_;
  std::string eos_;
};

}  // namespace

Result<std::unique_ptr<ChatRenderer>> MakeTemplateRenderer(std::string source, std::string bos_token,
                                                           std::string eos_token) {
  ASSIGN_OR_RETURN(chat::ChatTemplate tmpl, chat::ChatTemplate::Parse(std::move(source)));
  return std::unique_ptr<ChatRenderer>(
      std::make_unique<TemplateRenderer>(std::move(tmpl), std::move(bos_token), std::move(eos_token)));
}

std::unique_ptr<ChatRenderer> MakeChatMlRenderer() { return std::make_unique<ChatMlRenderer>(); }

}  // namespace reprise::server
