// The output parser state machine (see tool_parser.h). Invariant: every input
// byte ends up in exactly one place — a content or reasoning delta, a tool
// call, or (only whitespace around tags and calls) dropped — and nothing is
// emitted before it is certain (with stream_arguments: a JSON call is
// certain once its name and the start of its arguments object are in).
#include "chat/tool_parser.h"

#include <cstdint>

#include "chat/tool_call_text.h"

namespace reprise::chat {
using namespace internal;  // the parser's building blocks (tool_call_text.h)
namespace {

StreamEvent Event(StreamEvent::Kind kind, std::string text = "") {
  StreamEvent e;
  e.kind = kind;
  e.text = std::move(text);
  return e;
}

}  // namespace

// A streaming call: its index, how much of the call body has been
// read, and a writer that turns the raw text of the arguments object into the
// text CallFromJson produces for it (Json::dump() of the parsed object) while
// it arrives: whitespace outside strings is dropped, structural characters
// and literals are copied, string escapes are decoded and re-encoded as
// dump() encodes them, and each number is held until it ends and then
// written as parsing and dumping it would. For valid input the output
// concatenated equals dump() of the parsed value (duplicate keys aside:
// dump() keeps one); invalid input is copied through and the call is checked
// when it closes.
class StreamParser::ArgumentStream {
 public:
  explicit ArgumentStream(int index, size_t scanned) : index_(index), scanned_(scanned) {}

  int index() const { return index_; }
  size_t scanned() const { return scanned_; }
  bool done() const { return done_; }
  const std::string& streamed() const { return streamed_; }
  void Record(const std::string& text) { streamed_ += text; }

  // Reads body[scanned(), end) up to the end of the arguments value; returns
  // the canonical text it completes.
  std::string Read(std::string_view body, size_t end) {
    std::string out;
    while (scanned_ < end && !done_) Step(body[scanned_++], &out);
    return out;
  }

 private:
  enum class State { kValue, kString, kEscape, kNumber };

  void Step(char c, std::string* out) {
    switch (state_) {
      case State::kValue: Value(c, out); return;
      case State::kString:
        if (c == '"') {
          out->push_back('"');
          state_ = State::kValue;
        } else if (c == '\\') {
          pending_.assign(1, c);
          state_ = State::kEscape;
        } else {
          out->push_back(c);
        }
        return;
      case State::kEscape: Escape(c, out); return;
      case State::kNumber:
        if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
          pending_.push_back(c);
          return;
        }
        FlushNumber(out);
        state_ = State::kValue;
        Value(c, out);
        return;
    }
  }

  void Value(char c, std::string* out) {
    if (IsWs(c)) return;
    if (c == '"') {
      out->push_back(c);
      state_ = State::kString;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      pending_.assign(1, c);
      state_ = State::kNumber;
    } else {
      out->push_back(c);
      if (c == '{' || c == '[') {
        ++depth_;
      } else if ((c == '}' || c == ']') && --depth_ <= 0) {
        done_ = true;
      }
    }
  }

  void FlushNumber(std::string* out) {
    const Json n = ParseJson(pending_);
    out->append(n.is_number() ? n.dump() : pending_);
    pending_.clear();
  }

  // pending_ holds the escape so far ("\" and what followed).
  void Escape(char c, std::string* out) {
    pending_.push_back(c);
    if (pending_[1] != 'u') {
      const std::string_view simple = "\"\\/bfnrt";
      const char* decoded = "\"\\/\b\f\n\r\t";
      const size_t k = simple.find(c);
      if (k == std::string_view::npos) {
        out->append(pending_);  // invalid JSON: copied; the whole call is checked at its end
      } else {
        AppendDumpedCodePoint(static_cast<unsigned char>(decoded[k]), out);
      }
      pending_.clear();
      state_ = State::kString;
      return;
    }
    // \uXXXX, or a surrogate pair \uD8XX\uDCXX.
    const size_t n = pending_.size();
    const bool hex_digit = (n >= 3 && n <= 6) || n >= 9;
    if ((hex_digit && !isxdigit(static_cast<unsigned char>(c))) || (n == 7 && c != '\\') ||
        (n == 8 && c != 'u')) {
      Invalid(out);
      return;
    }
    if (n < 6 || (n > 6 && n < 12)) return;
    const int32_t hi = Hex4(pending_, 2);
    if (n == 6) {
      if (hi < 0 || (hi >= 0xDC00 && hi <= 0xDFFF)) {
        Invalid(out);
      } else if (hi < 0xD800 || hi > 0xDBFF) {
        AppendDumpedCodePoint(static_cast<uint32_t>(hi), out);
        pending_.clear();
        state_ = State::kString;
      }
      return;  // a high surrogate: its low half follows
    }
    const int32_t lo = Hex4(pending_, 8);
    if (lo < 0xDC00 || lo > 0xDFFF) {
      Invalid(out);
      return;
    }
    AppendDumpedCodePoint(0x10000 + ((static_cast<uint32_t>(hi) - 0xD800) << 10) +
                              (static_cast<uint32_t>(lo) - 0xDC00),
                          out);
    pending_.clear();
    state_ = State::kString;
  }

