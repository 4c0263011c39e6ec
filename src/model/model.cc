// Model loading and the forward pass shared by every supported architecture
// (they differ only in the switches read from ModelConfig and the tensors
// bound in weights.cc) and every backend (it calls only kernels::Backend ops on
// backend memory): RMSNorm -> Q/K/V (+bias) -> q/k norm -> RoPE -> KV write ->
// attention over the sequence's KV blocks -> output projection -> RMSNorm ->
// SwiGLU FFN (dense or routed experts).
//
// Invariant: every token's result depends only on its own inputs and its
// sequence's KV contents, never on which other tokens share the batch (the
// kernels guarantee the same for matmuls), so chunked prefill, one-shot
// prefill and token-by-token decoding agree bit for bit.
#include "model/model.h"

#include "kernels/kv_format.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/log.h"
#include "kernels/backend.h"
#include "model/weights.h"

namespace reprise::model {

// Scratch activations in backend memory, grown on demand (no allocation per
// token after warm-up), and the host-side batch description.
class ForwardState {
 public:
  explicit ForwardState(kernels::Backend& backend) : backend_(backend) {}
  ~ForwardState() {
    for (float** b : Buffers()) backend_.Free(*b);
  }

  // Grows buffers for a batch of n tokens; allocation happens only on growth.
  Status Reserve(const ModelConfig& c, int64_t n) {
    if (n <= capacity_) return Status::Ok();
    const int64_t cap = std::max<int64_t>(n, capacity_ * 2);
    for (float** b : Buffers()) {
      backend_.Free(*b);
      *b = nullptr;
    }
    capacity_ = 0;
    const int64_t ff = std::max(c.n_ff, c.n_ff_expert);
    RETURN_IF_ERROR(Grow(&x, cap * c.n_embd));
    RETURN_IF_ERROR(Grow(&xn, cap * c.n_embd));
    RETURN_IF_ERROR(Grow(&q, cap * c.n_heads * c.head_dim_k));
    RETURN_IF_ERROR(Grow(&k, cap * c.k_dim()));
    RETURN_IF_ERROR(Grow(&v, cap * c.v_dim()));
    RETURN_IF_ERROR(Grow(&att, cap * c.n_heads * c.head_dim_v));
    RETURN_IF_ERROR(Grow(&gate, cap * ff));
    RETURN_IF_ERROR(Grow(&up, cap * ff));
    RETURN_IF_ERROR(Grow(&ffn_out, cap * c.n_embd));
    RETURN_IF_ERROR(Grow(&rope, cap * c.rope_dims));
    RETURN_IF_ERROR(Grow(&logits, cap * c.n_vocab));
    capacity_ = cap;
    return Status::Ok();
  }

  float* x = nullptr;        // [n, n_embd] residual stream
  float* xn = nullptr;       // [n, n_embd] normalised input of a sub-layer
  float* q = nullptr;        // [n, n_heads * hd_k]
  float* k = nullptr;        // [n, k_dim]
  float* v = nullptr;        // [n, v_dim]
  float* att = nullptr;      // [n, n_heads * hd_v]
  float* gate = nullptr;     // [n, n_ff]
  float* up = nullptr;       // [n, n_ff]
  float* ffn_out = nullptr;  // [n, n_embd]
  float* rope = nullptr;     // [n, rope_dims / 2, 2] cos, sin of each batch row
  float* logits = nullptr;   // [n_out, n_vocab] (device backends)
  // Host: the batch description handed to BeginBatch.
  std::vector<int32_t> tokens, pos, seq, block_table, out_rows;

