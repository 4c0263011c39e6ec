// Grammars for structured output and forced tool calls (see
// structured_output.h), and the engine::Constraint that runs them.
#include "server/structured_output.h"

#include <utility>
#include <vector>

#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "grammar/token_trie.h"

namespace reprise::server {

// What a request's reply must be.
struct StructuredOutput::Spec {
  bool value = false;                              // a JSON value (schema, or any object)
  const nlohmann::ordered_json* schema = nullptr;  // null with value: any object
  bool tools = false;                              // tool calls
  bool several = true;                             // more than one call allowed
  chat::OutputFormat format;
};

namespace {

using json = nlohmann::ordered_json;
using grammar::GrammarBuilder;
using State = GrammarBuilder::State;
using Rule = GrammarBuilder::Rule;

std::string Dump(const json& v) { return v.dump(-1, ' ', false, json::error_handler_t::replace); }

// A grammar matcher as the engine sees it.
class GrammarConstraint : public engine::Constraint {
 public:
  explicit GrammarConstraint(std::shared_ptr<grammar::TokenMasks> masks)
      : masks_(std::move(masks)), matcher_(masks_->grammar_ptr()), bits_(masks_->words()) {}

  int64_t Mask(float* logits, int32_t n_vocab) override {
    const int64_t allowed = matcher_.FillMask(*masks_, bits_.data());
    grammar::ApplyMask(bits_.data(), logits, n_vocab);
    return allowed;
  }

  bool Accept(int32_t token) override {
    if (done_) return false;
    const grammar::TokenTrie& trie = masks_->trie();
    if (token < 0 || token >= trie.n_vocab()) return false;
    for (int32_t eog : trie.eog()) {
      if (eog == token) {
        done_ = matcher_.IsComplete();
        return done_;
      }
    }
    const std::string& bytes = trie.bytes(token);
    return !bytes.empty() && matcher_.AcceptBytes(bytes);
  }

  bool Done() const override { return done_ || (matcher_.IsComplete() && !matcher_.CanContinue()); }

