// Stop strings matched on generated text. Text that could still be the start
// of a stop string is held back (never streamed in part); when a stop string
// completes, everything before it is released and the rest is dropped.
// Invariant: no released text ever contains a stop string or ends with a
// proper prefix of one that a later Push could complete.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace reprise::server {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);  // empty strings ignored

  // Adds generated text; returns the text now safe to emit. After a match,
  // returns only what preceded the stop string, and matched() is true;
  // further pushes return "".
  std::string Push(std::string_view text);
  // End of generation: releases what is held back (nothing after a match).
  std::string Flush();
  bool matched() const { return matched_; }
  // The stop string that matched (the one starting earliest in the text;
  // ties go to the first listed); empty before a match.
  const std::string& matched_stop() const { return matched_stop_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;  // held back: a suffix that may begin a stop string
  bool matched_ = false;
  std::string matched_stop_;
};

}  // namespace reprise::server
