// One in-flight generation seen from an HTTP thread: reads the engine's
// events for a submitted request and turns them into text deltas —
// UTF-8-safe detokenizing (tokenizer::StreamDecoder, special tokens hidden),
// stop strings (held back, stripped, and the engine request cancelled on a
// match), end-of-generation tokens, log-probabilities — and, at the end, the
// finish reason and usage. Does not own the engine or write to the network.
// Not thread-safe: one HTTP thread drives it (Cancel may come from another).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "server/api_error.h"
#include "server/openai_types.h"
#include "server/stop_matcher.h"
#include "tokenizer/tokenizer.h"

namespace reprise::server {

struct GenerationDelta {
  std::string text;                    // may be empty (held back or no text)
  std::vector<TokenLogprob> logprobs;  // tokens consumed by this step
  void Clear() {
    text.clear();
    logprobs.clear();
  }
};

class Generation {
 public:
  Generation(std::shared_ptr<engine::RequestHandle> handle, const tokenizer::Tokenizer& tok,
             const GenerationOptions& options, std::string prompt_param);
  ~Generation();  // cancels the request if it has not finished
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;

  // Waits up to `wait` for the next engine event and appends what it yields
  // to *delta. Returns false once the generation is over (the final text, if
  // any, is in *delta); true otherwise, also on a timeout with nothing new.
  bool Next(GenerationDelta* delta, std::chrono::milliseconds wait);
  // Stops the engine request (client gone); Next then drains to the end.
  void Cancel();

  bool done() const { return done_; }
  bool failed() const { return failed_; }
  const ApiError& error() const { return error_; }
  // "stop" or "length" (valid once done()).
  std::string finish_reason() const;
  // The stop string that ended the generation; empty if none did.
  const std::string& matched_stop() const { return stop_.matched_stop(); }
  UsageCounts usage() const;
  const engine::Usage& engine_usage() const { return engine_usage_; }

 private:
  std::shared_ptr<engine::RequestHandle> handle_;
  const tokenizer::Tokenizer& tok_;
  tokenizer::StreamDecoder decoder_;
  StopMatcher stop_;
  bool ignore_eos_;
  bool want_logprobs_;
  std::string prompt_param_;

  bool done_ = false;
  bool failed_ = false;
  bool stopped_ = false;  // a stop string or end-of-generation token ended it
  int32_t completion_tokens_ = 0;
  engine::FinishReason finish_ = engine::FinishReason::kNone;
  engine::Usage engine_usage_;
  ApiError error_;
};

}  // namespace reprise::server
