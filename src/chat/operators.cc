// Python semantics of Jinja operators, iteration, len(), subscripts and
// slices (see builtins.h). Strings index and slice by code point.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "chat/builtins.h"

namespace reprise::chat {
namespace {

[[noreturn]] void FailOperands(const std::string& op, const Value& l, const Value& r, int line) {
  Fail(line, "TypeError: unsupported operand type(s) for " + op + ": '" + l.TypeName() + "' and '" +
                 r.TypeName() + "'");
}

// Integers are 64-bit here (Python's are unbounded): a result that does not
// fit is a template error, never undefined behaviour.
[[noreturn]] void FailOverflow(int line) {
  Fail(line, "OverflowError: integer result out of the 64-bit range");
}

int64_t CheckedAdd(int64_t a, int64_t b, int line) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) FailOverflow(line);
  return r;
}
int64_t CheckedSub(int64_t a, int64_t b, int line) {
  int64_t r;
  if (__builtin_sub_overflow(a, b, &r)) FailOverflow(line);
  return r;
}
int64_t CheckedMul(int64_t a, int64_t b, int line) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) FailOverflow(line);
  return r;
}

// Python's a // b for b != 0.
int64_t FloorDiv(int64_t a, int64_t b, int line) {
  if (a == INT64_MIN && b == -1) FailOverflow(line);
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// a ** b for b >= 0, by squaring (O(log b) steps whatever b is).
int64_t CheckedPow(int64_t a, int64_t b, int line) {
  int64_t result = 1;
  while (b > 0) {
    if (b & 1) result = CheckedMul(result, a, line);
    b >>= 1;
    if (b > 0) a = CheckedMul(a, a, line);
  }
  return result;
}

constexpr size_t kMaxRepeatBytes = size_t{64} << 20;

Value Repeat(const Value& seq, int64_t n, int line) {
  const size_t unit = seq.is_string() ? seq.str().size() : seq.items().size() * sizeof(Value);
  if (n > 0 && unit > 0 && static_cast<uint64_t>(n) > kMaxRepeatBytes / unit) {
    Fail(line, "MemoryError: repetition result too large");
  }
  // An empty sequence repeated is empty, however large n is (the loops
  // below would otherwise spin n times adding nothing: the fuzzer's hang).
  if (unit == 0 || n < 0) n = 0;
  // The result's bytes (a list's slots and its strings' copies) are charged
  // before it is made: a repeat past the render's budget fails at once
  // instead of being built first (60 MB of one-byte appends, or a thousand
  // copies of a 60 MB string).
  size_t bytes = unit;
  if (!seq.is_string()) {
    for (const Value& item : seq.items()) bytes += item.is_string() ? item.str().size() : 0;
  }
  RenderBudget::Charge(bytes * static_cast<size_t>(n));
  if (seq.is_string()) {
    // Doubling: log2(n) appends, the same bytes as n appends of the string.
    const size_t total = unit * static_cast<size_t>(n);
    std::string out;
    out.reserve(total);
    if (n > 0) out = seq.str();
    while (out.size() < total) out.append(out, 0, std::min(out.size(), total - out.size()));
    return Value::StringLike(std::move(out), seq.is_markup());
  }
  std::vector<Value> items;
  for (int64_t i = 0; i < n; ++i) items.insert(items.end(), seq.items().begin(), seq.items().end());
  return seq.is_tuple() ? Value::Tuple(std::move(items)) : Value::List(std::move(items));
}

bool IsSequence(const Value& v) { return v.is_string() || (v.is_list() && !v.is_generator()); }

}  // namespace

void FailUndefined(const Value& v, int line) {
  Fail(line, "UndefinedError: " + (v.str().empty() ? std::string("value is undefined") : v.str()));
}

