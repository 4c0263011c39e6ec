// Jinja2 builtin filters and tests with their Python semantics, plus
// transformers' tojson override (json.dumps with ensure_ascii=False, default
// separators, no HTML escaping). Filters that return generators in Jinja
// (map, select*, reject*, unique, items, reverse) return generator Values, so
// `| tojson` on them fails exactly as it does in Python.
#include <algorithm>
#include <cmath>
#include <set>

#include "chat/builtins.h"
#include "chat/evaluator.h"
#include "chat/parser.h"

namespace reprise::chat {
namespace {

const std::set<std::string>& FilterNames() {
  static const std::set<std::string> kNames = {
      "abs",   "attr",     "capitalize", "center", "count",     "d",        "default", "dictsort", "e",
      "escape", "first",   "float",      "indent", "int",       "items",    "join",    "last",     "length",
      "list",  "lower",    "map",        "max",    "min",       "reject",   "rejectattr", "replace", "reverse",
      "round", "safe",     "select",     "selectattr", "sort",  "string",   "sum",     "title",    "tojson",
      "trim",  "unique",   "upper",      "wordcount"};
  return kNames;
}

const std::set<std::string>& TestNames() {
  static const std::set<std::string> kNames = {
      "boolean", "callable", "defined", "divisibleby", "eq",  "equalto", "escaped", "even",     "false",
      "filter",  "float",    "ge",      "gt",          "greaterthan", "in", "integer", "iterable", "le",
      "lower",   "lt",       "lessthan", "mapping",    "ne",  "none",    "number",  "odd",      "sameas",
      "sequence", "string",  "test",    "true",        "undefined", "upper", "==", "!=", "<", "<=", ">", ">="};
  return kNames;
}

std::string Lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return s;
}

std::string Upper(std::string s) {
  for (char& c : s) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
  }
  return s;
}

// environment.getattr with dotted paths ("a.b"); integers index lists.
Value AttrPath(const Value& item, const std::string& path, int line) {
  Value cur = item;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (cur.is_undefined()) FailUndefined(cur, line);
    cur = numeric ? GetItem(cur, Value::Int(std::stoll(part)), line) : GetItem(cur, Value::String(part), line);
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

// The value a sort/unique key is compared by.
Value SortKey(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::String(Lower(v.str()));
  return v;
}

CallArgs Rest(const CallArgs& a, size_t from) {
  CallArgs r;
  r.line = a.line;
  for (size_t i = from; i < a.positional.size(); ++i) r.positional.push_back(a.positional[i]);
  r.keyword = a.keyword;
  return r;
}

Value SelectOrReject(Evaluator& ev, const Value& seq, CallArgs& a, bool by_attr, bool select) {
  std::vector<Value> out;
  if (!seq.Truthy()) return Value::Generator({});  // jinja: `if value:` guards the loop
  size_t test_pos = by_attr ? 1 : 0;
  std::string attr = by_attr ? a.Get(0, "attribute").ToStr() : "";
  bool has_test = a.positional.size() > test_pos;
  std::string test = has_test ? a.positional[test_pos].ToStr() : "";
  if (has_test && !IsKnownTest(test)) Fail(a.line, "TemplateRuntimeError: No test named '" + test + "'.");
  CallArgs test_args = Rest(a, test_pos + 1);
  test_args.keyword.clear();
  for (const Value& item : Iterate(seq, a.line)) {
    Value x = by_attr ? AttrPath(item, attr, a.line) : item;
    bool r = has_test ? ApplyTest(ev, test, x, test_args) : x.Truthy();
    if (r == select) out.push_back(item);
  }
  return Value::Generator(std::move(out));
}

std::string Spaces(int64_t n) { return RenderBudget::Fill(n, ' '); }

std::string Indent(const std::string& s_in, const Value& width, bool first, bool blank) {
  std::string ind = width.is_string() ? width.str() : Spaces(width.is_undefined() ? 4 : width.int_value());
  std::string s = s_in + "\n";
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\n' || s[i] == '\r') {
      lines.push_back(s.substr(start, i - start));
      if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
      start = i + 1;
    }
  }
  if (start < s.size()) lines.push_back(s.substr(start));
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) rv += (i ? "\n" + ind : "") + lines[i];
  } else if (!lines.empty()) {
    rv = lines[0];
    for (size_t i = 1; i < lines.size(); ++i) rv += "\n" + (lines[i].empty() ? "" : ind + lines[i]);
  }
  if (first) rv = ind + rv;
  return rv;
}

