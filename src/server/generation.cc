// Engine events -> text deltas (see generation.h).
#include "server/generation.h"

namespace reprise::server {

Generation::Generation(std::shared_ptr<engine::RequestHandle> handle,
                       const tokenizer::Tokenizer& tok, const GenerationOptions& options,
                       std::string prompt_param)
    : handle_(std::move(handle)),
      tok_(tok),
      decoder_(tok, /*skip_special=*/true, /*at_sequence_start=*/false),  // a continuation
      stop_(options.stop),
      ignore_eos_(options.ignore_eos),
      want_logprobs_(options.logprobs),
      prompt_param_(std::move(prompt_param)) {}

Generation::~Generation() {
  if (!done_ && handle_ != nullptr) handle_->Cancel();
}

void Generation::Cancel() {
  if (handle_ != nullptr) handle_->Cancel();
}

bool Generation::Next(GenerationDelta* delta, std::chrono::milliseconds wait) {
  if (done_) return false;
  engine::Event ev;
  if (!handle_->NextFor(&ev, wait)) {
    if (handle_->finished()) {
      done_ = true;
      return false;
    }
    return true;  // timeout
  }
  switch (ev.kind) {
    case engine::Event::Kind::kToken: {
      if (stopped_) return true;  // draining after our own Cancel
      ++completion_tokens_;
      if (!ignore_eos_ && tok_.IsEog(ev.token)) {
        stopped_ = true;
        handle_->Cancel();  // the engine stops by itself; this only makes sure
        return true;
      }
      if (want_logprobs_) {
        TokenLogprob lp;
        lp.text = tok_.RenderToken(ev.token, /*skip_special=*/false);
        lp.logprob = ev.logprob;
        for (const auto& [id, p] : ev.top_logprobs) {
          lp.top.emplace_back(tok_.RenderToken(id, /*skip_special=*/false), p);
        }
        delta->logprobs.push_back(std::move(lp));
      }
      delta->text += stop_.Push(decoder_.Feed(ev.token));
      if (stop_.matched()) {
        stopped_ = true;
        handle_->Cancel();
      }
      return true;
    }
    case engine::Event::Kind::kDone:
      engine_usage_ = ev.usage;
      finish_ = ev.finish;
      if (!stopped_) {
        delta->text += stop_.Push(decoder_.Flush());
        delta->text += stop_.Flush();
      }
      done_ = true;
      return false;
    case engine::Event::Kind::kError:
      engine_usage_ = ev.usage;
      failed_ = true;
      error_ = FromEngineError(ev.code, ev.error, prompt_param_);
      done_ = true;
      return false;
  }
  return true;
}

std::string Generation::finish_reason() const {
  if (stopped_) return "stop";
  if (finish_ == engine::FinishReason::kLength) return "length";
  return "stop";
}

UsageCounts Generation::usage() const {
  UsageCounts u;
  u.prompt_tokens = engine_usage_.prompt_tokens;
  u.cached_tokens = engine_usage_.cached_tokens;
  u.cached_tokens_from_disk = engine_usage_.cached_tokens_disk;
  u.cached_tokens_from_host = engine_usage_.cached_tokens_host;
  u.completion_tokens = completion_tokens_;
  return u;
}

}  // namespace reprise::server