  // An escape that is not JSON: copied but for its last character, which is
  // read again as string text (it may be the closing quote).
  void Invalid(std::string* out) {
    const char last = pending_.back();
    pending_.pop_back();
    out->append(pending_);
    pending_.clear();
    state_ = State::kString;
    Step(last, out);
  }

  int index_;
  size_t scanned_;  // body bytes read
  State state_ = State::kValue;
  int depth_ = 0;
  bool done_ = false;
  std::string pending_;   // a number or an escape being read
  std::string streamed_;  // arguments emitted so far
};

OutputFormat DetectOutputFormat(std::string_view source, std::string_view prompt) {
  OutputFormat f;
  auto has = [&](std::string_view s) { return source.find(s) != std::string_view::npos; };
  if (has(kMistralCalls)) {
    f.tool_calls = ToolCallFormat::kMistral;
  } else if (has(kHermesOpen)) {
    f.tool_calls = ToolCallFormat::kHermes;
  } else if (has(kPythonTag) || has("ipython")) {
    f.tool_calls = ToolCallFormat::kLlama3;
  }
  f.reasoning = has(kThinkOpen) || has(kThinkClose);
  if (f.reasoning) {
    std::string_view p = prompt;
    while (!p.empty() && IsWs(p.back())) p.remove_suffix(1);
    f.starts_in_reasoning = p.size() >= kThinkOpen.size() && p.substr(p.size() - kThinkOpen.size()) == kThinkOpen;
  }
  return f;
}

StreamParser::StreamParser(OutputFormat format, std::string id_prefix, bool stream_arguments)
    : format_(format),
      id_prefix_(std::move(id_prefix)),
      mode_(format.reasoning && format.starts_in_reasoning ? Mode::kReasoning : Mode::kStart),
      json_calls_allowed_(format.tool_calls == ToolCallFormat::kLlama3),
      stream_arguments_(stream_arguments) {}

StreamParser::~StreamParser() = default;

std::vector<StreamEvent> StreamParser::Feed(std::string_view piece) {
  buf_.append(piece);
  Process(false);
  std::vector<StreamEvent> out;
  out.swap(events_);
  return out;
}

std::vector<StreamEvent> StreamParser::Finish() {
  Process(true);
  if (!buf_.empty()) EmitContent(buf_);
  buf_.clear();
  held_ws_.clear();
  reasoning_newlines_.clear();
  std::vector<StreamEvent> out;
  out.swap(events_);
  return out;
}

void StreamParser::Process(bool final) {
  while (true) {
    bool progressed = false;
    switch (mode_) {
      case Mode::kStart: progressed = StepStart(final); break;
      case Mode::kReasoning: progressed = StepReasoning(final); break;
      case Mode::kContent: progressed = StepContent(final); break;
      case Mode::kHermesCall: progressed = StepHermes(final); break;
      case Mode::kJsonCall: progressed = StepJson(final); break;
      case Mode::kPythonTag: progressed = StepPythonTag(final); break;
      case Mode::kMistral: progressed = StepMistral(final); break;
    }
    if (!progressed) return;
  }
}

void StreamParser::EmitContent(std::string_view text) {
  if (text.empty()) return;
  for (char c : text) {
    if (c == '\n') {
      line_start_ = true;
    } else if (c != ' ' && c != '\t') {
      line_start_ = false;
    }
  }
  if (skip_leading_ws_) {
    size_t i = FirstNonWs(text);
    if (i == std::string_view::npos) return;
    text.remove_prefix(i);
    skip_leading_ws_ = false;
  }
  if (next_index_ > 0) {  // whitespace after a tool call is held, dropped at the end
    if (FirstNonWs(text) == std::string_view::npos) {
      held_ws_.append(text);
      return;
    }
  }
  std::string out = std::move(held_ws_);
  held_ws_.clear();
  out.append(text);
  if (!events_.empty() && events_.back().kind == StreamEvent::Kind::kContent) {
    events_.back().text += out;
  } else {
    events_.push_back(Event(StreamEvent::Kind::kContent, std::move(out)));
  }
}

