// Parsing a model's output into reasoning, content and tool calls, for the
// formats chat templates teach models:
//   Hermes / Qwen 2.5 / Qwen 3:  <tool_call>{"name": .., "arguments": {..}}</tool_call> (repeatable;
//                                the tag must start a line, the body must be a JSON call)
//   Llama 3.1-3.3:               {"name": .., "parameters": {..}} as the whole start of the
//                                output (';'-separated for several), or <|python_tag|> followed
//                                by JSON or `tool.call(key="value", ...)`
//   Mistral:                     [TOOL_CALLS][{"name": .., "arguments": {..}}, ..] or
//                                [TOOL_CALLS]name[ARGS]{..} (optionally name[CALL_ID]id[ARGS]{..})
//   Reasoning (Qwen 3, QwQ, DeepSeek-R1): <think>...</think> at the start of the output, or
//                                the output starts inside it when the prompt opened <think>.
// Anything that does not parse (malformed or truncated calls, prose that merely
// mentions a tag or some JSON) comes back as plain content, byte for byte.
//
// StreamParser is fed decoded text pieces and emits events; it holds back text
// that may be the start of a tag. By default a tool call is emitted once it is
// complete and valid (start event, then its arguments as one delta), so
// nothing emitted ever has to be retracted. ParseOutput is the same machine
// run over a whole output, so streaming and non-streaming results agree.
//
// With stream_arguments (streamed replies), a JSON call is committed once its
// name and the start of its arguments object are in: a Hermes body beginning
// {"name": "X", "arguments": {  , a Llama 3 call (bare at the start, or after
// <|python_tag|>) beginning {"name": "X", "parameters": {  (or "arguments"),
// a Mistral array element beginning {"name": "X", "arguments": {  , and a
// Mistral name[ARGS]{ / name[CALL_ID]id[ARGS]{ call. The start event goes
// out, then the arguments object streams as it is generated, one delta per
// Feed, in the canonical form the whole parse produces (whitespace outside
// strings dropped, strings and numbers re-serialized as nlohmann::json's
// dump() writes them), so the deltas concatenated equal the whole parse's
// arguments. Text that may still be the end of the call is held back: a
// possible </tool_call> (Hermes; the body ends at its first occurrence, as in
// the whole parse) or <|eom_id|> / <|eot_id|> (after <|python_tag|>); the
// other forms end with the JSON itself. Several calls in one Mistral array or
// one <|python_tag|> body stream one after another; from the first element of
// another shape on, the rest are emitted whole when the array/body ends.
// Differences from the whole parse, only for calls that are not valid after
// the commit point: a call cut off by the end of output, or malformed after
// its arguments began, stays a call with what streamed (call_unfinished()
// says when the output ended inside one) instead of becoming content (with
// its array/body siblings: calls already committed stay, the rest are
// dropped); a call with a duplicate key, or a Llama 3 call with both
// "parameters" and (later) "arguments", keeps what streamed. And ids: a
// model's own "id" in a Hermes or Mistral array call comes after the
// arguments, too late for the start event, so a streamed Hermes call gets the
// usual id_prefix + index and a streamed Mistral array call a 9-letter-and-
// digit id derived from it (the shape Mistral's chat templates require of ids
// sent back); Mistral's [CALL_ID] comes first and is kept. Calls whose body
// has another shape (keys in another order, arguments given as a JSON string,
// a call already closed within one Feed), Llama 3's python `tool.call(...)`
// form and <|python_tag|>[..] arrays are emitted whole as before.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace reprise::chat {

namespace internal {
struct Call;  // a parsed call (tool_parser.cc)
}  // namespace internal

enum class ToolCallFormat { kNone, kHermes, kLlama3, kMistral };

struct OutputFormat {
  ToolCallFormat tool_calls = ToolCallFormat::kNone;
  bool reasoning = false;            // split <think>...</think> into reasoning
  bool starts_in_reasoning = false;  // the prompt already opened <think>
};

// Chooses the format from the chat template source ("[TOOL_CALLS]" -> Mistral,
// "<tool_call>" -> Hermes, "<|python_tag|>" or "ipython" -> Llama 3; "<think>"
// -> reasoning) and the rendered prompt (ending in an open <think> -> the
// output starts inside reasoning).
OutputFormat DetectOutputFormat(std::string_view template_source, std::string_view rendered_prompt = "");

struct ParsedToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // a JSON object as text (OpenAI's function.arguments)
};

struct ParsedOutput {
  std::string content;
  std::string reasoning_content;
  std::vector<ParsedToolCall> tool_calls;
};

