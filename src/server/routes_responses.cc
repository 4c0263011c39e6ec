// POST /v1/responses: the OpenAI Responses API (as Codex and the openai SDK's
// responses.create use it) over the shared chat pipeline (chat_pipeline.h).
// The request is translated into a chat request (responses_types.h);
// ResponsesWire turns the pipeline's output deltas into output items —
// reasoning, message (output_text), function_call — as one response object or
// as the SSE sequence response.created, response.in_progress, then per item
// response.output_item.added, its deltas (response.output_text.delta /
// response.reasoning_text.delta / response.function_call_arguments.delta) and
// .done events, response.output_item.done, and finally response.completed
// (response.incomplete when max_output_tokens ran out; response.failed on an
// engine error). Every event carries a sequence_number. Errors use OpenAI's
// error body. Nothing is stored: previous_response_id is refused.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "server/chat_pipeline.h"
#include "server/responses_types.h"
#include "server/server_internal.h"

namespace reprise::server {
namespace {

using json = nlohmann::ordered_json;

class ResponsesWire : public ChatWire {
 public:
  // `request`: the original body, for the fields a response echoes.
  // `request`: the original body, for the fields a response echoes; `id`: the
  // job's id.
  ResponsesWire(const json& request, const std::string& id) : id_(id) {
    for (char& c : id_) {
      if (c == '-') c = '_';
    }
    auto echo = [&](const char* key, json fallback) {
      auto it = request.find(key);
      echo_[key] = it == request.end() || it->is_null() ? std::move(fallback) : *it;
    };
    echo("instructions", nullptr);
    echo("max_output_tokens", nullptr);
    echo("parallel_tool_calls", true);
    echo("temperature", nullptr);
    echo("tool_choice", "auto");
    echo("tools", json::array());
    echo("top_p", nullptr);
    echo("metadata", json::object());
    echo("user", nullptr);
    echo("store", false);
    echo("text", json{{"format", {{"type", "text"}}}});
  }

  void StreamBegin(const Job& job) override {
    job_ = &job;
    json response = Shell(job, "in_progress");
    Event("response.created", {{"response", response}});
    Event("response.in_progress", {{"response", std::move(response)}});
  }

  void Deltas(const std::vector<json>& deltas) override {
    for (const json& d : deltas) {
      if (auto it = d.find("content"); it != d.end() && it->is_string()) {
        const std::string& text = it->get_ref<const std::string&>();
        if (text.empty()) continue;
        if (open_ != "message") {
          Close();
          OpenItem("message", {{"id", NextId("msg")},
                               {"type", "message"},
                               {"status", "in_progress"},
                               {"role", "assistant"},
                               {"content", json::array()}});
          Event("response.content_part.added", {{"item_id", Item()["id"]},
                                                {"output_index", OutputIndex()},
                                                {"content_index", 0},
                                                {"part", TextPart("")}});
        }
        text_ += text;
        Event("response.output_text.delta", {{"item_id", Item()["id"]},
                                             {"output_index", OutputIndex()},
                                             {"content_index", 0},
                                             {"delta", text},
                                             {"logprobs", json::array()}});
      } else if (auto r = d.find("reasoning_content"); r != d.end() && r->is_string()) {
        const std::string& text = r->get_ref<const std::string&>();
        if (text.empty()) continue;
        if (open_ != "reasoning") {
          Close();
          OpenItem("reasoning", {{"id", NextId("rs")},
                                 {"type", "reasoning"},
                                 {"summary", json::array()},
                                 {"content", json::array()}});
        }
        text_ += text;
        Event("response.reasoning_text.delta", {{"item_id", Item()["id"]},
                                                {"output_index", OutputIndex()},
                                                {"content_index", 0},
                                                {"delta", text}});
      } else if (auto tc = d.find("tool_calls"); tc != d.end()) {
        for (const json& call : *tc) {
          if (call.contains("id")) {
            Close();
            OpenItem("function_call", {{"id", NextId("fc")},
                                       {"type", "function_call"},
                                       {"status", "in_progress"},
                                       {"arguments", ""},
                                       {"call_id", call["id"]},
                                       {"name", call["function"]["name"]}});
          }
          const std::string args = call["function"].value("arguments", "");
          if (!args.empty() && open_ == "function_call") {
            text_ += args;
            Event("response.function_call_arguments.delta",
                  {{"item_id", Item()["id"]}, {"output_index", OutputIndex()}, {"delta", args}});
          }
        }
      }
    }
  }

  json Finish(const Job& job, const ChatResult& result) override {
    Close();
    const bool incomplete = result.finish_reason == "length";
    json response = Shell(job, incomplete ? "incomplete" : "completed");
    if (incomplete) response["incomplete_details"] = {{"reason", "max_output_tokens"}};
    response["output"] = output_;
    const UsageCounts& u = result.usage;
    response["usage"] = {{"input_tokens", u.prompt_tokens},
                         {"input_tokens_details", {{"cached_tokens", u.cached_tokens}}},
                         {"output_tokens", u.completion_tokens},
                         {"output_tokens_details", {{"reasoning_tokens", u.reasoning_tokens}}},
                         {"total_tokens", u.prompt_tokens + u.completion_tokens}};
    if (!result.warning.empty()) response["warning"] = result.warning;
    Event(incomplete ? "response.incomplete" : "response.completed", {{"response", response}});
    return response;
  }

  void StreamError(const ApiError& error) override {
    json response = Shell(*job_, "failed");
    response["error"] = {{"code", error.code.empty() ? "server_error" : error.code},
                         {"message", error.message}};
    response["output"] = output_;
    Event("response.failed", {{"response", std::move(response)}});
  }

