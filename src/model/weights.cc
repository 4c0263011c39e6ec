// Binds GGUF tensors to LayerWeights. Every tensor's presence, shape and type
// is checked here so the forward pass can assume a consistent model; errors
// name the tensor.
#include "model/weights.h"

namespace reprise::model {
namespace {

std::string ShapeString(const std::vector<int64_t>& ne) {
  std::string s = "{";
  for (size_t i = 0; i < ne.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(ne[i]);
  }
  return s + "}";
}

class Binder {
 public:
  Binder(const gguf::File& file, kernels::Backend& backend) : file_(file), backend_(backend) {}

  Result<const gguf::TensorInfo*> Find(const std::string& name, std::vector<int64_t> ne,
                                       bool required = true) {
    const gguf::TensorInfo* t = file_.FindTensor(name);
    if (t == nullptr) {
      if (!required) return static_cast<const gguf::TensorInfo*>(nullptr);
      return Errorf("missing tensor '%s'", name.c_str());
    }
    if (t->ne != ne) {
      return Errorf("tensor '%s' has shape %s, expected %s", name.c_str(),
                    ShapeString(t->ne).c_str(), ShapeString(ne).c_str());
    }
    return t;
  }

  // A 1-D parameter as float32 in backend memory (null when absent and optional).
  Result<const float*> Vector(const std::string& name, int64_t n, bool required = true) {
    ASSIGN_OR_RETURN(std::vector<float> host, HostVector(name, n, required));
    if (host.empty()) return static_cast<const float*>(nullptr);
    auto p = backend_.UploadVector(host);
    if (!p.ok()) return p.status().WithContext("tensor '" + name + "'");
    return p;
  }

  // A 1-D parameter as float32 (any float type is converted).
  Result<std::vector<float>> HostVector(const std::string& name, int64_t n, bool required = true) {
    ASSIGN_OR_RETURN(const gguf::TensorInfo* t, Find(name, {n}, required));
    std::vector<float> out;
    if (t == nullptr) return out;
    if (t->type != DType::kF32 && t->type != DType::kF16 && t->type != DType::kBF16) {
      return Errorf("tensor '%s' has type %s; vectors must be F32, F16 or BF16", name.c_str(),
                    DTypeName(t->type));
    }
    out.resize(n);
    kernels::DequantizeRow(t->type, t->data, out.data(), n);
    bytes_ += static_cast<int64_t>(t->n_bytes);
    return out;
  }

  Result<kernels::MatrixView> View(const std::string& name, int64_t rows, int64_t cols) {
    ASSIGN_OR_RETURN(const gguf::TensorInfo* t, Find(name, {cols, rows}));
    return ViewOf(*t, rows, cols, 0);
  }

  Result<kernels::MatrixView> ViewOf(const gguf::TensorInfo& t, int64_t rows, int64_t cols,
                                     int64_t index) {
    if (!kernels::IsSupportedWeightType(t.type)) {
      return Errorf("tensor '%s' has type %s, which is not supported (supported: F32, F16, "
                    "BF16, Q8_0, Q4_0, Q4_K, Q6_K)",
                    t.name.c_str(), DTypeName(t.type));
    }
    kernels::MatrixView v;
    v.type = t.type;
    v.rows = rows;
    v.cols = cols;
    v.data = t.data + index * rows * RowBytes(t.type, cols);
    return v;
  }

  Result<kernels::Matrix> Matrix(const std::string& name, int64_t rows, int64_t cols) {
    ASSIGN_OR_RETURN(kernels::MatrixView v, View(name, rows, cols));
    bytes_ += rows * v.row_bytes();
    auto m = backend_.PrepareMatrix(v);
    if (!m.ok()) return m.status().WithContext("tensor '" + name + "'");
    return m;
  }

  // A 3-D expert tensor ne = {cols, rows, n_experts} split into matrices.
  Result<std::vector<kernels::Matrix>> Experts(const std::string& name, int64_t rows,
                                               int64_t cols, int64_t n_experts,
                                               int64_t n_used) {
    ASSIGN_OR_RETURN(const gguf::TensorInfo* t, Find(name, {cols, rows, n_experts}));
    std::vector<kernels::Matrix> out;
    for (int64_t e = 0; e < n_experts; ++e) {
      ASSIGN_OR_RETURN(kernels::MatrixView v, ViewOf(*t, rows, cols, e));
      auto m = backend_.PrepareMatrix(v);
      if (!m.ok()) return m.status().WithContext("tensor '" + name + "'");
      out.push_back(std::move(m).value());
    }
    bytes_ += n_used * rows * RowBytes(t->type, cols);
    return out;
  }

  int64_t bytes() const { return bytes_; }
  kernels::Backend& backend() { return backend_; }

