// Jinja2 lexer: splits a template into text and tag tokens, applying the
// whitespace rules transformers configures (trim_blocks, lstrip_blocks, the
// `-`/`+` modifiers, the single trailing newline Jinja drops, \r\n -> \n).
// Inside {{ }} and {% %} it produces expression tokens. Throws TemplateError
// (internal to src/chat) with the line number on malformed input.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace reprise::chat {

enum class TokenType {
  kText,
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,
  kInt,
  kFloat,
  kOp,  // operators and punctuation; text holds the operator
  kEof,
};

struct Token {
  TokenType type;
  std::string text;  // text, name, operator, or decoded string literal
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;
};

struct LexOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
  bool keep_trailing_newline = false;
};

std::vector<Token> Lex(const std::string& source, const LexOptions& options);

}  // namespace reprise::chat
