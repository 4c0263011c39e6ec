// Anthropic Messages request -> chat request body; errors in Anthropic's
// shape (see anthropic_types.h).
#include "server/anthropic_types.h"

#include <cstring>
#include <utility>

#include "server/translate_util.h"

namespace reprise::server {
namespace {

using json = nlohmann::ordered_json;
using translate::BlockString;
using translate::Field;
using translate::TextOf;
using translate::WrongType;

constexpr const char* kBillingHeader = "x-anthropic-billing-header:";

// system: a string or [{"type":"text","text":..}, ..] -> one text.
std::optional<ApiError> SystemText(const json& system, bool strip, std::string* out) {
  if (system.is_string()) {
    *out = strip ? StripBillingHeader(system.get<std::string>()) : system.get<std::string>();
    return std::nullopt;
  }
  if (!system.is_array()) return WrongType("system", "a string or an array of text blocks", system);
  bool first = true;
  for (size_t i = 0; i < system.size(); ++i) {
    std::string text;
    if (auto e =
            TextOf(json::array({system[i]}), StrFormat("system[%zu]", i), {"text"}, "", &text)) {
      e->param = StrFormat("system[%zu]", i) + e->param.substr(e->param.find(']') + 1);
      return e;
    }
    if (strip) {
      const std::string stripped = StripBillingHeader(text);
      if (stripped.size() != text.size() &&
          stripped.find_first_not_of(" \t\r\n") == std::string::npos) {
        continue;  // the block was only the billing header
      }
      text = stripped;
    }
    if (!first) *out += "\n";
    *out += text;
    first = false;
  }
  return std::nullopt;
}

// One user message -> tool messages (its tool_result blocks) + a user message.
std::optional<ApiError> UserMessage(const json& content, const std::string& param, json* messages) {
  if (content.is_string()) {
    messages->push_back({{"role", "user"}, {"content", content}});
    return std::nullopt;
  }
  if (!content.is_array())
    return WrongType(param, "a string or an array of content blocks", content);
  std::string text;
  bool has_text = false;
  for (size_t i = 0; i < content.size(); ++i) {
    const json& b = content[i];
    const std::string p = StrFormat("%s[%zu]", param.c_str(), i);
    if (!b.is_object()) return WrongType(p, "an object", b);
    const json* type = Field(b, "type");
    if (type == nullptr || !type->is_string()) {
      return InvalidParam(p + ".type", p + ".type must be a string");
    }
    const std::string t = type->get<std::string>();
    if (t == "text") {
      std::string piece;
      if (auto e = BlockString(b, "text", p, &piece)) return e;
      if (has_text) text += "\n";
      text += piece;
      has_text = true;
    } else if (t == "tool_result") {
      std::string id;
      if (auto e = BlockString(b, "tool_use_id", p, &id)) return e;
      std::string result;
      if (const json* c = Field(b, "content")) {
        if (auto e = TextOf(*c, p + ".content", {"text"}, "\n", &result)) return e;
      }
      messages->push_back({{"role", "tool"}, {"tool_call_id", id}, {"content", result}});
    } else {
      return InvalidParam(p + ".type", "content block type '" + t +
                                           "' is not supported in a user message (text, "
                                           "tool_result)");
    }
  }
  if (has_text) messages->push_back({{"role", "user"}, {"content", text}});
  return std::nullopt;
}

std::optional<ApiError> AssistantMessage(const json& content, const std::string& param,
                                         json* messages) {
  if (content.is_string()) {
    messages->push_back({{"role", "assistant"}, {"content", content}});
    return std::nullopt;
  }
  if (!content.is_array())
    return WrongType(param, "a string or an array of content blocks", content);
  std::string text, thinking;
  json calls = json::array();
  for (size_t i = 0; i < content.size(); ++i) {
    const json& b = content[i];
    const std::string p = StrFormat("%s[%zu]", param.c_str(), i);
    if (!b.is_object()) return WrongType(p, "an object", b);
    const json* type = Field(b, "type");
    if (type == nullptr || !type->is_string()) {
      return InvalidParam(p + ".type", p + ".type must be a string");
    }
    const std::string t = type->get<std::string>();
    if (t == "text") {
      std::string piece;
      if (auto e = BlockString(b, "text", p, &piece)) return e;
      text += piece;
    } else if (t == "thinking") {
      std::string piece;
      if (auto e = BlockString(b, "thinking", p, &piece)) return e;
      thinking += piece;
    } else if (t == "redacted_thinking") {
      continue;  // opaque to us
    } else if (t == "tool_use") {
      std::string id, name;
      if (auto e = BlockString(b, "id", p, &id)) return e;
      if (auto e = BlockString(b, "name", p, &name)) return e;
      const json* input = Field(b, "input");
      if (input != nullptr && !input->is_object())
        return WrongType(p + ".input", "an object", *input);
      calls.push_back(
          {{"id", id},
           {"type", "function"},
           {"function", {{"name", name}, {"arguments", input ? *input : json::object()}}}});
    } else {
      return InvalidParam(p + ".type", "content block type '" + t +
                                           "' is not supported in an assistant message (text, "
                                           "thinking, tool_use)");
    }
  }
  json m = {{"role", "assistant"}};
  m["content"] = text.empty() && !calls.empty() ? json(nullptr) : json(text);
  if (!thinking.empty()) m["reasoning_content"] = thinking;
  if (!calls.empty()) m["tool_calls"] = std::move(calls);
  messages->push_back(std::move(m));
  return std::nullopt;
}

std::optional<ApiError> Tools(const json& body, json* chat) {
  const json* tools = Field(body, "tools");
  if (tools != nullptr) {
    if (!tools->is_array()) return WrongType("tools", "an array", *tools);
    json out = json::array();
    for (size_t i = 0; i < tools->size(); ++i) {
      const json& t = (*tools)[i];
      const std::string p = StrFormat("tools[%zu]", i);
      if (!t.is_object()) return WrongType(p, "an object", t);
      if (const json* type = Field(t, "type"); type != nullptr && *type != "custom") {
        return InvalidParam(p + ".type",
                            "tool type '" +
                                (type->is_string() ? type->get<std::string>() : type->dump()) +
                                "' is not supported; only custom tools "
                                "(name, description, input_schema) are");
      }
      std::string name;
      if (auto e = BlockString(t, "name", p, &name)) return e;
      if (name.empty()) return InvalidParam(p + ".name", p + ".name must not be empty");
      const json* schema = Field(t, "input_schema");
      if (schema == nullptr || !schema->is_object()) {
        return InvalidParam(p + ".input_schema", p + ".input_schema must be a JSON Schema object");
      }
      json fn = {{"name", name}};
      if (const json* d = Field(t, "description")) {
        if (!d->is_string()) return WrongType(p + ".description", "a string", *d);
        fn["description"] = *d;
      }
      fn["parameters"] = *schema;
      out.push_back({{"type", "function"}, {"function", std::move(fn)}});
    }
    if (!out.empty()) (*chat)["tools"] = std::move(out);
  }
  const json* choice = Field(body, "tool_choice");
  if (choice == nullptr) return std::nullopt;
  if (!choice->is_object()) return WrongType("tool_choice", "an object", *choice);
  const json* type = Field(*choice, "type");
  if (type == nullptr || !type->is_string()) {
    return InvalidParam("tool_choice.type", "tool_choice.type must be auto, any, tool or none");
  }
  const std::string t = type->get<std::string>();
  if (const json* d = Field(*choice, "disable_parallel_tool_use")) {
    if (!d->is_boolean())
      return WrongType("tool_choice.disable_parallel_tool_use", "a boolean", *d);
    if (d->get<bool>()) (*chat)["parallel_tool_calls"] = false;
  }
  if (t == "auto" || t == "none") {
    (*chat)["tool_choice"] = t;
  } else if (t == "any") {
    if (!chat->contains("tools")) {
      return InvalidParam("tool_choice", "tool_choice any needs a non-empty tools array");
    }
    (*chat)["tool_choice"] = "required";
  } else if (t == "tool") {
    std::string name;
    if (auto e = BlockString(*choice, "name", "tool_choice", &name)) return e;
    bool found = false;
    for (const json& tool : chat->value("tools", json::array())) {
      found = found || tool["function"]["name"] == name;
    }
    if (!found)
      return InvalidParam("tool_choice.name",
                          "tool_choice names '" + name + "', which is not in tools");
    (*chat)["tool_choice"] = {{"type", "function"}, {"function", {{"name", name}}}};
  } else {
    return InvalidParam("tool_choice.type", "tool_choice.type must be auto, any, tool or none");
  }
  return std::nullopt;
}

}  // namespace

std::string StripBillingHeader(const std::string& text) {
  const size_t start = text.find_first_not_of(" \t\r\n");
  if (start == std::string::npos ||
      text.compare(start, std::strlen(kBillingHeader), kBillingHeader) != 0) {
    return text;
  }
  const size_t eol = text.find('\n', start);
  return eol == std::string::npos ? std::string() : text.substr(eol + 1);
}

Parsed<json> MessagesToChatBody(const json& body, const MessagesTranslateOptions& options) {
  json chat = json::object();
  if (const json* model = Field(body, "model")) chat["model"] = *model;
  json messages = json::array();
  if (const json* system = Field(body, "system")) {
    std::string text;
    if (auto e = SystemText(*system, options.strip_billing_header, &text)) return *e;
    if (!text.empty()) messages.push_back({{"role", "system"}, {"content", text}});
  }
  const json* in = Field(body, "messages");
  if (in == nullptr) return InvalidParam("messages", "messages is required");
  if (!in->is_array()) return WrongType("messages", "an array", *in);
  if (in->empty()) return InvalidParam("messages", "messages must not be empty");
  for (size_t i = 0; i < in->size(); ++i) {
    const json& m = (*in)[i];
    const std::string p = StrFormat("messages[%zu]", i);
    if (!m.is_object()) return WrongType(p, "an object", m);
    const json* role = Field(m, "role");
    if (role == nullptr || !role->is_string() || (*role != "user" && *role != "assistant")) {
      return InvalidParam(p + ".role", p + ".role must be \"user\" or \"assistant\"");
    }
    const json* content = Field(m, "content");
    if (content == nullptr) return InvalidParam(p + ".content", p + ".content is required");
    auto e = *role == "user" ? UserMessage(*content, p + ".content", &messages)
                             : AssistantMessage(*content, p + ".content", &messages);
    if (e) return *e;
  }
  chat["messages"] = std::move(messages);
  if (auto e = Tools(body, &chat)) return *e;

  const json* max_tokens = Field(body, "max_tokens");
  if (!options.count_tokens) {
    if (max_tokens == nullptr) return InvalidParam("max_tokens", "max_tokens is required");
    chat["max_tokens"] = *max_tokens;
  }
  if (const json* stops = Field(body, "stop_sequences")) {
    if (!stops->is_array()) return WrongType("stop_sequences", "an array of strings", *stops);
    for (size_t i = 0; i < stops->size(); ++i) {
      if (!(*stops)[i].is_string()) {
        return WrongType(StrFormat("stop_sequences[%zu]", i), "a string", (*stops)[i]);
      }
    }
    chat["stop"] = *stops;
  }
  for (const char* key : {"temperature", "top_p", "top_k"}) {
    if (const json* v = Field(body, key)) chat[key] = *v;
  }
  if (const json* thinking = Field(body, "thinking")) {
    const json* type = Field(*thinking, "type");
    if (!thinking->is_object() || type == nullptr ||
        (*type != "enabled" && *type != "disabled" && *type != "adaptive")) {
      return InvalidParam("thinking.type", "thinking.type must be enabled, disabled or adaptive");
    }
  }
  if (!options.count_tokens) {
    if (const json* stream = Field(body, "stream")) chat["stream"] = *stream;
  }
  // Structured outputs: output_config.format (the current API) or the beta's
  // top-level output_format, {"type":"json_schema","schema":{..}} -> the chat
  // body's response_format (errors renamed back by the route).
  const json* format = Field(body, "output_format");
  std::string where = "output_format";
  if (const json* config = Field(body, "output_config")) {
    if (!config->is_object()) return WrongType("output_config", "an object", *config);
    if (const json* f = Field(*config, "format")) {
      if (format != nullptr) {
        return InvalidParam("output_config.format",
                            "give output_config.format or output_format, not both");
      }
      format = f;
      where = "output_config.format";
    }
  }
  if (format != nullptr) {
    const json* type = format->is_object() ? Field(*format, "type") : nullptr;
    if (type == nullptr || *type != "json_schema") {
      return InvalidParam(where + ".type", where + ".type must be \"json_schema\"");
    }
    const json* schema = Field(*format, "schema");
    if (schema == nullptr || !schema->is_object()) {
      return InvalidParam(where + ".schema", where + ".schema must be a JSON Schema object");
    }
    chat["response_format"] = {{"type", "json_schema"},
                               {"json_schema", {{"name", "output"}, {"schema", *schema}}}};
  }
  return chat;
}

const char* AnthropicErrorType(int http_status) {
  switch (http_status) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 503:
    case 529:
      return "overloaded_error";
    default:
      return http_status >= 500 ? "api_error" : "invalid_request_error";
  }
}

json AnthropicErrorJson(const ApiError& error) {
  return {{"type", "error"},
          {"error", {{"type", AnthropicErrorType(error.http_status)}, {"message", error.message}}}};
}

std::string AnthropicErrorBodyFrom(const std::string& openai_body, int http_status) {
  json j = json::parse(openai_body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("error") || j.contains("type") ||
      !j["error"].is_object() || !j["error"].contains("message")) {
    return openai_body;
  }
  ApiError e;
  e.http_status = http_status;
  e.message = j["error"]["message"].is_string() ? j["error"]["message"].get<std::string>() : "";
  return Dump(AnthropicErrorJson(e));
}

}  // namespace reprise::server
