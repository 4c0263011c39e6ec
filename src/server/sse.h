// Server-sent events as OpenAI streams them: "data: {json}\n\n" per chunk,
// "data: [DONE]\n\n" at the end. SseWriter remembers a failed write (the
// client went away) so callers can stop generating.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

namespace reprise::server {

std::string SseEvent(const nlohmann::ordered_json& data);
inline constexpr const char* kSseDone = "data: [DONE]\n\n";

class SseWriter {
 public:
  using WriteFn = std::function<bool(const char* data, size_t size)>;
  explicit SseWriter(WriteFn write) : write_(std::move(write)) {}
  bool Send(const nlohmann::ordered_json& data);  // false once any write has failed
  bool SendDone();
  // "event: NAME\ndata: {json}\n\n" (e.g. NAME "error": a stream that ends
  // with an error, after which no [DONE] follows).
  bool SendEvent(const char* name, const nlohmann::ordered_json& data);
  bool ok() const { return ok_; }

 private:
  bool Write(const std::string& text);
  WriteFn write_;
  bool ok_ = true;
};

}  // namespace reprise::server
