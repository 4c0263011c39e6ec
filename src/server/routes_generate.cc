// POST /v1/chat/completions and /v1/completions: parse, render, tokenize,
// check against the context, submit to the engine, and answer as one JSON
// response or as an SSE stream. PrepareChatJob and SubmitJob (declared in
// chat_pipeline.h) are the steps every chat front door shares. A stream whose
// client goes away (a write fails) or a server that is stopping cancels the
// engine request, which releases its KV blocks.
// response_format and a forced tool_choice ("required" or a named function)
// are guaranteed by constrained decoding (structured_output.h; PrepareChatJob
// builds the constraint, SubmitJob hands it to the engine). A reply that is
// cut short (max_tokens) can still lack the forced call: it is returned as
// produced, with a top-level "warning" saying so (non-standard; clients
// ignore it) on the response or on the stream's finishing chunk.
#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/log.h"
#include "server/chat_output.h"
#include "server/chat_pipeline.h"
#include "server/generation.h"
#include "server/server_internal.h"
#include "server/sse.h"
#include "server/user_text.h"

namespace reprise::server {
namespace {

using json = nlohmann::ordered_json;
constexpr const char* kLog = "server";
constexpr std::chrono::milliseconds kPoll{100};

}  // namespace

// The prompt-cache namespace of a request: its API key (by index in
// --api-key order: no key text is kept in the cache) and its cache_salt.
// Requests share cached KV only within one namespace.
std::string CacheNamespace(const Server::Impl& s, const httplib::Request& req,
                           const std::string& salt) {
  const int key = ApiKeyIndex(s, req);
  if (key < 0 && salt.empty()) return "";
  return StrFormat("key%d/%zu:", key, salt.size()) + salt;
}

// The warning for a reply that ignored a forced tool_choice; empty if none.
std::string ToolChoiceWarning(const Job& job, const ChatOutput& output) {
  if (!job.forced_function.empty()) {
    for (const json& call : output.tool_calls()) {
      if (call["function"]["name"] == job.forced_function) return "";
    }
    return "tool_choice named the function '" + job.forced_function +
           "', but the model did not call it; the reply is returned as the model produced it";
  }
  if (job.tool_required && !output.has_tool_calls()) {
    return "tool_choice was \"required\", but the model made no tool call; the reply is "
           "returned as the model produced it";
  }
  return "";
}

namespace {

int64_t NowUnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Encodes templated/plain text with control tokens parsed outside `plain`,
// adding BOS when the model wants one and the text does not already start
// with it.
std::vector<int32_t> EncodePrompt(const tokenizer::Tokenizer& tok, const std::string& text,
                                  std::span<const tokenizer::TextRange> plain) {
  std::vector<int32_t> ids = tok.EncodeWithPlainRanges(text, /*add_special=*/false, plain);
  if (tok.add_bos() && tok.bos_id() >= 0 && (ids.empty() || ids.front() != tok.bos_id())) {
    ids.insert(ids.begin(), tok.bos_id());
  }
  return ids;
}

// Checks what the engine would refuse, with OpenAI's wording; nullopt if fine.
std::optional<ApiError> CheckJob(Server::Impl& s, const Job& job) {
  if (job.prompt.empty()) return InvalidParam(job.prompt_param, "the prompt is empty");
  for (int32_t id : job.prompt) {
    if (id < 0 || id >= s.config.n_vocab) {
      return InvalidParam(job.prompt_param,
                          StrFormat("token id %d is out of range [0, %d)", id, s.config.n_vocab));
    }
  }
  Status valid = engine::ValidateSamplingParams(job.options.sampling, s.config.n_vocab);
  if (!valid.ok()) return FromSamplingError(valid);
  const int64_t ctx = s.engine.config().ctx_size;
  const int64_t n_prompt = static_cast<int64_t>(job.prompt.size());
  // Only a prompt that leaves no room is refused; max_tokens past the context
  // is clamped by the engine (it finishes with "length" at the context's end).
  if (ctx > 0 && n_prompt >= ctx) {
    return ContextLengthExceeded(
        job.prompt_param,
        StrFormat("This model's maximum context length is %lld tokens. However, your %s "
                  "take %lld tokens, which leaves no room for a completion. Please reduce the "
                  "length of the %s.",
                  static_cast<long long>(ctx), job.prompt_param.c_str(),
                  static_cast<long long>(n_prompt), job.prompt_param.c_str()));
  }
  return std::nullopt;
}

}  // namespace

bool NextOrAbort(Server::Impl& s, Generation& gen, GenerationDelta* delta, bool* aborted) {
  delta->Clear();
  const bool more = gen.Next(delta, kPoll);
  if (more && !*aborted && s.Aborting()) {
    *aborted = true;
    gen.Cancel();
  }
  return more;
}

void LogRequest(const Job& job, const Generation& gen) {
  const engine::Usage& u = gen.engine_usage();
  const UsageCounts c = gen.usage();
  const double tps = u.decode_ms > 0 && c.completion_tokens > 1
                         ? (c.completion_tokens - 1) * 1000.0 / u.decode_ms
                         : 0.0;
  LOG_INFO(
      kLog,
      "%s %s: prompt %d tokens (cached %d, %d from host, %d from disk), generated %d, ttft %.1f "
      "ms, %.1f tok/s, %s%s",
      job.chat ? "chat" : "completion", job.meta.id.c_str(), c.prompt_tokens, c.cached_tokens,
      u.cached_tokens_host, u.cached_tokens_disk,
      c.completion_tokens, u.ttft_ms, tps, gen.failed() ? "error: " : gen.finish_reason().c_str(),
      gen.failed() ? gen.error().message.c_str() : "");
}

namespace {

void RespondWhole(Server::Impl& s, const Job& job, Generation& gen, httplib::Response& res) {
  std::string text;
  std::vector<TokenLogprob> logprobs;
  GenerationDelta delta;
  bool more = true;
  bool aborted = false;
  while (more) {
    more = NextOrAbort(s, gen, &delta, &aborted);
    text += delta.text;
    for (TokenLogprob& lp : delta.logprobs) logprobs.push_back(std::move(lp));
  }
  s.metrics.CountGenerationFinished();
  LogRequest(job, gen);
  if (aborted) {
    RespondError(res, ShuttingDown("the server shut down before this request finished"));
    return;
  }
  if (gen.failed()) {
    RespondError(res, gen.error());
    return;
  }
  s.metrics.ObserveFinished(gen.engine_usage());
  const std::vector<TokenLogprob>* lp = job.options.logprobs ? &logprobs : nullptr;
  if (job.chat) {
    ChatOutput output(job.format, "call_" + job.meta.id.substr(job.meta.id.find('-') + 1) + "_");
    output.Feed(text);
    output.Finish();
    const std::string finish = output.has_tool_calls() ? "tool_calls" : gen.finish_reason();
    UsageCounts usage = gen.usage();
    usage.reasoning_tokens = ReasoningTokens(s.tok, output);
    json response = ChatCompletionJson(job.meta, output.Message(), finish, usage, lp);
    const std::string warning = ToolChoiceWarning(job, output);
    if (!warning.empty()) {
      LOG_WARN(kLog, "%s: %s", job.meta.id.c_str(), warning.c_str());
      response["warning"] = warning;
    }
    RespondJson(res, response);
  } else {
    RespondJson(res, CompletionJson(job.meta, job.echo + text, gen.finish_reason(), gen.usage(), lp,
                                    job.echo.size()));
  }
}

// Writes the whole stream from inside httplib's content provider.
void StreamTo(Server::Impl& s, const Job& job, Generation& gen, httplib::DataSink& sink) {
  SseWriter out([&sink](const char* data, size_t size) { return sink.write(data, size); });
  const bool usage_field = job.options.include_usage;
  auto with_usage_null = [usage_field](json chunk) {
    if (usage_field) chunk["usage"] = nullptr;
    return chunk;
  };
  const bool want_lp = job.options.logprobs;
  size_t text_offset = 0;
  if (job.chat) {
    out.Send(with_usage_null(
        ChatChunkJson(job.meta, {{"role", "assistant"}, {"content", ""}}, "", nullptr)));
  } else if (!job.echo.empty()) {
    out.Send(with_usage_null(CompletionChunkJson(job.meta, job.echo, "", nullptr, 0)));
    text_offset = job.echo.size();
  }
  GenerationDelta delta;
  ChatOutput output(job.format, "call_" + job.meta.id.substr(job.meta.id.find('-') + 1) + "_",
                    /*stream_arguments=*/true);
  auto send_chat_deltas = [&](std::vector<json> deltas, const std::vector<TokenLogprob>* lp) {
    if (deltas.empty() && lp != nullptr && !lp->empty()) deltas.push_back({{"content", ""}});
    for (json& d : deltas) {
      out.Send(with_usage_null(ChatChunkJson(job.meta, std::move(d), "", lp)));
      lp = nullptr;  // log-probabilities ride on the first chunk of the step
    }
  };
  auto send_delta = [&]() {
    if (delta.text.empty() && delta.logprobs.empty()) return;
    const std::vector<TokenLogprob>* lp = want_lp ? &delta.logprobs : nullptr;
    if (job.chat) {
      send_chat_deltas(output.Feed(delta.text), lp);
    } else {
      out.Send(with_usage_null(CompletionChunkJson(job.meta, delta.text, "", lp, text_offset)));
    }
    text_offset += delta.text.size();
  };
  bool more = true;
  bool aborted = false;
  while (more) {
    more = NextOrAbort(s, gen, &delta, &aborted);
    send_delta();
    if (!out.ok()) gen.Cancel();  // the client is gone
  }
  s.metrics.CountGenerationFinished();
  LogRequest(job, gen);
  if (!out.ok()) return;
  if (aborted) {
    // No finishing chunk and no [DONE]: the reply was cut off.
    out.SendEvent("error",
                  ErrorJson(ShuttingDown("the server shut down before this stream finished")));
    return;
  }
  if (gen.failed()) {
    out.Send(ErrorJson(gen.error()));
  } else {
    s.metrics.ObserveFinished(gen.engine_usage());
    if (job.chat) {
      send_chat_deltas(output.Finish(), nullptr);
      const std::string finish = output.FinishReason(gen.finish_reason());
      json last = with_usage_null(ChatChunkJson(job.meta, json::object(), finish, nullptr));
      const std::string warning = ToolChoiceWarning(job, output);
      if (!warning.empty()) {
        LOG_WARN(kLog, "%s: %s", job.meta.id.c_str(), warning.c_str());
        last["warning"] = warning;
      }
      out.Send(last);
      if (usage_field) {
        UsageCounts usage = gen.usage();
        usage.reasoning_tokens = ReasoningTokens(s.tok, output);
        out.Send(ChatUsageChunkJson(job.meta, usage));
      }
    } else {
      out.Send(with_usage_null(
          CompletionChunkJson(job.meta, "", gen.finish_reason(), nullptr, text_offset)));
      if (usage_field) out.Send(CompletionUsageChunkJson(job.meta, gen.usage()));
    }
  }
  out.SendDone();
}

}  // namespace

std::variant<std::shared_ptr<Generation>, ApiError> SubmitJob(Server::Impl& s, Job& job) {
  if (auto error = CheckJob(s, job)) return *error;
  engine::Request request;
  request.prompt = job.prompt;
  request.max_tokens = job.options.max_tokens.value_or(0);
  request.sampling = job.options.sampling;
  request.ignore_eos = job.options.ignore_eos;
  request.cache_namespace = job.cache_namespace;
  request.constraint = job.constraint;
  engine::SubmitResult submitted = s.engine.Submit(std::move(request));
  if (!submitted.ok()) return FromEngineError(submitted.code, submitted.status, job.prompt_param);
  job.meta.created = NowUnixSeconds();
  job.meta.model = s.config.model_id;
  return std::make_shared<Generation>(std::move(submitted.handle), s.tok, job.options,
                                      job.prompt_param);
}

namespace {

void Run(Server::Impl& s, Job job, httplib::Response& res) {
  auto submitted = SubmitJob(s, job);
  if (auto* error = std::get_if<ApiError>(&submitted)) {
    RespondError(res, *error);
    return;
  }
  std::shared_ptr<Generation> gen = std::get<std::shared_ptr<Generation>>(std::move(submitted));
  if (!job.options.stream) {
    RespondWhole(s, job, *gen, res);
    return;
  }
  auto shared_job = std::make_shared<Job>(std::move(job));
  Server::Impl* sp = &s;
  StreamEvents(res, gen, [sp, shared_job, gen](httplib::DataSink& sink) {
    StreamTo(*sp, *shared_job, *gen, sink);
  });
}

}  // namespace

void StreamEvents(httplib::Response& res, std::shared_ptr<Generation> gen,
                  std::function<void(httplib::DataSink&)> write) {
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [write = std::move(write)](size_t /*offset*/, httplib::DataSink& sink) {
        write(sink);
        sink.done();
        return true;
      },
      [gen](bool /*success*/) { gen->Cancel(); });  // no-op once finished
}

