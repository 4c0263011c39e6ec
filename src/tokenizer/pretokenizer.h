// Regex pre-tokenizers for byte-level BPE, chosen by `tokenizer.ggml.pre`.
//
// Owns: the table of pre-tokenizer names -> regex sequences, their PCRE2
// (UTF + UCP, JIT) compilation, and splitting text into words. Each regex of
// a sequence splits every piece the previous one produced ("isolated" split:
// matches and the gaps between them both become pieces), so lookarounds and
// `$` only see the current piece.
// Invariants: input to Split is valid UTF-8 (callers sanitize); pieces are
// non-empty, in order, and concatenate to the input.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace reprise::tokenizer {

class PreTokenizer {
 public:
  // Errors: an unknown name, or a pattern PCRE2 rejects.
  static Result<std::unique_ptr<PreTokenizer>> Create(std::string_view pre_name);
  // For tests and new vocabularies: an explicit regex sequence.
  static Result<std::unique_ptr<PreTokenizer>> FromPatterns(std::vector<std::string> patterns);
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  // Splits valid UTF-8 `text` into words (views into `text`). Thread-safe.
  std::vector<std::string_view> Split(std::string_view text) const;
  // Names Create accepts.
  static std::vector<std::string> KnownNames();

 private:
  struct Pattern;
  PreTokenizer() = default;
  std::vector<std::unique_ptr<Pattern>> patterns_;
};

}  // namespace reprise::tokenizer
