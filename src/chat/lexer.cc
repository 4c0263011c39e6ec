// Jinja2 lexer (see lexer.h). Mirrors jinja2.lexer's rules: lstrip_blocks only
// strips spaces before {% and {# when they start a line, trim_blocks removes one
// newline after %} and #}, and an end delimiter is only recognised outside
// brackets (so `{{ {'a': {'b': 1}} }}` works).
#include "chat/lexer.h"

#include <cstring>

#include "chat/value.h"

namespace reprise::chat {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool IsNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes a Python string literal body (unicode-escape semantics).
std::string Unescape(const std::string& body, int line) {
  std::string out;
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (c != '\\' || i + 1 >= body.size()) {
      out += c;
      continue;
    }
    char n = body[++i];
    switch (n) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case '\\': out += '\\'; break;
      case '\'': out += '\''; break;
      case '"': out += '"'; break;
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'v': out += '\v'; break;
      case '\n': break;  // line continuation
      case 'x':
      case 'u':
      case 'U': {
        int digits = n == 'x' ? 2 : n == 'u' ? 4 : 8;
        uint32_t cp = 0;
        for (int k = 0; k < digits; ++k) {
          if (i + 1 >= body.size() || HexValue(body[i + 1]) < 0) {
            Fail(line, "SyntaxError: truncated \\" + std::string(1, n) + " escape in string literal");
          }
          cp = cp * 16 + HexValue(body[++i]);
        }
        AppendUtf8(out, cp);
        break;
      }
      default:
        if (n >= '0' && n <= '7') {
          uint32_t cp = n - '0';
          for (int k = 0; k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7'; ++k) {
            cp = cp * 8 + (body[++i] - '0');
          }
          AppendUtf8(out, cp);
        } else {
          out += '\\';
          out += n;
        }
    }
  }
  return out;
}

class Lexer {
 public:
  Lexer(std::string src, const LexOptions& o) : src_(std::move(src)), opt_(o) {}

  std::vector<Token> Run() {
    bool line_starting = true;
    while (pos_ < src_.size()) {
      size_t start = FindTagStart(pos_);
      std::string text = src_.substr(pos_, start - pos_);
      if (start == src_.size()) {
        EmitText(std::move(text));
        pos_ = start;
        break;
      }
      char kind = src_[start + 1];  // '{', '%' or '#'
      char mod = start + 2 < src_.size() ? src_[start + 2] : 0;
      if (mod == '-') {
        size_t end = text.size();
        while (end > 0 && IsSpace(text[end - 1])) --end;
        text.resize(end);
      } else if (mod != '+' && opt_.lstrip_blocks && kind != '{') {
        size_t nl = text.rfind('\n');
        size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
        if (l_pos > 0 || line_starting) {
          bool all_space = true;
          for (size_t k = l_pos; k < text.size(); ++k) all_space &= IsSpace(text[k]);
          if (all_space) text.resize(l_pos);
        }
      }
      EmitText(std::move(text));
      Advance(start);
      pos_ = start + 2 + ((mod == '-' || mod == '+') ? 1 : 0);
      if (kind == '#') {
        line_starting = LexComment();
      } else {
        line_starting = LexTag(kind == '{');
      }
    }
    tokens_.push_back(Token{TokenType::kEof, "", 0, 0, line_});
    return std::move(tokens_);
  }

 private:
  size_t FindTagStart(size_t from) const {
    size_t p = from;
    while (true) {
      p = src_.find('{', p);
      if (p == std::string::npos || p + 1 >= src_.size()) return src_.size();
      char n = src_[p + 1];
      if (n == '{' || n == '%' || n == '#') return p;
      ++p;
    }
  }

  void Advance(size_t to) {
    for (size_t k = pos_; k < to && k < src_.size(); ++k) {
      if (src_[k] == '\n') ++line_;
    }
    pos_ = to;
  }

  void EmitText(std::string text) {
    int line = line_;
    if (!text.empty()) tokens_.push_back(Token{TokenType::kText, std::move(text), 0, 0, line});
  }

