// Tokenizer construction (from GGUF or a VocabSpec), special-token
// splitting, Encode dispatch and Decode; see tokenizer.h. The encoders live
// in spm.cc and bpe.cc, StreamDecoder in stream_decoder.cc.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <utility>

#include "core/log.h"
#include "tokenizer/pretokenizer.h"

namespace reprise::tokenizer {
namespace {

constexpr const char* kLog = "tokenizer";
constexpr std::string_view kSpmSpace = "\xe2\x96\x81";  // U+2581 '▁'

// Texts of end-of-generation tokens the references recognise by name.
constexpr const char* kEogTexts[] = {
    "<|eot_id|>", "<|eom_id|>",  "<|im_end|>", "<|end|>",  "<end_of_turn>",
    "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>", "<|EOT|>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", "<|return|>", "<|call|>",
    "</s>", "<|flush|>", "<|calls|>", "[EOT]", "[EOS]", "<end_of_utterance>", "<eos>", "<turn|>",
    "<|tool_response>",
};

// Pre-tokenizers whose vocabularies add BOS by default (Llama 3 family).
bool DefaultAddBos(std::string_view pre) {
  return pre == "llama-bpe" || pre == "llama3" || pre == "dbrx" || pre == "smaug-bpe" ||
         pre == "falcon3";
}

Result<std::optional<int32_t>> ReadId(const gguf::File& file, const char* key) {
  if (!file.Has(key)) return std::optional<int32_t>();
  ASSIGN_OR_RETURN(int64_t v, file.GetInt(key));
  // Converters write "none" as -1 or as UINT32_MAX.
  if (v < 0 || v >= 0xFFFFFFFFll) return std::optional<int32_t>(-1);
  if (v > INT32_MAX) return Errorf("%s = %lld is not a token id", key, static_cast<long long>(v));
  return std::optional<int32_t>(static_cast<int32_t>(v));
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

Result<VocabSpec> Tokenizer::ReadVocabSpec(const gguf::File& file) {
  VocabSpec spec;
  if (!file.Has("tokenizer.ggml.model")) {
    return Errorf("%s: no tokenizer (missing key tokenizer.ggml.model)", file.path().c_str());
  }
  ASSIGN_OR_RETURN(spec.model, file.GetString("tokenizer.ggml.model"));
  ASSIGN_OR_RETURN(spec.pre, file.GetStringOr("tokenizer.ggml.pre", "default"));
  ASSIGN_OR_RETURN(spec.tokens, file.GetStringArray("tokenizer.ggml.tokens"));
  if (file.Has("tokenizer.ggml.scores")) {
    ASSIGN_OR_RETURN(spec.scores, file.GetFloatArray("tokenizer.ggml.scores"));
  }
  if (file.Has("tokenizer.ggml.token_type")) {
    ASSIGN_OR_RETURN(std::vector<int64_t> types, file.GetIntArray("tokenizer.ggml.token_type"));
    spec.token_types.assign(types.begin(), types.end());
  }
  if (file.Has("tokenizer.ggml.merges")) {
    // An empty list is valid: a pure byte-level vocabulary (one token per byte).
    ASSIGN_OR_RETURN(spec.merges, file.GetStringArray("tokenizer.ggml.merges"));
  } else if (spec.model == "gpt2") {
    return Errorf("%s: BPE tokenizer without tokenizer.ggml.merges", file.path().c_str());
  }
  ASSIGN_OR_RETURN(spec.bos_id, ReadId(file, "tokenizer.ggml.bos_token_id"));
  ASSIGN_OR_RETURN(spec.eos_id, ReadId(file, "tokenizer.ggml.eos_token_id"));
  ASSIGN_OR_RETURN(spec.unk_id, ReadId(file, "tokenizer.ggml.unknown_token_id"));
  ASSIGN_OR_RETURN(auto eot, ReadId(file, "tokenizer.ggml.eot_token_id"));
  ASSIGN_OR_RETURN(auto eom, ReadId(file, "tokenizer.ggml.eom_token_id"));
  ASSIGN_OR_RETURN(auto pad, ReadId(file, "tokenizer.ggml.padding_token_id"));
  spec.eot_id = eot.value_or(-1);
  spec.eom_id = eom.value_or(-1);
  spec.pad_id = pad.value_or(-1);
  for (auto [key, field] : {std::pair{"tokenizer.ggml.add_bos_token", &spec.add_bos},
                            std::pair{"tokenizer.ggml.add_eos_token", &spec.add_eos},
                            std::pair{"tokenizer.ggml.add_space_prefix", &spec.add_space_prefix}}) {
    if (file.Has(key)) {
      ASSIGN_OR_RETURN(bool v, file.GetBool(key));
      *field = v;
    }
  }
  // Phi-3's special tokens carry rstrip in its tokenizer.json (except <unk>,
  // <s>, <|endoftext|>); GGUF loses that, so restore it by model name.
  ASSIGN_OR_RETURN(std::string name, file.GetStringOr("general.name", ""));
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
    for (size_t i = 0; i < spec.tokens.size() && i < spec.token_types.size(); ++i) {
      const auto t = static_cast<TokenType>(spec.token_types[i]);
      const std::string& text = spec.tokens[i];
      const bool special = t == TokenType::kControl || t == TokenType::kUserDefined ||
                           t == TokenType::kUnknown || text == "</s>";
      if (special && text != "<unk>" && text != "<s>" && text != "<|endoftext|>") {
        spec.rstrip_tokens.push_back(text);
      }
    }
  }
  return spec;
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromGguf(const gguf::File& file) {
  ASSIGN_OR_RETURN(VocabSpec spec, ReadVocabSpec(file));
  return FromSpec(std::move(spec));
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromSpec(VocabSpec spec) {
  std::unique_ptr<Tokenizer> tok(new Tokenizer());
  RETURN_IF_ERROR(tok->Init(std::move(spec)));
  return tok;
}

Status Tokenizer::Init(VocabSpec spec) {
  if (spec.model == "llama") {
    spm_ = true;
  } else if (spec.model == "gpt2") {
    spm_ = false;
  } else {
    return Errorf("unsupported tokenizer model tokenizer.ggml.model='%s' (supported: llama, gpt2)",
                  spec.model.c_str());
  }
  const size_t n = spec.tokens.size();
  if (n == 0) return Errorf("tokenizer.ggml.tokens is empty");
  if (n > static_cast<size_t>(INT32_MAX)) return Errorf("too many tokens (%zu)", n);
  if (!spec.scores.empty() && spec.scores.size() != n) {
    return Errorf("tokenizer.ggml.scores has %zu entries, tokens has %zu", spec.scores.size(), n);
  }
  if (!spec.token_types.empty() && spec.token_types.size() != n) {
    return Errorf("tokenizer.ggml.token_type has %zu entries, tokens has %zu",
                  spec.token_types.size(), n);
  }
  tokens_ = std::move(spec.tokens);
  scores_ = spec.scores.empty() ? std::vector<float>(n, 0.0f) : std::move(spec.scores);
  types_.assign(n, TokenType::kNormal);
  for (size_t i = 0; i < spec.token_types.size(); ++i) {
    const int32_t t = spec.token_types[i];
    types_[i] = (t >= 0 && t <= 6) ? static_cast<TokenType>(t) : TokenType::kNormal;
  }
  token_to_id_.reserve(n);
  for (size_t i = 0; i < n; ++i) token_to_id_[tokens_[i]] = static_cast<int32_t>(i);

  const auto resolve = [&](const char* what, std::optional<int32_t> v, int32_t def) -> int32_t {
    const int32_t id = v.has_value() ? *v : def;
    if (id >= static_cast<int64_t>(n)) {
      LOG_WARN(kLog, "%s id %d is out of range (n_vocab %zu); ignoring it", what, id, n);
      return -1;
    }
    return id < 0 ? -1 : id;
  };
  bos_id_ = resolve("bos", spec.bos_id, spm_ ? 1 : -1);
  eos_id_ = resolve("eos", spec.eos_id, spm_ ? 2 : -1);
  unk_id_ = resolve("unknown", spec.unk_id, spm_ ? 0 : -1);
  eot_id_ = resolve("eot", spec.eot_id, -1);
  eom_id_ = resolve("eom", spec.eom_id, -1);
  pad_id_ = resolve("padding", spec.pad_id, -1);
  pre_name_ = spec.pre.empty() ? "default" : spec.pre;
  add_bos_ = spec.add_bos.value_or(spm_ || DefaultAddBos(pre_name_));
  add_eos_ = spec.add_eos.value_or(false);
  add_space_prefix_ = spec.add_space_prefix.value_or(spm_);

  for (int32_t id : {eos_id_, eot_id_, eom_id_}) {
    if (id >= 0) eog_ids_.insert(id);
  }
  // As llama.cpp does: a user-defined token spelled like an end-of-generation
  // marker is taken for a control token, so with special parsing off its text
  // stays text (Phi-3's "</s>" is user-defined in GGUF: "</s>" must encode as
  // "▁</", "s", ">"). Exception, also llama.cpp's: where <|tool_response> is
  // an end marker (Gemma 4), "</s>" is plain text and ends nothing.
  const int32_t tool_response = Lookup("<|tool_response>");
  const bool s_is_text =
      tool_response >= 0 && (types_[tool_response] == TokenType::kControl ||
                             types_[tool_response] == TokenType::kUserDefined);
  for (const char* text : kEogTexts) {
    const int32_t id = Lookup(text);
    if (id < 0 || (s_is_text && std::string_view(text) == "</s>")) continue;
    if (types_[id] == TokenType::kControl || types_[id] == TokenType::kUserDefined) {
      eog_ids_.insert(id);
      types_[id] = TokenType::kControl;
    }
  }

  for (size_t i = 0; i < n; ++i) {
    const TokenType t = types_[i];
    if ((t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown) &&
        !tokens_[i].empty()) {
      special_tokens_.push_back(static_cast<int32_t>(i));
    }
  }
  for (const std::string& text : spec.rstrip_tokens) {
    const int32_t id = Lookup(text);
    if (id >= 0) rstrip_ids_.insert(id);
  }
  control_end_.assign(1, 0);
  for (int32_t id : special_tokens_) {
    if (types_[id] == TokenType::kUserDefined) continue;
    int32_t node = 0;
    for (unsigned char c : tokens_[id]) {
      const uint64_t key = static_cast<uint64_t>(node) << 8 | c;
      auto it = control_edges_.find(key);
      if (it == control_edges_.end()) {
        const auto child = static_cast<int32_t>(control_end_.size());
        control_end_.push_back(0);
        it = control_edges_.emplace(key, child).first;
      }
      node = it->second;
    }
    control_end_[node] = 1;
  }
  std::stable_sort(special_tokens_.begin(), special_tokens_.end(), [&](int32_t a, int32_t b) {
    return tokens_[a].size() > tokens_[b].size();
  });

  if (spm_) {
    for (int b = 0; b < 256; ++b) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
      spm_byte_token_[b] = Lookup(buf);
    }
    spm_split_at_spaces_ = SpmCanSplitAtSpaces();
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(pre_tokenizer_, PreTokenizer::Create(pre_name_));
  ignore_merges_ = DefaultAddBos(pre_name_);  // the Llama 3 family sets ignore_merges
  return InitBpe(spec.merges);
}

std::optional<int32_t> Tokenizer::FindToken(std::string_view piece) const {
  const int32_t id = Lookup(piece);
  if (id < 0) return std::nullopt;
  return id;
}

std::string Tokenizer::TokenPiece(int32_t id) const {
  if (id < 0 || id >= n_vocab()) return std::string();
  return tokens_[id];
}

std::vector<Tokenizer::Fragment> Tokenizer::Partition(std::string_view text, bool parse_special,
                                                      std::span<const TextRange> plain) const {
  std::vector<Fragment> frags;
  if (text.empty()) return frags;
  frags.push_back({-1, text});
  // Whether [begin, begin + size) of `text` overlaps a plain range.
  auto in_plain = [&](size_t begin, size_t size) {
    auto it = std::upper_bound(plain.begin(), plain.end(), begin,
                               [](size_t b, const TextRange& r) { return b < r.end; });
    return it != plain.end() && it->begin < begin + size;
  };
  std::vector<Fragment> next;
  for (int32_t id : special_tokens_) {
    const bool user_defined = types_[id] == TokenType::kUserDefined;
    if (!parse_special && !user_defined) continue;
    const std::string& needle = tokens_[id];
    if (text.find(needle) == std::string_view::npos) continue;
    const bool rstrip = rstrip_ids_.count(id) != 0;
    next.clear();
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      const size_t base = static_cast<size_t>(f.text.data() - text.data());
      size_t pos = 0;
      size_t from = 0;
      for (size_t hit; (hit = f.text.find(needle, from)) != std::string_view::npos;) {
        if (!user_defined && !plain.empty() && in_plain(base + hit, needle.size())) {
          from = hit + 1;  // user data: this occurrence is text
          continue;
        }
        if (hit > pos) next.push_back({-1, f.text.substr(pos, hit - pos)});
        next.push_back({id, {}});
        pos = hit + needle.size();
        if (rstrip) {  // the token swallows the whitespace after it
          while (pos < f.text.size() && std::isspace(static_cast<unsigned char>(f.text[pos]))) {
            ++pos;
          }
        }
        from = pos;
      }
      if (pos < f.text.size()) next.push_back({-1, f.text.substr(pos)});
    }
    frags.swap(next);
  }
  return frags;
}

std::vector<TextRange> Tokenizer::FindControlTexts(std::string_view text) const {
  std::vector<TextRange> out;
  if (control_edges_.empty()) return out;
  for (size_t i = 0; i < text.size();) {
    int32_t node = 0;
    size_t longest = 0;
    for (size_t j = i; j < text.size(); ++j) {
      auto it = control_edges_.find(static_cast<uint64_t>(node) << 8 |
                                    static_cast<unsigned char>(text[j]));
      if (it == control_edges_.end()) break;
      node = it->second;
      if (control_end_[node]) longest = j + 1 - i;
    }
    if (longest > 0) {
      out.push_back({i, i + longest});
      i += longest;
    } else {
      ++i;
    }
  }
  return out;
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_special,
                                       bool parse_special) const {
  return EncodeImpl(text, add_special, parse_special, {});
}

std::vector<int32_t> Tokenizer::EncodeWithPlainRanges(std::string_view text, bool add_special,
                                                      std::span<const TextRange> plain) const {
  return EncodeImpl(text, add_special, /*parse_special=*/true, plain);
}

std::vector<int32_t> Tokenizer::EncodeImpl(std::string_view text, bool add_special,
                                           bool parse_special,
                                           std::span<const TextRange> plain) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special && add_bos_ && bos_id_ >= 0) out.push_back(bos_id_);
  const std::vector<Fragment> frags = Partition(text, parse_special, plain);
  if (spm_) {
    bool prev_special = true;  // the dummy prefix goes before the first text
    std::string buf;
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        out.push_back(f.token);
        prev_special = true;
        continue;
      }
      buf.clear();
      if (add_space_prefix_ && prev_special) buf.append(kSpmSpace);
      for (char c : f.text) {
        if (c == ' ') {
          buf.append(kSpmSpace);
        } else {
          buf.push_back(c);
        }
      }
      EncodeSpm(buf, &out);
      prev_special = false;
    }
  } else {
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        out.push_back(f.token);
      } else {
        EncodeBpe(f.text, &out);
      }
    }
  }
  if (add_special && add_eos_ && eos_id_ >= 0) out.push_back(eos_id_);
  return out;
}

