// The shared chat driver behind every front door (see chat_pipeline.h).
// Preparing and submitting a Job live in routes_generate.cc, next to the
// OpenAI chat route that was their first user.
#include "server/chat_pipeline.h"

#include <chrono>
#include <utility>

#include "core/log.h"
#include "server/openai_types.h"

namespace reprise::server {
namespace {

using json = nlohmann::ordered_json;
constexpr const char* kLog = "server";

std::string ToolIdPrefix(const Job& job) {
  return "call_" + job.meta.id.substr(job.meta.id.find('-') + 1) + "_";
}

ChatResult MakeResult(Server::Impl& s, const Job& job, const Generation& gen,
                      const ChatOutput& output) {
  ChatResult r;
  r.output = &output;
  r.usage = gen.usage();
  if (output.FinishReason("") == "tool_calls") {
    r.finish_reason = "tool_calls";
  } else if (!gen.matched_stop().empty()) {
    r.finish_reason = "stop_sequence";
    r.stop_sequence = gen.matched_stop();
  } else {
    r.finish_reason = gen.finish_reason();
  }
  r.usage.reasoning_tokens = ReasoningTokens(s.tok, output);
  r.warning = ToolChoiceWarning(job, output);
  if (!r.warning.empty()) LOG_WARN(kLog, "%s: %s", job.meta.id.c_str(), r.warning.c_str());
  return r;
}

void RespondWith(httplib::Response& res, const json& body, int status) {
  res.status = status;
  res.set_content(Dump(body), "application/json");
}

void RespondWhole(Server::Impl& s, const Job& job, Generation& gen, ChatWire& wire,
                  httplib::Response& res) {
  std::string text;
  GenerationDelta delta;
  bool more = true;
  bool aborted = false;  // past --shutdown-timeout: ended with an error, never a fake finish
  while (more) {
    more = NextOrAbort(s, gen, &delta, &aborted);
    text += delta.text;
  }
  s.metrics.CountGenerationFinished();
  LogRequest(job, gen);
  if (aborted) {
    const ApiError e = ShuttingDown("the server shut down before this request finished");
    RespondWith(res, wire.ErrorBody(e), e.http_status);
    return;
  }
  if (gen.failed()) {
    RespondWith(res, wire.ErrorBody(gen.error()), gen.error().http_status);
    return;
  }
  s.metrics.ObserveFinished(gen.engine_usage());
  ChatOutput output(job.format, ToolIdPrefix(job));
  wire.Deltas(output.Feed(text));
  wire.Deltas(output.Finish());
  RespondWith(res, wire.Finish(job, MakeResult(s, job, gen, output)), 200);
}

void StreamTo(Server::Impl& s, const Job& job, Generation& gen, ChatWire& wire) {
  wire.StreamBegin(job);
  ChatOutput output(job.format, ToolIdPrefix(job), /*stream_arguments=*/true);
  GenerationDelta delta;
  bool more = true;
  bool aborted = false;
  while (more) {
    more = NextOrAbort(s, gen, &delta, &aborted);
    if (!delta.text.empty()) wire.Deltas(output.Feed(delta.text));
    if (!wire.ok()) gen.Cancel();  // the client is gone
  }
  s.metrics.CountGenerationFinished();
  LogRequest(job, gen);
  if (!wire.ok()) return;
  if (aborted) {  // the stream was cut off: its error event, no finish
    wire.StreamError(ShuttingDown("the server shut down before this stream finished"));
    return;
  }
  if (gen.failed()) {
    wire.StreamError(gen.error());
    return;
  }
  s.metrics.ObserveFinished(gen.engine_usage());
  wire.Deltas(output.Finish());
  wire.Finish(job, MakeResult(s, job, gen, output));
}

}  // namespace

int32_t ReasoningTokens(const tokenizer::Tokenizer& tok, const ChatOutput& output) {
  const json message = output.Message();
  auto it = message.find("reasoning_content");
  if (it == message.end() || !it->is_string()) return 0;
  return static_cast<int32_t>(
      tok.Encode(it->get<std::string>(), /*add_special=*/false, /*parse_special=*/false).size());
}

void ChatWire::Emit(const std::string& event, const json& data) {
  if (!write_ || !ok_) return;
  const std::string text = "event: " + event + "\ndata: " + Dump(data) + "\n\n";
  if (!write_(text.data(), text.size())) ok_ = false;
}

void ServeChat(Server::Impl& s, Job job, std::shared_ptr<ChatWire> wire, httplib::Response& res) {
  auto submitted = SubmitJob(s, job);
  if (auto* error = std::get_if<ApiError>(&submitted)) {
    RespondWith(res, wire->ErrorBody(*error), error->http_status);
    return;
  }
  std::shared_ptr<Generation> gen = std::get<std::shared_ptr<Generation>>(std::move(submitted));
  if (!job.options.stream) {
    RespondWhole(s, job, *gen, *wire, res);
    return;
  }
  auto shared_job = std::make_shared<Job>(std::move(job));
  Server::Impl* sp = &s;
  StreamEvents(res, gen, [sp, shared_job, gen, wire](httplib::DataSink& sink) {
    wire->set_writer([&sink](const char* data, size_t size) { return sink.write(data, size); });
    StreamTo(*sp, *shared_job, *gen, *wire);
  });
}

}  // namespace reprise::server
