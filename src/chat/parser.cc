// Recursive-descent Jinja2 parser (see parser.h). Precedence, lowest first:
// inline if/else, or, and, not, comparisons (in, not in, ==, ...), + -, ~,
// * / // %, **, unary - +, then postfix (.attr, [sub], call) and filters/tests,
// which bind tighter than any binary operator (`a + b | f` is `a + (b | f)`).
#include "chat/parser.h"

#include <initializer_list>

#include "chat/lexer.h"

namespace reprise::chat {
namespace {

ExprPtr MakeExpr(Expr::Kind kind, int line) {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->line = line;
  return e;
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  std::unique_ptr<Program> Run() {
    auto program = std::make_unique<Program>();
    program->body = ParseBody({});
    return program;
  }

 private:
  const Token& Cur() const { return toks_[pos_]; }
  const Token& Peek(size_t n = 1) const { return toks_[std::min(pos_ + n, toks_.size() - 1)]; }
  Token Next() { return toks_[pos_ < toks_.size() - 1 ? pos_++ : pos_]; }
  bool IsOp(const char* op) const { return Cur().type == TokenType::kOp && Cur().text == op; }
  bool IsName(const char* name) const { return Cur().type == TokenType::kName && Cur().text == name; }
  bool SkipOp(const char* op) {
    if (!IsOp(op)) return false;
    ++pos_;
    return true;
  }
  bool SkipName(const char* name) {
    if (!IsName(name)) return false;
    ++pos_;
    return true;
  }
  static std::string Describe(const Token& t) {
    switch (t.type) {
      case TokenType::kBlockEnd: return "end of statement block";
      case TokenType::kVarEnd: return "end of print statement";
      case TokenType::kEof: return "end of template";
      case TokenType::kString: return "string";
      case TokenType::kInt: return "integer";
      case TokenType::kFloat: return "float";
      default: return "'" + t.text + "'";
    }
  }
  [[noreturn]] void Unexpected(const char* expected) const {
    Fail(Cur().line, std::string("TemplateSyntaxError: expected ") + expected + ", got " + Describe(Cur()));
  }
  void ExpectOp(const char* op) {
    if (!SkipOp(op)) Unexpected((std::string("'") + op + "'").c_str());
  }
  void ExpectBlockEnd() {
    if (Cur().type != TokenType::kBlockEnd) Unexpected("end of statement block");
    ++pos_;
  }
  std::string ExpectName() {
    if (Cur().type != TokenType::kName) Unexpected("name");
    return Next().text;
  }

  // ---- statements -----------------------------------------------------------

  // Parses until a {% tag %} whose name is in `ends`; leaves the cursor on that
  // name (its {% consumed). With no ends, parses to the end of the template.
  Body ParseBody(std::initializer_list<const char*> ends) {
    Body body;
    while (true) {
      const Token& t = Cur();
      if (t.type == TokenType::kEof) {
        if (ends.size() == 0) return body;
        std::string want;
        for (const char* e : ends) want += std::string(want.empty() ? "" : " or ") + "'" + e + "'";
        Fail(t.line, "TemplateSyntaxError: unexpected end of template, expected " + want);
      }
      if (t.type == TokenType::kText) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kText;
        s->line = t.line;
        s->text = t.text;
        body.push_back(std::move(s));
        ++pos_;
        continue;
      }
      if (t.type == TokenType::kVarBegin) {
        ++pos_;
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kOutput;
        s->line = t.line;
        s->expr = ParseTuple(true);
        if (Cur().type != TokenType::kVarEnd) Unexpected("end of print statement");
        ++pos_;
        body.push_back(std::move(s));
        continue;
      }
      if (t.type != TokenType::kBlockBegin) Unexpected("template data");
      ++pos_;
      if (Cur().type != TokenType::kName) Unexpected("statement name");
      for (const char* e : ends) {
        if (Cur().text == e) return body;
      }
      body.push_back(ParseStatement());
    }
  }

  // Bounds nesting so hostile templates cannot overflow the stack.
  struct DepthGuard {
    explicit DepthGuard(Parser& p) : parser(p) {
      if (++parser.depth_ > kMaxDepth) Fail(parser.Cur().line, "TemplateSyntaxError: nesting too deep");
    }
    ~DepthGuard() { --parser.depth_; }
    Parser& parser;
  };
  static constexpr int kMaxDepth = 200;