std::optional<int64_t> ParsePyInt(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t b = 0;
  while (b < s.size() && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  s = s.substr(b);
  std::string digits;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (i == 0 && (c == '-' || c == '+')) {
      digits += c;
      continue;
    }
    if (c == '_' && i > 0 && i + 1 < s.size()) continue;
    if (c < '0' || c > '9') return std::nullopt;
    digits += c;
  }
  if (digits.empty() || digits == "-" || digits == "+") return std::nullopt;
  return std::strtoll(digits.c_str(), nullptr, 10);
}

std::optional<double> ParsePyFloat(const std::string& s) {
  char* end = nullptr;
  double d = std::strtod(s.c_str(), &end);
  if (end == s.c_str()) return std::nullopt;
  while (*end && std::isspace(static_cast<unsigned char>(*end))) ++end;
  if (*end) return std::nullopt;
  return d;
}

double PyRound(double x, int64_t digits) {
  double p = std::pow(10.0, static_cast<double>(digits));
  double y = x * p;
  double r = std::nearbyint(y);  // round half to even (default FE_TONEAREST)
  return r / p;
}

Value ToJson(const Value& v, CallArgs& a) {
  JsonDumpOptions o;
  o.ensure_ascii = a.Get(0, "ensure_ascii").Truthy();
  Value indent = a.Get(1, "indent");
  if (indent.is_string()) {
    o.has_indent = true;
    o.indent = indent.str();
  } else if (indent.is_int() || indent.is_bool()) {
    o.has_indent = true;
    o.indent = Spaces(indent.int_value());
  }
  if (o.has_indent) o.item_sep = ",";
  Value seps = a.Get(2, "separators");
  if (seps.is_list() && seps.items().size() == 2) {
    o.item_sep = seps.items()[0].ToStr();
    o.key_sep = seps.items()[1].ToStr();
  }
  o.sort_keys = a.Get(3, "sort_keys").Truthy();
  return Value::String(PyJsonDumps(v, o, a.line));
}

}  // namespace

bool IsKnownFilter(const std::string& name) { return FilterNames().count(name) > 0; }
bool IsKnownTest(const std::string& name) { return TestNames().count(name) > 0; }

