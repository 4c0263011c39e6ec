// Value construction, Python-style printing (str/repr), equality and UTF-8
// helpers (json.dumps is in json_dump.cc). Printing must match CPython byte
// for byte: chat templates print tool arguments with str().
#include "chat/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

namespace reprise::chat {

void Fail(int line, std::string message) {
  throw TemplateError{std::move(message), line, false};
}

namespace {
thread_local RenderBudget* tl_budget = nullptr;
thread_local int tl_depth = 0;
}  // namespace

RecursionGuard::RecursionGuard(int line) {
  if (++tl_depth > kMaxDepth) {
    --tl_depth;
    Fail(line, "RecursionError: maximum recursion depth exceeded");
  }
}
RecursionGuard::~RecursionGuard() { --tl_depth; }

void Value::ReleaseContainer(std::vector<std::shared_ptr<ListData>>* lists,
                             std::vector<std::shared_ptr<DictData>>* dicts) {
  if (list_ && list_.use_count() == 1) lists->push_back(std::move(list_));
  if (dict_ && dict_.use_count() == 1) dicts->push_back(std::move(dict_));
  list_.reset();
  dict_.reset();
}

namespace {
// Takes the nested containers out of `items` / `entries` into the work
// lists, then destroys them one by one, each after its own children were
// taken out: the depth of nesting never reaches the stack.
void DestroyNested(std::vector<std::shared_ptr<ListData>> lists,
                   std::vector<std::shared_ptr<DictData>> dicts) {
  while (!lists.empty() || !dicts.empty()) {
    if (!lists.empty()) {
      std::shared_ptr<ListData> l = std::move(lists.back());
      lists.pop_back();
      for (Value& v : l->items) v.ReleaseContainer(&lists, &dicts);
    } else {
      std::shared_ptr<DictData> d = std::move(dicts.back());
      dicts.pop_back();
      for (auto& [k, v] : d->entries) {
        k.ReleaseContainer(&lists, &dicts);
        v.ReleaseContainer(&lists, &dicts);
      }
    }
  }
}
}  // namespace

ListData::~ListData() {
  std::vector<std::shared_ptr<ListData>> lists;
  std::vector<std::shared_ptr<DictData>> dicts;
  for (Value& v : items) v.ReleaseContainer(&lists, &dicts);
  if (!lists.empty() || !dicts.empty()) DestroyNested(std::move(lists), std::move(dicts));
}

DictData::~DictData() {
  std::vector<std::shared_ptr<ListData>> lists;
  std::vector<std::shared_ptr<DictData>> dicts;
  for (auto& [k, v] : entries) {
    k.ReleaseContainer(&lists, &dicts);
    v.ReleaseContainer(&lists, &dicts);
  }
  if (!lists.empty() || !dicts.empty()) DestroyNested(std::move(lists), std::move(dicts));
}

RenderBudget::RenderBudget(int64_t limit_bytes) : limit_(limit_bytes), outer_(tl_budget) {
  tl_budget = this;
}
RenderBudget::~RenderBudget() { tl_budget = outer_; }

void RenderBudget::Charge(size_t n) {
  RenderBudget* b = tl_budget;
  if (b == nullptr || n == 0) return;
  // used_ <= limit_ here, so the comparison cannot overflow for any n.
  if (n > static_cast<uint64_t>(b->limit_ - b->used_)) {
    const int64_t mib = b->limit_ >> 20;
    b->used_ = 0;  // the error's own strings may be charged while it unwinds
    Fail(0, "MemoryError: the template built more than " + std::to_string(mib) +
                " MiB of strings and output");
  }
  b->used_ += static_cast<int64_t>(n);
}

std::string RenderBudget::Fill(int64_t n, char c) {
  if (n <= 0) return "";
  Charge(static_cast<size_t>(n));
  return std::string(static_cast<size_t>(n), c);
}

Value Value::Undefined(std::string hint) {
  Value v;
  v.s_ = std::move(hint);
  return v;
}
Value Value::None() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}
Value Value::Bool(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.b_ = b;
  return v;
}
Value Value::Int(int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.i_ = i;
  return v;
}
Value Value::Float(double f) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.f_ = f;
  return v;
}
Value Value::String(std::string s) {
  RenderBudget::Charge(s.size());
  Value v;
  v.kind_ = Kind::kString;
  v.s_ = std::move(s);
  return v;
}
Value Value::Markup(std::string s) {
  Value v = String(std::move(s));
  v.markup_ = true;
  return v;
}
Value Value::StringLike(std::string s, bool markup) {
  Value v = String(std::move(s));
  v.markup_ = markup;
  return v;
}
Value Value::List(std::vector<Value> items) {
  // The list's own slots (its strings are charged as they are made or
  // copied): a loop that makes a 300,000-item list per iteration stops at the
  // budget instead of running for minutes.
  RenderBudget::Charge(items.size() * sizeof(Value));
  Value v;
  v.kind_ = Kind::kList;
  v.list_ = std::make_shared<ListData>();
  v.list_->items = std::move(items);
  return v;
}
Value Value::Tuple(std::vector<Value> items) {
  Value v = List(std::move(items));
  v.list_->tuple = true;
  return v;
}
Value Value::Generator(std::vector<Value> items) {
  Value v = List(std::move(items));
  v.list_->generator = true;
  return v;
}
Value Value::Dict() {
  Value v;
  v.kind_ = Kind::kDict;
  v.dict_ = std::make_shared<DictData>();
  return v;
}
Value Value::Namespace() {
  Value v = Dict();
  v.kind_ = Kind::kNamespace;
  return v;
}
Value Value::Function(std::string name, std::function<Value(Evaluator&, CallArgs&)> fn) {
  Value v;
  v.kind_ = Kind::kCallable;
  v.fn_ = std::make_shared<Callable>(Callable{std::move(name), std::move(fn)});
  return v;
}

