// PCRE2-backed regex pre-tokenizers; see pretokenizer.h. The regex sequences
// are those each `tokenizer.ggml.pre` names in its Hugging Face tokenizer.json
// (as llama.cpp records them); PCRE2's \p{L}, \p{N}, \p{P}, \s (with UCP)
// supply the Unicode classes. Why PCRE2 (JIT speed; maintained Unicode
// tables; the lookahead and inline-flag syntax the patterns use) rather than
// ICU or Oniguruma: see BENCHMARKS.md, "Tokenizer".
#include "tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <utility>

namespace reprise::tokenizer {
namespace {

// GPT-2 (also the letters/numbers/punctuation core of several others).
constexpr const char* kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Llama 3 (tiktoken cl100k-style): digits in groups of at most 3.
constexpr const char* kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2: like Llama 3 but single digits.
constexpr const char* kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kCjk = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+";

struct NamedSequence {
  std::vector<const char*> names;
  std::vector<std::string> patterns;
};

const std::vector<NamedSequence>& Table() {
  static const std::vector<NamedSequence> kTable = {
      // llama.cpp's fallback for BPE vocabularies without a known pre-tokenizer.
      {{"default"},
       {R"([\p{P}\$\+<=>\^~\|]+)",
        R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))", R"(\p{N}+)",
        "[0-9][0-9][0-9]"}},
      {{"gpt-2", "gpt2", "mpt", "olmo", "jais", "phi-2"}, {kGpt2}},
      {{"llama-bpe", "llama3", "dbrx", "smaug-bpe", "falcon3"}, {kLlama3}},
      {{"qwen2", "stablelm2", "deepseek-r1-qwen", "megrez"}, {kQwen2}},
      {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"},
       {R"(\p{N})", kGpt2}},
      {{"falcon"},
       {R"([\p{P}\$\+<=>\^~\|`]+)",
        R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))",
        "[0-9][0-9][0-9]"}},
      {{"deepseek-coder"}, {"[\r\n]", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kCjk, R"(\p{N})"}},
      {{"deepseek-llm"},
       {"[\r\n]",
        "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293"
        "\u0295-\u02af\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c"
        "\u038e-\u03a1\u03a3-\u03f5\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5"
        "\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77"
        "\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57\u1f59"
        "\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc"
        "\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc\u2102\u2107"
        "\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139"
        "\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee"
        "\u2cf2\u2cf3\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e"
        "\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f"
        "\U000104b0-\U000104d3\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2"
        "\U000118a0-\U000118df\U0001e900-\U0001e943]+",
        "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+", R"(\s+$)", kCjk,
        R"(\p{N}+)"}},
  };
  return kTable;
}

}  // namespace

struct PreTokenizer::Pattern {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Pattern() {
    if (code != nullptr) pcre2_code_free(code);
  }
};

PreTokenizer::~PreTokenizer() = default;

std::vector<std::string> PreTokenizer::KnownNames() {
  std::vector<std::string> names;
  for (const auto& seq : Table()) {
    for (const char* n : seq.names) names.emplace_back(n);
  }
  return names;
}

Result<std::unique_ptr<PreTokenizer>> PreTokenizer::Create(std::string_view pre_name) {
  for (const auto& seq : Table()) {
    for (const char* n : seq.names) {
      if (pre_name == n) return FromPatterns(seq.patterns);
    }
  }
  std::string known;
  for (const auto& n : KnownNames()) known += (known.empty() ? "" : ", ") + n;
  return Errorf("unknown BPE pre-tokenizer tokenizer.ggml.pre='%.*s' (known: %s)",
                static_cast<int>(pre_name.size()), pre_name.data(), known.c_str());
}

Result<std::unique_ptr<PreTokenizer>> PreTokenizer::FromPatterns(
    std::vector<std::string> patterns) {
  std::unique_ptr<PreTokenizer> pre(new PreTokenizer());
  for (const auto& p : patterns) {
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    auto pattern = std::make_unique<Pattern>();
    pattern->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.data()), p.size(),
                                  PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
    if (pattern->code == nullptr) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(error_code, msg, sizeof(msg));
      return Errorf("pre-tokenizer regex /%s/ does not compile at offset %zu: %s", p.c_str(),
                    static_cast<size_t>(error_offset), reinterpret_cast<const char*>(msg));
    }
    pattern->jit = pcre2_jit_compile(pattern->code, PCRE2_JIT_COMPLETE) == 0;
    pre->patterns_.push_back(std::move(pattern));
  }
  return pre;
}

std::vector<std::string_view> PreTokenizer::Split(std::string_view text) const {
  std::vector<std::string_view> pieces;
  if (text.empty()) return pieces;
  pieces.push_back(text);
  std::vector<std::string_view> next;
  for (const auto& pattern : patterns_) {
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(pattern->code, nullptr);
    next.clear();
    next.reserve(pieces.size() * 2);
    for (std::string_view piece : pieces) {
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
      size_t pos = 0;      // search start
      size_t emitted = 0;  // end of the last emitted piece
      while (pos < piece.size()) {
        const int rc = pattern->jit ? pcre2_jit_match(pattern->code, subject, piece.size(), pos,
                                                      PCRE2_NO_UTF_CHECK, md, nullptr)
                                    : pcre2_match(pattern->code, subject, piece.size(), pos,
                                                  PCRE2_NO_UTF_CHECK, md, nullptr);
        if (rc < 0) break;  // no match (or a matching limit): the rest is one gap
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        const size_t start = ov[0], end = ov[1];
        if (end == start) {  // empty match: step over one code point
          pos = start + 1;
          while (pos < piece.size() && (static_cast<uint8_t>(piece[pos]) & 0xC0) == 0x80) ++pos;
          continue;
        }
        if (start > emitted) next.push_back(piece.substr(emitted, start - emitted));
        next.push_back(piece.substr(start, end - start));
        emitted = pos = end;
      }
      if (emitted < piece.size()) next.push_back(piece.substr(emitted));
    }
    pcre2_match_data_free(md);
    pieces.swap(next);
  }
  return pieces;
}

}  // namespace reprise::tokenizer
