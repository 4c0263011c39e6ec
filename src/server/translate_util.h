// Small helpers shared by the request translators of the non-OpenAI front
// doors (anthropic_types.cc, responses_types.cc): type names for error
// messages and text extraction from content-block arrays. Header-only.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/status.h"
#include "server/api_error.h"

namespace reprise::server::translate {

inline std::string TypeName(const nlohmann::ordered_json& v) {
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer() || v.is_number_unsigned()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "null";
}

inline ApiError WrongType(const std::string& param, const char* expected,
                          const nlohmann::ordered_json& got) {
  return InvalidParam(param, param + " must be " + expected + ", got " + TypeName(got));
}

// The value of `key` unless it is missing or null.
inline const nlohmann::ordered_json* Field(const nlohmann::ordered_json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

// A string field of a content block (present, a string), or a 400.
inline std::optional<ApiError> BlockString(const nlohmann::ordered_json& block, const char* key,
                                           const std::string& param, std::string* out) {
  const nlohmann::ordered_json* v = Field(block, key);
  if (v == nullptr || !v->is_string()) {
    return InvalidParam(param + "." + key, param + "." + key + " must be a string");
  }
  *out = v->get<std::string>();
  return std::nullopt;
}

// Text of `content`: a string, or an array of blocks whose `type` is one of
// `text_types` (their "text" joined with `sep`). Other block types are a 400.
inline std::optional<ApiError> TextOf(const nlohmann::ordered_json& content,
                                      const std::string& param,
                                      std::initializer_list<const char*> text_types,
                                      const char* sep, std::string* out) {
  if (content.is_string()) {
    *out = content.get<std::string>();
    return std::nullopt;
  }
  if (!content.is_array()) return WrongType(param, "a string or an array of text blocks", content);
  for (size_t i = 0; i < content.size(); ++i) {
    const nlohmann::ordered_json& b = content[i];
    const std::string p = StrFormat("%s[%zu]", param.c_str(), i);
    if (!b.is_object()) return WrongType(p, "an object", b);
    const nlohmann::ordered_json* type = Field(b, "type");
    bool ok = false;
    for (const char* t : text_types) ok = ok || (type != nullptr && *type == t);
    if (!ok) {
      std::string allowed;
      for (const char* t : text_types) allowed += std::string(allowed.empty() ? "" : ", ") + t;
      return InvalidParam(p + ".type", p + ".type must be one of: " + allowed +
                                           " (only text content is supported)");
    }
    std::string text;
    if (auto e = BlockString(b, "text", p, &text)) return e;
    if (i > 0) *out += sep;
    *out += text;
  }
  return std::nullopt;
}

}  // namespace reprise::server::translate