Value Value::FromJson(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return None();
    case nlohmann::ordered_json::value_t::boolean:
      return Bool(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Int(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned:
      return Int(static_cast<int64_t>(j.get<uint64_t>()));
    case nlohmann::ordered_json::value_t::number_float:
      return Float(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return String(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(FromJson(e));
      return List(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Value d = Dict();
      for (auto it = j.begin(); it != j.end(); ++it) {
        d.dict().entries.emplace_back(String(it.key()), FromJson(it.value()));
      }
      return d;
    }
    default:
      return None();
  }
}

bool Value::is_tuple() const { return kind_ == Kind::kList && list_->tuple; }
bool Value::is_generator() const { return kind_ == Kind::kList && list_->generator; }
double Value::number() const {
  if (kind_ == Kind::kFloat) return f_;
  return static_cast<double>(int_value());
}
std::vector<Value>& Value::items() const { return list_->items; }
DictData& Value::dict() const { return *dict_; }

bool Value::Truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return b_;
    case Kind::kInt:
      return i_ != 0;
    case Kind::kFloat:
      return f_ != 0.0;
    case Kind::kString:
      return !s_.empty();
    case Kind::kList:
      return list_->generator || !list_->items.empty();
    case Kind::kDict:
      return !dict_->entries.empty();
    default:
      return true;
  }
}

std::string Value::TypeName() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kList:
      return list_->generator ? "generator" : list_->tuple ? "tuple" : "list";
    case Kind::kDict:
      return "dict";
    case Kind::kNamespace:
      return "Namespace";
    case Kind::kCallable:
      return "function";
  }
  return "object";
}