void StreamParser::EmitReasoning(std::string_view text) {
  if (!reasoning_started_) {
    while (!text.empty() && text.front() == '\n') text.remove_prefix(1);
    if (text.empty()) return;
    reasoning_started_ = true;
  }
  size_t last = text.find_last_not_of('\n');
  if (last == std::string_view::npos) {
    reasoning_newlines_.append(text);
    return;
  }
  std::string out = std::move(reasoning_newlines_);
  out.append(text.substr(0, last + 1));
  reasoning_newlines_ = std::string(text.substr(last + 1));
  if (!events_.empty() && events_.back().kind == StreamEvent::Kind::kReasoning) {
    events_.back().text += out;
  } else {
    events_.push_back(Event(StreamEvent::Kind::kReasoning, std::move(out)));
  }
}

void StreamParser::EmitCall(const std::string& name, const std::string& arguments, std::string id) {
  EmitArguments(StartCall(name, std::move(id)), arguments);
}

int StreamParser::StartCall(const std::string& name, std::string id) {
  held_ws_.clear();
  line_start_ = true;
  const int index = next_index_++;
  StreamEvent start = Event(StreamEvent::Kind::kToolCallStart);
  start.index = index;
  start.id = id.empty() ? id_prefix_ + std::to_string(index) : std::move(id);
  start.name = name;
  events_.push_back(std::move(start));
  return index;
}

void StreamParser::EmitArguments(int index, std::string text) {
  if (!events_.empty() && events_.back().kind == StreamEvent::Kind::kToolCallArguments &&
      events_.back().index == index) {
    events_.back().text += text;
    return;
  }
  StreamEvent args = Event(StreamEvent::Kind::kToolCallArguments, std::move(text));
  args.index = index;
  events_.push_back(std::move(args));
}

bool StreamParser::StepStart(bool final) {
  size_t i = FirstNonWs(buf_);
  if (i == std::string::npos) {
    if (final) {
      EmitContent(buf_);
      buf_.clear();
    }
    return false;
  }
  std::string_view rest = std::string_view(buf_).substr(i);
  if (format_.reasoning) {
    if (rest.substr(0, kThinkOpen.size()) == kThinkOpen) {
      buf_.erase(0, i + kThinkOpen.size());
      mode_ = Mode::kReasoning;
      return true;
    }
    if (!final && rest.size() < kThinkOpen.size() && kThinkOpen.substr(0, rest.size()) == rest) return false;
  }
  if (json_calls_allowed_ && next_index_ > 0 && rest[0] == ';') {  // "call; call"
    buf_.erase(0, i + 1);
    return true;
  }
  if (json_calls_allowed_ && rest[0] == '{') {
    mode_ = Mode::kJsonCall;
    return true;
  }
  format_.reasoning = false;  // <think> only counts at the very start
  mode_ = Mode::kContent;
  return true;
}

bool StreamParser::StepReasoning(bool final) {
  size_t p = buf_.find(kThinkClose);
  if (p != std::string::npos) {
    EmitReasoning(std::string_view(buf_).substr(0, p));
    reasoning_newlines_.clear();
    buf_.erase(0, p + kThinkClose.size());
    format_.reasoning = false;
    skip_leading_ws_ = true;
    mode_ = Mode::kStart;
    return true;
  }
  size_t hold = final ? 0 : PartialTagSuffix(buf_, kThinkClose);
  EmitReasoning(std::string_view(buf_).substr(0, buf_.size() - hold));
  buf_.erase(0, buf_.size() - hold);
  return false;
}

