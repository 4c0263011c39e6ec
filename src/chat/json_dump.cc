// Python's json.dumps for template Values, as transformers' tojson calls it:
// ensure_ascii=False by default, separators (', ', ': ') or (',', ': ') with
// an indent, no HTML escaping, floats printed like float.__repr__, generators
// and other non-JSON objects raising TypeError.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "chat/value.h"

namespace reprise::chat {

namespace {

void JsonEscapeByte(std::string& out, unsigned char c) {
  char buf[8];
  switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\r': out += "\\r"; break;
    case '\t': out += "\\t"; break;
    case '\b': out += "\\b"; break;
    case '\f': out += "\\f"; break;
    default:
      if (c < 0x20) {
        std::snprintf(buf, sizeof(buf), "\\u%04x", c);
        out += buf;
      } else {
        out += static_cast<char>(c);
      }
  }
}

void JsonString(std::string& out, std::string_view s, bool ensure_ascii) {
  out += '"';
  if (!ensure_ascii) {
    for (unsigned char c : s) JsonEscapeByte(out, c);
  } else {
    char buf[16];
    for (uint32_t cp : DecodeUtf8(s)) {
      if (cp < 0x80) {
        JsonEscapeByte(out, static_cast<unsigned char>(cp));
        continue;
      }
      if (cp >= 0x10000) {
        uint32_t v = cp - 0x10000;
        std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
      } else {
        std::snprintf(buf, sizeof(buf), "\\u%04x", cp);
      }
      out += buf;
    }
  }
  out += '"';
}

std::string JsonFloat(double f) {
  if (std::isnan(f)) return "NaN";
  if (std::isinf(f)) return f < 0 ? "-Infinity" : "Infinity";
  return FormatPyFloat(f);
}

void JsonDump(std::string& out, const Value& v, const JsonDumpOptions& o, int level, int line) {
  RecursionGuard guard(line);
  auto newline = [&](int lvl) {
    out += '\n';
    for (int i = 0; i < lvl; ++i) out += o.indent;
  };
  switch (v.kind()) {
    case Value::Kind::kNone:
      out += "null";
      return;
    case Value::Kind::kBool:
      out += v.bool_value() ? "true" : "false";
      return;
    case Value::Kind::kInt:
      out += std::to_string(v.int_value());
      return;
    case Value::Kind::kFloat:
      out += JsonFloat(v.number());
      return;
    case Value::Kind::kString:
      JsonString(out, v.str(), o.ensure_ascii);
      return;
    case Value::Kind::kList: {
      if (v.is_generator()) Fail(line, "TypeError: Object of type generator is not JSON serializable");
      const auto& items = v.items();
      if (items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      if (o.has_indent) newline(level + 1);
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) {
          out += o.item_sep;
          if (o.has_indent) newline(level + 1);
        }
        JsonDump(out, items[i], o, level + 1, line);
      }
      if (o.has_indent) newline(level);
      out += ']';
      return;
    }
    case Value::Kind::kDict: {
      const auto& entries = v.dict().entries;
      if (entries.empty()) {
        out += "{}";
        return;
      }
      std::vector<std::pair<std::string, const Value*>> kvs;
      for (const auto& [k, val] : entries) {
        std::string key;
        switch (k.kind()) {
          case Value::Kind::kString:
            key = k.str();
            break;
          case Value::Kind::kInt:
            key = std::to_string(k.int_value());
            break;
          case Value::Kind::kFloat:
            key = JsonFloat(k.number());
            break;
          case Value::Kind::kBool:
            key = k.bool_value() ? "true" : "false";
            break;
          case Value::Kind::kNone:
            key = "null";
            break;
          default:
            Fail(line, "TypeError: keys must be str, int, float, bool or None, not " + k.TypeName());
        }
        kvs.emplace_back(std::move(key), &val);
      }
      if (o.sort_keys) {
        std::stable_sort(kvs.begin(), kvs.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
      }
      out += '{';
      if (o.has_indent) newline(level + 1);
      for (size_t i = 0; i < kvs.size(); ++i) {
        if (i) {
          out += o.item_sep;
          if (o.has_indent) newline(level + 1);
        }
        JsonString(out, kvs[i].first, o.ensure_ascii);
        out += o.key_sep;
        JsonDump(out, *kvs[i].second, o, level + 1, line);
      }
      if (o.has_indent) newline(level);
      out += '}';
      return;
    }
    default:
      Fail(line, "TypeError: Object of type " + v.TypeName() + " is not JSON serializable");
  }
}

}  // namespace

std::string PyJsonDumps(const Value& v, const JsonDumpOptions& options, int line) {
  std::string out;
  JsonDump(out, v, options, 0, line);
  return out;
}

}  // namespace reprise::chat
