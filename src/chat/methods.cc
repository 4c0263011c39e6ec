// Attribute access and the Python methods templates call on str, dict and
// list values. Like transformers' ImmutableSandboxedEnvironment, methods that
// mutate a list or dict (append, update, pop, ...) raise SecurityError.
// Case mapping (upper/lower/title) is ASCII-only.
#include <algorithm>

#include "chat/builtins.h"
#include "chat/evaluator.h"

namespace reprise::chat {
namespace {

bool IsPyWhitespace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
         c == 0x3000;
}

char Upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; }
char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

const char* const kStrMethods[] = {"startswith", "endswith", "split",  "rsplit", "strip",     "lstrip",
                                   "rstrip",     "upper",    "lower",  "title",  "capitalize", "replace",
                                   "find",       "rfind",    "index",  "count",  "join",      "splitlines",
                                   "isdigit",    "isalpha",  "isalnum", "isspace", "isupper", "islower",
                                   "swapcase",   "zfill",    "removeprefix", "removesuffix", "format"};
const char* const kDictMethods[] = {"get", "items", "keys", "values", "copy"};
const char* const kListMethods[] = {"index", "count", "copy"};
const char* const kUnsafeMethods[] = {"append", "extend", "insert", "pop",   "remove", "reverse", "sort",
                                      "clear",  "update", "popitem", "setdefault"};

template <size_t N>
bool In(const char* const (&names)[N], const std::string& name) {
  return std::find_if(names, names + N, [&](const char* n) { return name == n; }) != names + N;
}

std::string StringArg(const CallArgs& a, size_t i, const char* name, const char* method) {
  Value v = a.Get(i, name);
  if (v.is_undefined()) FailUndefined(v, a.line);
  if (!v.is_string()) {
    Fail(a.line, std::string("TypeError: ") + method + "() argument must be str, not " + v.TypeName());
  }
  return v.str();
}

// Python str.strip family; `chars` None strips whitespace.
std::string Strip(const std::string& s, const Value& chars, bool left, bool right, int line) {
  std::vector<uint32_t> cps = DecodeUtf8(s);
  std::vector<uint32_t> set;
  bool ws = chars.is_none() || chars.is_undefined();
  if (!ws) {
    if (!chars.is_string()) Fail(line, "TypeError: strip arg must be None or str");
    set = DecodeUtf8(chars.str());
  }
  auto strip_it = [&](uint32_t c) {
    return ws ? IsPyWhitespace(c) : std::find(set.begin(), set.end(), c) != set.end();
  };
  size_t b = 0, e = cps.size();
  if (left) {
    while (b < e && strip_it(cps[b])) ++b;
  }
  if (right) {
    while (e > b && strip_it(cps[e - 1])) --e;
  }
  return EncodeUtf8(cps, b, e);
}

Value Split(const std::string& s, const Value& sep, int64_t maxsplit, int line) {
  std::vector<Value> parts;
  if (sep.is_none() || sep.is_undefined()) {
    std::vector<uint32_t> cps = DecodeUtf8(s);
    size_t i = 0;
    while (true) {
      while (i < cps.size() && IsPyWhitespace(cps[i])) ++i;
      if (i >= cps.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) >= maxsplit) {
        size_t e = cps.size();
        while (e > i && IsPyWhitespace(cps[e - 1])) --e;
        parts.push_back(Value::String(EncodeUtf8(cps, i, e)));
        break;
      }
      size_t j = i;
      while (j < cps.size() && !IsPyWhitespace(cps[j])) ++j;
      parts.push_back(Value::String(EncodeUtf8(cps, i, j)));
      i = j;
    }
    return Value::List(std::move(parts));
  }
  if (!sep.is_string()) Fail(line, "TypeError: must be str or None, not " + sep.TypeName());
  const std::string& d = sep.str();
  if (d.empty()) Fail(line, "ValueError: empty separator");
  size_t pos = 0;
  while (true) {
    size_t f = s.find(d, pos);
    if (f == std::string::npos || (maxsplit >= 0 && static_cast<int64_t>(parts.size()) >= maxsplit)) {
      parts.push_back(Value::String(s.substr(pos)));
      break;
    }
    parts.push_back(Value::String(s.substr(pos, f - pos)));
    pos = f + d.size();
  }
  return Value::List(std::move(parts));
}

Value RSplit(const std::string& s, const Value& sep, int64_t maxsplit, int line) {
  if (maxsplit < 0 || sep.is_none() || sep.is_undefined()) return Split(s, sep, maxsplit, line);
  if (!sep.is_string()) Fail(line, "TypeError: must be str or None, not " + sep.TypeName());
  const std::string& d = sep.str();
  if (d.empty()) Fail(line, "ValueError: empty separator");
  std::vector<Value> parts;
  size_t end = s.size();
  while (static_cast<int64_t>(parts.size()) < maxsplit) {
    if (end < d.size()) break;
    size_t f = s.rfind(d, end - d.size());
    if (f == std::string::npos) break;
    parts.push_back(Value::String(s.substr(f + d.size(), end - f - d.size())));
    end = f;
  }
  parts.push_back(Value::String(s.substr(0, end)));
  std::reverse(parts.begin(), parts.end());
  return Value::List(std::move(parts));
}

