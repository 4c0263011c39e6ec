// Responses request -> chat request body (see responses_types.h).
#include "server/responses_types.h"

#include <string>
#include <utility>

#include "server/translate_util.h"

namespace reprise::server {
namespace {

using json = nlohmann::ordered_json;
using translate::BlockString;
using translate::Field;
using translate::TextOf;
using translate::WrongType;

// Appends the assistant message a function_call belongs to: the last message
// when it is an assistant message, else a new one.
json& AssistantFor(json& messages, std::string* pending_reasoning) {
  if (messages.empty() || messages.back()["role"] != "assistant") {
    messages.push_back({{"role", "assistant"}, {"content", nullptr}});
  }
  json& m = messages.back();
  if (!pending_reasoning->empty()) {
    m["reasoning_content"] = *pending_reasoning;
    pending_reasoning->clear();
  }
  return m;
}

std::optional<ApiError> Item(const json& item, const std::string& p, json& messages,
                             std::string* pending_reasoning) {
  if (!item.is_object()) return WrongType(p, "an object", item);
  std::string type = "message";
  if (const json* t = Field(item, "type")) {
    if (!t->is_string()) return WrongType(p + ".type", "a string", *t);
    type = t->get<std::string>();
  }
  if (type == "message") {
    std::string role;
    if (auto e = BlockString(item, "role", p, &role)) return e;
    if (role != "user" && role != "assistant" && role != "system" && role != "developer") {
      return InvalidParam(p + ".role",
                          "unknown role '" + role + "' (user, assistant, system, developer)");
    }
    const json* content = Field(item, "content");
    if (content == nullptr) return InvalidParam(p + ".content", p + ".content is required");
    std::string text;
    if (auto e =
            TextOf(*content, p + ".content", {"input_text", "output_text", "text"}, "", &text)) {
      return e;
    }
    json m = {{"role", role == "developer" ? "system" : role}, {"content", text}};
    if (role == "assistant" && !pending_reasoning->empty()) {
      m["reasoning_content"] = *pending_reasoning;
      pending_reasoning->clear();
    }
    messages.push_back(std::move(m));
  } else if (type == "function_call") {
    std::string call_id, name, arguments;
    if (auto e = BlockString(item, "call_id", p, &call_id)) return e;
    if (auto e = BlockString(item, "name", p, &name)) return e;
    if (auto e = BlockString(item, "arguments", p, &arguments)) return e;
    json& m = AssistantFor(messages, pending_reasoning);
    if (!m.contains("tool_calls")) m["tool_calls"] = json::array();
    m["tool_calls"].push_back({{"id", call_id},
                               {"type", "function"},
                               {"function", {{"name", name}, {"arguments", arguments}}}});
  } else if (type == "function_call_output") {
    std::string call_id;
    if (auto e = BlockString(item, "call_id", p, &call_id)) return e;
    const json* output = Field(item, "output");
    if (output == nullptr) return InvalidParam(p + ".output", p + ".output is required");
    std::string text;
    if (auto e =
            TextOf(*output, p + ".output", {"input_text", "output_text", "text"}, "\n", &text)) {
      return e;
    }
    messages.push_back({{"role", "tool"}, {"tool_call_id", call_id}, {"content", text}});
  } else if (type == "reasoning") {
    std::string text;
    const json* content = Field(item, "content");
    if (content != nullptr && content->is_array() && !content->empty()) {
      if (auto e = TextOf(*content, p + ".content", {"reasoning_text"}, "\n", &text)) return e;
    } else if (const json* summary = Field(item, "summary")) {
      if (auto e = TextOf(*summary, p + ".summary", {"summary_text"}, "\n", &text)) return e;
    }
    *pending_reasoning += text;
  } else if (type == "item_reference") {
    return InvalidParam(p + ".type",
                        "item_reference is not supported: reprise stores no responses; send the "
                        "items themselves");
  } else {
    return InvalidParam(p + ".type", "input item type '" + type +
                                         "' is not supported (message, function_call, "
                                         "function_call_output, reasoning)");
  }
  return std::nullopt;
}

// Hosted tools run by OpenAI's servers; reprise cannot run them, so the model
// is not offered them (Codex always lists web_search).
bool IsHostedTool(const std::string& type) {
  return type.rfind("web_search", 0) == 0 || type == "file_search" || type == "code_interpreter" ||
         type == "image_generation" || type.rfind("computer_use", 0) == 0 || type == "mcp";
}

// One function tool {type,name,description,parameters} -> the chat shape.
std::optional<ApiError> FunctionTool(const json& t, const std::string& p, json* out) {
  std::string name;
  if (auto e = BlockString(t, "name", p, &name)) return e;
  if (name.empty()) return InvalidParam(p + ".name", p + ".name must not be empty");
  json fn = {{"name", name}};
  if (const json* d = Field(t, "description")) {
    if (!d->is_string()) return WrongType(p + ".description", "a string", *d);
    fn["description"] = *d;
  }
  if (const json* params = Field(t, "parameters")) {
    if (!params->is_object()) return WrongType(p + ".parameters", "a JSON Schema object", *params);
    fn["parameters"] = *params;
  }
  out->push_back({{"type", "function"}, {"function", std::move(fn)}});
  return std::nullopt;
}

// tools: function tools; namespace tools (groups of function tools, as Codex
// sends them) are flattened; hosted tools are left out; anything else is a 400.
std::optional<ApiError> Tools(const json& body, json* chat) {
  if (const json* tools = Field(body, "tools")) {
    if (!tools->is_array()) return WrongType("tools", "an array", *tools);
    json out = json::array();
    for (size_t i = 0; i < tools->size(); ++i) {
      const json& t = (*tools)[i];
      const std::string p = StrFormat("tools[%zu]", i);
      if (!t.is_object()) return WrongType(p, "an object", t);
      std::string type;
      if (auto e = BlockString(t, "type", p, &type)) return e;
      if (type == "function") {
        if (auto e = FunctionTool(t, p, &out)) return e;
      } else if (type == "namespace") {
        const json* inner = Field(t, "tools");
        if (inner == nullptr || !inner->is_array()) {
          return InvalidParam(p + ".tools", p + ".tools must be an array of function tools");
        }
        for (size_t j = 0; j < inner->size(); ++j) {
          const std::string q = StrFormat("%s.tools[%zu]", p.c_str(), j);
          if (!(*inner)[j].is_object() || Field((*inner)[j], "type") == nullptr ||
              (*inner)[j]["type"] != "function") {
            return InvalidParam(q + ".type", q + ".type must be \"function\"");
          }
          if (auto e = FunctionTool((*inner)[j], q, &out)) return e;
        }
      } else if (!IsHostedTool(type)) {
        return InvalidParam(p + ".type", "tool type '" + type +
                                             "' is not supported (function and namespace tools "
                                             "are; hosted tools such as web_search are left out)");
      }
    }
    if (!out.empty()) (*chat)["tools"] = std::move(out);
  }
  const json* choice = Field(body, "tool_choice");
  if (choice == nullptr) return std::nullopt;
  if (choice->is_string()) {
    (*chat)["tool_choice"] = *choice;  // auto / none / required: checked by ParseChatRequest
  } else if (choice->is_object() && Field(*choice, "type") != nullptr &&
             (*choice)["type"] == "function") {
    std::string name;
    if (auto e = BlockString(*choice, "name", "tool_choice", &name)) return e;
    (*chat)["tool_choice"] = {{"type", "function"}, {"function", {{"name", name}}}};
  } else {
    return WrongType("tool_choice", "auto, none, required or {\"type\":\"function\",\"name\":..}",
                     *choice);
  }
  return std::nullopt;
}

}  // namespace

Parsed<json> ResponsesToChatBody(const json& body) {
  if (Field(body, "previous_response_id") != nullptr) {
    return InvalidParam("previous_response_id",
                        "previous_response_id is not supported: reprise does not store responses "
                        "(store is not supported); send the whole conversation as input");
  }
  if (Field(body, "conversation") != nullptr) {
    return InvalidParam("conversation",
                        "conversation is not supported: reprise does not store conversations; "
                        "send the whole conversation as input");
  }
  json chat = json::object();
  if (const json* model = Field(body, "model")) chat["model"] = *model;
  json messages = json::array();
  if (const json* instructions = Field(body, "instructions")) {
    if (!instructions->is_string()) return WrongType("instructions", "a string", *instructions);
    if (!instructions->get<std::string>().empty()) {
      messages.push_back({{"role", "system"}, {"content", *instructions}});
    }
  }
  const json* input = Field(body, "input");
  if (input == nullptr) return InvalidParam("input", "input is required");
  if (input->is_string()) {
    messages.push_back({{"role", "user"}, {"content", *input}});
  } else if (input->is_array()) {
    std::string pending_reasoning;
    for (size_t i = 0; i < input->size(); ++i) {
      if (auto e = Item((*input)[i], StrFormat("input[%zu]", i), messages, &pending_reasoning)) {
        return *e;
      }
    }
  } else {
    return WrongType("input", "a string or an array of input items", *input);
  }
  if (messages.empty()) return InvalidParam("input", "input must not be empty");
  chat["messages"] = std::move(messages);
  if (auto e = Tools(body, &chat)) return *e;
  if (const json* v = Field(body, "max_output_tokens")) chat["max_tokens"] = *v;
  for (const char* key : {"temperature", "top_p", "stream", "user"}) {
    if (const json* v = Field(body, key)) chat[key] = *v;
  }
  for (const char* key : {"parallel_tool_calls", "store"}) {
    if (const json* v = Field(body, key); v != nullptr && !v->is_boolean()) {
      return WrongType(key, "a boolean", *v);
    }
  }
  if (const json* r = Field(body, "reasoning"); r != nullptr && !r->is_object()) {
    return WrongType("reasoning", "an object", *r);
  }
  if (const json* text = Field(body, "text")) {
    if (!text->is_object()) return WrongType("text", "an object", *text);
    if (const json* format = Field(*text, "format")) {
      // {"type":"text"} | {"type":"json_object"} |
      // {"type":"json_schema","name":..,"schema":{..},"strict":..,"description":..}
      // -> the chat body's response_format (errors are renamed back to
      // text.format by the route).
      const json* type = format->is_object() ? Field(*format, "type") : nullptr;
      if (type == nullptr || !type->is_string() ||
          (*type != "text" && *type != "json_object" && *type != "json_schema")) {
        return InvalidParam("text.format.type",
                            "text.format.type must be text, json_object or json_schema");
      }
      if (*type == "json_object") {
        chat["response_format"] = {{"type", "json_object"}};
      } else if (*type == "json_schema") {
        json js = json::object();
        for (const char* key : {"name", "schema", "strict", "description"}) {
          if (const json* v = Field(*format, key)) js[key] = *v;
        }
        chat["response_format"] = {{"type", "json_schema"}, {"json_schema", std::move(js)}};
      }
    }
  }
  if (const json* v = Field(body, "parallel_tool_calls")) chat["parallel_tool_calls"] = *v;
  return chat;
}

}  // namespace reprise::server
