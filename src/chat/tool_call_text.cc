// The tool-call parser's text helpers and call decoders (tool_call_text.h).
#include "chat/tool_call_text.h"

#include <cctype>

#include "chat/value.h"

namespace reprise::chat::internal {
namespace {

// Model output nested deeper than this is not a tool call to us: nlohmann's
// parser and copies recurse, and output bracketed 100,000 deep would
// overflow the stack. Real arguments nest a few levels.
constexpr int kMaxJsonDepth = 128;

// Whether s opens more than kMaxJsonDepth brackets at once (outside strings).
bool NestsTooDeep(std::string_view s) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (const char c : s) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

}  // namespace

size_t FirstNonWs(std::string_view s, size_t from) {
  for (size_t i = from; i < s.size(); ++i) {
    if (!IsWs(s[i])) return i;
  }
  return std::string_view::npos;
}

std::string_view Trim(std::string_view s) {
  size_t b = FirstNonWs(s);
  if (b == std::string_view::npos) return {};
  size_t e = s.size();
  while (e > b && IsWs(s[e - 1])) --e;
  return s.substr(b, e - b);
}

// Length of the longest suffix of `s` that is a proper prefix of `tag`.
size_t PartialTagSuffix(std::string_view s, std::string_view tag) {
  for (size_t n = std::min(s.size(), tag.size() - 1); n > 0; --n) {
    if (s.substr(s.size() - n) == tag.substr(0, n)) return n;
  }
  return 0;
}

// One past the end of the JSON object/array starting at s[start], or npos
// while it is still open. String-aware; does not validate (the JSON parser does).
size_t JsonEnd(std::string_view s, size_t start) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = start; i < s.size(); ++i) {
    char c = s[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) return i + 1;
    }
  }
  return std::string_view::npos;
}

Json ParseJson(std::string_view s) {
  if (NestsTooDeep(s)) return Json(Json::value_t::discarded);
  return Json::parse(s.begin(), s.end(), nullptr, /*allow_exceptions=*/false);
}

// {"name": "f", "arguments"|"parameters": {..} or "<json text>"} -> Call.
bool CallFromJson(const Json& j, Call* call) {
  if (!j.is_object()) return false;
  auto name = j.find("name");
  if (name == j.end() || !name->is_string() || name->get<std::string>().empty()) return false;
  call->name = name->get<std::string>();
  auto args = j.find("arguments");
  if (args == j.end()) args = j.find("parameters");
  if (args == j.end()) {
    call->arguments = "{}";
  } else if (args->is_object()) {
    call->arguments = args->dump(-1, ' ', false, Json::error_handler_t::replace);
  } else if (args->is_string() && ParseJson(args->get<std::string>()).is_object()) {
    call->arguments = args->get<std::string>();
  } else {
    return false;
  }
  auto id = j.find("id");
  if (id != j.end() && id->is_string()) call->id = id->get<std::string>();
  return true;
}

// One or more JSON calls: an object, an array of objects, or objects separated
// by ';' / whitespace. All-or-nothing.
bool CallsFromJsonText(std::string_view text, std::vector<Call>* calls) {
  text = Trim(text);
  if (text.empty()) return false;
  if (text[0] == '[') {
    Json j = ParseJson(text);
    if (!j.is_array() || j.empty()) return false;
    for (const auto& e : j) {
      Call c;
      if (!CallFromJson(e, &c)) return false;
      calls->push_back(std::move(c));
    }
    return true;
  }
  size_t pos = 0;
  while (true) {
    pos = FirstNonWs(text, pos);
    if (pos == std::string_view::npos) break;
    if (text[pos] == ';') {
      ++pos;
      continue;
    }
    if (text[pos] != '{') return false;
    size_t end = JsonEnd(text, pos);
    if (end == std::string_view::npos) return false;
    Call c;
    if (!CallFromJson(ParseJson(text.substr(pos, end - pos)), &c)) return false;
    calls->push_back(std::move(c));
    pos = end;
  }
  return !calls->empty();
}