bool AffixMatch(const std::string& s, const Value& affix, bool prefix, int line) {
  auto one = [&](const Value& a) {
    if (!a.is_string()) {
      Fail(line, std::string("TypeError: ") + (prefix ? "startswith" : "endswith") +
                     " first arg must be str or a tuple of str, not " + a.TypeName());
    }
    const std::string& x = a.str();
    if (x.size() > s.size()) return false;
    return prefix ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  if (affix.is_tuple()) {
    for (const Value& a : affix.items()) {
      if (one(a)) return true;
    }
    return false;
  }
  return one(affix);
}

int64_t IntArg(const CallArgs& a, size_t i, const char* name, int64_t def) {
  Value v = a.Get(i, name);
  if (v.is_undefined() || v.is_none()) return def;
  if (!v.is_int() && !v.is_bool()) Fail(a.line, "TypeError: '" + v.TypeName() + "' object cannot be interpreted as an integer");
  return v.int_value();
}

Value StrMethod(const std::string& s, const std::string& m, CallArgs& a) {
  int line = a.line;
  if (m == "startswith" || m == "endswith") return Value::Bool(AffixMatch(s, a.Get(0, "prefix"), m == "startswith", line));
  if (m == "split") return Split(s, a.Get(0, "sep"), IntArg(a, 1, "maxsplit", -1), line);
  if (m == "rsplit") return RSplit(s, a.Get(0, "sep"), IntArg(a, 1, "maxsplit", -1), line);
  if (m == "strip") return Value::String(Strip(s, a.Get(0, "chars"), true, true, line));
  if (m == "lstrip") return Value::String(Strip(s, a.Get(0, "chars"), true, false, line));
  if (m == "rstrip") return Value::String(Strip(s, a.Get(0, "chars"), false, true, line));
  if (m == "upper" || m == "lower" || m == "swapcase") {
    std::string out = s;
    for (char& c : out) c = m == "upper" ? Upper(c) : m == "lower" ? Lower(c) : (IsAlpha(c) ? (Upper(c) == c ? Lower(c) : Upper(c)) : c);
    return Value::String(std::move(out));
  }
  if (m == "title") {
    std::string out = s;
    bool prev_cased = false;
    for (char& c : out) {
      c = prev_cased ? Lower(c) : Upper(c);
      prev_cased = IsAlpha(c);
    }
    return Value::String(std::move(out));
  }
  if (m == "capitalize") {
    std::string out = s;
    for (size_t i = 0; i < out.size(); ++i) out[i] = i == 0 ? Upper(out[i]) : Lower(out[i]);
    return Value::String(std::move(out));
  }
  if (m == "replace") {
    std::string from = StringArg(a, 0, "old", "replace"), to = StringArg(a, 1, "new", "replace");
    int64_t count = IntArg(a, 2, "count", -1);
    std::string out;
    if (from.empty()) {
      std::vector<uint32_t> cps = DecodeUtf8(s);
      int64_t done = 0;
      for (size_t i = 0; i <= cps.size(); ++i) {
        if (count < 0 || done < count) {
          out += to;
          ++done;
        }
        if (i < cps.size()) AppendUtf8(out, cps[i]);
      }
      return Value::String(std::move(out));
    }
    size_t pos = 0;
    int64_t done = 0;
    while (count < 0 || done < count) {
      size_t f = s.find(from, pos);
      if (f == std::string::npos) break;
      out += s.substr(pos, f - pos) + to;
      pos = f + from.size();
      ++done;
    }
    out += s.substr(pos);
    return Value::String(std::move(out));
  }
  if (m == "find" || m == "rfind" || m == "index" || m == "count") {
    std::string sub = StringArg(a, 0, "sub", m.c_str());
    if (m == "count") {
      if (sub.empty()) return Value::Int(static_cast<int64_t>(CodePointCount(s)) + 1);
      int64_t n = 0;
      for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
      return Value::Int(n);
    }
    size_t f = m == "rfind" ? s.rfind(sub) : s.find(sub);
    if (f == std::string::npos) {
      if (m == "index") Fail(line, "ValueError: substring not found");
      return Value::Int(-1);
    }
    return Value::Int(static_cast<int64_t>(CodePointCount(s.substr(0, f))));
  }
  if (m == "join") {
    std::string out;
    bool first = true;
    for (const Value& v : Iterate(a.Get(0, "iterable"), line)) {
      if (!v.is_string()) Fail(line, "TypeError: sequence item: expected str instance, " + v.TypeName() + " found");
      if (!first) out += s;
      first = false;
      out += v.str();
    }
    return Value::String(std::move(out));
  }
  if (m == "splitlines") {
    std::vector<Value> lines;
    size_t start = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '\n' || s[i] == '\r') {
        lines.push_back(Value::String(s.substr(start, i - start)));
        if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
        start = i + 1;
      }
    }
    if (start < s.size()) lines.push_back(Value::String(s.substr(start)));
    return Value::List(std::move(lines));
  }
  if (m == "removeprefix" || m == "removesuffix") {
    std::string x = StringArg(a, 0, m == "removeprefix" ? "prefix" : "suffix", m.c_str());
    if (AffixMatch(s, Value::String(x), m == "removeprefix", line)) {
      return Value::String(m == "removeprefix" ? s.substr(x.size()) : s.substr(0, s.size() - x.size()));
    }
    return Value::String(s);
  }
  if (m == "zfill") {
    int64_t width = IntArg(a, 0, "width", 0);
    int64_t n = static_cast<int64_t>(CodePointCount(s));
    if (n >= width) return Value::String(s);
    const std::string pad = RenderBudget::Fill(width - n, '0');
    if (!s.empty() && (s[0] == '-' || s[0] == '+')) return Value::String(s.substr(0, 1) + pad + s.substr(1));
    return Value::String(pad + s);
  }
  if (m == "format") Fail(line, "SecurityError: str.format is not supported in templates");
  // is* predicates
  if (s.empty()) return Value::Bool(false);
  bool all = true, any_upper = false, any_lower = false;
  for (char c : s) {
    if (m == "isdigit") all &= (c >= '0' && c <= '9');
    if (m == "isalpha") all &= IsAlpha(c);
    if (m == "isalnum") all &= IsAlpha(c) || (c >= '0' && c <= '9');
    if (m == "isspace") all &= IsPyWhitespace(static_cast<unsigned char>(c));
    any_upper |= (c >= 'A' && c <= 'Z');
    any_lower |= (c >= 'a' && c <= 'z');
  }
  if (m == "isupper") return Value::Bool(any_upper && !any_lower);
  if (m == "islower") return Value::Bool(any_lower && !any_upper);
  return Value::Bool(all);
}

