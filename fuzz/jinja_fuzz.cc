// Fuzz target: the input is a Jinja chat template; it is parsed and, when
// valid, rendered with a small conversation with tools (chat::ChatTemplate).
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "chat/template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using json = nlohmann::ordered_json;
  auto tmpl = reprise::chat::ChatTemplate::Parse(std::string(reinterpret_cast<const char*>(data), size));
  if (!tmpl.ok()) return 0;
  static const json messages = json::parse(R"([
    {"role":"system","content":"sys"},
    {"role":"user","content":"hi <|im_end|>"},
    {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
      "function":{"name":"f","arguments":"{\"x\":1}"}}]},
    {"role":"tool","tool_call_id":"c1","content":"42"},
    {"role":"assistant","content":"<think>r</think>done"}])");
  static const json tools = json::parse(R"([{"type":"function","function":{"name":"f",
      "description":"d","parameters":{"type":"object","properties":{"x":{"type":"integer"}}}}}])");
  reprise::chat::RenderOptions options;
  options.add_generation_prompt = true;
  options.bos_token = "<s>";
  options.eos_token = "</s>";
  options.now = "2026-01-02";
  // Real templates run a few thousand steps; a small budget ends the
  // fuzzer's runaway loops (multi-MB renders) in milliseconds instead of
  // seconds under ASan, while every path, the budget's error included, is
  // still exercised.
  options.max_steps = 20'000;
  // Likewise a small byte budget: runaway string building (doubling a string,
  // printing a list repeated 100,000 times) ends at 1 MiB instead of
  // gigabytes (the conversation above renders in a few kilobytes). 8 MiB
  // made the corpus's renders 4x slower (35.5 s vs 9.0 s for its 27,800
  // inputs, Release replay): a few thousand multi-MB loops were 95% of the
  // fuzzer's time.
  options.max_bytes = int64_t{1} << 20;
  (void)tmpl->Render(messages, tools, options);
  (void)tmpl->Render(messages, json(), options);
  return 0;
}
