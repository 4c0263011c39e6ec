// Fuzz target: a request body as the server gets it -> bounded JSON parse
// (server/json_body.h) -> every route's JSON -> native structs
// (ParseChatRequest, ParseCompletionRequest) -> response JSON text.
// Built with libFuzzer by `make fuzz` (clang, ASan + UBSan), and replayed
// over the corpus with random mutations by fuzz_replay in the test suite.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/json_body.h"
#include "server/openai_types.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace reprise::server;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  JsonParseResult parsed = ParseJsonBounded(body);
  if (!parsed.ok) return 0;
  (void)Dump(parsed.value);
  if (!parsed.value.is_object()) return 0;
  RequestDefaults defaults;
  defaults.sampling.temperature = 0.8f;
  Parsed<ChatRequest> chat = ParseChatRequest(parsed.value, defaults);
  if (auto* c = std::get_if<ChatRequest>(&chat)) (void)Dump(c->messages);
  Parsed<CompletionRequest> completion = ParseCompletionRequest(parsed.value, defaults);
  (void)completion;
  return 0;
}