std::string FormatPyFloat(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f < 0 ? "-inf" : "inf";
  if (f == 0) return std::signbit(f) ? "-0.0" : "0.0";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), f, std::chars_format::scientific);
  std::string sci(buf, res.ptr);  // e.g. "-1.2345e+02"
  std::string sign;
  if (sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  size_t e_pos = sci.find('e');
  std::string mant = sci.substr(0, e_pos);
  int exp = std::stoi(sci.substr(e_pos + 1));
  std::string digits;
  for (char c : mant) {
    if (c != '.') digits.push_back(c);
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  std::string out;
  if (exp >= -5 + 1 && exp < 16) {  // Python 'r' repr: fixed for -4 <= exp < 16
    if (exp >= 0) {
      std::string int_part = digits.substr(0, std::min<size_t>(digits.size(), exp + 1));
      while (int_part.size() < static_cast<size_t>(exp + 1)) int_part.push_back('0');
      std::string frac = digits.size() > static_cast<size_t>(exp + 1) ? digits.substr(exp + 1) : "0";
      out = int_part + "." + frac;
    } else {
      out = "0." + std::string(-exp - 1, '0') + digits;
    }
  } else {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char eb[16];
    std::snprintf(eb, sizeof(eb), "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += eb;
  }
  return sign + out;
}

std::string PyStrRepr(std::string_view s) {
  bool has_single = s.find('\'') != std::string_view::npos;
  bool has_double = s.find('"') != std::string_view::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  std::vector<uint32_t> cps = DecodeUtf8(s);
  char buf[16];
  for (uint32_t cp : cps) {
    if (cp == '\\') {
      out += "\\\\";
    } else if (cp == static_cast<uint32_t>(quote)) {
      out += '\\';
      out += quote;
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0xa0) || cp == 0xad) {
      std::snprintf(buf, sizeof(buf), "\\x%02x", cp);
      out += buf;
    } else if (cp >= 0xdc80 && cp <= 0xdcff) {  // undecodable byte
      std::snprintf(buf, sizeof(buf), "\\udc%02x", cp & 0xff);
      out += buf;
    } else if (cp == 0x2028 || cp == 0x2029 || cp == 0xfeff || (cp >= 0x200b && cp <= 0x200f)) {
      std::snprintf(buf, sizeof(buf), "\\u%04x", cp);
      out += buf;
    } else {
      AppendUtf8(out, cp);
    }
  }
  out += quote;
  return out;
}

std::string HtmlEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

namespace {

std::string ListToStr(const Value& v) {
  RecursionGuard guard(0);
  const ListData& l = v.list_data();
  if (l.generator) return "<generator object>";
  std::string out = l.tuple ? "(" : "[";
  for (size_t i = 0; i < l.items.size(); ++i) {
    if (i) out += ", ";
    const std::string item = l.items[i].Repr();
    RenderBudget::Charge(item.size());  // a huge list's text is bounded while it is built
    out += item;
  }
  if (l.tuple && l.items.size() == 1) out += ",";
  out += l.tuple ? ")" : "]";
  return out;
}

std::string DictToStr(const Value& v) {
  RecursionGuard guard(0);
  std::string out = "{";
  bool first = true;
  for (const auto& [k, val] : v.dict().entries) {
    if (!first) out += ", ";
    first = false;
    const std::string key = k.Repr(), value = val.Repr();
    RenderBudget::Charge(key.size() + value.size());
    out += key;
    out += ": ";
    out += value;
  }
  out += "}";
  return out;
}

}  // namespace

std::string Value::ToStr() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "";
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return b_ ? "True" : "False";
    case Kind::kInt:
      return std::to_string(i_);
    case Kind::kFloat:
      return FormatPyFloat(f_);
    case Kind::kString:
      return s_;
    case Kind::kList:
      return ListToStr(*this);
    case Kind::kDict:
      return DictToStr(*this);
    case Kind::kNamespace:
      return "<Namespace " + DictToStr(*this) + ">";
    case Kind::kCallable:
      return "<function " + fn_->name + ">";
  }
  return "";
}