  StmtPtr ParseStatement() {
    DepthGuard guard(*this);
    Token name = Next();
    auto s = std::make_unique<Stmt>();
    s->line = name.line;
    const std::string& n = name.text;
    if (n == "if") {
      s->kind = Stmt::Kind::kIf;
      ExprPtr cond = ParseTuple(false);
      ExpectBlockEnd();
      while (true) {
        Body body = ParseBody({"elif", "else", "endif"});
        s->branches.emplace_back(std::move(cond), std::move(body));
        std::string tag = Next().text;
        if (tag == "elif") {
          cond = ParseTuple(false);
          ExpectBlockEnd();
          continue;
        }
        ExpectBlockEnd();
        if (tag == "else") {
          s->else_body = ParseBody({"endif"});
          Next();
          ExpectBlockEnd();
        }
        break;
      }
    } else if (n == "for") {
      s->kind = Stmt::Kind::kFor;
      s->target = ParseTarget(false);
      if (!SkipName("in")) Unexpected("'in'");
      s->expr = ParseTuple(false, /*stop_at_if=*/true);
      if (SkipName("if")) s->cond = ParseExpression(true);
      if (SkipName("recursive")) Fail(name.line, "TemplateSyntaxError: recursive loops are not supported");
      ExpectBlockEnd();
      ++loop_depth_;
      s->body = ParseBody({"endfor", "else"});
      --loop_depth_;
      if (Next().text == "else") {
        ExpectBlockEnd();
        s->else_body = ParseBody({"endfor"});
        Next();
      }
      ExpectBlockEnd();
    } else if (n == "set") {
      s->target = ParseTarget(true);
      if (SkipOp("=")) {
        s->kind = Stmt::Kind::kSet;
        s->expr = ParseTuple(true);
        ExpectBlockEnd();
      } else {
        s->kind = Stmt::Kind::kBlockSet;
        s->expr = ParseFilterChain(nullptr);
        ExpectBlockEnd();
        s->body = ParseBody({"endset"});
        Next();
        ExpectBlockEnd();
      }
    } else if (n == "macro") {
      s->kind = Stmt::Kind::kMacro;
      s->text = ExpectName();
      s->params = ParseParams();
      ExpectBlockEnd();
      s->body = ParseBody({"endmacro"});
      Next();
      ExpectBlockEnd();
    } else if (n == "call") {
      s->kind = Stmt::Kind::kCallBlock;
      if (IsOp("(")) s->params = ParseParams();
      s->expr = ParseExpression(true);
      if (s->expr->kind != Expr::Kind::kCall) Fail(name.line, "TemplateSyntaxError: expected call");
      ExpectBlockEnd();
      s->body = ParseBody({"endcall"});
      Next();
      ExpectBlockEnd();
    } else if (n == "filter") {
      s->kind = Stmt::Kind::kFilterBlock;
      s->expr = ParseFilterChain(nullptr, /*require_first=*/true);
      ExpectBlockEnd();
      s->body = ParseBody({"endfilter"});
      Next();
      ExpectBlockEnd();
    } else if (n == "break" || n == "continue") {
      if (loop_depth_ == 0) Fail(name.line, "TemplateSyntaxError: '" + n + "' outside of a loop");
      s->kind = n == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
      ExpectBlockEnd();
    } else if (n == "generation") {
      s->kind = Stmt::Kind::kBodyOnly;
      ExpectBlockEnd();
      s->body = ParseBody({"endgeneration"});
      Next();
      ExpectBlockEnd();
    } else if (n == "raw") {
      s->kind = Stmt::Kind::kBodyOnly;
      ExpectBlockEnd();
      s->body = ParseBody({"endraw"});
      Next();
      ExpectBlockEnd();
    } else {
      Fail(name.line, "TemplateSyntaxError: encountered unknown tag '" + n + "'");
    }
    return s;
  }

  Target ParseTarget(bool allow_attr) {
    Target t;
    bool paren = SkipOp("(");
    t.names.push_back(ExpectName());
    if (allow_attr && !paren && SkipOp(".")) {
      t.attr = ExpectName();
      return t;
    }
    while (SkipOp(",")) {
      t.is_tuple = true;
      if (Cur().type != TokenType::kName || IsName("in")) break;
      t.names.push_back(ExpectName());
    }
    if (paren) ExpectOp(")");
    return t;
  }

  std::vector<MacroParam> ParseParams() {
    std::vector<MacroParam> params;
    ExpectOp("(");
    while (!IsOp(")")) {
      if (!params.empty()) ExpectOp(",");
      if (IsOp(")")) break;
      MacroParam p;
      p.name = ExpectName();
      if (SkipOp("=")) p.default_value = ParseExpression(true);
      params.push_back(std::move(p));
    }
    ExpectOp(")");
    return params;
  }

