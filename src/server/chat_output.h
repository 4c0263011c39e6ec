// The assistant's side of a chat completion: generated text split into
// content, reasoning_content and tool_calls by the chat module's output
// parser (when the model's template uses tool calls or <think>), as OpenAI
// stream deltas and as the final message. Plain text passes through.
// Not thread-safe: one per request.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "chat/tool_parser.h"

namespace reprise::server {

class ChatOutput {
 public:
  // `format` unset: plain text. Tool call ids are `id_prefix` + index.
  // `stream_arguments` (streamed replies): tool-call arguments come out as
  // they are generated, several deltas per call (chat::StreamParser).
  ChatOutput(std::optional<chat::OutputFormat> format, std::string id_prefix,
             bool stream_arguments = false);
  ~ChatOutput();

  // Consumes generated text; returns the OpenAI `delta` objects it completes
  // ({"content":..}, {"reasoning_content":..}, {"tool_calls":[..]}).
  std::vector<nlohmann::ordered_json> Feed(const std::string& text);
  // End of output (held-back text, an unfinished call as content).
  std::vector<nlohmann::ordered_json> Finish();

  // {"role":"assistant","content":..,["reasoning_content"],["tool_calls"]};
  // content is null when the reply is only tool calls.
  nlohmann::ordered_json Message() const;
  bool has_tool_calls() const { return !tool_calls_.empty(); }
  // After Finish: the output ended inside a streaming tool call (its arguments
  // are incomplete), so the finish reason is the generation's, not tool_calls.
  bool tool_call_unfinished() const { return parser_ != nullptr && parser_->call_unfinished(); }
  // The finish reason of a reply whose generation ended with `generation_finish`.
  std::string FinishReason(const std::string& generation_finish) const {
    return has_tool_calls() && !tool_call_unfinished() ? "tool_calls" : generation_finish;
  }
  // [{"id","type":"function","function":{"name","arguments"}}], in order.
  const nlohmann::ordered_json& tool_calls() const { return tool_calls_; }

 private:
  std::vector<nlohmann::ordered_json> Convert(std::vector<chat::StreamEvent> events);

  std::unique_ptr<chat::StreamParser> parser_;  // null: plain text
  std::string content_;
  std::string reasoning_;
  nlohmann::ordered_json tool_calls_ = nlohmann::ordered_json::array();
};

}  // namespace reprise::server
