// ChatTemplate: the module boundary of the Jinja engine. Internal
// TemplateError exceptions (and any nlohmann exception) are caught here and
// turned into Status; nothing escapes.
#include "chat/template.h"

#include <cstdio>
#include <ctime>
#include <vector>
#include <algorithm>

#include "chat/evaluator.h"
#include "chat/parser.h"

namespace reprise::chat {
namespace {

Result<std::tm> ParseNow(const std::optional<std::string>& now) {
  std::tm tm{};
  if (!now) {
    std::time_t t = std::time(nullptr);
    localtime_r(&t, &tm);
    return tm;
  }
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  int n = std::sscanf(now->c_str(), "%d-%d-%d%*[T ]%d:%d:%d", &y, &mo, &d, &h, &mi, &s);
  if ((n != 3 && n != 6) || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) {
    return Errorf("invalid date '%s': expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS", now->c_str());
  }
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  std::time_t t = timegm(&tm);  // normalizes and fills tm_wday / tm_yday
  gmtime_r(&t, &tm);
  return tm;
}

// Nesting depth of a JSON value, computed without recursion.
size_t JsonDepth(const nlohmann::ordered_json& root) {
  size_t max_depth = 0;
  std::vector<std::pair<const nlohmann::ordered_json*, size_t>> stack = {{&root, 1}};
  while (!stack.empty()) {
    auto [j, depth] = stack.back();
    stack.pop_back();
    max_depth = std::max(max_depth, depth);
    if (j->is_structured()) {
      for (const auto& child : *j) stack.emplace_back(&child, depth + 1);
    }
  }
  return max_depth;
}

constexpr size_t kMaxJsonDepth = 256;

std::string Located(const TemplateError& e) {
  if (e.line > 0) return StrFormat("chat template line %d: %s", e.line, e.message.c_str());
  return "chat template: " + e.message;
}

}  // namespace

Result<ChatTemplate> ChatTemplate::Parse(std::string source) {
  ChatTemplate t;
  try {
    t.program_ = ParseTemplate(source);
  } catch (const TemplateError& e) {
    return Status::Error(Located(e));
  } catch (const std::exception& e) {
    return Errorf("chat template: %s", e.what());
  }
  t.source_ = std::move(source);
  return t;
}

Result<std::string> ChatTemplate::Render(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                                         const RenderOptions& options) const {
  return Render(messages, tools, options, nullptr);
}

Result<std::string> ChatTemplate::Render(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                                         const RenderOptions& options, RenderError* error) const {
  ASSIGN_OR_RETURN(std::tm now, ParseNow(options.now));
  if (!options.extra_kwargs.is_null() && !options.extra_kwargs.is_object()) {
    return Status::Error("chat template: extra template variables must be a JSON object");
  }
  if (JsonDepth(messages) > kMaxJsonDepth || JsonDepth(tools) > kMaxJsonDepth ||
      JsonDepth(options.extra_kwargs) > kMaxJsonDepth) {
    return Errorf("chat template: messages/tools nest deeper than %zu levels", kMaxJsonDepth);
  }
  std::vector<std::pair<std::string, Value>> context;
  context.emplace_back("messages", Value::FromJson(messages));
  context.emplace_back("tools", Value::FromJson(tools));
  context.emplace_back("documents", Value::None());
  context.emplace_back("add_generation_prompt", Value::Bool(options.add_generation_prompt));
  if (options.bos_token) context.emplace_back("bos_token", Value::String(*options.bos_token));
  if (options.eos_token) context.emplace_back("eos_token", Value::String(*options.eos_token));
  if (options.extra_kwargs.is_object()) {
    for (auto it = options.extra_kwargs.begin(); it != options.extra_kwargs.end(); ++it) {
      context.emplace_back(it.key(), Value::FromJson(it.value()));
    }
  }
  try {
    Evaluator evaluator(now, options.max_steps > 0 ? options.max_steps : Evaluator::kDefaultMaxSteps,
                        options.max_bytes > 0 ? options.max_bytes : Evaluator::kDefaultMaxBytes);
    return evaluator.Render(*program_, context);
  } catch (const TemplateError& e) {
    if (error) *error = RenderError{e.from_template ? RenderError::Kind::kRaised : RenderError::Kind::kRuntime,
                                    e.message, e.line};
    if (e.from_template) return Status::Error(e.message);
    return Status::Error(Located(e));
  } catch (const std::exception& e) {
    if (error) *error = RenderError{RenderError::Kind::kRuntime, e.what(), 0};
    return Errorf("chat template: %s", e.what());
  }
}

}  // namespace reprise::chat
