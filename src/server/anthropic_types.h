// The Anthropic Messages API (POST /v1/messages, /v1/messages/count_tokens)
// translated to and from the server's one chat pipeline: a Messages request
// body becomes an OpenAI chat request body (then ParseChatRequest, the chat
// template, the engine — as for /v1/chat/completions), and ApiErrors become
// Anthropic's error body {"type":"error","error":{"type","message"}}.
//
// Translation (request):
//   system (string or text blocks)       -> one leading system message
//   user text blocks                     -> a user message (text joined)
//   user tool_result blocks              -> tool messages (tool_call_id = tool_use_id),
//                                           before the user's text, in order
//   assistant text / thinking / tool_use -> one assistant message: content,
//                                           reasoning_content, tool_calls
//   tools [{name,description,input_schema}] -> function tools
//   tool_choice auto|any|tool|none       -> auto|required|{function}|none (any/tool
//                                           are guaranteed: server/structured_output.h);
//                                           disable_parallel_tool_use -> parallel_tool_calls false
//   output_format {type: json_schema, schema} -> response_format json_schema
//   max_tokens, stop_sequences, temperature, top_p, top_k, stream -> the chat fields
//   thinking {enabled|disabled|adaptive} -> accepted (reasoning is parsed out
//                                           whenever the template uses <think>)
// Claude Code's first system block "x-anthropic-billing-header: cc_version=..;
// cc_entrypoint=..; cch=..;" carries per-request hashes; with
// strip_billing_header its line is removed before rendering so consecutive
// turns share their prompt prefix (and the prompt cache).
// Bad shapes are a 400 naming the Anthropic field (e.g. messages[2].content[0].type).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "server/api_error.h"
#include "server/openai_types.h"

namespace reprise::server {

struct MessagesTranslateOptions {
  bool strip_billing_header = true;
  bool count_tokens = false;  // /count_tokens: max_tokens is not required
};

// The equivalent /v1/chat/completions body, or a 400.
Parsed<nlohmann::ordered_json> MessagesToChatBody(const nlohmann::ordered_json& body,
                                                  const MessagesTranslateOptions& options);

// Removes a leading "x-anthropic-billing-header: ..." line from a system text;
// returns the text unchanged when it has none.
std::string StripBillingHeader(const std::string& text);

// Anthropic's error type for an HTTP status (invalid_request_error,
// authentication_error, not_found_error, request_too_large, overloaded_error,
// api_error, ...).
const char* AnthropicErrorType(int http_status);
// {"type":"error","error":{"type":..,"message":..}}
nlohmann::ordered_json AnthropicErrorJson(const ApiError& error);
// Rewrites an OpenAI error body ({"error":{"message",..}}) into Anthropic's
// shape; other bodies come back unchanged.
std::string AnthropicErrorBodyFrom(const std::string& openai_body, int http_status);

}  // namespace reprise::server