 private:
  std::vector<float**> Buffers() {
    return {&x, &xn, &q, &k, &v, &att, &gate, &up, &ffn_out, &rope, &logits};
  }
  Status Grow(float** b, int64_t n) {
    ASSIGN_OR_RETURN(void* p, backend_.Alloc(static_cast<size_t>(n) * sizeof(float),
                                             "activations of the forward pass"));
    *b = static_cast<float*>(p);
    return Status::Ok();
  }
  kernels::Backend& backend_;
  int64_t capacity_ = 0;
};

Model::Model() = default;
Model::~Model() = default;

Result<std::unique_ptr<Model>> Model::Load(std::shared_ptr<const gguf::File> file,
                                           const ModelOptions& options) {
  std::unique_ptr<Model> m(new Model());
  auto cfg = ReadConfig(*file);
  if (!cfg.ok()) return cfg.status().WithContext(file->path());
  m->config_ = std::move(cfg).value();
  ASSIGN_OR_RETURN(m->backend_, kernels::CreateBackend(options.device, options.n_threads));
  {
    const ModelConfig& c = m->config_;
    kernels::AttentionShape shape;
    shape.n_heads = c.n_heads;
    shape.n_kv_heads = c.n_kv_heads;
    shape.head_dim_k = c.head_dim_k;
    shape.head_dim_v = c.head_dim_v;
    RETURN_IF_ERROR(m->backend_->CheckAttentionShape(shape).WithContext(file->path()));
  }
  RETURN_IF_ERROR(m->backend_->ReserveWeights(FileWeightBytes(*file)));
  auto weights = BindWeights(*file, m->config_, *m->backend_);
  if (!weights.ok()) return weights.status().WithContext(file->path());
  m->weights_ = std::move(weights).value();
  m->file_ = std::move(file);
  const ModelConfig& c = m->config_;
  std::vector<float> inv_freq(c.rope_dims / 2);
  for (int64_t i = 0; i < c.rope_dims / 2; ++i) {
    const float e = static_cast<float>(2 * i) / static_cast<float>(c.rope_dims);
    float f = 1.0f / std::pow(c.rope_freq_base, e);
    if (!m->weights_->rope_freqs.empty()) f /= m->weights_->rope_freqs[i];
    inv_freq[i] = f;
  }
  ASSIGN_OR_RETURN(m->inv_freq_, m->backend_->UploadVector(inv_freq));
  m->state_ = std::make_unique<ForwardState>(*m->backend_);
  if (m->backend_->type() != kernels::DeviceType::kCpu) {
    LOG_INFO("model", "%s: weights %lld bytes on the device, %lld bytes free after loading",
             m->backend_->Describe().c_str(), static_cast<long long>(m->backend_->HeldBytes()),
             static_cast<long long>(m->backend_->FreeMemoryBytes()));
  }
  return m;
}

int64_t Model::KvBytesPerToken(DType kv_type) const {
  const int64_t hk = config_.k_dim() / config_.n_kv_heads, hv = config_.v_dim() / config_.n_kv_heads;
  return config_.n_layers * config_.n_kv_heads *
         (kernels::KvRowBytes(kv_type, hk) + kernels::KvRowBytes(kv_type, hv));
}

kv::BlockPoolConfig Model::KvPoolConfig(DType kv_type, int block_tokens, int64_t max_bytes) const {
  kv::BlockPoolConfig pc;
  pc.n_layers = static_cast<int>(config_.n_layers);
  pc.k_dim = static_cast<int>(config_.k_dim());
  pc.v_dim = static_cast<int>(config_.v_dim());
  pc.n_heads = static_cast<int>(config_.n_kv_heads);
  pc.block_tokens = block_tokens;
  pc.dtype = kv_type;
  pc.max_bytes = max_bytes;
  return pc;
}

DType Model::DefaultKvType() const {
  return weights_->token_embd.type() == DType::kF32 ? DType::kF32 : DType::kF16;
}

int64_t Model::WeightBytes() const { return weights_->bytes; }

Status Model::Validate(std::span<const BatchToken> tokens, std::span<kv::SeqBlocks* const> seqs,
                       const kv::BlockPool& kv) const {
  const ModelConfig& c = config_;
  const kv::BlockPoolConfig& kvc = kv.config();
  if (kvc.n_layers != c.n_layers || kvc.k_dim != c.k_dim() || kvc.v_dim != c.v_dim() ||
      kvc.n_heads != c.n_kv_heads) {
    return Errorf("KV pool shape does not match the model");
  }
  if (kv.device() != backend_.get() && !(kv.device() == nullptr && backend_->host_memory())) {
    return Errorf("KV pool lives on another device than the model");
  }
  const int bt = kvc.block_tokens;
  for (const BatchToken& t : tokens) {
    if (t.token < 0 || t.token >= c.n_vocab) {
      return Errorf("token id %d is out of range [0, %lld)", t.token, (long long)c.n_vocab);
    }
    if (t.seq < 0 || t.seq >= static_cast<int32_t>(seqs.size()) || seqs[t.seq] == nullptr) {
      return Errorf("batch token refers to unknown sequence %d", t.seq);
    }
    if (t.pos < 0 || t.pos >= static_cast<int64_t>(seqs[t.seq]->blocks.size()) * bt) {
      return Errorf("position %d is outside the %zu KV blocks of sequence %d", t.pos,
                    seqs[t.seq]->blocks.size(), t.seq);
    }
  }
  return Status::Ok();
}

Status Model::Forward(std::span<const BatchToken> tokens, std::span<kv::SeqBlocks* const> seqs,
                      kv::BlockPool& kv, float* logits) {
  const ModelConfig& c = config_;
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) return Status::Ok();
  RETURN_IF_ERROR(Validate(tokens, seqs, kv));
  kernels::Backend& be = *backend_;
  ForwardState& st = *state_;
  RETURN_IF_ERROR(st.Reserve(c, n));
  const kernels::KvLayout kvl = kv.layout();
  const int bt = kvl.block_tokens;