 private:
  const gguf::File& file_;
  kernels::Backend& backend_;
  int64_t bytes_ = 0;
};

}  // namespace

int64_t FileWeightBytes(const gguf::File& file) {
  int64_t total = 0;
  for (const gguf::TensorInfo& t : file.tensors()) total += static_cast<int64_t>(t.n_bytes);
  return total;
}

Result<std::unique_ptr<Model::Weights>> BindWeights(const gguf::File& file, const ModelConfig& c,
                                                    kernels::Backend& backend) {
  auto w = std::make_unique<Model::Weights>();
  Binder b(file, backend);
  const int64_t q_dim = c.n_heads * c.head_dim_k;
  const int64_t o_dim = c.n_heads * c.head_dim_v;
  if (c.n_vocab <= 0) return Errorf("missing tensor 'token_embd.weight' (2-D)");
  ASSIGN_OR_RETURN(kernels::MatrixView embd, b.View("token_embd.weight", c.n_vocab, c.n_embd));
  {
    auto m = backend.PrepareTable(embd);
    if (!m.ok()) return m.status().WithContext("tensor 'token_embd.weight'");
    w->token_embd = std::move(m).value();
  }
  ASSIGN_OR_RETURN(w->output_norm, b.Vector("output_norm.weight", c.n_embd));
  if (file.FindTensor("output.weight") != nullptr) {
    ASSIGN_OR_RETURN(w->output, b.Matrix("output.weight", c.n_vocab, c.n_embd));
  } else {
    auto m = backend.PrepareMatrix(embd);
    if (!m.ok()) return m.status().WithContext("tensor 'token_embd.weight' (tied output)");
    w->output = std::move(m).value();
  }
  ASSIGN_OR_RETURN(w->rope_freqs, b.HostVector("rope_freqs.weight", c.rope_dims / 2, false));

  const bool moe = c.n_experts > 0;
  const bool per_head_qk_norm = c.arch == Arch::kQwen3 || c.arch == Arch::kQwen3Moe;
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    LayerWeights l;
    ASSIGN_OR_RETURN(l.attn_norm, b.Vector(p + "attn_norm.weight", c.n_embd));
    ASSIGN_OR_RETURN(l.wq, b.Matrix(p + "attn_q.weight", q_dim, c.n_embd));
    ASSIGN_OR_RETURN(l.wk, b.Matrix(p + "attn_k.weight", c.k_dim(), c.n_embd));
    ASSIGN_OR_RETURN(l.wv, b.Matrix(p + "attn_v.weight", c.v_dim(), c.n_embd));
    ASSIGN_OR_RETURN(l.wo, b.Matrix(p + "attn_output.weight", c.n_embd, o_dim));
    const bool bias_required = c.arch == Arch::kQwen2;
    ASSIGN_OR_RETURN(l.bq, b.Vector(p + "attn_q.bias", q_dim, bias_required));
    ASSIGN_OR_RETURN(l.bk, b.Vector(p + "attn_k.bias", c.k_dim(), bias_required));
    ASSIGN_OR_RETURN(l.bv, b.Vector(p + "attn_v.bias", c.v_dim(), bias_required));
    if (per_head_qk_norm) {
      ASSIGN_OR_RETURN(l.q_norm, b.Vector(p + "attn_q_norm.weight", c.head_dim_k));
      ASSIGN_OR_RETURN(l.k_norm, b.Vector(p + "attn_k_norm.weight", c.head_dim_k));
    } else if (c.arch == Arch::kMiniMaxM2) {
      ASSIGN_OR_RETURN(l.q_norm, b.Vector(p + "attn_q_norm.weight", q_dim));
      ASSIGN_OR_RETURN(l.k_norm, b.Vector(p + "attn_k_norm.weight", c.k_dim()));
    }
    ASSIGN_OR_RETURN(l.ffn_norm, b.Vector(p + "ffn_norm.weight", c.n_embd));
    if (moe) {
      ASSIGN_OR_RETURN(l.router, b.Matrix(p + "ffn_gate_inp.weight", c.n_experts, c.n_embd));
      if (c.expert_sigmoid) {
        ASSIGN_OR_RETURN(l.router_bias, b.Vector(p + "exp_probs_b.bias", c.n_experts, false));
      }
      ASSIGN_OR_RETURN(l.gate_exps, b.Experts(p + "ffn_gate_exps.weight", c.n_ff_expert, c.n_embd,
                                              c.n_experts, c.n_experts_used));
      ASSIGN_OR_RETURN(l.up_exps, b.Experts(p + "ffn_up_exps.weight", c.n_ff_expert, c.n_embd,
                                            c.n_experts, c.n_experts_used));
      ASSIGN_OR_RETURN(l.down_exps, b.Experts(p + "ffn_down_exps.weight", c.n_embd,
                                              c.n_ff_expert, c.n_experts, c.n_experts_used));
    } else {
      ASSIGN_OR_RETURN(l.w_gate, b.Matrix(p + "ffn_gate.weight", c.n_ff, c.n_embd));
      ASSIGN_OR_RETURN(l.w_up, b.Matrix(p + "ffn_up.weight", c.n_ff, c.n_embd));
      ASSIGN_OR_RETURN(l.w_down, b.Matrix(p + "ffn_down.weight", c.n_embd, c.n_ff));
    }
    w->layers.push_back(std::move(l));
  }
  w->bytes = b.bytes() + (file.FindTensor("output.weight") != nullptr
                              ? 0
                              : c.n_vocab * embd.row_bytes());
  return w;
}

}  // namespace reprise::model
