// Values of the Jinja engine, with Python semantics: None is distinct from
// undefined, ints and floats print like Python's str(), dicts keep insertion
// order, lists/dicts/namespaces are shared by reference (like Python objects).
//
// Internal to src/chat: evaluation errors are thrown as TemplateError and are
// caught at the module boundary (ChatTemplate::Parse/Render), never escaping.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace reprise::chat {

// An error raised while parsing or rendering. `line` is 1-based (0: unknown).
// `from_template` marks raise_exception(msg): `message` is then the template's
// own text, verbatim.
struct TemplateError {
  std::string message;
  int line = 0;
  bool from_template = false;
};
[[noreturn]] void Fail(int line, std::string message);

class Value;
struct ListData;
struct DictData;
struct CallArgs;
class Evaluator;

// A callable (builtin function, bound method, macro, loop.cycle).
struct Callable {
  std::string name;
  std::function<Value(Evaluator&, CallArgs&)> fn;
};

// A render's memory bound. While an Evaluator renders (RenderBudget is
// installed on its thread), the bytes of every string value made or copied
// and of every piece of output written are charged to it; past its limit the
// render fails with a MemoryError (TemplateError) instead of growing until
// the process is killed (a template doubling a string forty times, or
// repeating a list of one large string, asks for terabytes). Charged bytes
// are a running total, not what is alive at once: an upper bound, so real
// templates stay orders of magnitude below the default limit.
class RenderBudget {
 public:
  explicit RenderBudget(int64_t limit_bytes);
  ~RenderBudget();
  RenderBudget(const RenderBudget&) = delete;
  RenderBudget& operator=(const RenderBudget&) = delete;
  // Charges n bytes to the budget installed on this thread (none: nothing).
  static void Charge(size_t n);
  // n copies of c (n <= 0: none, as Python's c * n) for a width the
  // template chose (indent, center, zfill, tojson's indent), charged before
  // they are made: a width of 10^18 is a MemoryError, not a request to the
  // allocator for exabytes.
  static std::string Fill(int64_t n, char c);

 private:
  int64_t limit_, used_ = 0;
  RenderBudget* outer_;
};

// Bounds the depth of everything in a render that recurses on the thread's
// stack — expression evaluation and the printing, comparing and json-dumping
// of nested values — so a hostile template (an expression nested thousands
// deep, a list nested in itself 100,000 times) fails with Python's
// RecursionError instead of overflowing the stack. Real templates nest a few
// dozen deep.
class RecursionGuard {
 public:
  static constexpr int kMaxDepth = 500;
  explicit RecursionGuard(int line);
  ~RecursionGuard();
  RecursionGuard(const RecursionGuard&) = delete;
  RecursionGuard& operator=(const RecursionGuard&) = delete;
};

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kCallable };

  Value() = default;  // undefined
  // Copies charge their string payload to the running render's budget.
  Value(const Value& o)
      : kind_(o.kind_), b_(o.b_), markup_(o.markup_), i_(o.i_), f_(o.f_), s_(o.s_),
        list_(o.list_), dict_(o.dict_), fn_(o.fn_) {
    if (!s_.empty()) RenderBudget::Charge(s_.size());
  }
  Value& operator=(const Value& o) {
    if (this != &o) *this = Value(o);
    return *this;
  }
  Value(Value&&) noexcept = default;
  Value& operator=(Value&&) noexcept = default;
  static Value Undefined(std::string hint = "");
  static Value None();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Float(double f);
  static Value String(std::string s);
  // markupsafe.Markup: a str that escapes plain strs joined to it with `+`.
  static Value Markup(std::string s);
  // `s` as a string value, a Markup when `markup` is set.
  static Value StringLike(std::string s, bool markup);
  static Value List(std::vector<Value> items = {});
  static Value Tuple(std::vector<Value> items);
  static Value Generator(std::vector<Value> items);  // result of map/select/...
  static Value Dict();
  static Value Namespace();
  static Value Function(std::string name, std::function<Value(Evaluator&, CallArgs&)> fn);
  static Value FromJson(const nlohmann::ordered_json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_markup() const { return kind_ == Kind::kString && markup_; }
  bool is_list() const { return kind_ == Kind::kList; }  // incl. tuples and generators
  bool is_tuple() const;
  bool is_generator() const;
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }
  bool is_callable() const { return kind_ == Kind::kCallable; }

  bool bool_value() const { return b_; }
  int64_t int_value() const { return kind_ == Kind::kBool ? (b_ ? 1 : 0) : i_; }
  double number() const;  // int, bool or float as double
  const std::string& str() const { return s_; }  // strings; undefined: the hint
  std::vector<Value>& items() const;             // lists
  DictData& dict() const;                        // dicts and namespaces
  const Callable& callable() const { return *fn_; }
  ListData& list_data() const { return *list_; }
  // Moves this value's list or dict into `lists` / `dicts` when nothing else
  // holds it (its destruction is then the caller's): how ListData and
  // DictData destroy deeply nested values without recursing.
  void ReleaseContainer(std::vector<std::shared_ptr<ListData>>* lists,
                        std::vector<std::shared_ptr<DictData>>* dicts);

  bool Truthy() const;
  // Python's type name for messages: 'str', 'dict', 'NoneType', ...
  std::string TypeName() const;
  // Python str(x) / repr(x). Undefined prints as "".
  std::string ToStr() const;
  std::string Repr() const;
  // Deep Python equality (1 == 1.0 == True).
  bool Equals(const Value& other) const;
  // Identity: same shared object, or equal scalars.
  bool SameAs(const Value& other) const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool b_ = false;
  bool markup_ = false;
  int64_t i_ = 0;
  double f_ = 0;
  std::string s_;
  std::shared_ptr<ListData> list_;
  std::shared_ptr<DictData> dict_;
  std::shared_ptr<const Callable> fn_;
};

// Both containers destroy nested containers iteratively (~ListData,
// ~DictData): a list nested in itself a million times is freed in a loop.
struct ListData {
  std::vector<Value> items;
  bool tuple = false;
  bool generator = false;
  ListData() = default;
  ~ListData();
};

// Insertion-ordered mapping. Lookup is linear: template dicts are small.
struct DictData {
  std::vector<std::pair<Value, Value>> entries;
  DictData() = default;
  ~DictData();
  const Value* Find(const Value& key) const;
  const Value* Find(std::string_view key) const;
  void Set(Value key, Value value);
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
  int line = 0;
  // Argument `index` by position, else by keyword `name`, else undefined.
  Value Get(size_t index, std::string_view name) const;
  bool Has(size_t index, std::string_view name) const;
};

// Python formatting helpers.
std::string FormatPyFloat(double f);
std::string PyStrRepr(std::string_view s);
// markupsafe.escape: & < > " ' as HTML entities.
std::string HtmlEscape(std::string_view s);

// Python json.dumps(x, ensure_ascii=False, indent=indent, separators=..., sort_keys=...).
struct JsonDumpOptions {
  bool ensure_ascii = false;
  bool has_indent = false;
  std::string indent;  // the indent unit
  std::string item_sep = ", ";
  std::string key_sep = ": ";
  bool sort_keys = false;
};
std::string PyJsonDumps(const Value& v, const JsonDumpOptions& options, int line);

// UTF-8 code point helpers (strings index by code point, like Python).
std::vector<uint32_t> DecodeUtf8(std::string_view s);
std::string EncodeUtf8(const std::vector<uint32_t>& cps, size_t begin, size_t end);
void AppendUtf8(std::string& out, uint32_t cp);
size_t CodePointCount(std::string_view s);

}  // namespace reprise::chat
