// Stop-string matching with hold-back (see stop_matcher.h).
#include "server/stop_matcher.h"

#include <algorithm>

namespace reprise::server {

StopMatcher::StopMatcher(std::vector<std::string> stops) {
  for (std::string& s : stops) {
    if (!s.empty()) stops_.push_back(std::move(s));
  }
}

std::string StopMatcher::Push(std::string_view text) {
  if (matched_) return "";
  pending_.append(text);
  if (stops_.empty()) {
    std::string out;
    out.swap(pending_);
    return out;
  }
  // Earliest complete stop string. pending_ never starts with text that was
  // already ruled out, so matches can only begin inside it.
  size_t first = std::string::npos;
  const std::string* which = nullptr;
  for (const std::string& s : stops_) {
    const size_t at = pending_.find(s);
    if (at < first) {
      first = at;
      which = &s;
    }
  }
  if (first != std::string::npos) {
    matched_ = true;
    matched_stop_ = *which;
    std::string out = pending_.substr(0, first);
    pending_.clear();
    return out;
  }
  // Longest suffix of pending_ that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const std::string& s : stops_) {
    const size_t max_len = std::min(s.size() - 1, pending_.size());
    for (size_t len = max_len; len > hold; --len) {
      if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string StopMatcher::Flush() {
  if (matched_) return "";
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace reprise::server