Value ApplyFilter(Evaluator& ev, const std::string& f, const Value& v, CallArgs& a) {
  const int line = a.line;
  if (f == "tojson") return ToJson(v, a);
  if (f == "length" || f == "count") return Value::Int(Length(v, line));
  const bool markup = v.is_markup();
  if (f == "string") return Value::StringLike(v.ToStr(), markup);
  if (f == "safe") return Value::Markup(v.ToStr());
  if (f == "trim") {
    CallArgs m;
    m.line = line;
    m.positional.push_back(a.Get(0, "chars"));
    return GetAttribute(Value::StringLike(v.ToStr(), markup), "strip", line).callable().fn(ev, m);
  }
  if (f == "lower") return Value::StringLike(Lower(v.ToStr()), markup);
  if (f == "upper") return Value::StringLike(Upper(v.ToStr()), markup);
  if (f == "capitalize") {
    CallArgs m;
    m.line = line;
    return GetAttribute(Value::StringLike(v.ToStr(), markup), "capitalize", line).callable().fn(ev, m);
  }
  if (f == "title") {
    std::string s = v.ToStr();
    bool boundary = true;
    for (char& c : s) {
      bool sep = c == '-' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '(' || c == '{' ||
                 c == '[' || c == '<';
      if (sep) {
        boundary = true;
        continue;
      }
      c = boundary ? Upper(std::string(1, c))[0] : Lower(std::string(1, c))[0];
      boundary = false;
    }
    return Value::StringLike(std::move(s), markup);
  }
  if (f == "default" || f == "d") {
    bool boolean = a.Get(1, "boolean").Truthy();
    if (v.is_undefined() || (boolean && !v.Truthy())) {
      Value d = a.Get(0, "default_value");
      return d.is_undefined() && !a.Has(0, "default_value") ? Value::String("") : d;
    }
    return v;
  }
  if (f == "join") {
    std::string sep = a.Has(0, "d") ? a.Get(0, "d").ToStr() : "";
    Value attr = a.Get(1, "attribute");
    std::string out;
    bool first = true;
    for (const Value& item : Iterate(v, line)) {
      if (!first) out += sep;
      first = false;
      out += (attr.is_undefined() || attr.is_none() ? item : AttrPath(item, attr.ToStr(), line)).ToStr();
    }
    return Value::String(std::move(out));
  }
  if (f == "list") return Value::List(Iterate(v, line));
  if (f == "items") {
    if (v.is_undefined()) return Value::Generator({});
    if (!v.is_dict()) Fail(line, "TypeError: Can only get item pairs from a mapping.");
    std::vector<Value> out;
    for (const auto& [k, val] : v.dict().entries) out.push_back(Value::Tuple({k, val}));
    return Value::Generator(std::move(out));
  }
  if (f == "first" || f == "last") {
    if (f == "last" && v.is_generator()) Fail(line, "TypeError: 'generator' object is not reversible");
    std::vector<Value> items = Iterate(v, line);
    if (items.empty()) return Value::Undefined(std::string("No ") + f + " item, sequence was empty.");
    return f == "first" ? items.front() : items.back();
  }
  if (f == "reverse") {
    if (v.is_string()) {
      std::vector<uint32_t> cps = DecodeUtf8(v.str());
      std::reverse(cps.begin(), cps.end());
      return Value::String(EncodeUtf8(cps, 0, cps.size()));
    }
    std::vector<Value> items = Iterate(v, line);
    std::reverse(items.begin(), items.end());
    return Value::Generator(std::move(items));
  }
  if (f == "select" || f == "reject") return SelectOrReject(ev, v, a, false, f == "select");
  if (f == "selectattr" || f == "rejectattr") return SelectOrReject(ev, v, a, true, f == "selectattr");
  if (f == "map") {
    std::vector<Value> out;
    if (!v.Truthy()) return Value::Generator({});  // jinja: `if value:` guards the loop
    Value attr = a.Get(99, "attribute");
    if (!attr.is_undefined()) {
      Value def = a.Get(99, "default");
      for (const Value& item : Iterate(v, line)) {
        Value x = AttrPath(item, attr.ToStr(), line);
        out.push_back(x.is_undefined() && !def.is_undefined() ? def : x);
      }
      return Value::Generator(std::move(out));
    }
    if (a.positional.empty()) Fail(line, "TemplateRuntimeError: map requires a filter argument");
    std::string name = a.positional[0].ToStr();
    if (!IsKnownFilter(name)) Fail(line, "TemplateRuntimeError: No filter named '" + name + "'.");
    CallArgs rest = Rest(a, 1);
    for (const Value& item : Iterate(v, line)) out.push_back(ApplyFilter(ev, name, item, rest));
    return Value::Generator(std::move(out));
  }
  if (f == "unique") {
    bool cs = a.Get(0, "case_sensitive").Truthy();
    Value attr = a.Get(1, "attribute");
    std::vector<Value> out, seen;
    for (const Value& item : Iterate(v, line)) {
      Value key = SortKey(attr.is_undefined() || attr.is_none() ? item : AttrPath(item, attr.ToStr(), line), cs);
      if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return s.Equals(key); })) continue;
      seen.push_back(key);
      out.push_back(item);
    }
    return Value::Generator(std::move(out));
  }
  if (f == "sort" || f == "dictsort" || f == "min" || f == "max") {
    bool is_dictsort = f == "dictsort";
    bool cs = a.Get(is_dictsort ? 0 : (f == "sort" ? 1 : 0), "case_sensitive").Truthy();
    bool reverse = f == "sort" ? a.Get(0, "reverse").Truthy() : is_dictsort ? a.Get(2, "reverse").Truthy() : false;
    Value attr = f == "sort" ? a.Get(2, "attribute") : f == "dictsort" ? Value() : a.Get(1, "attribute");
    bool by_value = is_dictsort && a.Get(1, "by").ToStr() == "value";
    std::vector<Value> items;
    if (is_dictsort) {
      if (!v.is_dict()) Fail(line, "TypeError: dictsort requires a mapping");
      for (const auto& [k, val] : v.dict().entries) items.push_back(Value::Tuple({k, val}));
    } else {
      items = Iterate(v, line);
    }
    auto key = [&](const Value& x) {
      Value k = is_dictsort ? x.items()[by_value ? 1 : 0]
                            : (attr.is_undefined() || attr.is_none() ? x : AttrPath(x, attr.ToStr(), line));
      return SortKey(k, cs);
    };
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
      return reverse ? LessThan(key(y), key(x), line) : LessThan(key(x), key(y), line);
    });
    if (f == "min" || f == "max") {
      if (items.empty()) return Value::Undefined("No aggregated item, sequence was empty.");
      return f == "min" ? items.front() : items.back();
    }
    return Value::List(std::move(items));
  }
  if (f == "sum") {
    Value attr = a.Get(0, "attribute");
    Value total = a.Has(1, "start") ? a.Get(1, "start") : Value::Int(0);
    for (const Value& item : Iterate(v, line)) {
      total = BinaryOp("+", total, attr.is_undefined() ? item : AttrPath(item, attr.ToStr(), line), line);
    }
    return total;
  }
  if (f == "replace") {
    CallArgs m;
    m.line = line;
    m.positional = {a.Get(0, "old"), a.Get(1, "new")};
    if (a.Has(2, "count") && !a.Get(2, "count").is_none()) m.positional.push_back(a.Get(2, "count"));
    return GetAttribute(Value::String(v.ToStr()), "replace", line).callable().fn(ev, m);
  }
  if (f == "indent") {
    return Value::StringLike(
        Indent(v.ToStr(), a.Get(0, "width"), a.Get(1, "first").Truthy(), a.Get(2, "blank").Truthy()), markup);
  }
  if (f == "int") {
    Value def = a.Has(0, "default") ? a.Get(0, "default") : Value::Int(0);
    if (v.is_int() || v.is_bool()) return Value::Int(v.int_value());
    if (v.is_float()) return Value::Int(static_cast<int64_t>(std::trunc(v.number())));
    if (v.is_string()) {
      if (auto i = ParsePyInt(v.str())) return Value::Int(*i);
      if (auto d = ParsePyFloat(v.str())) return Value::Int(static_cast<int64_t>(std::trunc(*d)));
    }
    return def;
  }
  if (f == "float") {
    Value def = a.Has(0, "default") ? a.Get(0, "default") : Value::Float(0.0);
    if (v.is_number()) return Value::Float(v.number());
    if (v.is_string()) {
      if (auto d = ParsePyFloat(v.str())) return Value::Float(*d);
    }
    return def;
  }
  if (f == "abs") {
    if (v.is_float()) return Value::Float(std::fabs(v.number()));
    if (v.is_number()) return Value::Int(std::llabs(v.int_value()));
    Fail(line, "TypeError: bad operand type for abs(): '" + v.TypeName() + "'");
  }
  if (f == "round") {
    int64_t precision = a.Get(0, "precision").is_undefined() ? 0 : a.Get(0, "precision").int_value();
    std::string method = a.Has(1, "method") ? a.Get(1, "method").ToStr() : "common";
    if (!v.is_number()) Fail(line, "TypeError: type " + v.TypeName() + " doesn't define __round__ method");
    double p = std::pow(10.0, static_cast<double>(precision));
    if (method == "ceil") return Value::Float(std::ceil(v.number() * p) / p);
    if (method == "floor") return Value::Float(std::floor(v.number() * p) / p);
    if (!v.is_float()) return Value::Int(v.int_value());
    return Value::Float(PyRound(v.number(), precision));
  }
  if (f == "attr") {
    if (v.is_undefined()) FailUndefined(v, line);
    return GetAttribute(v, a.Get(0, "name").ToStr(), line);
  }
  if (f == "escape" || f == "e") return markup ? v : Value::Markup(HtmlEscape(v.ToStr()));
  if (f == "center") {
    std::string s = v.ToStr();
    int64_t width = a.Get(0, "width").is_undefined() ? 80 : a.Get(0, "width").int_value();
    int64_t n = static_cast<int64_t>(CodePointCount(s));
    if (n >= width) return Value::String(s);
    int64_t total = width - n;
    int64_t left = total / 2 + (total & width & 1);
    return Value::String(Spaces(left) + s + Spaces(total - left));
  }
  if (f == "wordcount") {
    int64_t n = 0;
    bool in_word = false;
    for (char c : v.ToStr()) {
      bool w = std::isalnum(static_cast<unsigned char>(c)) || c == '_' || (c & 0x80);
      if (w && !in_word) ++n;
      in_word = w;
    }
    return Value::Int(n);
  }
  Fail(line, "TemplateAssertionError: No filter named '" + f + "'.");
}

