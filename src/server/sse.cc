// SSE framing (see sse.h).
#include "server/sse.h"

#include "server/openai_types.h"

namespace reprise::server {

std::string SseEvent(const nlohmann::ordered_json& data) { return "data: " + Dump(data) + "\n\n"; }

bool SseWriter::Write(const std::string& text) {
  if (ok_ && !write_(text.data(), text.size())) ok_ = false;
  return ok_;
}

bool SseWriter::Send(const nlohmann::ordered_json& data) { return Write(SseEvent(data)); }

bool SseWriter::SendDone() { return Write(kSseDone); }

bool SseWriter::SendEvent(const char* name, const nlohmann::ordered_json& data) {
  return Write(std::string("event: ") + name + "\n" + SseEvent(data));
}

}  // namespace reprise::server
