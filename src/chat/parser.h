// Jinja2 parser: tokens (lexer.h) -> Program (ast.h). Operator precedence and
// statement forms follow jinja2.parser. Unknown filters and tests are rejected
// at parse time, as Jinja does when compiling. Throws TemplateError (internal).
#pragma once

#include <memory>
#include <string>

#include "chat/ast.h"

namespace reprise::chat {

std::unique_ptr<Program> ParseTemplate(const std::string& source);

// Names known to the evaluator (filters.cc).
bool IsKnownFilter(const std::string& name);
bool IsKnownTest(const std::string& name);

}  // namespace reprise::chat
