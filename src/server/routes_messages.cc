// POST /v1/messages and /v1/messages/count_tokens: the Anthropic Messages API
// (as Claude Code and @anthropic-ai/sdk use it) over the shared chat pipeline
// (chat_pipeline.h). The request is translated into a chat request
// (anthropic_types.h); AnthropicWire turns the pipeline's output deltas into
// content blocks: a non-streaming message, or the SSE sequence message_start,
// ping, content_block_start / content_block_delta (text_delta, thinking_delta,
// input_json_delta) / content_block_stop per block, message_delta (stop_reason,
// usage), message_stop. Errors use Anthropic's body
// {"type":"error","error":{"type","message"}} (also for 401/404/413 on these
// paths: server.cc rewrites them).
//
// usage: input_tokens counts the prompt tokens that were not read from the
// prompt cache, cache_read_input_tokens those that were (Anthropic's split:
// the prompt is their sum); message_start carries the whole prompt as
// input_tokens, message_delta the final split.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "server/anthropic_types.h"
#include "server/chat_pipeline.h"
#include "server/json_body.h"
#include "server/server_internal.h"

namespace reprise::server {
namespace {

using json = nlohmann::ordered_json;

std::string MessageId(const Job& job) {
  std::string id = job.meta.id;
  for (char& c : id) {
    if (c == '-') c = '_';
  }
  return id;
}

class AnthropicWire : public ChatWire {
 public:
  void StreamBegin(const Job& job) override {
    json message = MessageShell(job);
    message["usage"] = {{"input_tokens", static_cast<int64_t>(job.prompt.size())},
                        {"cache_creation_input_tokens", 0},
                        {"cache_read_input_tokens", 0},
                        {"output_tokens", 0}};
    Emit("message_start", {{"type", "message_start"}, {"message", std::move(message)}});
    Emit("ping", {{"type", "ping"}});
  }

  void Deltas(const std::vector<json>& deltas) override {
    for (const json& d : deltas) {
      if (auto it = d.find("content"); it != d.end() && it->is_string()) {
        const std::string& text = it->get_ref<const std::string&>();
        if (text.empty()) continue;
        Open("text", json{{"type", "text"}, {"text", ""}});
        blocks_.back()["text"] = blocks_.back()["text"].get<std::string>() + text;
        EmitDelta({{"type", "text_delta"}, {"text", text}});
      } else if (auto r = d.find("reasoning_content"); r != d.end() && r->is_string()) {
        const std::string& text = r->get_ref<const std::string&>();
        if (text.empty()) continue;
        Open("thinking", json{{"type", "thinking"}, {"thinking", ""}, {"signature", ""}});
        blocks_.back()["thinking"] = blocks_.back()["thinking"].get<std::string>() + text;
        EmitDelta({{"type", "thinking_delta"}, {"thinking", text}});
      } else if (auto tc = d.find("tool_calls"); tc != d.end()) {
        for (const json& call : *tc) {
          if (call.contains("id")) {
            Close();
            Open("tool_use", json{{"type", "tool_use"},
                                  {"id", call["id"]},
                                  {"name", call["function"]["name"]},
                                  {"input", json::object()}});
            arguments_.clear();
          }
          const std::string args = call["function"].value("arguments", "");
          if (!args.empty() && open_ == "tool_use") {
            arguments_ += args;
            EmitDelta({{"type", "input_json_delta"}, {"partial_json", args}});
          }
        }
      }
    }
  }

  json Finish(const Job& job, const ChatResult& result) override {
    Close();
    std::string stop_reason = "end_turn";
    json stop_sequence = nullptr;
    if (result.finish_reason == "tool_calls") {
      stop_reason = "tool_use";
    } else if (result.finish_reason == "length") {
      stop_reason = "max_tokens";
    } else if (result.finish_reason == "stop_sequence") {
      stop_reason = "stop_sequence";
      stop_sequence = result.stop_sequence;
    }
    const UsageCounts& u = result.usage;
    json usage = {{"input_tokens", u.prompt_tokens - u.cached_tokens},
                  {"cache_creation_input_tokens", 0},
                  {"cache_read_input_tokens", u.cached_tokens},
                  {"output_tokens", u.completion_tokens}};
    Emit("message_delta",
         {{"type", "message_delta"},
          {"delta", {{"stop_reason", stop_reason}, {"stop_sequence", stop_sequence}}},
          {"usage", usage}});
    Emit("message_stop", {{"type", "message_stop"}});
    json message = MessageShell(job);
    message["content"] = blocks_;
    message["stop_reason"] = stop_reason;
    message["stop_sequence"] = stop_sequence;
    message["usage"] = usage;
    return message;
  }