bool StreamParser::StepContent(bool final) {
  struct Marker {
    std::string_view tag;
    Mode mode;
    bool line_start;
  };
  std::vector<Marker> markers;
  switch (format_.tool_calls) {
    case ToolCallFormat::kHermes: markers.push_back({kHermesOpen, Mode::kHermesCall, true}); break;
    case ToolCallFormat::kLlama3: markers.push_back({kPythonTag, Mode::kPythonTag, false}); break;
    case ToolCallFormat::kMistral: markers.push_back({kMistralCalls, Mode::kMistral, false}); break;
    case ToolCallFormat::kNone: break;
  }
  for (const Marker& m : markers) {
    size_t from = 0;
    while (true) {
      size_t p = buf_.find(m.tag, from);
      if (p == std::string::npos) break;
      bool ok = true;
      if (m.line_start) {  // only spaces/tabs between the line start and the tag
        size_t k = p;
        while (k > 0 && (buf_[k - 1] == ' ' || buf_[k - 1] == '\t')) --k;
        ok = k == 0 ? line_start_ : buf_[k - 1] == '\n';
      }
      if (ok) {
        EmitContent(std::string_view(buf_).substr(0, p));
        buf_.erase(0, p + m.tag.size());
        mode_ = m.mode;
        return true;
      }
      from = p + 1;
    }
  }
  size_t hold = 0;
  if (!final) {
    for (const Marker& m : markers) hold = std::max(hold, PartialTagSuffix(buf_, m.tag));
  }
  EmitContent(std::string_view(buf_).substr(0, buf_.size() - hold));
  buf_.erase(0, buf_.size() - hold);
  return false;
}

bool StreamParser::StepHermes(bool final) {
  size_t p = buf_.find(kHermesClose);
  const bool closed = p != std::string::npos;
  // Stream only a call that is still open (or already streaming): one that
  // closes within this Feed is checked whole, as without streaming.
  if (stream_arguments_ && (live_ != nullptr || (!closed && !final))) {
    StreamCall(0, closed ? p : buf_.size() - PartialTagSuffix(buf_, kHermesClose), HeadKeys::kArguments);
  }
  if (!closed && !final) return false;
  std::string body = closed ? buf_.substr(0, p) : buf_;
  buf_.erase(0, closed ? p + kHermesClose.size() : buf_.size());
  mode_ = Mode::kContent;
  head_failed_ = false;
  Call call;
  std::string_view trimmed = Trim(body);
  const bool valid = CallFromJson(ParseJson(trimmed), &call);
  if (live_ != nullptr) {  // committed: it stays a call
    EndLive(valid ? &call.arguments : nullptr, closed);
  } else if (valid) {
    EmitCall(call.name, call.arguments);
  } else {
    EmitContent(std::string(kHermesOpen) + body + (closed ? std::string(kHermesClose) : ""));
  }
  return true;
}

void StreamParser::StreamCall(size_t from, size_t limit, HeadKeys keys) {
  if (live_ == nullptr) {
    if (head_failed_ || limit < from) return;
    const std::string_view body = std::string_view(buf_).substr(from, limit - from);
    const CallHead head = keys == HeadKeys::kLlama ? MatchCallHead(body, kLlamaKeys) : MatchCallHead(body, kArgumentsKey);
    if (head.status == CallHead::Status::kNoMatch) head_failed_ = true;
    if (head.status != CallHead::Status::kMatched) return;
    const int index = next_index_;
    live_ = std::make_unique<ArgumentStream>(
        StartCall(head.name, keys == HeadKeys::kMistral ? MistralId(id_prefix_, index) : ""), from + head.arguments_at);
  }
  ReadLive(limit);
}

void StreamParser::ReadLive(size_t limit) {
  std::string text = live_->Read(buf_, limit);
  if (text.empty()) return;
  live_->Record(text);
  EmitArguments(live_->index(), std::move(text));
}

void StreamParser::StreamSequence(size_t first, size_t limit, HeadKeys keys) {
  const bool mistral = keys == HeadKeys::kMistral;
  while (true) {
    if (live_ != nullptr) {
      ReadLive(limit);
      if (!live_->done()) return;
      const size_t e = JsonEnd(buf_, elem_at_);
      if (e == std::string::npos || e > limit) return;
      Call c;
      const bool ok = CallFromJson(ParseJson(std::string_view(buf_).substr(elem_at_, e - elem_at_)), &c);
      EndLive(ok ? &c.arguments : nullptr, true);
      ++seq_elems_;
      seq_next_ = e;
      continue;
    }
    if (head_failed_) return;
    // The next element: after the opening (first), or after the previous
    // element and its separator (Mistral: one ','; Llama 3: ';'s and spaces).
    size_t p = seq_elems_ == 0 ? first : seq_next_;
    bool separated = seq_elems_ == 0 || !mistral;
    while (p < limit && (IsWs(buf_[p]) || (buf_[p] == (mistral ? ',' : ';') && !(mistral && separated)))) {
      if (buf_[p] == ',') separated = true;
      ++p;
    }
    if (p >= limit) return;
    if (buf_[p] != '{' || !separated) {
      head_failed_ = true;  // the end of the sequence, or another shape: the rest comes whole
      return;
    }
    elem_at_ = p;
    StreamCall(p, limit, keys);
    if (live_ == nullptr) return;
  }
}

