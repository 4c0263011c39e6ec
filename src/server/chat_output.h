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
  ChatOutput(std::optional<chat::OutputFormat> format, std::string id_prefix);
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
