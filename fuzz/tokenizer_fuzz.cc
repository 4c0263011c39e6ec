// Fuzz target: the input as text for two small tokenizers built in memory
// (SentencePiece with byte fallback, byte-level BPE; both with control and
// user-defined tokens): Encode with and without special parsing, with plain
// ranges taken from FindControlTexts, Decode, and streaming decode.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace {

using reprise::tokenizer::Tokenizer;
using reprise::tokenizer::VocabSpec;

std::unique_ptr<Tokenizer> Spm() {
  VocabSpec spec;
  spec.model = "llama";
  for (const char* t : {"<unk>", "<s>", "</s>"}) spec.tokens.push_back(t);
  spec.token_types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    spec.tokens.push_back(buf);
    spec.token_types.push_back(6);
  }
  for (const char* t : {"\xe2\x96\x81", "\xe2\x96\x81h", "he", "ll", "o", "h", "e", "l",
                        "<|user|>", "<|end|>", "<think>"}) {
    spec.tokens.push_back(t);
    spec.token_types.push_back(std::string(t) == "<think>" ? 4 : (t[0] == '<' ? 3 : 1));
  }
  spec.scores.assign(spec.tokens.size(), 0.0f);
  for (size_t i = 0; i < spec.scores.size(); ++i) spec.scores[i] = -static_cast<float>(i);
  auto t = Tokenizer::FromSpec(spec);
  return t.ok() ? std::move(t).value() : nullptr;
}

std::unique_ptr<Tokenizer> Bpe() {
  VocabSpec spec;
  spec.model = "gpt2";
  spec.pre = "gpt-2";
  reprise::tokenizer::ByteUnicodeMap map;
  for (int b = 0; b < 256; ++b) {
    spec.tokens.push_back(map.Encode(static_cast<uint8_t>(b)));
    spec.token_types.push_back(1);
  }
  spec.tokens.push_back("he");
  spec.token_types.push_back(1);
  spec.merges.push_back("h e");
  for (const char* t : {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "</s>"}) {
    spec.tokens.push_back(t);
    spec.token_types.push_back(std::string(t) == "</s>" ? 4 : 3);
  }
  auto t = Tokenizer::FromSpec(spec);
  return t.ok() ? std::move(t).value() : nullptr;
}

void Exercise(const Tokenizer& tok, const std::string& text) {
  for (bool special : {false, true}) {
    const std::vector<int32_t> ids = tok.Encode(text, true, special);
    (void)tok.Decode(ids, !special);
    reprise::tokenizer::StreamDecoder dec(tok);
    for (int32_t id : ids) (void)dec.Feed(id);
    (void)dec.Flush();
  }
  const auto ranges = tok.FindControlTexts(text);
  (void)tok.EncodeWithPlainRanges(text, false, ranges);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::unique_ptr<Tokenizer> spm = Spm();
  static const std::unique_ptr<Tokenizer> bpe = Bpe();
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (spm) Exercise(*spm, text);
  if (bpe) Exercise(*bpe, text);
  return 0;
}