  // Handles the end delimiter's trailing whitespace rules; returns whether the
  // consumed delimiter ended with a newline (jinja's `line_starting`).
  bool AfterEnd(char mod, bool is_block) {
    bool ended_nl = false;
    if (mod == '-') {
      size_t p = pos_;
      while (p < src_.size() && IsSpace(src_[p])) ++p;
      ended_nl = p > pos_ && src_[p - 1] == '\n';
      Advance(p);
    } else if (mod != '+' && is_block && opt_.trim_blocks && pos_ < src_.size() && src_[pos_] == '\n') {
      Advance(pos_ + 1);
      ended_nl = true;
    }
    return ended_nl;
  }

  bool LexComment() {
    int start_line = line_;
    size_t p = src_.find("#}", pos_);
    if (p == std::string::npos) Fail(start_line, "TemplateSyntaxError: missing end of comment tag");
    char mod = p > pos_ && (src_[p - 1] == '-' || src_[p - 1] == '+') ? src_[p - 1] : 0;
    Advance(p + 2);
    return AfterEnd(mod, true);
  }

  // Lexes the inside of {{ }} or {% %}; returns line_starting.
  bool LexTag(bool is_var) {
    tokens_.push_back(Token{is_var ? TokenType::kVarBegin : TokenType::kBlockBegin, "", 0, 0, line_});
    size_t first_token = tokens_.size();
    int depth = 0;
    while (true) {
      while (pos_ < src_.size() && IsSpace(src_[pos_])) Advance(pos_ + 1);
      if (pos_ >= src_.size()) {
        Fail(line_, std::string("TemplateSyntaxError: unexpected end of template, expected '") +
                        (is_var ? "}}" : "%}") + "'");
      }
      if (depth == 0) {
        const char* close = is_var ? "}}" : "%}";
        char c = src_[pos_];
        char mod = 0;
        size_t at = pos_;
        if ((c == '-' || c == '+') && src_.compare(pos_ + 1, 2, close) == 0) {
          mod = c;
          at = pos_ + 1;
        }
        if (src_.compare(at, 2, close) == 0 && (mod != '+' || !is_var)) {
          tokens_.push_back(Token{is_var ? TokenType::kVarEnd : TokenType::kBlockEnd, "", 0, 0, line_});
          Advance(at + 2);
          bool ls = AfterEnd(mod, !is_var);
          if (!is_var && tokens_.size() == first_token + 2 && tokens_[first_token].type == TokenType::kName &&
              tokens_[first_token].text == "raw") {
            return LexRaw();
          }
          return ls;
        }
      }
      LexExprToken(depth);
    }
  }