void StreamParser::EndSequence(const std::vector<Call>* calls, bool closed, bool model_ids) {
  size_t k = seq_elems_;
  if (live_ != nullptr) {
    EndLive(calls != nullptr && k < calls->size() ? &(*calls)[k].arguments : nullptr, closed);
    ++k;
  }
  if (calls != nullptr) {
    for (; k < calls->size(); ++k) EmitCall((*calls)[k].name, (*calls)[k].arguments, model_ids ? (*calls)[k].id : "");
  }
  seq_elems_ = 0;
  seq_next_ = 0;
  head_failed_ = false;
}

void StreamParser::EndLive(const std::string* arguments, bool closed) {
  const std::string& streamed = live_->streamed();
  if (arguments != nullptr && arguments->size() > streamed.size() &&
      arguments->compare(0, streamed.size(), streamed) == 0) {
    EmitArguments(live_->index(), arguments->substr(streamed.size()));
  }
  if (arguments == nullptr && !closed) call_unfinished_ = true;
  live_.reset();
  head_failed_ = false;
  held_ws_.clear();
  line_start_ = true;
}

bool StreamParser::StepJson(bool final) {
  size_t i = FirstNonWs(buf_);
  size_t end = JsonEnd(buf_, i);
  // As in StepHermes: stream only a call still open (or already streaming).
  if (stream_arguments_ && (live_ != nullptr || (end == std::string::npos && !final))) {
    StreamCall(0, end == std::string::npos ? buf_.size() : end, HeadKeys::kLlama);
  }
  if (end == std::string::npos && !final) return false;
  Call call;
  const bool valid =
      end != std::string::npos && CallFromJson(ParseJson(std::string_view(buf_).substr(i, end - i)), &call);
  if (live_ != nullptr) {  // committed: it stays a call
    EndLive(valid ? &call.arguments : nullptr, end != std::string::npos);
    buf_.erase(0, end == std::string::npos ? buf_.size() : end);
    mode_ = Mode::kStart;
    return true;
  }
  head_failed_ = false;
  if (valid) {
    EmitCall(call.name, call.arguments);
    buf_.erase(0, end);
    mode_ = Mode::kStart;
    return true;
  }
  json_calls_allowed_ = false;  // not a call: it and everything after is content
  mode_ = Mode::kContent;
  return true;
}

bool StreamParser::StepPythonTag(bool final) {
  size_t p = buf_.find("<|eom_id|>");
  if (p == std::string::npos) p = buf_.find("<|eot_id|>");
  const bool closed = p != std::string::npos;
  const bool committed = live_ != nullptr || seq_elems_ > 0;
  if (stream_arguments_ && (committed || (!closed && !final))) {
    // JSON calls stream; text that may be the end tag is held back.
    const size_t hold = std::max(PartialTagSuffix(buf_, "<|eom_id|>"), PartialTagSuffix(buf_, "<|eot_id|>"));
    StreamSequence(0, closed ? p : buf_.size() - hold, HeadKeys::kLlama);
  }
  if (!closed && !final) return false;
  std::string body = closed ? buf_.substr(0, p) : buf_;
  std::string raw = closed ? buf_.substr(0, p + 10) : buf_;
  buf_.erase(0, raw.size());
  mode_ = Mode::kContent;
  std::vector<Call> calls;
  Call py;
  const bool json = CallsFromJsonText(body, &calls);
  if (live_ != nullptr || seq_elems_ > 0) {  // committed: they stay calls
    EndSequence(json ? &calls : nullptr, closed, /*model_ids=*/false);
  } else if (json) {
    head_failed_ = false;
    for (const Call& c : calls) EmitCall(c.name, c.arguments);
  } else if (CallFromPython(body, &py)) {
    head_failed_ = false;
    EmitCall(py.name, py.arguments);
  } else {
    head_failed_ = false;
    EmitContent(std::string(kPythonTag) + raw);
  }
  return true;
}