Value BinaryOp(const std::string& op, const Value& l, const Value& r, int line) {
  if (op == "~") return Value::String(l.ToStr() + r.ToStr());
  if (l.is_undefined()) FailUndefined(l, line);
  if (r.is_undefined()) FailUndefined(r, line);
  const bool nums = l.is_number() && r.is_number();
  const bool any_float = l.is_float() || r.is_float();
  if (op == "+") {
    if (nums) {
      return any_float ? Value::Float(l.number() + r.number())
                       : Value::Int(CheckedAdd(l.int_value(), r.int_value(), line));
    }
    if (l.is_string() && r.is_string()) {
      if (l.is_markup() == r.is_markup()) return Value::StringLike(l.str() + r.str(), l.is_markup());
      // Markup + str escapes the str (either side).
      return Value::Markup((l.is_markup() ? l.str() : HtmlEscape(l.str())) +
                           (r.is_markup() ? r.str() : HtmlEscape(r.str())));
    }
    if (l.is_list() && r.is_list() && !l.is_generator() && !r.is_generator() && l.is_tuple() == r.is_tuple()) {
      std::vector<Value> items = l.items();
      items.insert(items.end(), r.items().begin(), r.items().end());
      return l.is_tuple() ? Value::Tuple(std::move(items)) : Value::List(std::move(items));
    }
    if (l.is_string() || (l.is_list() && !l.is_generator())) {
      Fail(line, "TypeError: can only concatenate " + l.TypeName() + " (not \"" + r.TypeName() + "\") to " +
                     l.TypeName());
    }
    FailOperands("+", l, r, line);
  }
  if (op == "-") {
    if (nums) {
      return any_float ? Value::Float(l.number() - r.number())
                       : Value::Int(CheckedSub(l.int_value(), r.int_value(), line));
    }
    FailOperands("-", l, r, line);
  }
  if (op == "*") {
    if (nums) {
      return any_float ? Value::Float(l.number() * r.number())
                       : Value::Int(CheckedMul(l.int_value(), r.int_value(), line));
    }
    if (IsSequence(l) && (r.is_int() || r.is_bool())) return Repeat(l, r.int_value(), line);
    if (IsSequence(r) && (l.is_int() || l.is_bool())) return Repeat(r, l.int_value(), line);
    FailOperands("*", l, r, line);
  }
  if (op == "/") {
    if (!nums) FailOperands("/", l, r, line);
    if (r.number() == 0) Fail(line, "ZeroDivisionError: division by zero");
    return Value::Float(l.number() / r.number());
  }
  if (op == "//") {
    if (!nums) FailOperands("//", l, r, line);
    if (r.number() == 0) Fail(line, "ZeroDivisionError: integer division or modulo by zero");
    if (any_float) return Value::Float(std::floor(l.number() / r.number()));
    return Value::Int(FloorDiv(l.int_value(), r.int_value(), line));
  }
  if (op == "%") {
    if (!nums) FailOperands("%", l, r, line);
    if (r.number() == 0) Fail(line, "ZeroDivisionError: integer division or modulo by zero");
    if (any_float) {
      double m = std::fmod(l.number(), r.number());
      if (m != 0 && ((m < 0) != (r.number() < 0))) m += r.number();
      return Value::Float(m);
    }
    // Python's sign rule from the C remainder (|m| < |b|: nothing overflows,
    // INT64_MIN % -1 included).
    const int64_t a = l.int_value(), b = r.int_value();
    int64_t m = b == -1 ? 0 : a % b;
    if (m != 0 && ((m < 0) != (b < 0))) m += b;
    return Value::Int(m);
  }
  if (op == "**") {
    if (!nums) FailOperands("** or pow()", l, r, line);
    if (!any_float && r.int_value() >= 0) {
      return Value::Int(CheckedPow(l.int_value(), r.int_value(), line));
    }
    return Value::Float(std::pow(l.number(), r.number()));
  }
  Fail(line, "unknown operator " + op);
}

Value Negate(const Value& v, int line) {
  if (v.is_undefined()) FailUndefined(v, line);
  if (v.is_float()) return Value::Float(-v.number());
  if (v.is_number()) return Value::Int(CheckedSub(0, v.int_value(), line));
  Fail(line, "TypeError: bad operand type for unary -: '" + v.TypeName() + "'");
}

bool LessThan(const Value& l, const Value& r, int line) {
  if (l.is_undefined()) FailUndefined(l, line);
  if (r.is_undefined()) FailUndefined(r, line);
  if (l.is_number() && r.is_number()) return l.number() < r.number();
  if (l.is_string() && r.is_string()) return l.str() < r.str();
  if (l.is_list() && r.is_list() && l.is_tuple() == r.is_tuple() && !l.is_generator() && !r.is_generator()) {
    const auto& a = l.items();
    const auto& b = r.items();
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
      if (a[i].Equals(b[i])) continue;
      return LessThan(a[i], b[i], line);
    }
    return a.size() < b.size();
  }
  Fail(line, "TypeError: '<' not supported between instances of '" + l.TypeName() + "' and '" + r.TypeName() +
                 "'");
}

bool Contains(const Value& container, const Value& item, int line) {
  switch (container.kind()) {
    case Value::Kind::kString:
      if (item.is_undefined()) FailUndefined(item, line);
      if (!item.is_string()) {
        Fail(line, "TypeError: 'in <string>' requires string as left operand, not " + item.TypeName());
      }
      return container.str().find(item.str()) != std::string::npos;
    case Value::Kind::kList:
      for (const Value& v : container.items()) {
        if (v.Equals(item)) return true;
      }
      return false;
    case Value::Kind::kDict:
      return container.dict().Find(item) != nullptr;
    case Value::Kind::kUndefined:
      return false;
    default:
      Fail(line, "TypeError: argument of type '" + container.TypeName() + "' is not iterable");
  }
}

bool CompareOp(const std::string& op, const Value& l, const Value& r, int line) {
  if (op == "==") return l.Equals(r);
  if (op == "!=") return !l.Equals(r);
  if (op == "<") return LessThan(l, r, line);
  if (op == ">") return LessThan(r, l, line);
  if (op == "<=") return LessThan(l, r, line) || l.Equals(r);
  if (op == ">=") return LessThan(r, l, line) || l.Equals(r);
  if (op == "in") return Contains(r, l, line);
  if (op == "notin") return !Contains(r, l, line);
  Fail(line, "unknown comparison " + op);
}