void HandleChatCompletions(Server::Impl& s, const httplib::Request& req, httplib::Response& res) {
  std::optional<json> body = ParseJsonBody(req, res);
  if (!body) return;
  Parsed<ChatRequest> parsed = ParseChatRequest(*body, s.config.defaults);
  if (auto* e = std::get_if<ApiError>(&parsed)) {
    RespondError(res, *e);
    return;
  }
  auto job = PrepareChatJob(s, req, std::get<ChatRequest>(parsed), "chatcmpl");
  if (auto* e = std::get_if<ApiError>(&job)) {
    RespondError(res, *e);
    return;
  }
  Run(s, std::get<Job>(std::move(job)), res);
}

std::variant<Job, ApiError> PrepareChatJob(Server::Impl& s, const httplib::Request& req,
                                           ChatRequest& chat, const char* id_prefix) {
  if (s.renderer == nullptr) {
    return InvalidParam("messages",
                        "this model has no chat template; use /v1/completions with a plain "
                        "prompt");
  }
  const bool add_generation_prompt = chat.add_generation_prompt;
  const ChatRenderer& renderer = *s.renderer;
  RenderFn render = [&](const json& messages, const json& tools) -> Result<std::string> {
    Result<std::string> text = renderer.Render(messages, tools, add_generation_prompt);
    if (text.ok()) return text;
    // Many templates (Qwen 3's among them) fail on the content: null that
    // OpenAI clients send with tool calls; render those as "" rather than
    // refuse the conversation (llama.cpp does the same). Other failures, and
    // this one if it persists, are the template's own 400.
    json filled = messages;
    bool any_null = false;
    for (json& m : filled) {
      if (m["content"].is_null()) {
        m["content"] = "";
        any_null = true;
      }
    }
    if (any_null) {
      Result<std::string> retry = renderer.Render(filled, tools, add_generation_prompt);
      if (retry.ok()) return retry;
    }
    return text;
  };
  MarkedPrompt prompt;
  if (s.config.special_tokens_in_content) {
    Result<std::string> text = render(chat.messages, chat.tools);
    if (!text.ok()) return InvalidParam("messages", text.status().message());
    prompt.text = std::move(*text);
  } else {
    Result<MarkedPrompt> marked = RenderMarkingUserText(s.tok, chat.messages, chat.tools, render);
    if (!marked.ok()) return InvalidParam("messages", marked.status().message());
    prompt = std::move(*marked);
  }
  const std::string* text = &prompt.text;
  Job job;
  job.chat = true;
  // Control tokens are parsed in the template's text, not in request text.
  job.prompt = EncodePrompt(s.tok, *text, prompt.plain);
  job.options = std::move(chat.options);
  job.prompt_param = "messages";
  job.cache_namespace = CacheNamespace(s, req, job.options.cache_salt);
  job.meta.id = s.NewId(id_prefix);
  const bool has_tools = chat.tools.is_array() && !chat.tools.empty();
  job.format = s.renderer->OutputFormatFor(*text, has_tools);
  if (job.format && !has_tools) {
    job.format->tool_calls = chat::ToolCallFormat::kNone;  // no tools offered: never parse calls
  }
  if (has_tools && chat.tool_choice == "required") job.tool_required = true;
  if (has_tools && chat.tool_choice != "auto" && chat.tool_choice != "required") {
    job.forced_function = chat.tool_choice;  // ParseChatRequest kept only this function
  }
  auto constraint = s.structured->ForChat(chat, job.format);
  if (auto* e = std::get_if<ApiError>(&constraint)) return *e;
  job.constraint = std::get<std::shared_ptr<engine::Constraint>>(std::move(constraint));
  return job;
}