bool StreamParser::StepMistral(bool final) {
  auto fallback = [&](size_t consumed) {
    EmitContent(std::string(kMistralCalls) + buf_.substr(0, consumed));
    buf_.erase(0, consumed);
    mode_ = Mode::kContent;
    head_failed_ = false;
    return true;
  };
  size_t i = FirstNonWs(buf_);
  if (i == std::string::npos) return final ? fallback(buf_.size()) : false;
  if (buf_[i] == '[' && buf_.compare(i, kMistralArgs.size(), kMistralArgs) != 0) {
    size_t end = JsonEnd(buf_, i);
    const bool committed = live_ != nullptr || seq_elems_ > 0;
    if (stream_arguments_ && (committed || (end == std::string::npos && !final))) {
      StreamSequence(i + 1, end == std::string::npos ? buf_.size() : end, HeadKeys::kMistral);
    }
    if (live_ != nullptr || seq_elems_ > 0) {  // committed: they stay calls
      if (end == std::string::npos && !final) return false;
      std::vector<Call> calls;
      const bool valid =
          end != std::string::npos && CallsFromJsonText(std::string_view(buf_).substr(i, end - i), &calls);
      EndSequence(valid ? &calls : nullptr, end != std::string::npos, /*model_ids=*/true);
      buf_.erase(0, end == std::string::npos ? buf_.size() : end);
      mode_ = Mode::kContent;
      return true;
    }
    if (end == std::string::npos) return final ? fallback(buf_.size()) : false;
    std::vector<Call> calls;
    if (!CallsFromJsonText(std::string_view(buf_).substr(i, end - i), &calls)) return fallback(end);
    for (Call& c : calls) EmitCall(c.name, c.arguments, c.id);
    buf_.erase(0, end);
    mode_ = Mode::kContent;
    head_failed_ = false;
    return true;
  }
  // name[ARGS]{...} or name[CALL_ID]id[ARGS]{...}
  size_t a = buf_.find(kMistralArgs, i);
  size_t nl = buf_.find('\n', i);
  if (nl != std::string::npos && (a == std::string::npos || nl < a)) return fallback(nl);
  if (a == std::string::npos) return final ? fallback(buf_.size()) : false;
  std::string name = buf_.substr(i, a - i);
  std::string id;
  size_t cid = name.find(kMistralCallId);
  if (cid != std::string::npos) {
    id = name.substr(cid + kMistralCallId.size());
    name.resize(cid);
  }
  size_t j = FirstNonWs(buf_, a + kMistralArgs.size());
  if (j == std::string::npos) return final ? fallback(buf_.size()) : false;
  if (buf_[j] != '{') return fallback(j);
  bool name_ok = !name.empty();
  for (char c : name) name_ok &= isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
  size_t end = JsonEnd(buf_, j);
  // The name and the id are known once the object opens: it streams from there.
  if (stream_arguments_ && name_ok && (live_ != nullptr || (end == std::string::npos && !final))) {
    if (live_ == nullptr) live_ = std::make_unique<ArgumentStream>(StartCall(name, id), j);
    ReadLive(end == std::string::npos ? buf_.size() : end);
  }
  if (live_ != nullptr) {  // committed: it stays a call
    if (end == std::string::npos && !final) return false;
    Json args = end == std::string::npos ? Json(nullptr) : ParseJson(std::string_view(buf_).substr(j, end - j));
    const std::string dumped = args.is_object() ? args.dump(-1, ' ', false, Json::error_handler_t::replace) : "";
    EndLive(args.is_object() ? &dumped : nullptr, end != std::string::npos);
    buf_.erase(0, end == std::string::npos ? buf_.size() : end);
    mode_ = Mode::kContent;
    return true;
  }
  if (end == std::string::npos) return final ? fallback(buf_.size()) : false;
  Json args = ParseJson(std::string_view(buf_).substr(j, end - j));
  if (!args.is_object() || !name_ok) return fallback(end);
  EmitCall(name, args.dump(-1, ' ', false, Json::error_handler_t::replace), id);
  buf_.erase(0, end);
  mode_ = Mode::kContent;
  return true;
}

ParsedOutput ParseOutput(std::string_view text, const OutputFormat& format, std::string id_prefix) {
  StreamParser parser(format, std::move(id_prefix));
  std::vector<StreamEvent> events = parser.Feed(text);
  for (auto& e : parser.Finish()) events.push_back(std::move(e));
  ParsedOutput out;
  for (const StreamEvent& e : events) {
    switch (e.kind) {
      case StreamEvent::Kind::kContent: out.content += e.text; break;
      case StreamEvent::Kind::kReasoning: out.reasoning_content += e.text; break;
      case StreamEvent::Kind::kToolCallStart: out.tool_calls.push_back({e.id, e.name, ""}); break;
      case StreamEvent::Kind::kToolCallArguments: out.tool_calls[e.index].arguments += e.text; break;
    }
  }
  return out;
}

}  // namespace reprise::chat
