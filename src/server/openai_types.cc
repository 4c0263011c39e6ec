// Request parsing and response building for the OpenAI API (see openai_types.h).
#include "server/openai_types.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "server/json_body.h"

namespace reprise::server {
namespace {

using json = nlohmann::ordered_json;

// Accessors that treat a missing key and an explicit null alike.
const json* Field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string TypeName(const json& v) {
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer() || v.is_number_unsigned()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "null";
}

ApiError WrongType(const std::string& param, const char* expected, const json& got) {
  return InvalidParam(param, param + " must be " + expected + ", got " + TypeName(got));
}

// Each returns an error (or nothing) and writes the value when present.
std::optional<ApiError> GetFloat(const json& body, const char* key, float* out) {
  const json* v = Field(body, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number()) return WrongType(key, "a number", *v);
  const double d = v->get<double>();
  if (!std::isfinite(d)) return InvalidParam(key, std::string(key) + " must be finite");
  *out = static_cast<float>(d);
  return std::nullopt;
}

std::optional<ApiError> GetInt64(const json& body, const char* key, int64_t* out, bool* present) {
  const json* v = Field(body, key);
  *present = v != nullptr;
  if (v == nullptr) return std::nullopt;
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    *out = static_cast<int64_t>(u);  // seeds may use the full 64-bit range
    return std::nullopt;
  }
  if (v->is_number_integer()) {
    *out = v->get<int64_t>();
    return std::nullopt;
  }
  if (v->is_number_float()) {
    const double d = v->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) {
      *out = static_cast<int64_t>(d);
      return std::nullopt;
    }
  }
  return WrongType(key, "an integer", *v);
}

std::optional<ApiError> GetInt32InRange(const json& body, const char* key, int64_t lo, int64_t hi,
                                        std::optional<int32_t>* out) {
  int64_t v = 0;
  bool present = false;
  if (auto e = GetInt64(body, key, &v, &present)) return e;
  if (!present) return std::nullopt;
  if (v < lo || v > hi) {
    return InvalidParam(
        key, StrFormat("%s must be in [%lld, %lld], got %lld", key, static_cast<long long>(lo),
                       static_cast<long long>(hi), static_cast<long long>(v)));
  }
  *out = static_cast<int32_t>(v);
  return std::nullopt;
}

std::optional<ApiError> GetBool(const json& body, const char* key, bool* out) {
  const json* v = Field(body, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_boolean()) return WrongType(key, "a boolean", *v);
  *out = v->get<bool>();
  return std::nullopt;
}

std::optional<ApiError> GetString(const json& body, const char* key, std::string* out) {
  const json* v = Field(body, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) return WrongType(key, "a string", *v);
  *out = v->get<std::string>();
  return std::nullopt;
}

std::optional<ApiError> ParseStop(const json& body, std::vector<std::string>* out) {
  const json* v = Field(body, "stop");
  if (v == nullptr) return std::nullopt;
  auto add = [out](const std::string& s) {
    if (!s.empty()) out->push_back(s);
  };
  if (v->is_string()) {
    add(v->get<std::string>());
  } else if (v->is_array()) {
    for (size_t i = 0; i < v->size(); ++i) {
      if (!(*v)[i].is_string()) return WrongType(StrFormat("stop[%zu]", i), "a string", (*v)[i]);
      add((*v)[i].get<std::string>());
    }
  } else {
    return WrongType("stop", "a string or an array of strings", *v);
  }
  if (out->size() > kMaxStops) {
    return InvalidParam("stop", StrFormat("stop has %zu strings; at most %zu are supported",
                                          out->size(), kMaxStops));
  }
  return std::nullopt;
}

std::optional<ApiError> ParseLogitBias(const json& body, engine::SamplingParams* sp) {
  const json* v = Field(body, "logit_bias");
  if (v == nullptr) return std::nullopt;
  if (!v->is_object()) return WrongType("logit_bias", "an object of token id -> bias", *v);
  for (auto it = v->begin(); it != v->end(); ++it) {
    const std::string& key = it.key();
    char* end = nullptr;
    errno = 0;
    const long long id = std::strtoll(key.c_str(), &end, 10);
    if (key.empty() || *end != '\0' || errno != 0 || id < 0 || id > INT32_MAX) {
      return InvalidParam("logit_bias", "logit_bias keys must be token ids, got '" + key + "'");
    }
    if (!it.value().is_number()) {
      return WrongType("logit_bias", "an object of token id -> number", it.value());
    }
    sp->logit_bias.emplace_back(static_cast<int32_t>(id), it.value().get<float>());
  }
  return std::nullopt;
}

