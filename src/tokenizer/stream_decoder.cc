// StreamDecoder: incremental, UTF-8 safe detokenizing; see tokenizer.h.
// Invariant: every string returned is valid UTF-8, and the concatenation of
// all returned strings equals Decode(all ids) whenever that is valid UTF-8.
#include "tokenizer/tokenizer.h"

namespace reprise::tokenizer {

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool skip_special, bool at_sequence_start)
    : tok_(tok), skip_special_(skip_special), at_start_(at_sequence_start) {}

std::string StreamDecoder::Feed(int32_t id) {
  pending_ += tok_.RenderToken(id, skip_special_);
  return TakeComplete(/*flush=*/false);
}

std::string StreamDecoder::Flush() { return TakeComplete(/*flush=*/true); }

std::string StreamDecoder::TakeComplete(bool flush) {
  if (pending_.empty()) return std::string();
  if (at_start_) {
    at_start_ = false;
    if (tok_.strips_leading_space() && pending_[0] == ' ') pending_.erase(0, 1);
  }
  const size_t hold = flush ? 0 : IncompleteUtf8Tail(pending_);
  const size_t ready = pending_.size() - hold;
  std::string out = SanitizeUtf8(std::string_view(pending_).substr(0, ready));
  pending_.erase(0, ready);
  return out;
}

}  // namespace reprise::tokenizer
