// Generated text -> content / reasoning / tool-call deltas (see chat_output.h).
#include "server/chat_output.h"

namespace reprise::server {

using Json = nlohmann::ordered_json;

ChatOutput::ChatOutput(std::optional<chat::OutputFormat> format, std::string id_prefix,
                       bool stream_arguments) {
  if (format && (format->tool_calls != chat::ToolCallFormat::kNone || format->reasoning)) {
    parser_ = std::make_unique<chat::StreamParser>(*format, std::move(id_prefix), stream_arguments);
  }
}

ChatOutput::~ChatOutput() = default;

std::vector<Json> ChatOutput::Feed(const std::string& text) {
  if (text.empty()) return {};
  if (parser_ == nullptr) {
    content_ += text;
    return {Json{{"content", text}}};
  }
  return Convert(parser_->Feed(text));
}

std::vector<Json> ChatOutput::Finish() {
  if (parser_ == nullptr) return {};
  return Convert(parser_->Finish());
}

std::vector<Json> ChatOutput::Convert(std::vector<chat::StreamEvent> events) {
  std::vector<Json> deltas;
  for (chat::StreamEvent& e : events) {
    switch (e.kind) {
      case chat::StreamEvent::Kind::kContent:
        content_ += e.text;
        deltas.push_back({{"content", e.text}});
        break;
      case chat::StreamEvent::Kind::kReasoning:
        reasoning_ += e.text;
        deltas.push_back({{"reasoning_content", e.text}});
        break;
      case chat::StreamEvent::Kind::kToolCallStart:
        tool_calls_.push_back({{"id", e.id},
                               {"type", "function"},
                               {"function", {{"name", e.name}, {"arguments", ""}}}});
        deltas.push_back({{"tool_calls",
                           {{{"index", e.index},
                             {"id", e.id},
                             {"type", "function"},
                             {"function", {{"name", e.name}, {"arguments", ""}}}}}}});
        break;
      case chat::StreamEvent::Kind::kToolCallArguments:
        if (e.index >= 0 && static_cast<size_t>(e.index) < tool_calls_.size()) {
          tool_calls_[e.index]["function"]["arguments"].get_ref<std::string&>() += e.text;
        }
        deltas.push_back(
            {{"tool_calls", {{{"index", e.index}, {"function", {{"arguments", e.text}}}}}}});
        break;
    }
  }
  return deltas;
}

Json ChatOutput::Message() const {
  Json m = {{"role", "assistant"}};
  m["content"] = content_.empty() && has_tool_calls() ? Json(nullptr) : Json(content_);
  if (!reasoning_.empty()) m["reasoning_content"] = reasoning_;
  if (has_tool_calls()) m["tool_calls"] = tool_calls_;
  return m;
}

}  // namespace reprise::server
