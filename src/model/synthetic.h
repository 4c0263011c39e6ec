// Synthetic Llama-shaped models, written as GGUF: random-weight benchmark
// models of any shape and weight type, the built-in demo model, and scripted
// models for end-to-end tests. Weights are deterministic for a given spec and
// seed. The tokenizer is copied from a vocab GGUF, or a byte-level one is
// built in.
//
// A scripted model (spec.script non-empty) has designed, not random, weights:
// greedy decoding emits the script's pieces in order and then EOS, whatever
// the prompt, through the real forward pass. Each piece is one extra
// USER_DEFINED token after the byte-level vocabulary's 259; the layer's
// attention and FFN outputs are zero (the residual stays the token
// embedding), embeddings are one-hot (n_embd >= vocab size), and the output
// matrix maps token i to next(i): script[k] -> script[k+1], the last piece
// (and each piece listed in reply_ends) -> <|im_end|> (EOS), any other token
// -> script[0]. The margin is large enough
// that sampling at ordinary temperatures picks the same tokens.
// Scripted models carry reprise.scripted = true besides reprise.synthetic =
// true (every synthetic model has it), so servers label them as test models,
// not as the random-weight demo.
// Caveat: user-defined tokens are matched in prompt text, so a piece that
// ends the rendered prompt (e.g. "\n" after "<|im_start|>assistant") would
// start the reply mid-script; pieces must not be the prompt's last token.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"

namespace reprise::model {

struct SyntheticModelSpec {
  std::string name = "synthetic";
  int64_t n_embd = 2048;
  int64_t n_layers = 22;
  int64_t n_heads = 32;
  int64_t n_kv_heads = 4;
  int64_t n_ff = 5632;
  int64_t n_vocab = 32000;  // ignored when vocab_gguf is set (its size wins)
  int64_t n_ctx = 4096;
  float rope_freq_base = 10000.0f;
  DType weight_type = DType::kQ8_0;  // matrices; norms are F32
  DType embd_type = DType::kQ8_0;    // token embedding (and output)
  uint64_t seed = 42;
  // Copy tokenizer.* metadata from this vocab GGUF (e.g. ggml-vocab-llama-spm.gguf).
  std::string vocab_gguf;
  // Otherwise: a byte-level BPE vocabulary (256 byte tokens + ChatML specials)
  // with a ChatML chat template — the demo model's.
  bool byte_level_vocab = false;
  // With byte_level_vocab: tokenizer.chat_template (empty: ChatML).
  std::string chat_template;
  // Non-empty: a scripted model (see above). Implies byte_level_vocab and F32
  // weights (weight_type/embd_type are ignored); needs n_embd >= 259 +
  // script.size(). Use n_layers = 1: every layer adds nothing. Pieces are
  // non-empty; equal pieces are distinct tokens (a script may repeat).
  std::vector<std::string> script;
  // Script positions whose piece ends a reply (EOS follows it, as after the
  // last piece). The piece after such a position is reached from no other
  // piece: a reply starts there only when the prompt ends with that piece
  // (e.g. a marker the chat template writes), so one model can give
  // different replies to different turns (a tool call, then an answer).
  std::vector<int64_t> reply_ends;
};

Status WriteSyntheticModel(const SyntheticModelSpec& spec, const std::string& path);

}  // namespace reprise::model
