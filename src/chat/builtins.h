// Python/Jinja semantics of operators (operators.cc), filters and tests
// (filters.cc), and attribute access and methods of str/list/dict (methods.cc).
// All raise TemplateError with Python's message text (e.g. "TypeError: can only
// concatenate str (not \"dict\") to str").
#pragma once

#include <string>
#include <vector>

#include "chat/value.h"

namespace reprise::chat {

class Evaluator;

// Throws "UndefinedError: <hint>" for an undefined value.
[[noreturn]] void FailUndefined(const Value& v, int line);

// Operators.
Value BinaryOp(const std::string& op, const Value& l, const Value& r, int line);
Value Negate(const Value& v, int line);
// Comparison operators: == != < > <= >= in notin.
bool CompareOp(const std::string& op, const Value& l, const Value& r, int line);
bool Contains(const Value& container, const Value& item, int line);
// Python iteration: list items, dict keys, string characters; undefined is
// empty; anything else raises TypeError.
std::vector<Value> Iterate(const Value& v, int line);
// Python len(); raises TypeError when there is none.
int64_t Length(const Value& v, int line);
// obj[key] and obj[a:b:c] with Jinja's fallbacks (missing -> undefined).
Value GetItem(const Value& obj, const Value& key, int line);
Value Slice(const Value& obj, const Value& start, const Value& stop, const Value& step, int line);
// Ordering for sort/min/max/dictsort (Python `<`).
bool LessThan(const Value& l, const Value& r, int line);

// obj.name: methods first (bound), then items; missing -> undefined.
Value GetAttribute(const Value& obj, const std::string& name, int line);

// Filters and tests.
Value ApplyFilter(Evaluator& ev, const std::string& name, const Value& v, CallArgs& args);
bool ApplyTest(Evaluator& ev, const std::string& name, const Value& v, CallArgs& args);

}  // namespace reprise::chat
