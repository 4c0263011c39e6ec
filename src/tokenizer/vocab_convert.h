// Builds vocab-only GGUF files (tokenizer.* keys, no tensors) from Hugging
// Face / GPT-2 style tokenizer files, for models whose GGUF is not at hand
// and for tests. Owns: reading encoder.json + vocab.bpe, and the Llama 3
// special-token layout. Does not write files itself (the caller decides).
#pragma once

#include <string>

#include "core/status.h"
#include "gguf/gguf.h"

namespace reprise::tokenizer {

struct BpeVocabSource {
  std::string encoder_json_path;  // {"token": id, ...}; ids dense from 0
  std::string vocab_bpe_path;     // "#version" line (optional), then "left right" per line
  std::string pre = "llama-bpe";  // tokenizer.ggml.pre to record
};

// Byte-level BPE vocabulary as GGUF metadata. For the Llama 3 family
// (pre "llama-bpe"/"llama3") with 128000 regular tokens, the 256 Llama 3.1+
// special tokens are appended as control tokens at ids 128000..128255
// (<|begin_of_text|>, <|end_of_text|>, <|reserved_special_token_N|>,
// <|finetune_right_pad_id|>, <|start_header_id|>, <|end_header_id|>,
// <|eom_id|>, <|eot_id|>, <|python_tag|>), with bos 128000, eos 128001,
// eom 128008, eot 128009 and add_bos_token = true.
Result<gguf::Writer> BuildBpeVocabGguf(const BpeVocabSource& source);

}  // namespace reprise::tokenizer
