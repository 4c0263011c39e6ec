// Chat templates: a Jinja2 engine that renders a conversation exactly as
// Hugging Face transformers does (render_jinja_template: sandboxed Jinja2 with
// trim_blocks, lstrip_blocks, loopcontrols, {% generation %}, tojson as
// json.dumps(ensure_ascii=False), raise_exception and strftime_now globals).
//
// Templates are input: Parse and Render never abort or throw; a bad template
// or a template that raises yields a Status. Render is const and thread-safe
// (each call evaluates with its own state).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace reprise::chat {

struct Program;

struct RenderOptions {
  bool add_generation_prompt = false;
  // Unset: the template sees the name as undefined (as when transformers is
  // given no such special token), which differs from an empty string for
  // `is defined` tests.
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  // Frozen clock for strftime_now: "YYYY-MM-DD" (midnight) or
  // "YYYY-MM-DDTHH:MM:SS". Unset: the current local time.
  std::optional<std::string> now;
  // More template variables (an object), e.g. {"enable_thinking": false};
  // they override the variables above.
  nlohmann::ordered_json extra_kwargs = nlohmann::ordered_json::object();
  // Statements and loop iterations one render may execute before it fails
  // with "exceeded its execution budget" (0: the default, 2,000,000; the
  // fuzz target sets a small one so runaway inputs end quickly).
  int64_t max_steps = 0;
  // Bytes of strings and output one render may build before it fails with a
  // MemoryError (0: the default, 1 GiB; see chat::RenderBudget).
  int64_t max_bytes = 0;
};

// Why a render failed. For kRaised, `message` is exactly the text the template
// passed to raise_exception (what a server answers with a 400).
struct RenderError {
  enum class Kind { kRaised, kRuntime };
  Kind kind = Kind::kRuntime;
  std::string message;
  int line = 0;
};

class ChatTemplate {
 public:
  // Parses `source`; errors read "chat template line N: ...".
  static Result<ChatTemplate> Parse(std::string source);

  // `messages` is an OpenAI messages array; `tools` is null or an array.
  // Status messages: for raise_exception, the template's text verbatim;
  // otherwise "chat template line N: <Python-style error>".
  Result<std::string> Render(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                             const RenderOptions& options) const;
  // As Render, with the error detail when it fails.
  Result<std::string> Render(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                             const RenderOptions& options, RenderError* error) const;

  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::shared_ptr<const Program> program_;
};

}  // namespace reprise::chat
