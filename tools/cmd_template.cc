// `reprise template`: renders a conversation with a chat template, exactly as
// transformers' apply_chat_template would, and prints the prompt to stdout
// (nothing else, no trailing newline added).
//   template (--model F [--template-name N] | --chat-template-file T)
//            --messages-file M.json [--tools-file T.json] [--add-generation-prompt]
//            [--bos-token S] [--eos-token S] [--now YYYY-MM-DD]
// M.json is an OpenAI `messages` array (or an object with "messages" and
// optionally "tools"); content given as a list of text parts is joined into
// one string, as the server does. With --model, bos/eos default to the model's token
// strings; --chat-template-file overrides the model's template. Errors go to
// stderr with exit code 1.
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>

#include "chat/template.h"
#include "chat/template_source.h"
#include "commands.h"
#include "gguf/gguf.h"

namespace reprise::tools {
namespace {

using Json = nlohmann::ordered_json;

struct TemplateArgs {
  std::string model;
  std::string template_name;
  std::string template_file;
  std::string messages_file;
  std::string tools_file;
  bool add_generation_prompt = false;
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  std::optional<std::string> now;
};

Result<std::string> ReadFileBytes(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Errorf("%s: cannot open %s", flag, path.c_str());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<Json> ReadJsonFile(const std::string& path, const char* flag) {
  ASSIGN_OR_RETURN(std::string text, ReadFileBytes(path, flag));
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Errorf("%s: %s is not valid JSON", flag, path.c_str());
  return j;
}

// Content given as a list of text parts ([{"type":"text","text":..}, ..])
// becomes their joined text, as the server normalizes it before rendering;
// other part types are an error.
Status JoinTextParts(Json& messages) {
  for (size_t i = 0; i < messages.size(); ++i) {
    Json& m = messages[i];
    if (!m.is_object() || !m.contains("content") || !m["content"].is_array()) continue;
    std::string text;
    for (const Json& part : m["content"]) {
      if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
          !part["text"].is_string()) {
        return Errorf("messages[%zu].content: only text parts ({\"type\":\"text\",\"text\":..}) "
                      "are supported", i);
      }
      text += part["text"].get<std::string>();
    }
    m["content"] = text;
  }
  return Status::Ok();
}

Result<std::string> Run(const TemplateArgs& args) {
  if (args.model.empty() && args.template_file.empty()) {
    return Status::Error("one of --model or --chat-template-file is required");
  }
  chat::RenderOptions options;
  options.add_generation_prompt = args.add_generation_prompt;
  options.now = args.now;
  std::string source;
  if (!args.model.empty()) {
    ASSIGN_OR_RETURN(auto file, gguf::File::Open(args.model));
    ASSIGN_OR_RETURN(chat::SpecialTokenStrings tokens, chat::SpecialTokensFromGguf(*file));
    options.bos_token = tokens.bos_token;
    options.eos_token = tokens.eos_token;
    if (args.template_file.empty()) {
      ASSIGN_OR_RETURN(source, chat::TemplateFromGguf(*file, args.template_name));
    }
  }
  if (!args.template_file.empty()) {
    ASSIGN_OR_RETURN(source, ReadFileBytes(args.template_file, "--chat-template-file"));
  }
  if (args.bos_token) options.bos_token = args.bos_token;
  if (args.eos_token) options.eos_token = args.eos_token;

  ASSIGN_OR_RETURN(Json messages, ReadJsonFile(args.messages_file, "--messages-file"));
  Json tools;  // null: the template sees tools = None
  if (messages.is_object()) {
    if (messages.contains("tools")) tools = messages["tools"];
    messages = messages.value("messages", Json());
  }
  if (!messages.is_array()) return Status::Error("--messages-file must hold a JSON array of messages");
  RETURN_IF_ERROR(JoinTextParts(messages));
  if (!args.tools_file.empty()) {
    ASSIGN_OR_RETURN(tools, ReadJsonFile(args.tools_file, "--tools-file"));
  }
  if (!tools.is_null() && !tools.is_array()) return Status::Error("tools must be a JSON array");

  ASSIGN_OR_RETURN(chat::ChatTemplate tmpl, chat::ChatTemplate::Parse(std::move(source)));
  return tmpl.Render(messages, tools, options);
}

}  // namespace

void AddTemplateCommand(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<TemplateArgs>();
  auto* cmd = app.add_subcommand("template", "Render a chat with a model's chat template (like transformers)");
  cmd->add_option("--model", args->model, "GGUF model whose tokenizer.chat_template to use");
  cmd->add_option("--template-name", args->template_name,
                  "Named template variant (tokenizer.chat_template.<name>), e.g. tool_use");
  cmd->add_option("--chat-template-file", args->template_file, "Jinja template file (overrides the model's)");
  cmd->add_option("--messages-file", args->messages_file, "JSON file with an OpenAI messages array")->required();
  cmd->add_option("--tools-file", args->tools_file, "JSON file with an OpenAI tools array");
  cmd->add_flag("--add-generation-prompt", args->add_generation_prompt, "End with the assistant turn header");
  cmd->add_option("--bos-token", args->bos_token, "bos_token string (default: the model's)");
  cmd->add_option("--eos-token", args->eos_token, "eos_token string (default: the model's)");
  cmd->add_option("--now", args->now, "Date strftime_now sees: YYYY-MM-DD (default: today)");
  cmd->callback([args, &exit_code] {
    auto out = Run(*args);
    if (!out.ok()) {
      std::fprintf(stderr, "error: %s\n", out.status().message().c_str());
      exit_code = 1;
      return;
    }
    std::fwrite(out->data(), 1, out->size(), stdout);
    std::fflush(stdout);
    exit_code = 0;
  });
}

}  // namespace reprise::tools