// Fields common to both endpoints. `chat` selects the chat form of logprobs
// (boolean + top_logprobs) over the legacy integer.
std::optional<ApiError> ParseOptions(const json& body, const RequestDefaults& defaults, bool chat,
                                     GenerationOptions* o) {
  o->sampling = defaults.sampling;
  engine::SamplingParams& sp = o->sampling;
  if (defaults.max_tokens > 0) o->max_tokens = defaults.max_tokens;
  constexpr int64_t kMaxInt = std::numeric_limits<int32_t>::max();
  if (auto e = GetInt32InRange(body, "max_tokens", 1, kMaxInt, &o->max_tokens)) return e;
  if (chat) {
    if (auto e = GetInt32InRange(body, "max_completion_tokens", 1, kMaxInt, &o->max_tokens)) {
      return e;
    }
  }
  if (auto e = GetFloat(body, "temperature", &sp.temperature)) return e;
  if (auto e = GetFloat(body, "top_p", &sp.top_p)) return e;
  std::optional<int32_t> top_k;
  if (auto e = GetInt32InRange(body, "top_k", 0, kMaxInt, &top_k)) return e;
  if (top_k) sp.top_k = *top_k;
  if (auto e = GetFloat(body, "min_p", &sp.min_p)) return e;
  if (auto e = GetFloat(body, "presence_penalty", &sp.presence_penalty)) return e;
  if (auto e = GetFloat(body, "frequency_penalty", &sp.frequency_penalty)) return e;
  if (auto e = GetFloat(body, "repetition_penalty", &sp.repetition_penalty)) return e;
  int64_t seed = 0;
  bool has_seed = false;
  if (auto e = GetInt64(body, "seed", &seed, &has_seed)) return e;
  if (has_seed) sp.seed = static_cast<uint64_t>(seed);
  if (auto e = ParseStop(body, &o->stop)) return e;
  if (auto e = ParseLogitBias(body, &sp)) return e;
  std::optional<int32_t> n;
  if (auto e = GetInt32InRange(body, "n", 1, 128, &n)) return e;
  if (n && *n != 1) {
    return InvalidParam(
        "n", StrFormat("n must be 1 (several choices are not supported yet), got %d", *n));
  }
  if (chat) {
    if (auto e = GetBool(body, "logprobs", &o->logprobs)) return e;
    std::optional<int32_t> top;
    if (auto e = GetInt32InRange(body, "top_logprobs", 0, engine::kMaxTopLogprobs, &top)) return e;
    if (top) {
      if (!o->logprobs) return InvalidParam("top_logprobs", "top_logprobs requires logprobs: true");
      o->top_logprobs = *top;
    }
  } else {
    const json* lp = Field(body, "logprobs");
    if (lp != nullptr && lp->is_boolean()) {
      o->logprobs = lp->get<bool>();
    } else {
      std::optional<int32_t> top;
      if (auto e = GetInt32InRange(body, "logprobs", 0, 5, &top)) return e;
      if (top) {
        o->logprobs = true;
        o->top_logprobs = *top;
      }
    }
  }
  sp.n_top_logprobs = o->logprobs ? o->top_logprobs : -1;
  if (auto e = GetBool(body, "stream", &o->stream)) return e;
  if (const json* so = Field(body, "stream_options")) {
    if (!so->is_object()) return WrongType("stream_options", "an object", *so);
    if (auto e = GetBool(*so, "include_usage", &o->include_usage)) {
      e->param = "stream_options.include_usage";
      return e;
    }
  }
  if (auto e = GetBool(body, "ignore_eos", &o->ignore_eos)) return e;
  if (auto e = GetString(body, "user", &o->user)) return e;
  if (auto e = GetString(body, "cache_salt", &o->cache_salt)) return e;
  if (o->cache_salt.size() > kMaxCacheSaltBytes) {
    return InvalidParam("cache_salt", StrFormat("cache_salt has %zu bytes; at most %zu are allowed",
                                                o->cache_salt.size(), kMaxCacheSaltBytes));
  }
  return std::nullopt;
}