std::string Value::Repr() const {
  if (kind_ == Kind::kString) return PyStrRepr(s_);
  if (kind_ == Kind::kUndefined) return "Undefined";
  return ToStr();
}

bool Value::Equals(const Value& o) const {
  RecursionGuard guard(0);
  if (is_number() && o.is_number()) {
    if (kind_ == Kind::kFloat || o.kind_ == Kind::kFloat) return number() == o.number();
    return int_value() == o.int_value();
  }
  if (kind_ != o.kind_) return false;
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return true;
    case Kind::kString:
      return s_ == o.s_;
    case Kind::kList: {
      if (list_ == o.list_) return true;
      if (list_->tuple != o.list_->tuple || list_->generator || o.list_->generator) return false;
      if (list_->items.size() != o.list_->items.size()) return false;
      for (size_t i = 0; i < list_->items.size(); ++i) {
        if (!list_->items[i].Equals(o.list_->items[i])) return false;
      }
      return true;
    }
    case Kind::kDict: {
      if (dict_ == o.dict_) return true;
      if (dict_->entries.size() != o.dict_->entries.size()) return false;
      for (const auto& [k, val] : dict_->entries) {
        const Value* other = o.dict_->Find(k);
        if (!other || !val.Equals(*other)) return false;
      }
      return true;
    }
    case Kind::kNamespace:
      return dict_ == o.dict_;
    case Kind::kCallable:
      return fn_ == o.fn_;
    default:
      return false;
  }
}

bool Value::SameAs(const Value& o) const {
  if (kind_ != o.kind_) return false;
  switch (kind_) {
    case Kind::kList:
      return list_ == o.list_;
    case Kind::kDict:
    case Kind::kNamespace:
      return dict_ == o.dict_;
    case Kind::kCallable:
      return fn_ == o.fn_;
    default:
      return Equals(o);
  }
}

const Value* DictData::Find(const Value& key) const {
  for (const auto& e : entries) {
    if (e.first.Equals(key)) return &e.second;
  }
  return nullptr;
}
const Value* DictData::Find(std::string_view key) const {
  for (const auto& e : entries) {
    if (e.first.is_string() && e.first.str() == key) return &e.second;
  }
  return nullptr;
}
void DictData::Set(Value key, Value value) {
  for (auto& e : entries) {
    if (e.first.Equals(key)) {
      e.second = std::move(value);
      return;
    }
  }
  entries.emplace_back(std::move(key), std::move(value));
}

Value CallArgs::Get(size_t index, std::string_view name) const {
  if (index < positional.size()) return positional[index];
  for (const auto& [k, v] : keyword) {
    if (k == name) return v;
  }
  return Value();
}
bool CallArgs::Has(size_t index, std::string_view name) const {
  if (index < positional.size()) return true;
  for (const auto& kv : keyword) {
    if (kv.first == name) return true;
  }
  return false;
}

// ---- UTF-8 ----------------------------------------------------------------

std::vector<uint32_t> DecodeUtf8(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = s[i];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size();
    uint32_t cp = 0;
    if (ok) {
      cp = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
      for (int k = 1; k < len; ++k) {
        unsigned char cc = s[i + k];
        if ((cc & 0xc0) != 0x80) {
          ok = false;
          break;
        }
        cp = (cp << 6) | (cc & 0x3f);
      }
    }
    if (!ok) {
      out.push_back(0xdc00 + c);  // surrogateescape: round-trips the raw byte
      ++i;
    } else {
      out.push_back(cp);
      i += len;
    }
  }
  return out;
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp >= 0xdc80 && cp <= 0xdcff) {
    out += static_cast<char>(cp & 0xff);
  } else if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

std::string EncodeUtf8(const std::vector<uint32_t>& cps, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i < end && i < cps.size(); ++i) AppendUtf8(out, cps[i]);
  return out;
}

size_t CodePointCount(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xc0) != 0x80) ++n;
  }
  return n;
}

}  // namespace reprise::chat