void HandleCompletions(Server::Impl& s, const httplib::Request& req, httplib::Response& res) {
  std::optional<json> body = ParseJsonBody(req, res);
  if (!body) return;
  Parsed<CompletionRequest> parsed = ParseCompletionRequest(*body, s.config.defaults);
  if (auto* e = std::get_if<ApiError>(&parsed)) {
    RespondError(res, *e);
    return;
  }
  CompletionRequest& c = std::get<CompletionRequest>(parsed);
  Job job;
  job.chat = false;
  if (auto* text = std::get_if<std::string>(&c.prompt)) {
    job.prompt = EncodePrompt(s.tok, *text, {});  // a raw prompt: all of it is the caller's format
    if (c.echo) job.echo = *text;
  } else {
    job.prompt = std::get<std::vector<int32_t>>(c.prompt);
    if (c.echo) {
      auto text = s.tok.Decode(job.prompt, /*skip_special=*/false);
      if (text.ok()) job.echo = *text;
    }
  }
  job.options = std::move(c.options);
  job.prompt_param = "prompt";
  auto constraint = s.structured->ForCompletion(c.response_format);
  if (auto* e = std::get_if<ApiError>(&constraint)) {
    RespondError(res, *e);
    return;
  }
  job.constraint = std::get<std::shared_ptr<engine::Constraint>>(std::move(constraint));
  job.cache_namespace = CacheNamespace(s, req, job.options.cache_salt);
  job.meta.id = s.NewId("cmpl");
  Run(s, std::move(job), res);
}

}  // namespace reprise::server