bool ApplyTest(Evaluator& ev, const std::string& t, const Value& v, CallArgs& a) {
  const int line = a.line;
  Value arg = a.Get(0, "other");
  if (t == "defined") return !v.is_undefined();
  if (t == "undefined") return v.is_undefined();
  if (t == "none") return v.is_none();
  if (t == "boolean") return v.is_bool();
  if (t == "true") return v.is_bool() && v.bool_value();
  if (t == "false") return v.is_bool() && !v.bool_value();
  if (t == "integer") return v.is_int();
  if (t == "float") return v.is_float();
  if (t == "number") return v.is_number();
  if (t == "string") return v.is_string();
  if (t == "mapping") return v.is_dict();
  if (t == "iterable") return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
  if (t == "sequence") return v.is_string() || (v.is_list() && !v.is_generator()) || v.is_dict() || v.is_undefined();
  if (t == "callable") return v.is_callable();
  if (t == "escaped") return false;
  if (t == "sameas") return v.SameAs(arg);
  if (t == "odd" || t == "even" || t == "divisibleby") {
    if (!v.is_number() || v.is_float()) Fail(line, "TypeError: test '" + t + "' requires an integer");
    if (t == "divisibleby") {
      if (arg.int_value() == 0) Fail(line, "ZeroDivisionError: integer division or modulo by zero");
      return v.int_value() % arg.int_value() == 0;
    }
    return (v.int_value() % 2 != 0) == (t == "odd");
  }
  if (t == "eq" || t == "equalto" || t == "==") return v.Equals(arg);
  if (t == "ne" || t == "!=") return !v.Equals(arg);
  if (t == "lt" || t == "lessthan" || t == "<") return LessThan(v, arg, line);
  if (t == "gt" || t == "greaterthan" || t == ">") return LessThan(arg, v, line);
  if (t == "le" || t == "<=") return !LessThan(arg, v, line);
  if (t == "ge" || t == ">=") return !LessThan(v, arg, line);
  if (t == "in") return Contains(a.Get(0, "seq"), v, line);
  if (t == "lower" || t == "upper") {
    std::string s = v.ToStr();
    return t == "lower" ? Lower(s) == s : Upper(s) == s;
  }
  if (t == "filter") return IsKnownFilter(v.ToStr());
  if (t == "test") return IsKnownTest(v.ToStr());
  Fail(line, "TemplateAssertionError: No test named '" + t + "'.");
}

}  // namespace reprise::chat