  // The batch: tokens, positions, each sequence's block table (as far as this
  // batch reads it) and the rows that want logits.
  const int32_t n_seqs = static_cast<int32_t>(seqs.size());
  std::vector<int32_t> need(n_seqs, 0);
  st.tokens.resize(n);
  st.pos.resize(n);
  st.seq.resize(n);
  st.out_rows.clear();
  for (int64_t t = 0; t < n; ++t) {
    st.tokens[t] = tokens[t].token;
    st.pos[t] = tokens[t].pos;
    st.seq[t] = tokens[t].seq;
    need[tokens[t].seq] = std::max(need[tokens[t].seq], tokens[t].pos / bt + 1);
    if (tokens[t].want_logits) st.out_rows.push_back(static_cast<int32_t>(t));
  }
  const int32_t max_blocks = *std::max_element(need.begin(), need.end());
  st.block_table.assign(static_cast<size_t>(n_seqs) * max_blocks, -1);
  for (int32_t s = 0; s < n_seqs; ++s) {
    for (int32_t b = 0; b < need[s]; ++b) st.block_table[s * max_blocks + b] = seqs[s]->blocks[b];
  }
  kernels::BatchDesc bd;
  bd.n = n;
  bd.tokens = st.tokens.data();
  bd.pos = st.pos.data();
  bd.seq = st.seq.data();
  bd.n_seqs = n_seqs;
  bd.max_blocks = max_blocks;
  bd.block_table = st.block_table.data();
  bd.n_out = static_cast<int64_t>(st.out_rows.size());
  bd.out_rows = st.out_rows.data();
  RETURN_IF_ERROR(be.BeginBatch(bd));

