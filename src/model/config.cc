// ModelConfig from GGUF metadata: hyperparameters come only from the file
// (`{arch}.*` keys, llama.cpp's names). Unknown architectures and missing or
// inconsistent values are errors that name the key.
#include <cmath>

#include "model/model.h"

namespace reprise::model {

const char* ArchName(Arch arch) {
  switch (arch) {
    case Arch::kLlama: return "llama";
    case Arch::kQwen2: return "qwen2";
    case Arch::kQwen3: return "qwen3";
    case Arch::kQwen3Moe: return "qwen3moe";
    case Arch::kMiniMaxM2: return "minimax-m2";
  }
  return "unknown";
}

Result<ModelConfig> ReadConfig(const gguf::File& file) {
  ModelConfig c;
  ASSIGN_OR_RETURN(c.arch_name, file.GetString("general.architecture"));
  if (c.arch_name == "llama" || c.arch_name == "mistral") {
    c.arch = Arch::kLlama;
  } else if (c.arch_name == "qwen2") {
    c.arch = Arch::kQwen2;
  } else if (c.arch_name == "qwen3") {
    c.arch = Arch::kQwen3;
  } else if (c.arch_name == "qwen3moe") {
    c.arch = Arch::kQwen3Moe;
  } else if (c.arch_name == "minimax-m2") {
    c.arch = Arch::kMiniMaxM2;
  } else {
    return Errorf("unsupported architecture '%s' (supported: llama, mistral, qwen2, qwen3, "
                  "qwen3moe, minimax-m2)",
                  c.arch_name.c_str());
  }
  ASSIGN_OR_RETURN(c.name, file.GetStringOr("general.name", ""));
  const std::string p = c.arch_name + ".";
  auto get_int = [&](const char* key) { return file.GetInt(p + key); };
  ASSIGN_OR_RETURN(c.n_embd, get_int("embedding_length"));
  ASSIGN_OR_RETURN(c.n_layers, get_int("block_count"));
  ASSIGN_OR_RETURN(c.n_heads, get_int("attention.head_count"));
  ASSIGN_OR_RETURN(c.n_ctx_train, file.GetIntOr(p + "context_length", 2048));
  ASSIGN_OR_RETURN(c.n_ff, file.GetIntOr(p + "feed_forward_length", 0));
  ASSIGN_OR_RETURN(c.n_kv_heads, file.GetIntOr(p + "attention.head_count_kv", c.n_heads));
  if (c.n_embd <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0) {
    return Errorf("invalid hyperparameters: embedding_length %lld, block_count %lld, "
                  "head_count %lld, head_count_kv %lld",
                  (long long)c.n_embd, (long long)c.n_layers, (long long)c.n_heads,
                  (long long)c.n_kv_heads);
  }
  if (c.n_heads % c.n_kv_heads != 0) {
    return Errorf("%sattention.head_count (%lld) is not a multiple of head_count_kv (%lld)",
                  p.c_str(), (long long)c.n_heads, (long long)c.n_kv_heads);
  }
  const int64_t default_head = c.n_embd / c.n_heads;
  ASSIGN_OR_RETURN(c.head_dim_k, file.GetIntOr(p + "attention.key_length", default_head));
  ASSIGN_OR_RETURN(c.head_dim_v, file.GetIntOr(p + "attention.value_length", c.head_dim_k));
  ASSIGN_OR_RETURN(c.rope_dims, file.GetIntOr(p + "rope.dimension_count", c.head_dim_k));
  if (c.head_dim_k <= 0 || c.head_dim_v <= 0 || c.rope_dims <= 0 || c.rope_dims > c.head_dim_k ||
      c.rope_dims % 2 != 0) {
    return Errorf("invalid head dimensions: key_length %lld, value_length %lld, "
                  "rope.dimension_count %lld",
                  (long long)c.head_dim_k, (long long)c.head_dim_v, (long long)c.rope_dims);
  }
  ASSIGN_OR_RETURN(double base, file.GetFloatOr(p + "rope.freq_base", 10000.0));
  c.rope_freq_base = static_cast<float>(base);
  ASSIGN_OR_RETURN(double eps, file.GetFloatOr(p + "attention.layer_norm_rms_epsilon", 1e-5));
  c.rms_eps = static_cast<float>(eps);
  if (!(c.rope_freq_base > 0) || !(c.rms_eps > 0) || !std::isfinite(c.rms_eps)) {
    return Errorf("invalid rope.freq_base %g or layer_norm_rms_epsilon %g", base, eps);
  }
  c.rope_neox = c.arch != Arch::kLlama;

  if (c.arch == Arch::kQwen3Moe || c.arch == Arch::kMiniMaxM2) {
    ASSIGN_OR_RETURN(c.n_experts, get_int("expert_count"));
    ASSIGN_OR_RETURN(c.n_experts_used, get_int("expert_used_count"));
    ASSIGN_OR_RETURN(c.n_ff_expert, get_int("expert_feed_forward_length"));
    if (c.n_experts <= 0 || c.n_experts_used <= 0 || c.n_experts_used > c.n_experts ||
        c.n_ff_expert <= 0) {
      return Errorf("invalid MoE hyperparameters: expert_count %lld, expert_used_count %lld, "
                    "expert_feed_forward_length %lld",
                    (long long)c.n_experts, (long long)c.n_experts_used,
                    (long long)c.n_ff_expert);
    }
    // expert_gating_func: 1 = softmax, 2 = sigmoid (llama.cpp's numbering).
    const int64_t def_gating = c.arch == Arch::kMiniMaxM2 ? 2 : 1;
    ASSIGN_OR_RETURN(int64_t gating, file.GetIntOr(p + "expert_gating_func", def_gating));
    if (gating != 1 && gating != 2) {
      return Errorf("%sexpert_gating_func %lld is not supported (1 = softmax, 2 = sigmoid)",
                    p.c_str(), (long long)gating);
    }
    c.expert_sigmoid = gating == 2;
    ASSIGN_OR_RETURN(c.expert_norm_topk, file.GetBoolOr(p + "expert_weights_norm", true));
  } else if (c.n_ff <= 0) {
    return Errorf("missing or invalid %sfeed_forward_length", p.c_str());
  }

  // The vocabulary size comes from the embedding tensor (checked at load);
  // `{arch}.vocab_size` is optional in GGUF.
  if (const gguf::TensorInfo* emb = file.FindTensor("token_embd.weight");
      emb != nullptr && emb->ne.size() == 2) {
    c.n_vocab = emb->ne[1];
  }
  return c;
}

}  // namespace reprise::model