  json ErrorBody(const ApiError& error) const override { return ErrorJson(error); }

 private:
  json Shell(const Job& job, const char* status) {
    json r = {{"id", id_},
              {"object", "response"},
              {"created_at", job.meta.created},
              {"status", status},
              {"error", nullptr},
              {"incomplete_details", nullptr},
              {"instructions", echo_["instructions"]},
              {"max_output_tokens", echo_["max_output_tokens"]},
              {"model", job.meta.model},
              {"output", json::array()},
              {"parallel_tool_calls", echo_["parallel_tool_calls"]},
              {"previous_response_id", nullptr},
              {"reasoning", {{"effort", nullptr}, {"summary", nullptr}}},
              {"store", false},
              {"temperature", echo_["temperature"]},
              {"text", echo_["text"]},
              {"tool_choice", echo_["tool_choice"]},
              {"tools", echo_["tools"]},
              {"top_p", echo_["top_p"]},
              {"truncation", "disabled"},
              {"usage", nullptr},
              {"user", echo_["user"]},
              {"metadata", echo_["metadata"]}};
    return r;
  }

  std::string NextId(const char* prefix) const {
    return std::string(prefix) + id_.substr(id_.find('_')) + "_" + std::to_string(output_.size());
  }

  static json TextPart(const std::string& text) {
    return {{"type", "output_text"}, {"text", text}, {"annotations", json::array()}};
  }

  json& Item() { return output_.back(); }
  size_t OutputIndex() const { return output_.size() - 1; }

  void OpenItem(const std::string& type, json item) {
    open_ = type;
    text_.clear();
    output_.push_back(item);
    Event("response.output_item.added",
          {{"output_index", OutputIndex()}, {"item", std::move(item)}});
  }

  void Close() {
    if (open_.empty()) return;
    json& item = Item();
    const json id = item["id"];
    if (open_ == "message") {
      Event("response.output_text.done", {{"item_id", id},
                                          {"output_index", OutputIndex()},
                                          {"content_index", 0},
                                          {"text", text_},
                                          {"logprobs", json::array()}});
      Event("response.content_part.done", {{"item_id", id},
                                           {"output_index", OutputIndex()},
                                           {"content_index", 0},
                                           {"part", TextPart(text_)}});
      item["status"] = "completed";
      item["content"] = json::array({TextPart(text_)});
    } else if (open_ == "reasoning") {
      Event("response.reasoning_text.done", {{"item_id", id},
                                             {"output_index", OutputIndex()},
                                             {"content_index", 0},
                                             {"text", text_}});
      item["content"] = json::array({{{"type", "reasoning_text"}, {"text", text_}}});
    } else {
      Event("response.function_call_arguments.done", {{"item_id", id},
                                                      {"output_index", OutputIndex()},
                                                      {"name", item["name"]},
                                                      {"arguments", text_}});
      item["status"] = "completed";
      item["arguments"] = text_;
    }
    Event("response.output_item.done", {{"output_index", OutputIndex()}, {"item", item}});
    open_.clear();
  }

  // Emits `type` with its sequence_number.
  void Event(const char* type, json fields) {
    if (!streaming()) return;
    json data = {{"type", type}, {"sequence_number", sequence_++}};
    for (auto& [k, v] : fields.items()) data[k] = std::move(v);
    Emit(type, data);
  }

  std::string id_;  // "resp_..."
  json echo_ = json::object();
  const Job* job_ = nullptr;  // set by StreamBegin
  json output_ = json::array();
  std::string open_;  // type of the open item; empty: none
  std::string text_;  // the open item's text / arguments so far
  int64_t sequence_ = 0;
};

// Chat parameter names in errors -> the Responses names.
ApiError Renamed(ApiError e) {
  if (e.param == "max_tokens") {
    e.param = "max_output_tokens";
    const size_t at = e.message.find("max_tokens");
    if (at != std::string::npos) e.message.replace(at, 10, "max_output_tokens");
  } else if (e.param.rfind("messages", 0) == 0) {
    e.param = "input";
  } else if (e.param.rfind("response_format", 0) == 0) {
    // response_format.json_schema.schema -> text.format.schema, and so on.
    auto rename = [](std::string s) {
      for (const char* from : {"response_format.json_schema", "response_format"}) {
        for (size_t at; (at = s.find(from)) != std::string::npos;) {
          s.replace(at, std::string(from).size(), "text.format");
        }
      }
      return s;
    };
    e.param = rename(e.param);
    e.message = rename(e.message);
  }
  return e;
}

}  // namespace

void HandleResponses(Server::Impl& s, const httplib::Request& req, httplib::Response& res) {
  std::optional<json> body = ParseJsonBody(req, res);
  if (!body) return;
  Parsed<json> chat_body = ResponsesToChatBody(*body);
  if (auto* e = std::get_if<ApiError>(&chat_body)) {
    RespondError(res, *e);
    return;
  }
  Parsed<ChatRequest> chat = ParseChatRequest(std::get<json>(chat_body), s.config.defaults);
  if (auto* e = std::get_if<ApiError>(&chat)) {
    RespondError(res, Renamed(*e));
    return;
  }
  auto job = PrepareChatJob(s, req, std::get<ChatRequest>(chat), "resp");
  if (auto* e = std::get_if<ApiError>(&job)) {
    RespondError(res, Renamed(*e));
    return;
  }
  auto wire = std::make_shared<ResponsesWire>(*body, std::get<Job>(job).meta.id);
  ServeChat(s, std::get<Job>(std::move(job)), std::move(wire), res);
}

}  // namespace reprise::server