 private:
  std::shared_ptr<grammar::TokenMasks> masks_;
  grammar::Matcher matcher_;
  std::vector<uint64_t> bits_;
  bool done_ = false;
};

using Spec = StructuredOutput::Spec;

std::string CacheKey(const Spec& spec, const json& tools) {
  std::string key = StrFormat("v1|value=%d|tools=%d|several=%d|fmt=%d|r=%d|rs=%d|", spec.value,
                              spec.tools, spec.several, static_cast<int>(spec.format.tool_calls),
                              spec.format.reasoning, spec.format.starts_in_reasoning);
  if (spec.value) key += spec.schema != nullptr ? Dump(*spec.schema) : "{object}";
  key += "|";
  if (spec.tools) {
    for (const json& t : tools) {
      key += Dump(t["function"].value("name", json()));
      key += Dump(t["function"].value("parameters", json()));
      key += "\n";
    }
  }
  return key;
}

// Up to four whitespace bytes (after </think>).
void ShortSpace(GrammarBuilder& b, State from, State to) {
  State at = from;
  b.AddEpsilon(at, to);
  for (int i = 0; i < 4; ++i) {
    const State next = b.NewState(b.RuleOf(from));
    for (char c : std::string(" \t\n\r")) b.AddByte(at, next, static_cast<uint8_t>(c));
    b.AddEpsilon(next, to);
    at = next;
  }
}

// The rule of one call: the syntax's object with each function's name and
// arguments. Errors carry the param and message of a 400.
std::variant<Rule, ApiError> CallRule(grammar::JsonGrammar& jg, const Spec& spec,
                                      const json& tools) {
  GrammarBuilder& b = jg.builder();
  const Rule call = b.NewRule("tool call");
  const State end = b.NewState(call);
  b.SetAccepting(end);
  const char* args_key = spec.format.tool_calls == chat::ToolCallFormat::kLlama3
                             ? ", \"parameters\": "
                             : ", \"arguments\": ";
  const State open = b.Literal(b.Start(call), "{\"name\": ");
  for (const json& t : tools) {
    const json& fn = t["function"];
    const std::string name = fn.value("name", "");
    Rule args;
    auto params = fn.find("parameters");
    if (params == fn.end() || params->is_null()) {
      args = jg.AnyObjectRule();
    } else {
      if (auto type = params->find("type"); type != params->end() && *type != "object") {
        return InvalidParam("tools", "function '" + name +
                                         "': parameters must be an object schema to force a "
                                         "call (tool_choice)");
      }
      auto rule = jg.SchemaRule(*params);
      if (!rule.ok()) {
        return InvalidParam("tools", "function '" + name +
                                         "': parameters: " + rule.status().message() +
                                         " (needed to guarantee the call; see README, "
                                         "Structured output)");
      }
      args = *rule;
    }
    const State named = b.Literal(open, Dump(json(name)) + args_key);
    const State after = b.NewState(call);
    b.AddCall(named, after, args);
    b.AddLiteral(after, end, "}");
  }
  return call;
}

// Tool calls in the template's syntax, from -> to.
std::optional<ApiError> AddCalls(grammar::JsonGrammar& jg, const Spec& spec, const json& tools,
                                 State from, State to) {
  GrammarBuilder& b = jg.builder();
  auto call = CallRule(jg, spec, tools);
  if (auto* e = std::get_if<ApiError>(&call)) return *e;
  const Rule c = std::get<Rule>(call);
  const GrammarBuilder::Rule r = b.RuleOf(from);
  switch (spec.format.tool_calls) {
    case chat::ToolCallFormat::kHermes: {
      const State done = b.NewState(r);
      const State open = b.Literal(from, "<tool_call>\n");
      const State body = b.NewState(r);
      b.AddCall(open, body, c);
      b.AddLiteral(body, done, "\n</tool_call>");
      b.AddEpsilon(done, to);
      if (spec.several) {
        const State again = b.Literal(done, "\n<tool_call>\n");
        b.AddCall(again, body, c);
      }
      break;
    }
    case chat::ToolCallFormat::kLlama3:
      b.AddCall(from, to, c);
      break;
    case chat::ToolCallFormat::kMistral: {
      const State open = b.Literal(from, "[TOOL_CALLS][");
      const State item = b.NewState(r);
      b.AddCall(open, item, c);
      b.AddLiteral(item, to, "]");
      if (spec.several) {
        const State again = b.Literal(item, ", ");
        b.AddCall(again, item, c);
      }
      break;
    }
    case chat::ToolCallFormat::kNone:
      return Internal("no tool-call syntax");
  }
  return std::nullopt;
}

std::variant<std::shared_ptr<const grammar::Grammar>, ApiError> BuildGrammar(
    const Spec& spec, const json& tools, const std::string& schema_param) {
  GrammarBuilder b;
  grammar::JsonGrammar jg(&b);
  const Rule root = b.NewRule("reply");
  const State start = b.Start(root), end = b.NewState(root);
  b.SetAccepting(end);
  State body = start;
  if (spec.format.reasoning) {
    body = b.NewState(root);
    const State closed = b.NewState(root);
    if (spec.format.starts_in_reasoning) {
      b.AddTextUntil(start, closed, "</think>");
    } else {
      b.AddEpsilon(start, body);
      b.AddTextUntil(b.Literal(start, "<think>"), closed, "</think>");
    }
    ShortSpace(b, closed, body);
  }
  if (spec.value) {
    Rule value;
    if (spec.schema == nullptr) {
      value = jg.AnyObjectRule();
    } else {
      auto rule = jg.SchemaRule(*spec.schema);
      if (!rule.ok())
        return InvalidParam(schema_param, schema_param + ": " + rule.status().message());
      value = *rule;
    }
    const State ws = b.NewState(root);
    jg.Whitespace(body, ws);
    b.AddCall(ws, end, value);
  }
  if (spec.tools) {
    if (auto e = AddCalls(jg, spec, tools, body, end)) return *e;
  }
  auto compiled = grammar::Grammar::Compile(b, root);
  if (!compiled.ok()) {
    std::string message = compiled.status().message();
    if (message.find("matches nothing") != std::string::npos) {
      message = spec.tools && !spec.value
                    ? "no call can satisfy the functions' parameters schemas"
                    : "the schema can never be satisfied (no JSON value passes it)";
    }
    return InvalidParam(spec.value ? schema_param : "tools",
                        (spec.value ? schema_param : std::string("tools")) + ": " + message);
  }
  return *compiled;
}

}  // namespace

StructuredOutput::StructuredOutput(const tokenizer::Tokenizer& tok, size_t cache_entries)
    : tok_(tok), cache_entries_(cache_entries) {}

StructuredOutput::~StructuredOutput() = default;

std::shared_ptr<const grammar::TokenTrie> StructuredOutput::Trie() {
  std::call_once(trie_once_, [this] { trie_ = grammar::TokenTrie::FromTokenizer(tok_); });
  return trie_;
}

size_t StructuredOutput::cached_grammars() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cache_.size();
}