// Message content: a string, null, or an array of {"type":"text","text":...}.
std::optional<ApiError> NormalizeContent(const json& message, const std::string& param,
                                         std::string* out) {
  auto it = message.find("content");
  if (it == message.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) {
    *out = it->get<std::string>();
    return std::nullopt;
  }
  if (!it->is_array()) return WrongType(param, "a string or an array of content parts", *it);
  for (size_t i = 0; i < it->size(); ++i) {
    const json& part = (*it)[i];
    const std::string part_param = StrFormat("%s[%zu]", param.c_str(), i);
    if (!part.is_object()) return WrongType(part_param, "an object", part);
    auto type = part.find("type");
    if (type == part.end() || !type->is_string() || *type != "text") {
      return InvalidParam(part_param + ".type", "only text content parts are supported");
    }
    auto text = part.find("text");
    if (text == part.end() || !text->is_string()) {
      return InvalidParam(part_param + ".text", part_param + ".text must be a string");
    }
    *out += text->get<std::string>();
  }
  return std::nullopt;
}

// tools: [{"type":"function","function":{"name":..,"parameters":{..}}}];
// tool_choice: "auto" | "none" | "required" | {"type":"function","function":{"name":..}}.
std::optional<ApiError> ParseTools(const json& body, ChatRequest* req) {
  if (const json* tools = Field(body, "tools")) {
    if (!tools->is_array()) return WrongType("tools", "an array", *tools);
    for (size_t i = 0; i < tools->size(); ++i) {
      const json& t = (*tools)[i];
      const std::string p = StrFormat("tools[%zu]", i);
      if (!t.is_object()) return WrongType(p, "an object", t);
      auto type = t.find("type");
      if (type == t.end() || *type != "function") {
        return InvalidParam(p + ".type", p + ".type must be \"function\"");
      }
      auto fn = t.find("function");
      if (fn == t.end() || !fn->is_object())
        return InvalidParam(p + ".function", p + ".function must be an object");
      auto name = fn->find("name");
      if (name == fn->end() || !name->is_string() || name->get<std::string>().empty()) {
        return InvalidParam(p + ".function.name", p + ".function.name must be a non-empty string");
      }
      auto params = fn->find("parameters");
      if (params != fn->end() && !params->is_null() && !params->is_object()) {
        return InvalidParam(p + ".function.parameters",
                            p + ".function.parameters must be a JSON Schema object");
      }
    }
    if (!tools->empty()) req->tools = *tools;
  }
  if (const json* choice = Field(body, "tool_choice")) {
    if (choice->is_string()) {
      const std::string c = choice->get<std::string>();
      if (c != "auto" && c != "none" && c != "required") {
        return InvalidParam("tool_choice",
                            "tool_choice must be auto, none, required or a function");
      }
      if (c == "required" && req->tools.is_null()) {
        return InvalidParam("tool_choice",
                            "tool_choice \"required\" needs a non-empty tools array");
      }
      req->tool_choice = c;
    } else if (choice->is_object() && choice->contains("function") &&
               (*choice)["function"].is_object() && (*choice)["function"].contains("name") &&
               (*choice)["function"]["name"].is_string()) {
      const std::string name = (*choice)["function"]["name"];
      bool found = false;
      json only = json::array();
      for (const json& t : req->tools.is_array() ? req->tools : json::array()) {
        if (t["function"]["name"] == name) {
          found = true;
          only.push_back(t);
        }
      }
      if (!found)
        return InvalidParam("tool_choice",
                            "tool_choice names '" + name + "', which is not in tools");
      req->tools = only;  // the template sees only the forced function
      req->tool_choice = name;
    } else {
      return WrongType("tool_choice",
                       "a string or {\"type\":\"function\",\"function\":{\"name\":..}}", *choice);
    }
  }
  if (req->tool_choice == "none") req->tools = nullptr;  // the template sees no tools
  return std::nullopt;
}