std::string Tokenizer::RenderToken(int32_t id, bool skip_special) const {
  if (id < 0 || id >= n_vocab()) return std::string();
  const std::string& text = tokens_[id];
  switch (types_[id]) {
    case TokenType::kControl:
    case TokenType::kUnknown:
      return skip_special ? std::string() : text;
    case TokenType::kUserDefined:
      return text;
    case TokenType::kUnused:
      return std::string();
    case TokenType::kByte:
      if (text.size() == 6 && text.compare(0, 3, "<0x") == 0 && text[5] == '>') {
        return std::string(1, static_cast<char>(std::stoi(text.substr(3, 2), nullptr, 16)));
      }
      return text;
    case TokenType::kNormal:
    case TokenType::kUndefined:
      break;
  }
  std::string out;
  out.reserve(text.size());
  if (spm_) {
    for (size_t i = 0; i < text.size();) {
      if (text.compare(i, kSpmSpace.size(), kSpmSpace) == 0) {
        out.push_back(' ');
        i += kSpmSpace.size();
      } else {
        out.push_back(text[i++]);
      }
    }
    return out;
  }
  for (size_t i = 0; i < text.size();) {
    uint32_t cp = 0;
    const int len = DecodeUtf8(text, i, &cp);
    if (len == 0) {
      out.push_back(text[i++]);
      continue;
    }
    const int byte = byte_map_.Decode(cp);
    if (byte >= 0) {
      out.push_back(static_cast<char>(byte));
    } else {
      out.append(text, i, len);  // not in the byte-level alphabet: keep as is
    }
    i += len;
  }
  return out;
}

Result<std::string> Tokenizer::Decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= n_vocab()) {
      return Errorf("token id %d is out of range [0, %d)", id, n_vocab());
    }
    out += RenderToken(id, skip_special);
  }
  if (strips_leading_space() && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

}  // namespace reprise::tokenizer