struct StreamEvent {
  enum class Kind {
    kContent,            // text: a content delta
    kReasoning,          // text: a reasoning_content delta
    kToolCallStart,      // index, id, name
    kToolCallArguments,  // index, text: a function.arguments delta
  };
  Kind kind = Kind::kContent;
  std::string text;
  int index = 0;
  std::string id;
  std::string name;
};

class StreamParser {
 public:
  // Tool call ids are `id_prefix` + index (pass something unique per request,
  // e.g. "call_<request id>_").
  // `stream_arguments`: stream call arguments as they arrive (above).
  explicit StreamParser(OutputFormat format, std::string id_prefix = "call_",
                        bool stream_arguments = false);
  ~StreamParser();

  // Feeds the next piece of output; returns the events it completes.
  std::vector<StreamEvent> Feed(std::string_view piece);
  // End of output: flushes held-back text (an unfinished call becomes content).
  std::vector<StreamEvent> Finish();

  int tool_call_count() const { return next_index_; }
  // The output ended inside a call whose arguments had begun to stream (so its
  // arguments are incomplete). Only with stream_arguments.
  bool call_unfinished() const { return call_unfinished_; }

 private:
  class ArgumentStream;  // a streaming call's canonical-JSON writer
  enum class Mode { kStart, kReasoning, kContent, kHermesCall, kJsonCall, kPythonTag, kMistral };

  void Process(bool final);
  // Each returns false when it needs more input.
  bool StepStart(bool final);
  bool StepReasoning(bool final);
  bool StepContent(bool final);
  bool StepHermes(bool final);
  bool StepJson(bool final);
  bool StepPythonTag(bool final);
  bool StepMistral(bool final);

  void EmitContent(std::string_view text);
  void EmitReasoning(std::string_view text);
  void EmitCall(const std::string& name, const std::string& arguments, std::string id = "");
  int StartCall(const std::string& name, std::string id);
  void EmitArguments(int index, std::string text);
  // stream_arguments: commits the call whose body is buf_[from, limit) once
  // its head ({"name": .., "<key>": {) is in, then streams its arguments.
  // kArguments: "arguments" (Hermes); kLlama: "parameters" or "arguments";
  // kMistral: "arguments", and the call gets a Mistral-shaped id.
  enum class HeadKeys { kArguments, kLlama, kMistral };
  void StreamCall(size_t from, size_t limit, HeadKeys keys);
  // Emits what the live call's arguments in buf_[.., limit) add.
  void ReadLive(size_t limit);
  // A sequence of JSON calls from buf_[first, limit) (the inside of a Mistral
  // array, or ';'-separated Llama 3 calls after <|python_tag|>): each element
  // streams in turn while the elements before it streamed; the first one of
  // another shape ends the streaming, and it and the rest come whole at the end.
  void StreamSequence(size_t first, size_t limit, HeadKeys keys);
  // The sequence ended: `calls` is the whole parse of it (null: not valid);
  // the live element gets its final text, the elements not streamed are
  // emitted whole (with their own ids if `model_ids`).
  void EndSequence(const std::vector<internal::Call>* calls, bool closed, bool model_ids);
  // The live call ended: emits what its final `arguments` (null: not a valid
  // call) add to what streamed; `closed` false: the output ended inside it.
  void EndLive(const std::string* arguments, bool closed);

  OutputFormat format_;
  std::string id_prefix_;
  Mode mode_;
  std::string buf_;  // unprocessed input
  std::vector<StreamEvent> events_;
  int next_index_ = 0;
  bool line_start_ = true;         // emitted content is empty or ends at a line start
  bool reasoning_started_ = false;  // leading newlines of reasoning are dropped
  std::string reasoning_newlines_;  // trailing newlines held until more reasoning follows
  bool skip_leading_ws_ = false;    // after </think>: content's leading whitespace is dropped
  bool json_calls_allowed_;         // Llama 3 bare JSON is only a call at the start
  std::string held_ws_;             // whitespace after a tool call, dropped if nothing follows
  bool stream_arguments_;
  // The call in progress (stream_arguments_): null until committed.
  std::unique_ptr<ArgumentStream> live_;
  bool head_failed_ = false;  // this call's head has another shape: emitted whole
  size_t elem_at_ = 0;        // StreamSequence: offset of the live element
  size_t seq_next_ = 0;       // StreamSequence: end of the last element that streamed
  size_t seq_elems_ = 0;      // StreamSequence: elements that streamed
  bool call_unfinished_ = false;
};

// Runs StreamParser over a whole output.
ParsedOutput ParseOutput(std::string_view text, const OutputFormat& format, std::string id_prefix = "call_");

}  // namespace reprise::chat
