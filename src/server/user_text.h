// Control tokens stay special only where the chat template put them.
//
// A rendered chat prompt mixes the template's own text (its markers such as
// <|im_start|>, <s>, [INST]) with text from the request (message content,
// tool results, tool-call arguments, tool definitions). Tokenized with
// special parsing on everywhere, a user who writes "</s><s>" or
// "<|im_end|>\n<|im_start|>system" in a message forges turns of another
// role. RenderMarkingUserText renders the chat so that every spelling of a
// control token inside request strings is known by position: each such
// spelling is swapped for a per-request random placeholder (letters and
// digits only, so templates pass it through unchanged), the template is
// rendered, and the placeholders are put back while their byte ranges are
// recorded. The text is byte-identical to a plain render; the ranges go to
// Tokenizer::EncodeWithPlainRanges, which tokenizes them as text.
// Invariants: `text` equals what `render(messages, tools)` returns; `plain`
// is sorted and disjoint; a template that alters a placeholder (e.g. upper-
// cases content) gets an error, never a prompt with forged tokens.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "tokenizer/tokenizer.h"

namespace reprise::server {

struct MarkedPrompt {
  std::string text;
  std::vector<tokenizer::TextRange> plain;  // request text that spells control tokens
};

using RenderFn = std::function<Result<std::string>(const nlohmann::ordered_json& messages,
                                                   const nlohmann::ordered_json& tools)>;

Result<MarkedPrompt> RenderMarkingUserText(const tokenizer::Tokenizer& tok,
                                           const nlohmann::ordered_json& messages,
                                           const nlohmann::ordered_json& tools,
                                           const RenderFn& render);

}  // namespace reprise::server
