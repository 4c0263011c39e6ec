// The OpenAI Responses API (POST /v1/responses, as Codex and the openai SDK's
// responses.create use it) translated into the server's one chat pipeline: a
// Responses request body becomes an OpenAI chat request body (then
// ParseChatRequest, the chat template, the engine — as /v1/chat/completions).
//
// Translation (request):
//   instructions                       -> a leading system message
//   input: a string                    -> one user message
//   input items:
//     message (role user/system/developer/assistant; content a string or
//       input_text / output_text parts) -> a message (developer -> system)
//     function_call {call_id,name,arguments} -> a tool call of the assistant
//       message it follows (or of a new one)
//     function_call_output {call_id,output}  -> a tool message
//     reasoning {content|summary}     -> reasoning_content of the next
//                                         assistant message
//   tools [{type:function,name,description,parameters}] -> function tools;
//     namespace tools (Codex) are flattened into their function tools; hosted
//     tools (web_search, file_search, code_interpreter, ...) are left out:
//     reprise cannot run them
//   tool_choice, max_output_tokens, temperature, top_p, stream,
//   parallel_tool_calls             -> the chat fields (a forced tool_choice is
//                                      guaranteed: server/structured_output.h)
//   text.format json_object / json_schema {name,schema,strict} -> response_format
//   reasoning, store, include, metadata, truncation,
//   prompt_cache_key, user          -> accepted (nothing is stored)
// Refused with a 400 naming the field: previous_response_id (reprise stores no
// responses: send the whole conversation as input), item_reference items,
// non-text content, other tool types (custom, local_shell), text.format
// types other than text, json_object, json_schema.
#pragma once

#include <nlohmann/json.hpp>

#include "server/api_error.h"
#include "server/openai_types.h"

namespace reprise::server {

// The equivalent /v1/chat/completions body, or a 400.
Parsed<nlohmann::ordered_json> ResponsesToChatBody(const nlohmann::ordered_json& body);

}  // namespace reprise::server