  // After `{% raw %}`: everything up to `{% endraw %}` is text.
  bool LexRaw() {
    size_t p = pos_;
    while (true) {
      p = src_.find("{%", p);
      if (p == std::string::npos) Fail(line_, "TemplateSyntaxError: missing {% endraw %}");
      size_t q = p + 2;
      bool strip_before = q < src_.size() && src_[q] == '-';
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) ++q;
      while (q < src_.size() && IsSpace(src_[q])) ++q;
      if (src_.compare(q, 6, "endraw") != 0) {
        p += 2;
        continue;
      }
      q += 6;
      while (q < src_.size() && IsSpace(src_[q])) ++q;
      char mod = 0;
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) mod = src_[q++];
      if (src_.compare(q, 2, "%}") != 0) {
        p += 2;
        continue;
      }
      std::string text = src_.substr(pos_, p - pos_);
      if (strip_before) {
        while (!text.empty() && IsSpace(text.back())) text.pop_back();
      }
      // Emit as block: {% raw-text %} is represented by a text token in between
      // the raw tag pair; the parser treats `raw` ... `endraw` as plain text.
      EmitText(std::move(text));
      tokens_.push_back(Token{TokenType::kBlockBegin, "", 0, 0, line_});
      Advance(p);
      tokens_.push_back(Token{TokenType::kName, "endraw", 0, 0, line_});
      tokens_.push_back(Token{TokenType::kBlockEnd, "", 0, 0, line_});
      Advance(q + 2);
      return AfterEnd(mod, true);
    }
  }

  void LexExprToken(int& depth) {
    int line = line_;
    char c = src_[pos_];
    if (IsNameStart(c)) {
      size_t e = pos_;
      while (e < src_.size() && (IsNameStart(src_[e]) || IsDigit(src_[e]))) ++e;
      tokens_.push_back(Token{TokenType::kName, src_.substr(pos_, e - pos_), 0, 0, line});
      Advance(e);
      return;
    }
    if (IsDigit(c)) {
      size_t e = pos_;
      while (e < src_.size() && (IsDigit(src_[e]) || src_[e] == '_')) ++e;
      bool is_float = false;
      if (e + 1 < src_.size() && src_[e] == '.' && IsDigit(src_[e + 1]) &&
          !(pos_ > 0 && src_[pos_ - 1] == '.')) {
        is_float = true;
        ++e;
        while (e < src_.size() && (IsDigit(src_[e]) || src_[e] == '_')) ++e;
      }
      if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
        size_t f = e + 1;
        if (f < src_.size() && (src_[f] == '+' || src_[f] == '-')) ++f;
        if (f < src_.size() && IsDigit(src_[f])) {
          is_float = true;
          e = f;
          while (e < src_.size() && (IsDigit(src_[e]) || src_[e] == '_')) ++e;
        }
      }
      std::string lit;
      for (size_t k = pos_; k < e; ++k) {
        if (src_[k] != '_') lit += src_[k];
      }
      Token t{is_float ? TokenType::kFloat : TokenType::kInt, lit, 0, 0, line};
      if (is_float) {
        t.float_value = std::strtod(lit.c_str(), nullptr);
      } else {
        t.int_value = std::strtoll(lit.c_str(), nullptr, 10);
      }
      tokens_.push_back(std::move(t));
      Advance(e);
      return;
    }
    if (c == '\'' || c == '"') {
      size_t e = pos_ + 1;
      while (e < src_.size() && src_[e] != c) {
        if (src_[e] == '\\') ++e;
        ++e;
      }
      if (e >= src_.size()) Fail(line, "TemplateSyntaxError: unexpected end of string");
      std::string body = src_.substr(pos_ + 1, e - pos_ - 1);
      tokens_.push_back(Token{TokenType::kString, Unescape(body, line), 0, 0, line});
      Advance(e + 1);
      return;
    }
    static constexpr const char* kOps2[] = {"//", "**", "==", "!=", "<=", ">="};
    for (const char* op : kOps2) {
      if (src_.compare(pos_, 2, op) == 0) {
        tokens_.push_back(Token{TokenType::kOp, op, 0, 0, line});
        Advance(pos_ + 2);
        return;
      }
    }
    if (std::strchr("+-*/%~<>=()[]{},.:|;", c) != nullptr) {
      if (c == '(' || c == '[' || c == '{') ++depth;
      if (c == ')' || c == ']' || c == '}') {
        if (depth == 0) Fail(line, std::string("TemplateSyntaxError: unexpected '") + c + "'");
        --depth;
      }
      tokens_.push_back(Token{TokenType::kOp, std::string(1, c), 0, 0, line});
      Advance(pos_ + 1);
      return;
    }
    Fail(line, std::string("TemplateSyntaxError: unexpected char '") + c + "'");
  }

  std::string src_;
  LexOptions opt_;
  size_t pos_ = 0;
  int line_ = 1;
  std::vector<Token> tokens_;
};

std::string NormalizeNewlines(const std::string& s, bool keep_trailing) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r') {
      out += '\n';
      if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
    } else {
      out += s[i];
    }
  }
  if (!keep_trailing && !out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

std::vector<Token> Lex(const std::string& source, const LexOptions& options) {
  Lexer lexer(NormalizeNewlines(source, options.keep_trailing_newline), options);
  return lexer.Run();
}

}  // namespace reprise::chat