  void StreamError(const ApiError& error) override { Emit("error", AnthropicErrorJson(error)); }
  json ErrorBody(const ApiError& error) const override { return AnthropicErrorJson(error); }

 private:
  static json MessageShell(const Job& job) {
    return {{"id", MessageId(job)},    {"type", "message"},        {"role", "assistant"},
            {"model", job.meta.model}, {"content", json::array()}, {"stop_reason", nullptr},
            {"stop_sequence", nullptr}};
  }

  // Starts a block of `type` unless one is already open.
  void Open(const std::string& type, json block) {
    if (open_ == type && type != "tool_use") return;
    Close();
    open_ = type;
    blocks_.push_back(block);
    Emit("content_block_start", {{"type", "content_block_start"},
                                 {"index", blocks_.size() - 1},
                                 {"content_block", std::move(block)}});
  }

  void Close() {
    if (open_.empty()) return;
    if (open_ == "tool_use") {
      // The model's arguments, bounded in depth as request bodies are.
      JsonParseResult input = ParseJsonBounded(arguments_);
      blocks_.back()["input"] = input.ok && input.value.is_object() ? input.value : json::object();
    }
    Emit("content_block_stop", {{"type", "content_block_stop"}, {"index", blocks_.size() - 1}});
    open_.clear();
  }

  void EmitDelta(json delta) {
    Emit("content_block_delta", {{"type", "content_block_delta"},
                                 {"index", blocks_.size() - 1},
                                 {"delta", std::move(delta)}});
  }

  json blocks_ = json::array();
  std::string open_;  // type of the open block; empty: none
  std::string arguments_;
};

void RespondAnthropic(httplib::Response& res, ApiError error) {
  // The chat parser names chat fields; say the Anthropic one.
  if (error.param == "stop" && error.message.rfind("stop ", 0) == 0) {
    error.message.replace(0, 4, "stop_sequences");
  }
  RespondJson(res, AnthropicErrorJson(error), error.http_status);
}

// Body -> a prepared Job; on failure answers and returns nullopt.
std::optional<Job> Prepare(Server::Impl& s, const httplib::Request& req, httplib::Response& res,
                           bool count_tokens) {
  std::optional<json> body = ParseJsonBody(req, res);
  if (!body) return std::nullopt;  // server.cc rewrites the error's shape
  MessagesTranslateOptions options;
  options.strip_billing_header = s.config.strip_billing_header;
  options.count_tokens = count_tokens;
  Parsed<json> chat_body = MessagesToChatBody(*body, options);
  if (auto* e = std::get_if<ApiError>(&chat_body)) {
    RespondAnthropic(res, *e);
    return std::nullopt;
  }
  Parsed<ChatRequest> chat = ParseChatRequest(std::get<json>(chat_body), s.config.defaults);
  if (auto* e = std::get_if<ApiError>(&chat)) {
    RespondAnthropic(res, *e);
    return std::nullopt;
  }
  auto job = PrepareChatJob(s, req, std::get<ChatRequest>(chat), "msg");
  if (auto* e = std::get_if<ApiError>(&job)) {
    // response_format came from output_config.format or output_format.
    ApiError renamed = *e;
    const json* config = body->contains("output_config") ? &(*body)["output_config"] : nullptr;
    const std::string to = config != nullptr && config->is_object() && config->contains("format")
                               ? "output_config.format.schema"
                               : "output_format.schema";
    for (const char* from : {"response_format.json_schema.schema", "response_format"}) {
      for (size_t at; (at = renamed.message.find(from)) != std::string::npos;) {
        renamed.message.replace(at, std::string(from).size(), to);
      }
    }
    RespondAnthropic(res, renamed);
    return std::nullopt;
  }
  return std::get<Job>(std::move(job));
}

}  // namespace

void HandleMessages(Server::Impl& s, const httplib::Request& req, httplib::Response& res) {
  std::optional<Job> job = Prepare(s, req, res, /*count_tokens=*/false);
  if (!job) return;
  ServeChat(s, std::move(*job), std::make_shared<AnthropicWire>(), res);
}

void HandleCountTokens(Server::Impl& s, const httplib::Request& req, httplib::Response& res) {
  std::optional<Job> job = Prepare(s, req, res, /*count_tokens=*/true);
  if (!job) return;
  RespondJson(res, {{"input_tokens", job->prompt.size()}});
}

}  // namespace reprise::server