// The items' slots are charged to the render's budget before they are made
// (a string's at one Value per byte, an upper bound on its characters): a
// 20 MB string iterated is 2 GB of Values, which must fail with a
// MemoryError, not be allocated first.
std::vector<Value> Iterate(const Value& v, int line) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return {};
    case Value::Kind::kList:
      RenderBudget::Charge(v.items().size() * sizeof(Value));
      return v.items();
    case Value::Kind::kDict: {
      RenderBudget::Charge(v.dict().entries.size() * sizeof(Value));
      std::vector<Value> keys;
      for (const auto& kv : v.dict().entries) keys.push_back(kv.first);
      return keys;
    }
    case Value::Kind::kString: {
      RenderBudget::Charge(v.str().size() * sizeof(Value));
      std::vector<Value> chars;
      std::vector<uint32_t> cps = DecodeUtf8(v.str());
      for (size_t i = 0; i < cps.size(); ++i) chars.push_back(Value::String(EncodeUtf8(cps, i, i + 1)));
      return chars;
    }
    default:
      Fail(line, "TypeError: '" + v.TypeName() + "' object is not iterable");
  }
}

int64_t Length(const Value& v, int line) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return 0;
    case Value::Kind::kString:
      return static_cast<int64_t>(CodePointCount(v.str()));
    case Value::Kind::kList:
      if (v.is_generator()) Fail(line, "TypeError: object of type 'generator' has no len()");
      return static_cast<int64_t>(v.items().size());
    case Value::Kind::kDict:
      return static_cast<int64_t>(v.dict().entries.size());
    default:
      Fail(line, "TypeError: object of type '" + v.TypeName() + "' has no len()");
  }
}

Value GetItem(const Value& obj, const Value& key, int line) {
  auto missing = [&]() {
    std::string type = obj.is_none() ? "None" : obj.TypeName() + " object";
    if (key.is_string()) return Value::Undefined("'" + type + "' has no attribute " + PyStrRepr(key.str()));
    return Value::Undefined("'" + type + "' has no element " + key.Repr());
  };
  if (obj.is_dict() || obj.is_namespace()) {
    const Value* v = obj.dict().Find(key);
    if (v) return *v;
    if (obj.is_dict() && key.is_string()) return GetAttribute(obj, key.str(), line);
    return missing();
  }
  if ((obj.is_list() && !obj.is_generator()) || obj.is_string()) {
    if (!(key.is_int() || key.is_bool())) {
      if (key.is_string()) return GetAttribute(obj, key.str(), line);
      return missing();
    }
    int64_t idx = key.int_value();
    if (obj.is_list()) {
      int64_t n = static_cast<int64_t>(obj.items().size());
      if (idx < 0) idx += n;
      if (idx < 0 || idx >= n) return missing();
      return obj.items()[idx];
    }
    std::vector<uint32_t> cps = DecodeUtf8(obj.str());
    int64_t n = static_cast<int64_t>(cps.size());
    if (idx < 0) idx += n;
    if (idx < 0 || idx >= n) return missing();
    return Value::StringLike(EncodeUtf8(cps, idx, idx + 1), obj.is_markup());
  }
  if (key.is_string()) return GetAttribute(obj, key.str(), line);
  return missing();
}

Value Slice(const Value& obj, const Value& start_v, const Value& stop_v, const Value& step_v, int line) {
  auto as_index = [&](const Value& v) -> std::optional<int64_t> {
    if (v.is_none()) return std::nullopt;
    if (v.is_int() || v.is_bool()) return v.int_value();
    if (v.is_undefined()) FailUndefined(v, line);
    Fail(line, "TypeError: slice indices must be integers or None or have an __index__ method");
  };
  if (!IsSequence(obj)) Fail(line, "TypeError: '" + obj.TypeName() + "' object is not subscriptable");
  std::vector<uint32_t> cps;
  int64_t n;
  if (obj.is_string()) {
    cps = DecodeUtf8(obj.str());
    n = static_cast<int64_t>(cps.size());
  } else {
    n = static_cast<int64_t>(obj.items().size());
  }
  int64_t step = as_index(step_v).value_or(1);
  if (step == 0) Fail(line, "ValueError: slice step cannot be zero");
  auto clamp = [&](std::optional<int64_t> v, bool is_start) -> int64_t {
    if (!v) return step > 0 ? (is_start ? 0 : n) : (is_start ? n - 1 : -1);
    int64_t x = *v;
    if (x < 0) {
      x += n;
      if (x < 0) x = step > 0 ? 0 : -1;
    } else if (x >= n) {
      x = step > 0 ? n : n - 1;
    }
    return x;
  };
  int64_t start = clamp(as_index(start_v), true);
  int64_t stop = clamp(as_index(stop_v), false);
  std::vector<int64_t> idx;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) idx.push_back(i);
  if (obj.is_string()) {
    std::string out;
    for (int64_t i : idx) AppendUtf8(out, cps[i]);
    return Value::StringLike(std::move(out), obj.is_markup());
  }
  std::vector<Value> items;
  for (int64_t i : idx) items.push_back(obj.items()[i]);
  return obj.is_tuple() ? Value::Tuple(std::move(items)) : Value::List(std::move(items));
}

}  // namespace reprise::chat
