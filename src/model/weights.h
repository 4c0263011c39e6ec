// Weight binding: the tensors of one model, looked up by llama.cpp's names,
// shape-checked against the config and prepared by the backend (CPU: used in
// place or repacked; CUDA: uploaded once). Every pointer here is backend
// memory owned by the backend. Internal to the model module.
#pragma once

#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/ops.h"
#include "model/model.h"

namespace reprise::model {

struct LayerWeights {
  const float* attn_norm = nullptr;         // [n_embd]
  kernels::Matrix wq, wk, wv, wo;           // [n_heads*hd_k, n_embd], ..., [n_embd, n_heads*hd_v]
  const float *bq = nullptr, *bk = nullptr, *bv = nullptr;  // null when absent (qwen2 has them)
  const float *q_norm = nullptr, *k_norm = nullptr;  // [hd_k] per head (qwen3) or whole (minimax)
  const float* ffn_norm = nullptr;          // [n_embd]
  kernels::Matrix w_gate, w_up, w_down;     // dense FFN
  kernels::Matrix router;                   // [n_experts, n_embd]
  const float* router_bias = nullptr;       // [n_experts] score-correction bias (sigmoid gating)
  std::vector<kernels::Matrix> gate_exps;   // per expert [n_ff_exp, n_embd]
  std::vector<kernels::Matrix> up_exps;     // per expert [n_ff_exp, n_embd]
  std::vector<kernels::Matrix> down_exps;   // per expert [n_embd, n_ff_exp]
};

struct Model::Weights {
  kernels::Matrix token_embd;      // [n_vocab, n_embd], for row lookups (never repacked on CPU)
  const float* output_norm = nullptr;  // [n_embd]
  kernels::Matrix output;          // [n_vocab, n_embd] (token_embd when tied)
  std::vector<float> rope_freqs;   // host: [rope_dims/2] frequency divisors (Llama 3), empty if none
  std::vector<LayerWeights> layers;
  int64_t bytes = 0;               // weight bytes read per token (dense) for reporting
};

// Bytes of every tensor in the file (what the backend must find room for).
int64_t FileWeightBytes(const gguf::File& file);

Result<std::unique_ptr<Model::Weights>> BindWeights(const gguf::File& file, const ModelConfig& c,
                                                    kernels::Backend& backend);

}  // namespace reprise::model