// response_format: {"type":"text"} | {"type":"json_object"[,"schema":{..}]} |
// {"type":"json_schema","json_schema":{"name":..,"schema":{..},"strict":..}}.
// The schema itself is checked when it is compiled (structured_output.h).
std::optional<ApiError> ParseResponseFormat(const json& body, ResponseFormat* out) {
  const json* rf = Field(body, "response_format");
  if (rf == nullptr) return std::nullopt;
  if (!rf->is_object()) return WrongType("response_format", "an object", *rf);
  const json* type = Field(*rf, "type");
  if (type == nullptr || !type->is_string()) {
    return InvalidParam("response_format.type",
                        "response_format.type must be text, json_object or json_schema");
  }
  const std::string t = type->get<std::string>();
  if (t == "text") return std::nullopt;
  if (t == "json_object") {
    out->type = ResponseFormat::Type::kJsonObject;
    if (const json* schema = Field(*rf, "schema")) {
      if (!schema->is_object() && !schema->is_boolean()) {
        return WrongType("response_format.schema", "a JSON Schema object", *schema);
      }
      out->type = ResponseFormat::Type::kJsonSchema;
      out->schema = *schema;
      out->schema_param = "response_format.schema";
    }
    return std::nullopt;
  }
  if (t != "json_schema") {
    return InvalidParam(
        "response_format.type",
        "response_format.type must be text, json_object or json_schema, got '" + t + "'");
  }
  const json* js = Field(*rf, "json_schema");
  if (js == nullptr || !js->is_object()) {
    return InvalidParam("response_format.json_schema",
                        "response_format.json_schema must be an object with a schema");
  }
  if (const json* name = Field(*js, "name")) {
    if (!name->is_string()) return WrongType("response_format.json_schema.name", "a string", *name);
    out->name = name->get<std::string>();
  }
  if (const json* strict = Field(*js, "strict"); strict != nullptr && !strict->is_boolean()) {
    return WrongType("response_format.json_schema.strict", "a boolean", *strict);
  }
  const json* schema = Field(*js, "schema");
  if (schema == nullptr) {
    return InvalidParam("response_format.json_schema.schema",
                        "response_format.json_schema.schema is required");
  }
  if (!schema->is_object() && !schema->is_boolean()) {
    return WrongType("response_format.json_schema.schema", "a JSON Schema object", *schema);
  }
  out->type = ResponseFormat::Type::kJsonSchema;
  out->schema = *schema;
  return std::nullopt;
}

// Every tool message answers a call made by an earlier assistant message.
std::optional<ApiError> CheckToolMessages(const json& messages) {
  std::vector<std::string> call_ids;
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string p = StrFormat("messages[%zu]", i);
    if (m["role"] == "assistant" && m.contains("tool_calls") && !m["tool_calls"].is_null()) {
      if (!m["tool_calls"].is_array())
        return WrongType(p + ".tool_calls", "an array", m["tool_calls"]);
      for (size_t j = 0; j < m["tool_calls"].size(); ++j) {
        const json& call = m["tool_calls"][j];
        const std::string cp = StrFormat("%s.tool_calls[%zu]", p.c_str(), j);
        if (!call.is_object() || !call.contains("function") || !call["function"].is_object()) {
          return InvalidParam(cp + ".function", cp + ".function must be an object");
        }
        const json& fn = call["function"];
        if (!fn.contains("name") || !fn["name"].is_string() ||
            fn["name"].get<std::string>().empty()) {
          return InvalidParam(cp + ".function.name",
                              cp + ".function.name must be a non-empty string");
        }
        if (fn.contains("arguments") && !fn["arguments"].is_null() &&
            !fn["arguments"].is_string() && !fn["arguments"].is_object()) {
          return WrongType(cp + ".function.arguments", "a JSON string or an object",
                           fn["arguments"]);
        }
        if (call.contains("id") && !call["id"].is_null()) {
          if (!call["id"].is_string()) return WrongType(cp + ".id", "a string", call["id"]);
          call_ids.push_back(call["id"]);
        }
      }
    }
    if (m["role"] == "tool") {
      auto id = m.find("tool_call_id");
      if (id == m.end() || !id->is_string()) {
        return InvalidParam(p + ".tool_call_id", p + " (role tool) needs a string tool_call_id");
      }
      if (std::find(call_ids.begin(), call_ids.end(), id->get<std::string>()) == call_ids.end()) {
        return InvalidParam(p + ".tool_call_id",
                            p + ".tool_call_id '" + id->get<std::string>() +
                                "' matches no tool call of an earlier assistant message");
      }
    }
  }
  return std::nullopt;
}

}  // namespace

