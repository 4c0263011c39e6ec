// Weight binding: the tensors of one model, looked up by llama.cpp's names,
// shape-checked against the config and prepared for the kernels. Internal to
// the model module.
#pragma once

#include <string>
#include <vector>

#include "kernels/ops.h"
#include "model/model.h"

namespace reprise::model {

struct LayerWeights {
  std::vector<float> attn_norm;             // [n_embd]
  kernels::Matrix wq, wk, wv, wo;           // [n_heads*hd_k, n_embd], ..., [n_embd, n_heads*hd_v]
  std::vector<float> bq, bk, bv;            // empty when absent (qwen2 has them)
  std::vector<float> q_norm, k_norm;        // [hd_k] per head (qwen3) or [n_heads*hd_k] (minimax)
  std::vector<float> ffn_norm;              // [n_embd]
  kernels::Matrix w_gate, w_up, w_down;     // dense FFN
  kernels::Matrix router;                   // [n_experts, n_embd]
  std::vector<float> router_bias;           // [n_experts] score-correction bias (sigmoid gating)
  std::vector<kernels::Matrix> gate_exps;   // per expert [n_ff_exp, n_embd]
  std::vector<kernels::Matrix> up_exps;     // per expert [n_ff_exp, n_embd]
  std::vector<kernels::Matrix> down_exps;   // per expert [n_embd, n_ff_exp]
};

struct Model::Weights {
  kernels::MatrixView token_embd;  // [n_vocab, n_embd]
  std::vector<float> output_norm;  // [n_embd]
  kernels::Matrix output;          // [n_vocab, n_embd] (token_embd when tied)
  std::vector<float> rope_freqs;   // [rope_dims/2] frequency divisors (Llama 3), empty if none
  std::vector<LayerWeights> layers;
  int64_t bytes = 0;               // weight bytes read per token (dense) for reporting
};

Result<std::unique_ptr<Model::Weights>> BindWeights(const gguf::File& file, const ModelConfig& c);

}  // namespace reprise::model
