// Tokenizer: text <-> token ids from GGUF `tokenizer.*` metadata, exact to the
// reference implementations (Hugging Face tokenizers / llama.cpp).
//
// Owns: the vocabulary (texts, scores, types, merges, special ids), special-
// token splitting, the two encoders (SentencePiece-style `llama`, byte-level
// BPE `gpt2`; spm.cc, bpe.cc), decoding, and StreamDecoder (UTF-8 safe
// incremental detokenizing). Does not own chat templates or sampling.
// Invariants: immutable after construction, so one Tokenizer is shared by
// all threads; Encode never fails (any byte string yields ids, see "invalid
// UTF-8" below); Decode fails only on ids out of range.
//
// Invalid UTF-8 input: SentencePiece vocabularies keep every byte (a byte
// that forms no token is emitted as its <0xXX> byte token, so decode(encode(s))
// == s for any bytes); byte-level BPE replaces each byte that does not begin a
// well-formed sequence with U+FFFD before pre-tokenizing (as llama.cpp does).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/status.h"
#include "gguf/gguf.h"
#include "tokenizer/unicode.h"

namespace reprise::tokenizer {

class PreTokenizer;

// A byte range [begin, end) of a text.
struct TextRange {
  size_t begin = 0;
  size_t end = 0;
};

// GGUF tokenizer.ggml.token_type values.
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// Everything a Tokenizer is built from: what the GGUF keys hold, in plain
// form, so tests can build small vocabularies without files.
struct VocabSpec {
  std::string model;                 // tokenizer.ggml.model: "llama" (SPM) or "gpt2" (BPE)
  std::string pre = "default";       // tokenizer.ggml.pre (BPE only)
  std::vector<std::string> tokens;   // [n_vocab]
  std::vector<float> scores;         // [n_vocab] or empty (all 0)
  std::vector<int32_t> token_types;  // [n_vocab] or empty (all normal)
  std::vector<std::string> merges;   // BPE: "left right", highest priority first
  // Special ids; -1 = none. For SPM, bos/eos/unk default to 1/2/0 when unset.
  std::optional<int32_t> bos_id, eos_id, unk_id;
  int32_t eot_id = -1, eom_id = -1, pad_id = -1;
  std::optional<bool> add_bos, add_eos, add_space_prefix;  // unset: model default
  // Texts of special tokens that swallow the ASCII whitespace after them when
  // matched in text (Hugging Face rstrip). GGUF has no key for it; ReadVocabSpec
  // fills it for Phi-3 as llama.cpp does.
  std::vector<std::string> rstrip_tokens;
};

class Tokenizer {
 public:
  // Errors: unknown model / unknown pre, missing or inconsistent keys.
  static Result<std::unique_ptr<Tokenizer>> FromGguf(const gguf::File& file);
  static Result<VocabSpec> ReadVocabSpec(const gguf::File& file);
  static Result<std::unique_ptr<Tokenizer>> FromSpec(VocabSpec spec);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // add_special: add BOS/EOS per add_bos_token / add_eos_token.
  // parse_special: match control (and unknown) token texts in `text`;
  // user-defined tokens are always matched, as the references do.
  std::vector<int32_t> Encode(std::string_view text, bool add_special, bool parse_special) const;
  // Encode with parse_special on, except inside `plain` (sorted, disjoint
  // byte ranges of `text`, e.g. the parts of a rendered chat prompt that came
  // from message content): a control/unknown token's text that overlaps one
  // of them is tokenized as text. Without ranges this is Encode(.., true).
  std::vector<int32_t> EncodeWithPlainRanges(std::string_view text, bool add_special,
                                             std::span<const TextRange> plain) const;
  // Byte ranges of `text` that spell a control or unknown token (the texts
  // that only special parsing turns into tokens), leftmost-longest and
  // disjoint, in order. Linear in the text (a trie of those token texts).
  std::vector<TextRange> FindControlTexts(std::string_view text) const;
  // Concatenated pieces; control/unknown tokens render as their text unless
  // skip_special. SPM: the dummy-prefix space of the result is removed.
  Result<std::string> Decode(std::span<const int32_t> ids, bool skip_special = false) const;
  // The token's text as stored (e.g. "▁Hello", "Ġworld", "<0x0A>").
  std::string TokenPiece(int32_t id) const;
  // The bytes the token stands for (no leading-space strip). Empty for an
  // out-of-range id, and for control/unknown tokens when skip_special.
  std::string RenderToken(int32_t id, bool skip_special) const;