Parsed<ChatRequest> ParseChatRequest(const json& body, const RequestDefaults& defaults) {
  ChatRequest req;
  if (!body.is_object()) return InvalidParam("", "the request body must be a JSON object");
  if (auto e = GetString(body, "model", &req.model)) return *e;
  const json* messages = Field(body, "messages");
  if (messages == nullptr) return InvalidParam("messages", "messages is required");
  if (!messages->is_array()) return WrongType("messages", "an array", *messages);
  if (messages->empty()) return InvalidParam("messages", "messages must not be empty");
  req.messages = json::array();
  for (size_t i = 0; i < messages->size(); ++i) {
    const json& m = (*messages)[i];
    const std::string param = StrFormat("messages[%zu]", i);
    if (!m.is_object()) return WrongType(param, "an object", m);
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) {
      return InvalidParam(param + ".role", param + ".role must be a string");
    }
    const std::string r = role->get<std::string>();
    if (r != "system" && r != "user" && r != "assistant" && r != "tool" && r != "developer") {
      return InvalidParam(param + ".role",
                          "unknown role '" + r + "' (system, developer, user, assistant, tool)");
    }
    std::string content;
    if (auto e = NormalizeContent(m, param + ".content", &content)) return *e;
    json normalized = m;
    // Tool-call arguments sent as a JSON string (what the OpenAI SDK sends)
    // become the object templates expect, as llama.cpp does.
    if (normalized.contains("tool_calls") && normalized["tool_calls"].is_array()) {
      for (json& call : normalized["tool_calls"]) {
        if (!call.is_object() || !call.contains("function") || !call["function"].is_object())
          continue;
        json& fn = call["function"];
        if (fn.contains("arguments") && fn["arguments"].is_string()) {
          // Bounded like the body: a string of arguments nested 100,000 deep
          // crashed the server (recursive copies downstream); past the
          // bound it stays a string, as invalid JSON does.
          JsonParseResult args = ParseJsonBounded(fn["arguments"].get<std::string>());
          if (args.ok && args.value.is_object()) fn["arguments"] = std::move(args.value);
        }
      }
    }
    auto c = m.find("content");
    if (c != m.end() && !c->is_null()) normalized["content"] = content;
    if (c == m.end()) normalized["content"] = nullptr;
    req.messages.push_back(std::move(normalized));
  }
  if (auto e = ParseTools(body, &req)) return *e;
  if (auto e = GetBool(body, "parallel_tool_calls", &req.parallel_tool_calls)) return *e;
  if (auto e = ParseResponseFormat(body, &req.response_format)) return *e;
  if (auto e = CheckToolMessages(req.messages)) return *e;
  if (auto e = ParseOptions(body, defaults, /*chat=*/true, &req.options)) return *e;
  return req;
}

Parsed<CompletionRequest> ParseCompletionRequest(const json& body,
                                                 const RequestDefaults& defaults) {
  CompletionRequest req;
  if (!body.is_object()) return InvalidParam("", "the request body must be a JSON object");
  if (auto e = GetString(body, "model", &req.model)) return *e;
  const json* prompt = Field(body, "prompt");
  if (prompt == nullptr) return InvalidParam("prompt", "prompt is required");
  // A string, token ids, or a batch of exactly one of those.
  const json* p = prompt;
  if (p->is_array() && p->size() == 1 && ((*p)[0].is_string() || (*p)[0].is_array())) {
    p = &(*p)[0];
  } else if (p->is_array() && !p->empty() && ((*p)[0].is_string() || (*p)[0].is_array())) {
    return InvalidParam("prompt", "a batch of several prompts is not supported; send one prompt");
  }
  if (p->is_string()) {
    req.prompt = p->get<std::string>();
  } else if (p->is_array()) {
    std::vector<int32_t> ids;
    for (size_t i = 0; i < p->size(); ++i) {
      const json& t = (*p)[i];
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX) {
        return InvalidParam("prompt", StrFormat("prompt[%zu] must be a token id", i));
      }
      ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
    }
    if (ids.empty()) return InvalidParam("prompt", "prompt must not be empty");
    req.prompt = std::move(ids);
  } else {
    return WrongType("prompt", "a string or an array of token ids", *prompt);
  }
  if (auto e = GetBool(body, "echo", &req.echo)) return *e;
  if (auto e = ParseOptions(body, defaults, /*chat=*/false, &req.options)) return *e;
  if (auto e = ParseResponseFormat(body, &req.response_format)) return *e;
  return req;
}

json UsageJson(const UsageCounts& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details",
           {{"cached_tokens", u.cached_tokens},
            {"cached_tokens_from_host", u.cached_tokens_from_host},
            {"cached_tokens_from_disk", u.cached_tokens_from_disk}}},
          {"completion_tokens_details", {{"reasoning_tokens", u.reasoning_tokens}}}};
}