Value DictMethod(const Value& d, const std::string& m, CallArgs& a) {
  if (m == "get") {
    const Value* v = d.dict().Find(a.Get(0, "key"));
    if (v) return *v;
    return a.Has(1, "default") ? a.Get(1, "default") : Value::None();
  }
  if (m == "copy") {
    Value out = Value::Dict();
    out.dict().entries = d.dict().entries;
    return out;
  }
  std::vector<Value> out;
  for (const auto& [k, v] : d.dict().entries) {
    if (m == "items") out.push_back(Value::Tuple({k, v}));
    if (m == "keys") out.push_back(k);
    if (m == "values") out.push_back(v);
  }
  return Value::List(std::move(out));
}

Value ListMethod(const Value& l, const std::string& m, CallArgs& a) {
  if (m == "copy") return Value::List(l.items());
  Value x = a.Get(0, "value");
  int64_t n = 0;
  for (size_t i = 0; i < l.items().size(); ++i) {
    if (!l.items()[i].Equals(x)) continue;
    if (m == "index") return Value::Int(static_cast<int64_t>(i));
    ++n;
  }
  if (m == "index") Fail(a.line, "ValueError: " + x.Repr() + " is not in list");
  return Value::Int(n);
}

}  // namespace

Value GetAttribute(const Value& obj, const std::string& name, int line) {
  auto bound = [&](auto method) {
    Value self = obj;
    return Value::Function(name, [self, name, method](Evaluator&, CallArgs& a) { return method(self, name, a); });
  };
  if ((obj.is_dict() || (obj.is_list() && !obj.is_generator())) && In(kUnsafeMethods, name)) {
    std::string type = obj.TypeName();
    return Value::Function(name, [name, type](Evaluator&, CallArgs& a) -> Value {
      Fail(a.line, "SecurityError: access to attribute '" + name + "' of '" + type + "' object is unsafe.");
    });
  }
  if (obj.is_dict()) {
    if (In(kDictMethods, name)) return bound(DictMethod);
    if (const Value* v = obj.dict().Find(name)) return *v;
  } else if (obj.is_namespace()) {
    if (const Value* v = obj.dict().Find(name)) return *v;
  } else if (obj.is_string()) {
    if (In(kStrMethods, name)) {
      return bound([](const Value& self, const std::string& m, CallArgs& a) {
        Value r = StrMethod(self.str(), m, a);
        if (!self.is_markup()) return r;
        // markupsafe.Markup wraps these methods to return Markup again.
        if (r.is_string() && m != "join" && m != "format") return Value::Markup(r.str());
        if (r.is_list()) {
          for (Value& part : r.items()) part = Value::Markup(part.str());
        }
        return r;
      });
    }
  } else if (obj.is_list() && !obj.is_generator()) {
    if (In(kListMethods, name)) return bound(ListMethod);
  }
  std::string type = obj.is_none() ? "None" : obj.TypeName() + " object";
  return Value::Undefined("'" + type + "' has no attribute '" + name + "'");
}

}  // namespace reprise::chat
