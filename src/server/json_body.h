// Request bodies -> JSON, bounded so that no body can push the server over.
//
// Owns: the JSON parser of the request path (nlohmann-json's SAX interface
// with our own DOM builder).
// Invariants:
// - Nesting deeper than `max_depth` containers is refused as soon as the
//   parser reaches it, before anything deeper is built (so a body of 30 MB
//   of '[' costs microseconds, and no later copy or destructor can recurse
//   more than max_depth frames).
// - Time is linear in the body: an object's keys are inserted in O(1) each
//   (nlohmann's ordered_map checks for a duplicate by a linear scan, which
//   made a 200,000-key object take half a minute); past a few keys each open
//   object keeps a hash index of its keys.
// - Duplicate keys keep the first key's position and the last value (what
//   nlohmann::ordered_json::parse does), so the result equals parse()'s for
//   every body it accepts.
// - Memory is the DOM itself plus the index of the objects still open.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace reprise::server {

inline constexpr int kMaxJsonDepth = 128;

struct JsonParseResult {
  nlohmann::ordered_json value;  // null unless ok
  bool ok = false;
  bool too_deep = false;  // refused for nesting deeper than max_depth
  std::string error;      // why not ok (a sentence for a 400)
};

JsonParseResult ParseJsonBounded(std::string_view text, int max_depth = kMaxJsonDepth);

}  // namespace reprise::server
