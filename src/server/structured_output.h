// Structured output and forced tool calls, guaranteed by constrained
// decoding: turns what a chat request asks of the reply's shape into an
// engine::Constraint (a grammar/ matcher behind engine/constraint.h) that the
// engine applies to every sampling step.
//
// What is constrained:
//  - response_format json_object: the content is one JSON object;
//    json_schema: one JSON value valid under the schema (grammar/
//    json_schema.h lists the keywords; others are a 400 naming them);
//  - tool_choice "required" / a named function: the reply is tool calls in
//    the chat template's own syntax, as chat/tool_parser.h parses it —
//    Hermes  <tool_call>\n{"name": "F", "arguments": ARGS}\n</tool_call>
//            (several, one per line, unless parallel_tool_calls is false or a
//            function is named),
//    Llama 3 {"name": "F", "parameters": ARGS} (one call),
//    Mistral [TOOL_CALLS][{"name": "F", "arguments": ARGS}, ...]
//    with F one of the offered functions (the named one) and ARGS valid
//    under its parameters schema. A template with no known tool syntax gets
//    a 400 rather than an unguaranteed call.
//  - both (json response_format and tools with tool_choice auto): a JSON
//    value or tool calls.
// Reasoning templates (<think>): the reply may start with a
// <think>...</think> block (must, when the prompt opened it) before the
// constrained part, as the output parser expects.
// Whitespace and end: the constrained part may start after a little
// whitespace; nothing may follow it but an end-of-generation token, and the
// engine stops as soon as the grammar cannot go on.
// A reply cut short by max_tokens is still cut short (finish_reason
// "length"): the guarantee covers replies that finish.
//
// Compiled grammars are cached by their source (schema / tools / template
// syntax), with the per-state token classes computed so far (grammar/
// matcher.h: a schema seen again costs no precomputation), LRU, 8 entries of
// at most 64 MiB of token classes each. The token trie is built once, on
// first use. Thread-safe.
#pragma once

#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>

#include "chat/tool_parser.h"
#include "engine/constraint.h"
#include "server/api_error.h"
#include "server/openai_types.h"
#include "tokenizer/tokenizer.h"

namespace reprise::grammar {
class TokenMasks;
class TokenTrie;
}  // namespace reprise::grammar

namespace reprise::server {

class StructuredOutput {
 public:
  explicit StructuredOutput(const tokenizer::Tokenizer& tok, size_t cache_entries = 8);
  ~StructuredOutput();

  // The constraint for a chat request rendered with output `format` (tool
  // syntax, reasoning), or null when it asks for nothing to be guaranteed.
  // Errors: a schema or tool_choice that cannot be guaranteed (400).
  std::variant<std::shared_ptr<engine::Constraint>, ApiError> ForChat(
      const ChatRequest& chat, const std::optional<chat::OutputFormat>& format);

  // For /v1/completions: only response_format (no template, no tools).
  std::variant<std::shared_ptr<engine::Constraint>, ApiError> ForCompletion(
      const ResponseFormat& response_format);

  size_t cached_grammars() const;

  struct Spec;  // what the reply must be (structured_output.cc)

 private:
  std::shared_ptr<const grammar::TokenTrie> Trie();
  std::variant<std::shared_ptr<engine::Constraint>, ApiError> Build(
      const Spec& spec, const nlohmann::ordered_json& tools, const std::string& schema_param);

  const tokenizer::Tokenizer& tok_;
  const size_t cache_entries_;
  std::once_flag trie_once_;
  std::shared_ptr<const grammar::TokenTrie> trie_;
  mutable std::mutex mu_;
  std::list<std::string> lru_;  // most recent first
  std::unordered_map<std::string, std::pair<std::shared_ptr<grammar::TokenMasks>,
                                            std::list<std::string>::iterator>>
      cache_;
};

}  // namespace reprise::server