// Llama 3.1 built-in tool form: `name.call(key="value", n=1, flag=True)`.
bool CallFromPython(std::string_view text, Call* call) {
  text = Trim(text);
  size_t paren = text.find(".call(");
  if (paren == std::string_view::npos || text.back() != ')') return false;
  std::string_view name = text.substr(0, paren);
  if (name.empty()) return false;
  for (char c : name) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  std::string_view args = text.substr(paren + 6, text.size() - paren - 7);
  Json obj = Json::object();
  size_t i = 0;
  while (true) {
    i = FirstNonWs(args, i);
    if (i == std::string_view::npos) break;
    size_t eq = args.find('=', i);
    if (eq == std::string_view::npos) return false;
    std::string key(Trim(args.substr(i, eq - i)));
    if (key.empty()) return false;
    size_t v = FirstNonWs(args, eq + 1);
    if (v == std::string_view::npos) return false;
    Json value;
    size_t end;
    if (args[v] == '"' || args[v] == '\'') {
      char q = args[v];
      std::string s;
      for (end = v + 1; end < args.size() && args[end] != q; ++end) {
        if (args[end] == '\\' && end + 1 < args.size()) ++end;
        s += args[end];
      }
      if (end >= args.size()) return false;
      ++end;
      value = s;
    } else {
      end = args.find(',', v);
      if (end == std::string_view::npos) end = args.size();
      std::string lit(Trim(args.substr(v, end - v)));
      if (lit == "True" || lit == "False") {
        value = lit == "True";
      } else if (lit == "None") {
        value = nullptr;
      } else {
        value = ParseJson(lit);
        if (value.is_discarded() || !value.is_number()) return false;
      }
    }
    obj[key] = value;
    i = FirstNonWs(args, end);
    if (i == std::string_view::npos) break;
    if (args[i] != ',') return false;
    ++i;
  }
  call->name = std::string(name);
  call->arguments = obj.dump();
  return true;
}

// Appends code point `cp` as nlohmann::json's dump() writes it inside a
// string (ensure_ascii off): the short escapes, \u00XX for other control
// characters, UTF-8 for everything else (AppendUtf8; cp is never a lone
// surrogate, which the callers reject as invalid JSON).
void AppendDumpedCodePoint(uint32_t cp, std::string* out) {
  switch (cp) {
    case 0x08: out->append("\\b"); return;
    case 0x09: out->append("\\t"); return;
    case 0x0A: out->append("\\n"); return;
    case 0x0C: out->append("\\f"); return;
    case 0x0D: out->append("\\r"); return;
    case 0x22: out->append("\\\""); return;
    case 0x5C: out->append("\\\\"); return;
    default: break;
  }
  if (cp <= 0x1F) {
    static const char kHex[] = "0123456789abcdef";
    out->append("\\u00");
    out->push_back(kHex[cp >> 4]);
    out->push_back(kHex[cp & 0xF]);
  } else {
    AppendUtf8(*out, cp);
  }
}

// The 4 hex digits at s[at]; -1 if they are not hex.
int32_t Hex4(std::string_view s, size_t at) {
  int32_t v = 0;
  for (size_t i = at; i < at + 4; ++i) {
    const char c = s[i];
    v <<= 4;
    if (c >= '0' && c <= '9') {
      v |= c - '0';
    } else if (c >= 'a' && c <= 'f') {
      v |= c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      v |= c - 'A' + 10;
    } else {
      return -1;
    }
  }
  return v;
}

// A call id of Mistral's shape (9 letters and digits, which Mistral's chat
// templates require of the ids sent back), derived from the request's id
// prefix and the call's index: for a streamed [TOOL_CALLS][..] call, whose
// own "id" (if any) follows its arguments, so is not known when it starts.
std::string MistralId(const std::string& prefix, int index) {
  uint64_t h = 14695981039346656037ull;  // FNV-1a
  for (char c : prefix + std::to_string(index)) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  static const char kAlnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string id;
  for (int k = 0; k < 9; ++k) {
    id.push_back(kAlnum[h % 62]);
    h /= 62;
  }
  return id;
}

}  // namespace reprise::chat::internal