  const int64_t d = c.n_embd;
  const Weights& w = *weights_;
  kernels::AttentionShape shape;
  shape.n_heads = c.n_heads;
  shape.n_kv_heads = c.n_kv_heads;
  shape.head_dim_k = c.head_dim_k;
  shape.head_dim_v = c.head_dim_v;
  shape.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim_k));

  be.Embed(w.token_embd, st.x);
  be.RopeTable(inv_freq_, c.rope_dims, st.rope);

  for (int64_t li = 0; li < c.n_layers; ++li) {
    const LayerWeights& L = w.layers[li];
    // ---- attention ----
    // After the first layer the previous layer's residual add (x +=
    // ffn_out) runs in the same op as this norm: the same arithmetic, one
    // pass over x instead of two (one kernel fewer per layer on a GPU).
    if (li == 0) {
      be.RmsNorm(st.x, L.attn_norm, n, d, c.rms_eps, st.xn);
    } else {
      be.AddRmsNorm(st.x, st.ffn_out, L.attn_norm, n, d, c.rms_eps, st.xn);
    }
    {
      const kernels::Matrix* qkv[] = {&L.wq, &L.wk, &L.wv};
      float* out[] = {st.q, st.k, st.v};
      be.MatMul(qkv, st.xn, n, out);
    }
    if (L.bq != nullptr) be.AddBias(st.q, L.bq, n, c.n_heads * c.head_dim_k);
    if (L.bk != nullptr) be.AddBias(st.k, L.bk, n, c.k_dim());
    if (L.bv != nullptr) be.AddBias(st.v, L.bv, n, c.v_dim());
    kernels::QkRopeStoreArgs qa;
    qa.q = st.q;
    qa.k = st.k;
    qa.v = st.v;
    qa.q_norm = L.q_norm;
    qa.k_norm = L.k_norm;
    qa.norm = c.arch == Arch::kMiniMaxM2 ? kernels::QkNorm::kWhole
              : L.q_norm != nullptr      ? kernels::QkNorm::kPerHead
                                         : kernels::QkNorm::kNone;
    qa.eps = c.rms_eps;
    qa.rope = st.rope;
    qa.rope_dims = c.rope_dims;
    qa.neox = c.rope_neox;
    qa.shape = shape;
    qa.kv = &kvl;
    qa.layer = static_cast<int>(li);
    be.QkRopeStore(qa);
    be.Attention(st.q, shape, kvl, static_cast<int>(li), st.att);
    {
      const kernels::Matrix* wo[] = {&L.wo};
      float* out[] = {st.ffn_out};
      be.MatMul(wo, st.att, n, out);
    }

    // ---- feed-forward ----
    be.AddRmsNorm(st.x, st.ffn_out, L.ffn_norm, n, d, c.rms_eps, st.xn);
    if (c.n_experts == 0) {
      const kernels::Matrix* gate_up[] = {&L.w_gate, &L.w_up};
      float* out[] = {st.gate, st.up};
      be.MatMul(gate_up, st.xn, n, out);
      be.SiluMul(st.gate, st.up, n, c.n_ff);
      const kernels::Matrix* down[] = {&L.w_down};
      float* dout[] = {st.ffn_out};
      be.MatMul(down, st.gate, n, dout);
    } else {
      kernels::MoeArgs ma;
      ma.router = &L.router;
      ma.router_bias = L.router_bias;
      ma.gate = L.gate_exps;
      ma.up = L.up_exps;
      ma.down = L.down_exps;
      ma.n_experts = c.n_experts;
      ma.n_used = c.n_experts_used;
      ma.d = d;
      ma.ff = c.n_ff_expert;
      ma.sigmoid = c.expert_sigmoid;
      ma.norm_topk = c.expert_norm_topk;
      RETURN_IF_ERROR(be.Moe(ma, st.xn, n, st.ffn_out));
    }
    if (li + 1 == c.n_layers) be.Add(st.x, st.ffn_out, n, d);  // else in the next layer's norm
  }

  // ---- output: final norm and logits for the rows that want them ----
  const int64_t n_out = bd.n_out;
  if (n_out == 0 || logits == nullptr) return be.Synchronize();
  be.GatherOutRows(st.x, d, st.xn);
  be.RmsNorm(st.xn, w.output_norm, n_out, d, c.rms_eps, st.xn);
  const kernels::Matrix* out_w[] = {&w.output};
  if (be.host_memory()) {
    float* out[] = {logits};
    be.MatMul(out_w, st.xn, n_out, out);
    return be.Synchronize();
  }
  float* out[] = {st.logits};
  be.MatMul(out_w, st.xn, n_out, out);
  be.CopyToHost(logits, st.logits, static_cast<size_t>(n_out * c.n_vocab) * sizeof(float));
  return be.Synchronize();
}

}  // namespace reprise::model