namespace {

json BytesOf(const std::string& s) {
  json bytes = json::array();
  for (unsigned char c : s) bytes.push_back(static_cast<int>(c));
  return bytes;
}

}  // namespace

json ChatLogprobsJson(const std::vector<TokenLogprob>& tokens) {
  json content = json::array();
  for (const TokenLogprob& t : tokens) {
    json top = json::array();
    for (const auto& [text, lp] : t.top) {
      top.push_back({{"token", text}, {"logprob", lp}, {"bytes", BytesOf(text)}});
    }
    content.push_back({{"token", t.text},
                       {"logprob", t.logprob},
                       {"bytes", BytesOf(t.text)},
                       {"top_logprobs", top}});
  }
  return {{"content", content}};
}

json CompletionLogprobsJson(const std::vector<TokenLogprob>& tokens, size_t text_offset) {
  json toks = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
  size_t offset = text_offset;
  for (const TokenLogprob& t : tokens) {
    toks.push_back(t.text);
    lps.push_back(t.logprob);
    json top = json::object();
    for (const auto& [text, lp] : t.top) top[text] = lp;
    tops.push_back(top);
    offsets.push_back(offset);
    offset += t.text.size();
  }
  return {
      {"tokens", toks}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

namespace {

json FinishJson(const std::string& finish_reason) {
  return finish_reason.empty() ? json(nullptr) : json(finish_reason);
}

json Envelope(const ResponseMeta& meta, const char* object) {
  return {{"id", meta.id},
          {"object", object},
          {"created", meta.created},
          {"model", meta.model},
          {"system_fingerprint", "reprise"}};
}

}  // namespace

json ChatCompletionJson(const ResponseMeta& meta, json message, const std::string& finish_reason,
                        const UsageCounts& usage, const std::vector<TokenLogprob>* logprobs) {
  json j = Envelope(meta, "chat.completion");
  json choice = {{"index", 0},
                 {"message", std::move(message)},
                 {"logprobs", logprobs ? ChatLogprobsJson(*logprobs) : json(nullptr)},
                 {"finish_reason", FinishJson(finish_reason)}};
  j["choices"] = json::array({choice});
  j["usage"] = UsageJson(usage);
  return j;
}

json ChatChunkJson(const ResponseMeta& meta, json delta, const std::string& finish_reason,
                   const std::vector<TokenLogprob>* logprobs) {
  json j = Envelope(meta, "chat.completion.chunk");
  json choice = {{"index", 0},
                 {"delta", std::move(delta)},
                 {"logprobs", logprobs ? ChatLogprobsJson(*logprobs) : json(nullptr)},
                 {"finish_reason", FinishJson(finish_reason)}};
  j["choices"] = json::array({choice});
  return j;
}

json ChatUsageChunkJson(const ResponseMeta& meta, const UsageCounts& usage) {
  json j = Envelope(meta, "chat.completion.chunk");
  j["choices"] = json::array();
  j["usage"] = UsageJson(usage);
  return j;
}

json CompletionJson(const ResponseMeta& meta, const std::string& text,
                    const std::string& finish_reason, const UsageCounts& usage,
                    const std::vector<TokenLogprob>* logprobs, size_t text_offset) {
  json j = Envelope(meta, "text_completion");
  json choice = {
      {"index", 0},
      {"text", text},
      {"logprobs", logprobs ? CompletionLogprobsJson(*logprobs, text_offset) : json(nullptr)},
      {"finish_reason", FinishJson(finish_reason)}};
  j["choices"] = json::array({choice});
  j["usage"] = UsageJson(usage);
  return j;
}

json CompletionChunkJson(const ResponseMeta& meta, const std::string& text,
                         const std::string& finish_reason,
                         const std::vector<TokenLogprob>* logprobs, size_t text_offset) {
  json j = Envelope(meta, "text_completion");
  json choice = {
      {"index", 0},
      {"text", text},
      {"logprobs", logprobs ? CompletionLogprobsJson(*logprobs, text_offset) : json(nullptr)},
      {"finish_reason", FinishJson(finish_reason)}};
  j["choices"] = json::array({choice});
  return j;
}

json CompletionUsageChunkJson(const ResponseMeta& meta, const UsageCounts& usage) {
  json j = Envelope(meta, "text_completion");
  j["choices"] = json::array();
  j["usage"] = UsageJson(usage);
  return j;
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace reprise::server
