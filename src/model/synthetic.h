// Synthetic (random-weight) Llama-shaped models, written as GGUF: benchmark
// models of any shape and weight type, and the built-in demo model. Weights
// are deterministic for a given spec and seed. The tokenizer is copied from a
// vocab GGUF, or a byte-level one is built in.
#pragma once

#include <cstdint>
#include <string>

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
};

Status WriteSyntheticModel(const SyntheticModelSpec& spec, const std::string& path);

}  // namespace reprise::model