std::variant<std::shared_ptr<engine::Constraint>, ApiError> StructuredOutput::ForChat(
    const ChatRequest& chat, const std::optional<chat::OutputFormat>& format) {
  Spec spec;
  if (format) spec.format = *format;
  const bool has_tools = chat.tools.is_array() && !chat.tools.empty();
  const bool forced = has_tools && chat.tool_choice != "auto";  // none leaves no tools
  const ResponseFormat& rf = chat.response_format;
  if (forced) {
    if (spec.format.tool_calls == chat::ToolCallFormat::kNone) {
      return InvalidParam(
          "tool_choice", "tool_choice \"" +
                             std::string(chat.tool_choice == "required" ? "required" : "function") +
                             "\" cannot be guaranteed: this model's chat template has no "
                             "tool-call syntax reprise knows (Hermes <tool_call>, Llama 3 "
                             "JSON, Mistral [TOOL_CALLS]); use tool_choice \"auto\"");
    }
    spec.tools = true;
    spec.several = chat.tool_choice == "required" && chat.parallel_tool_calls &&
                   spec.format.tool_calls != chat::ToolCallFormat::kLlama3;
  } else if (rf.type != ResponseFormat::Type::kText) {
    spec.value = true;
    if (rf.type == ResponseFormat::Type::kJsonSchema) spec.schema = &rf.schema;
    // Tools offered with tool_choice auto: the model may call them instead.
    if (has_tools && spec.format.tool_calls != chat::ToolCallFormat::kNone) {
      spec.tools = true;
      spec.several =
          chat.parallel_tool_calls && spec.format.tool_calls != chat::ToolCallFormat::kLlama3;
    }
  } else {
    return std::shared_ptr<engine::Constraint>();
  }
  if (!spec.format.reasoning) spec.format.starts_in_reasoning = false;
  return Build(spec, spec.tools ? chat.tools : json::array(), rf.schema_param);
}

std::variant<std::shared_ptr<engine::Constraint>, ApiError> StructuredOutput::ForCompletion(
    const ResponseFormat& rf) {
  if (rf.type == ResponseFormat::Type::kText) return std::shared_ptr<engine::Constraint>();
  Spec spec;
  spec.value = true;
  if (rf.type == ResponseFormat::Type::kJsonSchema) spec.schema = &rf.schema;
  return Build(spec, json::array(), rf.schema_param);
}

std::variant<std::shared_ptr<engine::Constraint>, ApiError> StructuredOutput::Build(
    const Spec& spec, const json& tools, const std::string& schema_param) {
  const std::string key = CacheKey(spec, tools);
  std::shared_ptr<grammar::TokenMasks> masks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.second);
      masks = it->second.first;
    }
  }
  if (masks == nullptr) {
    auto built = BuildGrammar(spec, tools, schema_param);
    if (auto* e = std::get_if<ApiError>(&built)) return *e;
    masks = std::make_shared<grammar::TokenMasks>(
        std::get<std::shared_ptr<const grammar::Grammar>>(std::move(built)), Trie());
    masks->behaviour_classes();  // here, not on the engine thread
    std::lock_guard<std::mutex> lock(mu_);
    if (cache_.find(key) == cache_.end()) {
      lru_.push_front(key);
      cache_.emplace(key, std::make_pair(masks, lru_.begin()));
      while (cache_.size() > cache_entries_) {
        cache_.erase(lru_.back());
        lru_.pop_back();
      }
    }
  }
  return std::shared_ptr<engine::Constraint>(std::make_shared<GrammarConstraint>(masks));
}

}  // namespace reprise::server
