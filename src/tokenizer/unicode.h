// UTF-8 helpers and the GPT-2 byte <-> unicode table used by the tokenizers.
//
// Owns: code point decoding/encoding, invalid-input policy (each byte that does
// not start a well-formed sequence becomes U+FFFD where text must be valid),
// detection of an incomplete trailing sequence (for streaming), and the
// byte-level BPE alphabet. Knows nothing of vocabularies.
// Invariant: DecodeUtf8 accepts exactly what PCRE2 in UTF mode accepts
// (no overlongs, no surrogates, nothing above U+10FFFF).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace reprise::tokenizer {

inline constexpr uint32_t kReplacementChar = 0xFFFD;

// Length of the sequence a lead byte announces, judged by its high nibble only
// (0x0-0xB -> 1, 0xC-0xD -> 2, 0xE -> 3, 0xF -> 4). This is how SentencePiece-
// style splitting walks text: it never fails, even on invalid bytes.
inline int Utf8LenFromLead(uint8_t lead) {
  static constexpr int kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

// Decodes the well-formed code point at s[pos]; returns its length in bytes,
// or 0 when the bytes there are not well-formed UTF-8.
int DecodeUtf8(std::string_view s, size_t pos, uint32_t* cp);
void AppendUtf8(uint32_t cp, std::string* out);
bool IsValidUtf8(std::string_view s);
// Copy of `s` with every byte that does not begin a well-formed sequence
// replaced by U+FFFD (one replacement per offending byte).
std::string SanitizeUtf8(std::string_view s);
// Number of trailing bytes of `s` that are a proper prefix of a well-formed
// sequence (0..3): bytes a streaming decoder must hold back.
size_t IncompleteUtf8Tail(std::string_view s);

// GPT-2 byte-level alphabet: each byte maps to one printable code point
// (printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100.. in byte order).
class ByteUnicodeMap {
 public:
  ByteUnicodeMap();
  // UTF-8 of the code point standing for `byte`.
  const std::string& Encode(uint8_t byte) const { return byte_to_utf8_[byte]; }
  // The byte a code point stands for, or -1 if it is not in the alphabet.
  int Decode(uint32_t cp) const { return cp < cp_to_byte_.size() ? cp_to_byte_[cp] : -1; }

 private:
  std::array<std::string, 256> byte_to_utf8_;
  std::array<int16_t, 324> cp_to_byte_;  // code points < 324 only
};

}  // namespace reprise::tokenizer
