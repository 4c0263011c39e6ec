// Statement execution and expression evaluation (see evaluator.h), plus the
// globals transformers provides: raise_exception, strftime_now, and Jinja's
// range, dict, namespace.
#include "chat/evaluator.h"

#include <string_view>

#include "chat/builtins.h"

namespace reprise::chat {
namespace {

constexpr int kMaxCallDepth = 200;
constexpr int64_t kMaxRange = 100000;  // jinja2.sandbox.MAX_RANGE

std::string StrFTime(const std::tm& tm, const std::string& fmt) {
  if (fmt.empty()) return "";
  std::string buf(256 + fmt.size() * 8, '\0');
  size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
  buf.resize(n);
  return buf;
}

// Appends rendered text to `out`, charged to the render's budget.
void Emit(std::string& out, std::string_view text) {
  RenderBudget::Charge(text.size());
  out += text;
}

}  // namespace

std::string Evaluator::Render(const Program& program,
                              const std::vector<std::pair<std::string, Value>>& context) {
  auto globals = std::make_shared<Scope>();
  InstallGlobals(*globals);
  scope_ = std::make_shared<Scope>();
  scope_->parent = globals;
  RenderBudget budget(max_bytes_);
  for (const auto& [k, v] : context) scope_->vars[k] = v;
  std::string out;
  Exec(program.body, out);
  return out;
}

void Evaluator::InstallGlobals(Scope& g) {
  g.vars["raise_exception"] = Value::Function("raise_exception", [](Evaluator&, CallArgs& a) -> Value {
    throw TemplateError{a.Get(0, "message").ToStr(), a.line, true};
  });
  g.vars["strftime_now"] = Value::Function("strftime_now", [](Evaluator& ev, CallArgs& a) -> Value {
    Value fmt = a.Get(0, "format");
    if (!fmt.is_string()) Fail(a.line, "TypeError: strftime() argument 1 must be str, not " + fmt.TypeName());
    return Value::String(StrFTime(ev.now(), fmt.str()));
  });
  g.vars["range"] = Value::Function("range", [](Evaluator&, CallArgs& a) -> Value {
    int64_t start = 0, stop = 0, step = 1;
    for (const auto& v : a.positional) {
      if (!v.is_int() && !v.is_bool()) {
        Fail(a.line, "TypeError: '" + v.TypeName() + "' object cannot be interpreted as an integer");
      }
    }
    if (a.positional.size() == 1) {
      stop = a.positional[0].int_value();
    } else if (a.positional.size() >= 2) {
      start = a.positional[0].int_value();
      stop = a.positional[1].int_value();
      if (a.positional.size() >= 3) step = a.positional[2].int_value();
    } else {
      Fail(a.line, "TypeError: range expected at least 1 argument, got 0");
    }
    if (step == 0) Fail(a.line, "ValueError: range() arg 3 must not be zero");
    std::vector<Value> items;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      if (static_cast<int64_t>(items.size()) >= kMaxRange) {
        Fail(a.line, "OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
      }
      items.push_back(Value::Int(i));
    }
    return Value::List(std::move(items));
  });
  g.vars["dict"] = Value::Function("dict", [](Evaluator&, CallArgs& a) -> Value {
    Value d = Value::Dict();
    if (!a.positional.empty()) {
      const Value& src = a.positional[0];
      if (src.is_dict()) {
        for (const auto& kv : src.dict().entries) d.dict().Set(kv.first, kv.second);
      } else {
        for (const Value& pair : Iterate(src, a.line)) {
          if (!pair.is_list() || pair.items().size() != 2) {
            Fail(a.line, "ValueError: dictionary update sequence element has wrong length");
          }
          d.dict().Set(pair.items()[0], pair.items()[1]);
        }
      }
    }
    for (const auto& [k, v] : a.keyword) d.dict().Set(Value::String(k), v);
    return d;
  });
  g.vars["namespace"] = Value::Function("namespace", [](Evaluator&, CallArgs& a) -> Value {
    Value ns = Value::Namespace();
    for (const Value& p : a.positional) {
      if (p.is_dict()) {
        for (const auto& kv : p.dict().entries) ns.dict().Set(kv.first, kv.second);
      }
    }
    for (const auto& [k, v] : a.keyword) ns.dict().Set(Value::String(k), v);
    return ns;
  });
}

Value Evaluator::Lookup(const std::string& name) const {
  for (const Scope* s = scope_.get(); s != nullptr; s = s->parent.get()) {
    auto it = s->vars.find(name);
    if (it != s->vars.end()) return it->second;
  }
  return Value::Undefined("'" + name + "' is undefined");
}

Evaluator::Flow Evaluator::Exec(const Body& body, std::string& out) {
  for (const auto& s : body) {
    Flow f = ExecStmt(*s, out);
    if (f != Flow::kNormal) return f;
  }
  return Flow::kNormal;
}

Evaluator::Flow Evaluator::ExecStmt(const Stmt& s, std::string& out) {
  if (++steps_ > max_steps_) Fail(s.line, "RuntimeError: template exceeded its execution budget");
  switch (s.kind) {
    case Stmt::Kind::kText:
      Emit(out, s.text);
      return Flow::kNormal;
    case Stmt::Kind::kOutput:
      Emit(out, Eval(*s.expr).ToStr());
      return Flow::kNormal;
    case Stmt::Kind::kIf:
      for (const auto& [cond, body] : s.branches) {
        if (Eval(*cond).Truthy()) return Exec(body, out);
      }
      return Exec(s.else_body, out);
    case Stmt::Kind::kFor:
      ExecFor(s, out);
      return Flow::kNormal;
    case Stmt::Kind::kSet:
      Assign(s.target, Eval(*s.expr), s.line);
      return Flow::kNormal;
    case Stmt::Kind::kBlockSet: {
      std::string captured;
      Exec(s.body, captured);
      Assign(s.target, ApplyFilterChain(s.expr.get(), Value::String(std::move(captured))), s.line);
      return Flow::kNormal;
    }
    case Stmt::Kind::kMacro:
      scope_->vars[s.text] = MakeMacro(s, scope_);
      return Flow::kNormal;
    case Stmt::Kind::kCallBlock: {
      Value caller = MakeMacro(s, scope_);
      const Expr& call = *s.expr;
      Value callee = Eval(*call.args[0]);
      CallArgs args = EvalArgs(call, 1);
      args.keyword.emplace_back("caller", caller);
      Emit(out, CallValue(callee, args).ToStr());
      return Flow::kNormal;
    }
    case Stmt::Kind::kFilterBlock: {
      std::string captured;
      Exec(s.body, captured);
      Emit(out, ApplyFilterChain(s.expr.get(), Value::String(std::move(captured))).ToStr());
      return Flow::kNormal;
    }
    case Stmt::Kind::kBreak:
      return Flow::kBreak;
    case Stmt::Kind::kContinue:
      return Flow::kContinue;
    case Stmt::Kind::kBodyOnly:
      return Exec(s.body, out);
  }
  return Flow::kNormal;
}

void Evaluator::Assign(const Target& t, const Value& v, int line) {
  if (!t.attr.empty()) {
    Value ns = Lookup(t.names[0]);
    if (!ns.is_namespace()) Fail(line, "TemplateRuntimeError: cannot assign attribute on non-namespace object");
    ns.dict().Set(Value::String(t.attr), v);
    if (assigned_seen_.insert(&ns.dict()).second) assigned_namespaces_.push_back(ns);
    return;
  }
  if (!t.is_tuple) {
    scope_->vars[t.names[0]] = v;
    return;
  }
  std::vector<Value> items = Iterate(v, line);
  if (items.size() != t.names.size()) {
    Fail(line, items.size() > t.names.size()
                   ? "ValueError: too many values to unpack (expected " + std::to_string(t.names.size()) + ")"
                   : "ValueError: not enough values to unpack (expected " + std::to_string(t.names.size()) +
                         ", got " + std::to_string(items.size()) + ")");
  }
  for (size_t i = 0; i < items.size(); ++i) scope_->vars[t.names[i]] = items[i];
}

void Evaluator::ExecFor(const Stmt& s, std::string& out) {
  std::vector<Value> items = Iterate(Eval(*s.expr), s.line);
  steps_ += static_cast<int64_t>(items.size()) / 16;  // building the sequence costs too
  auto outer = scope_;
  if (s.cond) {
    std::vector<Value> kept;
    for (const Value& item : items) {
      scope_ = std::make_shared<Scope>();
      scope_->parent = outer;
      Assign(s.target, item, s.line);
      bool keep = Eval(*s.cond).Truthy();
      scope_ = outer;
      if (keep) kept.push_back(item);
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    Exec(s.else_body, out);
    return;
  }
  const int64_t n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    if (++steps_ > max_steps_) Fail(s.line, "RuntimeError: template exceeded its execution budget");
    scope_ = std::make_shared<Scope>();
    scope_->parent = outer;
    Value loop = Value::Dict();
    DictData& d = loop.dict();
    d.Set(Value::String("index"), Value::Int(i + 1));
    d.Set(Value::String("index0"), Value::Int(i));
    d.Set(Value::String("revindex"), Value::Int(n - i));
    d.Set(Value::String("revindex0"), Value::Int(n - i - 1));
    d.Set(Value::String("first"), Value::Bool(i == 0));
    d.Set(Value::String("last"), Value::Bool(i == n - 1));
    d.Set(Value::String("length"), Value::Int(n));
    d.Set(Value::String("depth"), Value::Int(1));
    d.Set(Value::String("depth0"), Value::Int(0));
    if (i > 0) d.Set(Value::String("previtem"), items[i - 1]);
    if (i + 1 < n) d.Set(Value::String("nextitem"), items[i + 1]);
    d.Set(Value::String("cycle"), Value::Function("cycle", [i](Evaluator&, CallArgs& a) -> Value {
            if (a.positional.empty()) Fail(a.line, "TypeError: no items for cycling given");
            return a.positional[i % a.positional.size()];
          }));
    scope_->vars["loop"] = loop;
    Assign(s.target, items[i], s.line);
    Flow f;
    try {
      f = Exec(s.body, out);
    } catch (...) {
      scope_ = outer;
      throw;
    }
    scope_ = outer;
    if (f == Flow::kBreak) break;
  }
}

Evaluator::~Evaluator() {
  for (const std::shared_ptr<Scope>& scope : macro_scopes_) {
    scope->vars.clear();
    scope->parent.reset();
  }
  for (Value& ns : assigned_namespaces_) ns.dict().entries.clear();
}

Value Evaluator::MakeMacro(const Stmt& s, std::shared_ptr<Scope> closure) {
  macro_scopes_.push_back(closure);
  const Stmt* stmt = &s;
  std::string name = s.kind == Stmt::Kind::kMacro ? s.text : "caller";
  return Value::Function(name, [stmt, closure, name](Evaluator& ev, CallArgs& a) -> Value {
    if (ev.call_depth_ >= kMaxCallDepth) Fail(a.line, "RecursionError: maximum macro call depth exceeded");
    auto saved = ev.scope_;
    ev.scope_ = std::make_shared<Scope>();
    ev.scope_->parent = closure;
    ++ev.call_depth_;
    std::string out;
    try {
      std::vector<Value> varargs;
      for (size_t i = 0; i < a.positional.size(); ++i) {
        if (i < stmt->params.size()) {
          ev.scope_->vars[stmt->params[i].name] = a.positional[i];
        } else {
          varargs.push_back(a.positional[i]);
        }
      }
      Value kwargs = Value::Dict();
      for (const auto& [k, v] : a.keyword) {
        bool is_param = false;
        for (size_t i = 0; i < stmt->params.size(); ++i) {
          if (stmt->params[i].name == k) {
            if (i < a.positional.size()) {
              Fail(a.line, "TypeError: macro '" + name + "' got multiple values for argument '" + k + "'");
            }
            is_param = true;
          }
        }
        if (is_param || k == "caller") {
          ev.scope_->vars[k] = v;
        } else {
          kwargs.dict().Set(Value::String(k), v);
        }
      }
      for (const auto& p : stmt->params) {
        if (ev.scope_->vars.count(p.name)) continue;
        ev.scope_->vars[p.name] = p.default_value
                                      ? ev.Eval(*p.default_value)
                                      : Value::Undefined("parameter '" + p.name + "' was not provided");
      }
      ev.scope_->vars["varargs"] = Value::Tuple(std::move(varargs));
      ev.scope_->vars["kwargs"] = kwargs;
      ev.Exec(stmt->body, out);
    } catch (...) {
      ev.scope_ = saved;
      --ev.call_depth_;
      throw;
    }
    ev.scope_ = saved;
    --ev.call_depth_;
    return Value::String(std::move(out));
  });
}

CallArgs Evaluator::EvalArgs(const Expr& e, size_t first_positional) {
  CallArgs args;
  args.line = e.line;
  for (size_t i = first_positional; i < e.args.size(); ++i) args.positional.push_back(Eval(*e.args[i]));
  for (const auto& [k, v] : e.kwargs) args.keyword.emplace_back(k, Eval(*v));
  return args;
}

Value Evaluator::CallValue(const Value& callee, CallArgs& args) {
  if (callee.is_undefined()) FailUndefined(callee, args.line);
  if (!callee.is_callable()) Fail(args.line, "TypeError: '" + callee.TypeName() + "' object is not callable");
  return callee.callable().fn(*this, args);
}

Value Evaluator::ApplyFilterChain(const Expr* chain, Value base) {
  if (chain == nullptr) return base;
  Value inner = ApplyFilterChain(chain->args[0].get(), std::move(base));
  CallArgs args = EvalArgs(*chain, 1);
  return ApplyFilter(*this, chain->name, inner, args);
}

Value Evaluator::Eval(const Expr& e) {
  RecursionGuard guard(e.line);
  switch (e.kind) {
    case Expr::Kind::kLiteral:
      return e.literal;
    case Expr::Kind::kName:
      return Lookup(e.name);
    case Expr::Kind::kList:
    case Expr::Kind::kTuple: {
      std::vector<Value> items;
      items.reserve(e.args.size());
      for (const auto& a : e.args) items.push_back(Eval(*a));
      return e.kind == Expr::Kind::kList ? Value::List(std::move(items)) : Value::Tuple(std::move(items));
    }
    case Expr::Kind::kDict: {
      Value d = Value::Dict();
      for (size_t i = 0; i + 1 < e.args.size(); i += 2) d.dict().Set(Eval(*e.args[i]), Eval(*e.args[i + 1]));
      return d;
    }
    case Expr::Kind::kGetAttr: {
      Value obj = Eval(*e.args[0]);
      if (obj.is_undefined()) FailUndefined(obj, e.line);
      return GetAttribute(obj, e.name, e.line);
    }
    case Expr::Kind::kGetItem: {
      Value obj = Eval(*e.args[0]);
      if (obj.is_undefined()) FailUndefined(obj, e.line);
      return GetItem(obj, Eval(*e.args[1]), e.line);
    }
    case Expr::Kind::kSlice: {
      Value obj = Eval(*e.args[0]);
      if (obj.is_undefined()) FailUndefined(obj, e.line);
      auto opt = [&](size_t i) { return e.args[i] ? Eval(*e.args[i]) : Value::None(); };
      return Slice(obj, opt(1), opt(2), opt(3), e.line);
    }
    case Expr::Kind::kCall: {
      Value callee = Eval(*e.args[0]);
      CallArgs args = EvalArgs(e, 1);
      return CallValue(callee, args);
    }
    case Expr::Kind::kFilter: {
      Value v = e.args[0] ? Eval(*e.args[0]) : Value();
      CallArgs args = EvalArgs(e, 1);
      return ApplyFilter(*this, e.name, v, args);
    }
    case Expr::Kind::kTest: {
      Value v = Eval(*e.args[0]);
      CallArgs args = EvalArgs(e, 1);
      bool r = ApplyTest(*this, e.name, v, args);
      return Value::Bool(e.negate ? !r : r);
    }
    case Expr::Kind::kNot:
      return Value::Bool(!Eval(*e.args[0]).Truthy());
    case Expr::Kind::kNeg:
      return Negate(Eval(*e.args[0]), e.line);
    case Expr::Kind::kPos: {
      Value v = Eval(*e.args[0]);
      if (v.is_undefined()) FailUndefined(v, e.line);
      if (!v.is_number()) Fail(e.line, "TypeError: bad operand type for unary +: '" + v.TypeName() + "'");
      return v.is_bool() ? Value::Int(v.int_value()) : v;
    }
    case Expr::Kind::kBinary:
      return BinaryOp(e.name, Eval(*e.args[0]), Eval(*e.args[1]), e.line);
    case Expr::Kind::kAnd: {
      Value l = Eval(*e.args[0]);
      return l.Truthy() ? Eval(*e.args[1]) : l;
    }
    case Expr::Kind::kOr: {
      Value l = Eval(*e.args[0]);
      return l.Truthy() ? l : Eval(*e.args[1]);
    }
    case Expr::Kind::kCompare: {
      Value l = Eval(*e.args[0]);
      for (size_t i = 0; i < e.ops.size(); ++i) {
        Value r = Eval(*e.args[i + 1]);
        if (!CompareOp(e.ops[i], l, r, e.line)) return Value::Bool(false);
        l = std::move(r);
      }
      return Value::Bool(true);
    }
    case Expr::Kind::kCondExpr: {
      if (Eval(*e.args[0]).Truthy()) return Eval(*e.args[1]);
      if (e.args[2]) return Eval(*e.args[2]);
      return Value::Undefined("the inline if-expression on line " + std::to_string(e.line) +
                              " evaluated to false and no else section was defined.");
    }
  }
  return Value();
}

}  // namespace reprise::chat