  int32_t n_vocab() const { return static_cast<int32_t>(tokens_.size()); }
  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  int32_t eot_id() const { return eot_id_; }
  int32_t eom_id() const { return eom_id_; }
  int32_t unk_id() const { return unk_id_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  bool is_spm() const { return spm_; }
  // SPM with the dummy prefix: decoders drop one leading space.
  bool strips_leading_space() const { return spm_ && add_space_prefix_; }
  const std::string& pre() const { return pre_name_; }
  // eos, eot, eom and other end-of-generation tokens (<|im_end|>, ...).
  // A user-defined token spelled like one (e.g. Phi-3's "</s>") is taken for
  // a control token, as llama.cpp does.
  bool IsEog(int32_t id) const { return eog_ids_.count(id) != 0; }
  bool IsControl(int32_t id) const { return TypeOf(id) == TokenType::kControl; }
  TokenType TypeOf(int32_t id) const {
    return id >= 0 && id < n_vocab() ? types_[id] : TokenType::kUndefined;
  }
  const std::unordered_set<int32_t>& eog_ids() const { return eog_ids_; }
  std::optional<int32_t> FindToken(std::string_view piece) const;

 private:
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  struct Fragment {
    int32_t token;          // >= 0: a special token; -1: raw text
    std::string_view text;  // raw text (token == -1)
  };

  Tokenizer();
  Status Init(VocabSpec spec);
  int32_t Lookup(std::string_view text) const {
    auto it = token_to_id_.find(text);
    return it == token_to_id_.end() ? -1 : it->second;
  }
  std::vector<Fragment> Partition(std::string_view text, bool parse_special,
                                  std::span<const TextRange> plain) const;
  std::vector<int32_t> EncodeImpl(std::string_view text, bool add_special, bool parse_special,
                                  std::span<const TextRange> plain) const;
  // spm.cc
  struct SpmScratch;
  void EncodeSpm(std::string_view text, std::vector<int32_t>* out) const;
  void EncodeSpmChunk(std::string_view text, SpmScratch* scratch, std::vector<int32_t>* out) const;
  bool SpmCanSplitAtSpaces() const;
  int32_t SpmByteToken(uint8_t byte) const;
  // bpe.cc
  Status InitBpe(const std::vector<std::string>& merges);
  void EncodeBpe(std::string_view text, std::vector<int32_t>* out) const;
  struct BpeScratch;
  void EncodeBpeWord(std::string_view word, BpeScratch* scratch, std::vector<int32_t>* out) const;

  bool spm_ = true;
  std::string pre_name_;
  std::vector<std::string> tokens_;  // [n_vocab]
  std::vector<float> scores_;        // [n_vocab]
  std::vector<TokenType> types_;     // [n_vocab]
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> token_to_id_;
  int32_t bos_id_ = -1, eos_id_ = -1, eot_id_ = -1, eom_id_ = -1, unk_id_ = -1, pad_id_ = -1;
  bool add_bos_ = false, add_eos_ = false, add_space_prefix_ = false;
  std::unordered_set<int32_t> eog_ids_;
  // Tokens matched in raw text, longest text first: control/unknown (only
  // with parse_special) and user-defined (always).
  std::vector<int32_t> special_tokens_;
  std::unordered_set<int32_t> rstrip_ids_;
  // Trie of control/unknown token texts (FindControlTexts): edges keyed by
  // node << 8 | byte; node 0 is the root; control_end_[node] = 1 where a
  // token's text ends.
  std::unordered_map<uint64_t, int32_t> control_edges_;
  std::vector<uint8_t> control_end_;
  // SPM: whether text may be encoded in chunks starting at each '▁' run.
  bool spm_split_at_spaces_ = false;
  // SPM: <0xXX> byte tokens (-1 if absent).
  std::array<int32_t, 256> spm_byte_token_{};
  // BPE: token of each byte's byte-level character (-1 if absent),
  // merges keyed by (left id << 32 | right id), the byte-level alphabet.
  std::array<int32_t, 256> bpe_byte_token_{};
  std::unordered_map<uint64_t, Merge> merges_;
  bool ignore_merges_ = false;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  ByteUnicodeMap byte_map_;
};

// Feeds ids one at a time and returns only complete UTF-8: an incomplete
// trailing sequence is held back until the bytes that finish it arrive.
// Bytes that can never become valid are emitted as U+FFFD. Strips the SPM
// dummy-prefix space from the first text produced (as Decode does) when the
// ids fed start a sequence; pass at_sequence_start = false when streaming a
// continuation (e.g. generated tokens after a prompt) to keep that space.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special = false,
                         bool at_sequence_start = true);
  std::string Feed(int32_t id);  // bytes now complete ("" for an out-of-range id)
  std::string Flush();           // whatever is held back at the end (as U+FFFD)

 private:
  std::string TakeComplete(bool flush);
  const Tokenizer& tok_;
  bool skip_special_;
  bool at_start_ = true;
  std::string pending_;
};

}  // namespace reprise::tokenizer
