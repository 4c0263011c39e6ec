// Renders a parsed Program: statements, expressions, scopes, loops, macros.
// Scoping follows Jinja2: a for-loop body gets a fresh scope per iteration
// (so `set` inside a loop never leaks out; namespace() is the way out), a macro
// call gets a scope whose parent is where the macro was defined, `if` opens no
// scope. Values of the operators, filters, tests and methods live in
// builtins.h. Errors are thrown as TemplateError and caught by template.cc.
#pragma once

#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "chat/ast.h"
#include "chat/value.h"

namespace reprise::chat {

struct Scope {
  std::unordered_map<std::string, Value> vars;
  std::shared_ptr<Scope> parent;
};

class Evaluator {
 public:
  // `now` is what strftime_now formats; `max_steps` bounds the statements
  // and loop iterations one render may execute (a runaway template fails
  // with a RuntimeError instead of hanging).
  // `max_bytes` bounds the strings and output one render may build
  // (RenderBudget).
  explicit Evaluator(std::tm now, int64_t max_steps = kDefaultMaxSteps,
                     int64_t max_bytes = kDefaultMaxBytes)
      : now_(now), max_steps_(max_steps), max_bytes_(max_bytes) {}
  // Real chat templates execute thousands of statements; this bounds a
  // runaway template (nested loops over range()) to a couple of seconds.
  static constexpr int64_t kDefaultMaxSteps = 2'000'000;
  // Real chat templates build a few times their output (a long conversation:
  // megabytes); this bounds a runaway one far below a machine's memory.
  static constexpr int64_t kDefaultMaxBytes = int64_t{1} << 30;
  // Breaks the reference cycles of macros (see macro_scopes_).
  ~Evaluator();
  Evaluator(const Evaluator&) = delete;
  Evaluator& operator=(const Evaluator&) = delete;

  // Renders `program` with `context` (name -> value) on top of the globals.
  std::string Render(const Program& program, const std::vector<std::pair<std::string, Value>>& context);

  Value Eval(const Expr& e);
  // Calls any callable value (macro, builtin, bound method).
  Value CallValue(const Value& callee, CallArgs& args);
  // Applies a filter chain whose innermost operand is null to `base`.
  Value ApplyFilterChain(const Expr* chain, Value base);

  const std::tm& now() const { return now_; }

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  Flow Exec(const Body& body, std::string& out);
  Flow ExecStmt(const Stmt& s, std::string& out);
  void ExecFor(const Stmt& s, std::string& out);
  void Assign(const Target& t, const Value& v, int line);
  Value Lookup(const std::string& name) const;
  Value MakeMacro(const Stmt& s, std::shared_ptr<Scope> closure);
  CallArgs EvalArgs(const Expr& e, size_t first_positional);
  void InstallGlobals(Scope& globals);

  std::tm now_;
  std::shared_ptr<Scope> scope_;
  // Scopes captured by macros. A macro is stored in the scope it captures
  // (or in a namespace reachable from it): a shared_ptr cycle that kept the
  // whole render context (every message) alive after each render. The
  // destructor clears these scopes, which breaks every such cycle; no value
  // outlives the render (its result is a string).
  std::vector<std::shared_ptr<Scope>> macro_scopes_;
  // Namespaces assigned to during the render: the only mutation the sandbox
  // allows, so the only way to make a value hold itself (`set ns.me = ns`,
  // found by the fuzzer as a leak of every such render). The destructor
  // empties them, which breaks every such cycle.
  std::vector<Value> assigned_namespaces_;
  std::unordered_set<const DictData*> assigned_seen_;
  int call_depth_ = 0;
  const int64_t max_steps_;
  int64_t steps_ = 0;  // statements executed, bounded by max_steps_
  const int64_t max_bytes_;
};

}  // namespace reprise::chat
