// The one chat pipeline behind every front door (/v1/chat/completions,
// /v1/messages, /v1/responses): a request already translated into a
// ChatRequest is rendered with the model's chat template, tokenized, checked
// against the context, submitted to the engine, and its output read back
// through Generation (detokenizing, stop strings) and ChatOutput (tool calls,
// reasoning). Only the wire format differs per route: a ChatWire turns the
// OpenAI-shaped deltas ChatOutput produces ({"content"}, {"reasoning_content"},
// {"tool_calls"}) into its own stream events and final response. So the same
// conversation sent through any of the three APIs renders to the same tokens
// and hits the same prompt-cache entries.
//
// Invariants: a ChatWire sees StreamBegin once (streams only), then Deltas in
// generation order, then exactly one of Finish or Fail. Deltas carry the same
// text for streaming and whole responses (the whole reply is fed once), so
// both shapes agree; streamed, a tool call's arguments come in several
// deltas (ChatOutput's stream_arguments), which only differs for a call cut
// off or malformed after its arguments began (chat/tool_parser.h).
// Not thread-safe: one HTTP thread drives a request.
#pragma once

#include <httplib.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "server/api_error.h"
#include "server/chat_output.h"
#include "server/generation.h"
#include "server/openai_types.h"
#include "server/server_internal.h"

namespace reprise::server {

// A request ready for the engine.
struct Job {
  bool chat = true;
  std::vector<int32_t> prompt;
  GenerationOptions options;
  std::string prompt_param;                  // "messages" or "prompt"
  std::string echo;                          // completions with echo: the prompt text
  std::optional<chat::OutputFormat> format;  // chat: tool calls / reasoning to parse out
  bool tool_required = false;                // tool_choice "required"
  std::string forced_function;               // tool_choice {"function":{"name":..}}
  std::string cache_namespace;               // engine::Request::cache_namespace
  // Structured output / forced tool calls (structured_output.h); null: none.
  std::shared_ptr<engine::Constraint> constraint;
  ResponseMeta meta;
};

// Renders and tokenizes a parsed chat request into a Job whose id is
// NewId(id_prefix). Errors: no chat template, a template failure (400).
// The next delta of `gen` (Generation::Next with the routes' poll period);
// once the shutdown deadline has passed, cancels the generation and sets
// *aborted (the caller then ends the reply with an error, never a finish).
// False once the generation has ended.
bool NextOrAbort(Server::Impl& s, Generation& gen, GenerationDelta* delta, bool* aborted);

// Answers 200 with an SSE stream that `write` fills (once, on httplib's
// thread); `gen` is cancelled when the stream is released (a no-op once it
// has finished, so a vanished client stops its generation).
void StreamEvents(httplib::Response& res, std::shared_ptr<Generation> gen,
                  std::function<void(httplib::DataSink&)> write);

// `req` supplies the tenant (API key) for the cache namespace.
std::variant<Job, ApiError> PrepareChatJob(Server::Impl& s, const httplib::Request& req,
                                           ChatRequest& chat, const char* id_prefix);
// Checks the job against the context and the sampling limits and submits it
// (sets meta.created / meta.model). Errors: what the engine would refuse.
std::variant<std::shared_ptr<Generation>, ApiError> SubmitJob(Server::Impl& s, Job& job);
// The per-request log line.
void LogRequest(const Job& job, const Generation& gen);
// The warning for a reply that ignored a forced tool_choice; empty if none.
std::string ToolChoiceWarning(const Job& job, const ChatOutput& output);
// Tokens of the reply's reasoning text (re-encoded: the output parser splits
// text, not tokens; the <think> tags themselves are not counted).
int32_t ReasoningTokens(const tokenizer::Tokenizer& tok, const ChatOutput& output);

// How a chat generation ended, for a wire's final event / response.
struct ChatResult {
  const ChatOutput* output = nullptr;
  // "stop" (end of generation), "stop_sequence" (a stop string matched; see
  // stop_sequence), "length", or "tool_calls".
  std::string finish_reason;
  std::string stop_sequence;
  UsageCounts usage;
  std::string warning;  // ToolChoiceWarning
};

// One front door's output format.
class ChatWire {
 public:
  using WriteFn = std::function<bool(const char* data, size_t size)>;
  virtual ~ChatWire() = default;

  // Streams only: the opening events (the job is submitted).
  virtual void StreamBegin(const Job& job) = 0;
  // Output deltas as ChatOutput produces them; writes stream events when
  // streaming, and in any case accumulates the final response.
  virtual void Deltas(const std::vector<nlohmann::ordered_json>& deltas) = 0;
  // End of output: closing events (streams) and the final response body.
  virtual nlohmann::ordered_json Finish(const Job& job, const ChatResult& result) = 0;
  // A failure mid-stream (engine error): the route's error event.
  virtual void StreamError(const ApiError& error) = 0;
  // The route's error body for a failure before any output.
  virtual nlohmann::ordered_json ErrorBody(const ApiError& error) const = 0;

  void set_writer(WriteFn write) { write_ = std::move(write); }
  bool streaming() const { return static_cast<bool>(write_); }
  bool ok() const { return ok_; }

 protected:
  // Writes "event: NAME\ndata: JSON\n\n" (no-op when not streaming).
  void Emit(const std::string& event, const nlohmann::ordered_json& data);

 private:
  WriteFn write_;
  bool ok_ = true;
};

// Submits `job` and answers through `wire`: one JSON body, or an SSE stream
// when job.options.stream. Errors before generation are answered with
// wire->ErrorBody at their HTTP status.
void ServeChat(Server::Impl& s, Job job, std::shared_ptr<ChatWire> wire, httplib::Response& res);

}  // namespace reprise::server