  // `| f(args) | g` applied to `base` (null for block filters).
  ExprPtr ParseFilterChain(ExprPtr base, bool require_first = false) {
    if (require_first) {
      base = ParseOneFilter(std::move(base), Cur().line);
    }
    while (SkipOp("|")) base = ParseOneFilter(std::move(base), Cur().line);
    return base;
  }

  ExprPtr ParseOneFilter(ExprPtr base, int line) {
    auto f = MakeExpr(Expr::Kind::kFilter, line);
    f->name = ExpectName();
    while (SkipOp(".")) f->name += "." + ExpectName();
    if (!IsKnownFilter(f->name)) Fail(line, "TemplateAssertionError: No filter named '" + f->name + "'.");
    f->Add(std::move(base));
    if (IsOp("(")) ParseCallArgs(*f);
    return f;
  }

  // ---- expressions ----------------------------------------------------------

  ExprPtr ParseTuple(bool with_condexpr, bool stop_at_if = false) {
    int line = Cur().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) {
        if (!SkipOp(",")) break;
        is_tuple = true;
      }
      if (Cur().type == TokenType::kBlockEnd || Cur().type == TokenType::kVarEnd || IsOp(")") ||
          (stop_at_if && IsName("if"))) {
        break;
      }
      items.push_back(with_condexpr ? ParseExpression(true) : ParseOr());
    }
    if (!is_tuple) {
      if (items.empty()) Unexpected("expression");
      return std::move(items[0]);
    }
    auto t = MakeExpr(Expr::Kind::kTuple, line);
    t->args = std::move(items);
    return t;
  }

  ExprPtr ParseExpression(bool with_condexpr) {
    if (!with_condexpr) return ParseOr();
    ExprPtr expr = ParseOr();
    while (IsName("if")) {
      int line = Next().line;
      auto c = MakeExpr(Expr::Kind::kCondExpr, line);
      ExprPtr cond = ParseOr();
      ExprPtr else_expr;
      if (SkipName("else")) else_expr = ParseExpression(true);
      c->Add(std::move(cond));
      c->Add(std::move(expr));
      c->Add(std::move(else_expr));
      expr = std::move(c);
    }
    return expr;
  }

  ExprPtr Binary(Expr::Kind kind, ExprPtr l, ExprPtr r, int line, std::string op = "") {
    auto e = MakeExpr(kind, line);
    e->name = std::move(op);
    e->Add(std::move(l));
    e->Add(std::move(r));
    return e;
  }

  ExprPtr ParseOr() {
    ExprPtr l = ParseAnd();
    while (IsName("or")) {
      int line = Next().line;
      l = Binary(Expr::Kind::kOr, std::move(l), ParseAnd(), line);
    }
    return l;
  }
  ExprPtr ParseAnd() {
    ExprPtr l = ParseNot();
    while (IsName("and")) {
      int line = Next().line;
      l = Binary(Expr::Kind::kAnd, std::move(l), ParseNot(), line);
    }
    return l;
  }
  ExprPtr ParseNot() {
    if (IsName("not")) {
      DepthGuard guard(*this);  // `not not not ...` recurses here
      int line = Next().line;
      auto e = MakeExpr(Expr::Kind::kNot, line);
      e->Add(ParseNot());
      return e;
    }
    return ParseCompare();
  }
  ExprPtr ParseCompare() {
    int line = Cur().line;
    ExprPtr first = ParseMath1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (Cur().type == TokenType::kOp &&
          (IsOp("==") || IsOp("!=") || IsOp("<") || IsOp(">") || IsOp("<=") || IsOp(">="))) {
        op = Next().text;
      } else if (IsName("in")) {
        Next();
        op = "in";
      } else if (IsName("not") && Peek().type == TokenType::kName && Peek().text == "in") {
        pos_ += 2;
        op = "notin";
      } else {
        break;
      }
      if (!cmp) {
        cmp = MakeExpr(Expr::Kind::kCompare, line);
        cmp->Add(std::move(first));
      }
      cmp->ops.push_back(op);
      cmp->Add(ParseMath1());
    }
    return cmp ? std::move(cmp) : std::move(first);
  }
  ExprPtr ParseMath1() {
    ExprPtr l = ParseConcat();
    while (IsOp("+") || IsOp("-")) {
      Token op = Next();
      l = Binary(Expr::Kind::kBinary, std::move(l), ParseConcat(), op.line, op.text);
    }
    return l;
  }
  ExprPtr ParseConcat() {
    ExprPtr l = ParseMath2();
    while (IsOp("~")) {
      Token op = Next();
      l = Binary(Expr::Kind::kBinary, std::move(l), ParseMath2(), op.line, "~");
    }
    return l;
  }
  ExprPtr ParseMath2() {
    ExprPtr l = ParsePow();
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      Token op = Next();
      l = Binary(Expr::Kind::kBinary, std::move(l), ParsePow(), op.line, op.text);
    }
    return l;
  }
  ExprPtr ParsePow() {
    ExprPtr l = ParseUnary(true);
    while (IsOp("**")) {
      Token op = Next();
      l = Binary(Expr::Kind::kBinary, std::move(l), ParseUnary(true), op.line, "**");
    }
    return l;
  }
  ExprPtr ParseUnary(bool with_filter) {
    DepthGuard guard(*this);
    ExprPtr node;
    int line = Cur().line;
    if (IsOp("-") || IsOp("+")) {
      bool neg = Next().text == "-";
      node = MakeExpr(neg ? Expr::Kind::kNeg : Expr::Kind::kPos, line);
      node->Add(ParseUnary(false));
    } else {
      node = ParsePrimary();
    }
    node = ParsePostfix(std::move(node));
    if (with_filter) node = ParseFilterExpr(std::move(node));
    return node;
  }

  ExprPtr ParsePrimary() {
    const Token& t = Cur();
    int line = t.line;
    switch (t.type) {
      case TokenType::kName: {
        std::string n = Next().text;
        auto e = MakeExpr(Expr::Kind::kLiteral, line);
        if (n == "true" || n == "True") {
          e->literal = Value::Bool(true);
        } else if (n == "false" || n == "False") {
          e->literal = Value::Bool(false);
        } else if (n == "none" || n == "None") {
          e->literal = Value::None();
        } else {
          e->kind = Expr::Kind::kName;
          e->name = n;
        }
        return e;
      }
      case TokenType::kString: {
        std::string s;
        while (Cur().type == TokenType::kString) s += Next().text;
        auto e = MakeExpr(Expr::Kind::kLiteral, line);
        e->literal = Value::String(std::move(s));
        return e;
      }
      case TokenType::kInt: {
        auto e = MakeExpr(Expr::Kind::kLiteral, line);
        e->literal = Value::Int(Next().int_value);
        return e;
      }
      case TokenType::kFloat: {
        auto e = MakeExpr(Expr::Kind::kLiteral, line);
        e->literal = Value::Float(Next().float_value);
        return e;
      }
      case TokenType::kOp:
        if (SkipOp("(")) {
          if (SkipOp(")")) return MakeExpr(Expr::Kind::kTuple, line);
          ExprPtr first = ParseExpression(true);
          if (SkipOp(")")) return first;
          auto tup = MakeExpr(Expr::Kind::kTuple, line);
          tup->Add(std::move(first));
          while (SkipOp(",")) {
            if (IsOp(")")) break;
            tup->Add(ParseExpression(true));
          }
          ExpectOp(")");
          return tup;
        }
        if (SkipOp("[")) {
          auto list = MakeExpr(Expr::Kind::kList, line);
          while (!IsOp("]")) {
            if (!list->args.empty()) ExpectOp(",");
            if (IsOp("]")) break;
            list->Add(ParseExpression(true));
          }
          ExpectOp("]");
          return list;
        }
        if (SkipOp("{")) {
          auto dict = MakeExpr(Expr::Kind::kDict, line);
          while (!IsOp("}")) {
            if (!dict->args.empty()) ExpectOp(",");
            if (IsOp("}")) break;
            dict->Add(ParseExpression(true));
            ExpectOp(":");
            dict->Add(ParseExpression(true));
          }
          ExpectOp("}");
          return dict;
        }
        break;
      default:
        break;
    }
    Unexpected("expression");
  }

  ExprPtr ParsePostfix(ExprPtr node) {
    while (true) {
      if (IsOp(".")) {
        int line = Next().line;
        auto e = MakeExpr(Expr::Kind::kGetAttr, line);
        if (Cur().type == TokenType::kInt) {
          e->kind = Expr::Kind::kGetItem;
          e->Add(std::move(node));
          auto idx = MakeExpr(Expr::Kind::kLiteral, line);
          idx->literal = Value::Int(Next().int_value);
          e->Add(std::move(idx));
        } else {
          e->name = ExpectName();
          e->Add(std::move(node));
        }
        node = std::move(e);
      } else if (IsOp("[")) {
        node = ParseSubscript(std::move(node));
      } else if (IsOp("(")) {
        auto call = MakeExpr(Expr::Kind::kCall, Cur().line);
        call->Add(std::move(node));
        ParseCallArgs(*call);
        node = std::move(call);
      } else {
        return node;
      }
    }
  }

  ExprPtr ParseSubscript(ExprPtr node) {
    int line = Next().line;  // [
    ExprPtr parts[3];
    int colons = 0;
    bool is_tuple = false;
    std::vector<ExprPtr> tuple_items;
    while (!IsOp("]")) {
      if (SkipOp(":")) {
        if (++colons > 2) Unexpected("']'");
        continue;
      }
      if (colons == 0 && !tuple_items.empty()) {
        ExpectOp(",");
        is_tuple = true;
        if (IsOp("]")) break;
      }
      ExprPtr e = ParseExpression(true);
      if (colons == 0) {
        tuple_items.push_back(std::move(e));
        if (IsOp(",")) is_tuple = true;
      } else {
        if (parts[colons]) Unexpected("':' or ']'");
        parts[colons] = std::move(e);
      }
    }
    ExpectOp("]");
    if (colons > 0) {
      if (tuple_items.size() > 1) Unexpected("']'");
      auto s = MakeExpr(Expr::Kind::kSlice, line);
      s->Add(std::move(node));
      s->Add(tuple_items.empty() ? nullptr : std::move(tuple_items[0]));
      s->Add(std::move(parts[1]));
      s->Add(std::move(parts[2]));
      return s;
    }
    if (tuple_items.empty()) Unexpected("subscript");
    auto g = MakeExpr(Expr::Kind::kGetItem, line);
    g->Add(std::move(node));
    if (is_tuple) {
      auto t = MakeExpr(Expr::Kind::kTuple, line);
      t->args = std::move(tuple_items);
      g->Add(std::move(t));
    } else {
      g->Add(std::move(tuple_items[0]));
    }
    return g;
  }

  void ParseCallArgs(Expr& call) {
    ExpectOp("(");
    bool first = true;
    while (!IsOp(")")) {
      if (!first) ExpectOp(",");
      first = false;
      if (IsOp(")")) break;
      if (Cur().type == TokenType::kName && Peek().type == TokenType::kOp && Peek().text == "=") {
        std::string key = Next().text;
        Next();
        call.AddKw(key, ParseExpression(true));
      } else {
        if (!call.kwargs.empty()) Fail(Cur().line, "TemplateSyntaxError: positional argument after keyword argument");
        call.Add(ParseExpression(true));
      }
    }
    ExpectOp(")");
  }

  ExprPtr ParseFilterExpr(ExprPtr node) {
    while (true) {
      if (IsOp("|")) {
        int line = Next().line;
        node = ParseOneFilter(std::move(node), line);
      } else if (IsName("is")) {
        int line = Next().line;
        auto t = MakeExpr(Expr::Kind::kTest, line);
        t->negate = SkipName("not");
        t->name = ExpectName();
        if (!IsKnownTest(t->name)) Fail(line, "TemplateAssertionError: No test named '" + t->name + "'.");
        t->Add(std::move(node));
        if (IsOp("(")) {
          ParseCallArgs(*t);
        } else if ((Cur().type == TokenType::kName || Cur().type == TokenType::kString ||
                    Cur().type == TokenType::kInt || Cur().type == TokenType::kFloat || IsOp("(") ||
                    IsOp("[") || IsOp("{")) &&
                   !IsName("else") && !IsName("or") && !IsName("and") && !IsName("is") &&
                   !IsName("if") && !IsName("in") && !IsName("not")) {
          t->Add(ParsePostfix(ParsePrimary()));
        }
        node = std::move(t);
      } else if (IsOp("(")) {
        auto call = MakeExpr(Expr::Kind::kCall, Cur().line);
        call->Add(std::move(node));
        ParseCallArgs(*call);
        node = std::move(call);
      } else {
        return node;
      }
    }
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  int loop_depth_ = 0;
  int depth_ = 0;
};

}  // namespace

std::unique_ptr<Program> ParseTemplate(const std::string& source) {
  Parser parser(Lex(source, LexOptions{}));
  return parser.Run();
}

}  // namespace reprise::chat
