// Internal to the tool-call output parser (tool_parser.cc): the text
// helpers and call decoders it is built from — the tags it looks for,
// whitespace, JSON extents, a call from JSON or from Llama 3.1's Python
// form, the pieces that re-encode strings exactly as nlohmann's dump() does,
// the head of a streamed call, Mistral call ids. Pure functions of their
// arguments; model output nested more than 128 brackets deep is never
// parsed (ParseJson returns discarded), so no recursion runs away.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace reprise::chat::internal {

using Json = nlohmann::ordered_json;

struct Call {
  std::string name, arguments, id;
};

constexpr std::string_view kThinkOpen = "<think>";
constexpr std::string_view kThinkClose = "</think>";
constexpr std::string_view kHermesOpen = "<tool_call>";
constexpr std::string_view kHermesClose = "</tool_call>";
constexpr std::string_view kPythonTag = "<|python_tag|>";
constexpr std::string_view kMistralCalls = "[TOOL_CALLS]";
constexpr std::string_view kMistralArgs = "[ARGS]";
constexpr std::string_view kMistralCallId = "[CALL_ID]";

inline bool IsWs(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
// The first non-whitespace index at or after `from`, or npos.
size_t FirstNonWs(std::string_view s, size_t from = 0);
std::string_view Trim(std::string_view s);
// Length of the longest suffix of `s` that is a proper prefix of `tag`.
size_t PartialTagSuffix(std::string_view s, std::string_view tag);
// One past the end of the JSON object/array starting at s[start], or npos
// while it is still open. String-aware; does not validate.
size_t JsonEnd(std::string_view s, size_t start);
// s parsed without exceptions: discarded when invalid or nested too deep.
Json ParseJson(std::string_view s);
// {"name": "f", "arguments"|"parameters": {..} or "<json text>"} -> Call.
bool CallFromJson(const Json& j, Call* call);
// One or more JSON calls: an object, an array of objects, or objects
// separated by ';' / whitespace. All-or-nothing.
bool CallsFromJsonText(std::string_view text, std::vector<Call>* calls);
// Llama 3.1 built-in tool form: `name.call(key="value", n=1, flag=True)`.
bool CallFromPython(std::string_view text, Call* call);
// Appends code point `cp` as nlohmann::json's dump() writes it inside a
// string (ensure_ascii off).
void AppendDumpedCodePoint(uint32_t cp, std::string* out);
// The value of the 4 hex digits at s[at], or -1.
int32_t Hex4(std::string_view s, size_t at);
// A call id of Mistral's shape (9 letters and digits) from the request's id
// prefix and the call's index.
std::string MistralId(const std::string& prefix, int index);

// How far a call body matches  {"name": "<name>", "<key>": {  for one of
// `keys` (JSON whitespace anywhere between tokens): Hermes and Mistral use
// "arguments", Llama 3 "parameters" (or "arguments").
struct CallHead {
  enum class Status { kNeedMore, kNoMatch, kMatched } status = Status::kNeedMore;
  std::string name;
  size_t arguments_at = 0;  // kMatched: offset of the arguments' '{'
};

constexpr std::string_view kArgumentsKey[] = {"\"arguments\""};
constexpr std::string_view kLlamaKeys[] = {"\"parameters\"", "\"arguments\""};

template <size_t N>
CallHead MatchCallHead(std::string_view body, const std::string_view (&keys)[N]) {
  CallHead h;
  size_t i = 0;
  auto skip_ws = [&] {
    while (i < body.size() && IsWs(body[i])) ++i;
    return i < body.size();
  };
  // Each returns false when the body ends (need more) or sets kNoMatch.
  auto literal = [&](std::string_view lit) {
    if (!skip_ws()) return false;
    const size_t n = std::min(lit.size(), body.size() - i);
    if (body.substr(i, n) != lit.substr(0, n)) {
      h.status = CallHead::Status::kNoMatch;
      return false;
    }
    if (n < lit.size()) return false;
    i += n;
    return true;
  };
  // One of `keys`: false while the body is a prefix of some, kNoMatch if of none.
  auto key = [&] {
    if (!skip_ws()) return false;
    bool prefix = false;
    for (std::string_view k : keys) {
      const size_t n = std::min(k.size(), body.size() - i);
      if (body.substr(i, n) != k.substr(0, n)) continue;
      if (n == k.size()) {
        i += n;
        return true;
      }
      prefix = true;
    }
    if (!prefix) h.status = CallHead::Status::kNoMatch;
    return false;
  };
  if (!literal("{") || !literal("\"name\"") || !literal(":") || !skip_ws()) return h;
  if (body[i] != '"') {
    h.status = CallHead::Status::kNoMatch;
    return h;
  }
  const size_t name_at = i;
  for (++i; i < body.size() && body[i] != '"'; ++i) {
    if (body[i] == '\\') ++i;
  }
  if (i >= body.size()) return h;
  ++i;
  const Json name = ParseJson(body.substr(name_at, i - name_at));
  if (!name.is_string() || name.get<std::string>().empty()) {
    h.status = CallHead::Status::kNoMatch;
    return h;
  }
  if (!literal(",") || !key() || !literal(":") || !literal("{")) return h;
  h.status = CallHead::Status::kMatched;
  h.name = name.get<std::string>();
  h.arguments_at = i - 1;
  return h;
}

}  // namespace reprise::chat::internal
