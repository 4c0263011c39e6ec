// OpenAI request bodies parsed into native structs (the engine never sees
// JSON), and the response/chunk JSON built from native values. Parsing checks
// types and shapes and names the offending field in a 400; numeric ranges of
// sampling parameters are checked afterwards by engine::ValidateSamplingParams.
// Unknown fields are ignored (as OpenAI does); a field set to null counts as
// absent.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "engine/engine.h"
#include "engine/sampler.h"
#include "server/api_error.h"

namespace reprise::server {

// What a request may leave out: the server's --temp/--top-p/... defaults.
struct RequestDefaults {
  engine::SamplingParams sampling;
  int32_t max_tokens = 0;  // 0 = the engine's default (up to the context end)
};

// Fields shared by /v1/chat/completions and /v1/completions.
struct GenerationOptions {
  std::optional<int32_t> max_tokens;  // max_tokens / max_completion_tokens
  engine::SamplingParams sampling;    // n_top_logprobs >= 0 when logprobs wanted
  std::vector<std::string> stop;      // non-empty strings, at most kMaxStops
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool logprobs = false;
  int32_t top_logprobs = 0;
  bool ignore_eos = false;  // extension (llama.cpp-style)
  std::string user;
  // Extension (vLLM's name): splits the prompt cache further within the
  // caller's tenant; requests share cached KV only with equal salts.
  std::string cache_salt;
};

inline constexpr size_t kMaxStops = 16;
inline constexpr size_t kMaxCacheSaltBytes = 256;

// response_format: what the reply's content must be (structured_output.h).
struct ResponseFormat {
  enum class Type { kText, kJsonObject, kJsonSchema };
  Type type = Type::kText;
  // kJsonSchema: json_schema.schema (also json_object with a "schema", as
  // llama.cpp accepts it).
  nlohmann::ordered_json schema;
  std::string name;  // json_schema.name (informative)
  std::string schema_param = "response_format.json_schema.schema";  // for errors
};

struct ChatRequest {
  std::string model;
  // Normalized: every message is an object with a string "role" and a
  // "content" that is a string (text parts joined) or null; other keys
  // (name, tool_calls, tool_call_id) are kept, in order, for the template.
  nlohmann::ordered_json messages;  // array
  // What the template gets as `tools`: the request's tools (only the named
  // one when tool_choice names a function); null when there are none or
  // tool_choice is "none" (as if the request had no tools).
  nlohmann::ordered_json tools;
  std::string tool_choice = "auto";  // auto, none, required, or the forced function's name
  bool parallel_tool_calls = true;   // false: at most one call per reply
  ResponseFormat response_format;
  bool add_generation_prompt = true;
  GenerationOptions options;
};

struct CompletionRequest {
  std::string model;
  std::variant<std::string, std::vector<int32_t>> prompt;
  bool echo = false;
  GenerationOptions options;
  ResponseFormat response_format;  // as for chat (llama.cpp accepts it here too)
};

// Result type for parsing: either the value or an ApiError.
template <class T>
using Parsed = std::variant<T, ApiError>;

Parsed<ChatRequest> ParseChatRequest(const nlohmann::ordered_json& body,
                                     const RequestDefaults& defaults);
Parsed<CompletionRequest> ParseCompletionRequest(const nlohmann::ordered_json& body,
                                                 const RequestDefaults& defaults);

// Token usage of one request.
struct UsageCounts {
  int32_t prompt_tokens = 0;
  int32_t cached_tokens = 0;
  int32_t completion_tokens = 0;
  int32_t cached_tokens_from_disk = 0;  // of cached_tokens (reprise extension)
  int32_t cached_tokens_from_host = 0;  // of cached_tokens, from the host-RAM tier (extension)
  int32_t reasoning_tokens = 0;  // of completion_tokens: the reasoning text's
};
nlohmann::ordered_json UsageJson(const UsageCounts& usage);

// One generated token's log-probabilities, already detokenized.
struct TokenLogprob {
  std::string text;
  float logprob = 0.0f;
  std::vector<std::pair<std::string, float>> top;  // most likely first
};
// Chat format: {"content": [{"token","logprob","bytes","top_logprobs"}]}.
nlohmann::ordered_json ChatLogprobsJson(const std::vector<TokenLogprob>& tokens);
// Legacy completions format: {"tokens","token_logprobs","top_logprobs","text_offset"}.
nlohmann::ordered_json CompletionLogprobsJson(const std::vector<TokenLogprob>& tokens,
                                              size_t text_offset);

// Identity of one response (shared by all chunks of a stream).
struct ResponseMeta {
  std::string id;  // "chatcmpl-..." / "cmpl-..."
  int64_t created = 0;
  std::string model;
};

// `message`: {"role":"assistant","content":..,...} (see ChatOutput::Message).
nlohmann::ordered_json ChatCompletionJson(const ResponseMeta& meta, nlohmann::ordered_json message,
                                          const std::string& finish_reason,
                                          const UsageCounts& usage,
                                          const std::vector<TokenLogprob>* logprobs);
// A chat.completion.chunk: `delta` is the object ({"role":..}, {"content":..}, {}).
nlohmann::ordered_json ChatChunkJson(const ResponseMeta& meta, nlohmann::ordered_json delta,
                                     const std::string& finish_reason,
                                     const std::vector<TokenLogprob>* logprobs);
// The final usage chunk of a stream: empty choices, usage set.
nlohmann::ordered_json ChatUsageChunkJson(const ResponseMeta& meta, const UsageCounts& usage);

nlohmann::ordered_json CompletionJson(const ResponseMeta& meta, const std::string& text,
                                      const std::string& finish_reason, const UsageCounts& usage,
                                      const std::vector<TokenLogprob>* logprobs,
                                      size_t text_offset);
nlohmann::ordered_json CompletionChunkJson(const ResponseMeta& meta, const std::string& text,
                                           const std::string& finish_reason,
                                           const std::vector<TokenLogprob>* logprobs,
                                           size_t text_offset);
nlohmann::ordered_json CompletionUsageChunkJson(const ResponseMeta& meta, const UsageCounts& usage);

// JSON text that never throws on invalid UTF-8 (replaced by U+FFFD).
std::string Dump(const nlohmann::ordered_json& j);

}  // namespace reprise::server
