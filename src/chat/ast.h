// The template syntax tree. Nodes are generic (a kind plus children) to keep
// the parser and evaluator small; each kind documents which fields it uses.
// A parsed template is immutable; rendering never modifies it.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/value.h"

namespace reprise::chat {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,   // literal
    kName,      // name
    kList,      // args
    kTuple,     // args
    kDict,      // args: key0, value0, key1, value1, ...
    kGetAttr,   // args[0].name
    kGetItem,   // args[0][args[1]]
    kSlice,     // args[0][args[1]:args[2]:args[3]] (null = omitted)
    kCall,      // args[0](args[1:], kwargs)
    kFilter,    // args[0] | name(args[1:], kwargs)
    kTest,      // args[0] is [not: negate] name(args[1:], kwargs)
    kNot,       // not args[0]
    kNeg,       // -args[0]
    kPos,       // +args[0]
    kBinary,    // args[0] name args[1]; name in + - * / // % ** ~
    kAnd,       // args[0] and args[1]
    kOr,        // args[0] or args[1]
    kCompare,   // args[0] ops[0] args[1] ops[1] args[2] ... (chained)
    kCondExpr,  // args[1] if args[0] else args[2] (args[2] may be null)
  };
  Kind kind;
  int line = 0;
  Value literal;
  std::string name;
  bool negate = false;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
  // The height of this node's tree. The parser builds chains (a + b + ...,
  // x.a.b..., filters) in loops, so its own nesting bound does not see them;
  // Add / AddKw refuse a tree taller than kMaxDepth, which bounds the
  // recursion of evaluating and of freeing it.
  int depth = 1;
  static constexpr int kMaxDepth = 400;
  void Add(ExprPtr child) {
    Grow(child.get());
    args.push_back(std::move(child));
  }
  void AddKw(std::string key, ExprPtr child) {
    Grow(child.get());
    kwargs.emplace_back(std::move(key), std::move(child));
  }

 private:
  void Grow(const Expr* child) {
    if (child == nullptr) return;
    if (child->depth + 1 > depth) depth = child->depth + 1;
    if (depth > kMaxDepth) Fail(line, "TemplateSyntaxError: expression nested too deep");
  }
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

// Assignment / loop targets: a name, `ns.attr`, or a tuple of names.
struct Target {
  std::vector<std::string> names;  // one name, or several for tuple unpacking
  std::string attr;                // non-empty: `names[0].attr`
  bool is_tuple = false;
};

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // may be null
};

struct Stmt {
  enum class Kind {
    kText,       // text
    kOutput,     // {{ expr }}
    kIf,         // branches: (cond, body)...; else_body
    kFor,        // target in expr [if cond]: body; else_body
    kSet,        // target = expr
    kBlockSet,   // {% set target | filters %}body{% endset %}: filters as kFilter chain on a null expr
    kMacro,      // name(params): body
    kCallBlock,  // {% call(params) expr %}body{% endcall %}
    kFilterBlock,  // {% filter f %}body{% endfilter %}
    kBreak,
    kContinue,
    kBodyOnly,   // {% generation %}body{% endgeneration %}
  };
  Kind kind;
  int line = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr cond;
  Target target;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body;
  Body else_body;
  std::vector<MacroParam> params;
};

struct Program {
  Body body;
};

}  // namespace reprise::chat
