// Model loading and the forward pass shared by every supported architecture
// (they differ only in the switches read from ModelConfig and the tensors
// bound in weights.cc): RMSNorm -> Q/K/V (+bias) -> q/k norm -> RoPE ->
// KV write -> attention over the sequence's KV blocks -> output projection ->
// RMSNorm -> SwiGLU FFN (dense or routed experts).
//
// Invariant: every token's result depends only on its own inputs and its
// sequence's KV contents, never on which other tokens share the batch (the
// kernels guarantee the same for matmuls), so chunked prefill, one-shot
// prefill and token-by-token decoding agree bit for bit.
#include "model/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/cpu_features.h"
#include "core/log.h"
#include "kernels/attention.h"
#include "kernels/ops.h"
#include "kernels/vec.h"
#include "model/weights.h"

namespace reprise::model {

class ForwardState {
 public:
  // Grows buffers for a batch of n tokens; allocation happens only on growth.
  void Reserve(const ModelConfig& c, int64_t n, int n_threads) {
    if (n <= capacity_) return;
    capacity_ = std::max<int64_t>(n, capacity_ * 2);
    const int64_t cap = capacity_;
    x.resize(cap * c.n_embd);
    xn.resize(cap * c.n_embd);
    q.resize(cap * c.n_heads * c.head_dim_k);
    k.resize(cap * c.k_dim());
    v.resize(cap * c.v_dim());
    att.resize(cap * c.n_heads * c.head_dim_v);
    const int64_t ff = std::max(c.n_ff, c.n_ff_expert);
    gate.resize(cap * std::max<int64_t>(ff, 2 * c.n_experts));
    up.resize(cap * ff);
    ffn_out.resize(cap * c.n_embd);
    if (c.n_experts > 0) {
      router_logits.resize(cap * c.n_experts);
      expert_ids.resize(cap * c.n_experts_used);
      expert_weights.resize(cap * c.n_experts_used);
      expert_tokens.resize(cap);
      expert_slots.resize(cap);
    }
    out_rows.resize(cap);
    att_pos.resize(cap);
    rope.resize(cap * c.rope_dims);
    att_scratch.resize(n_threads);
  }

  std::vector<float> x;        // [n, n_embd] residual stream
  std::vector<float> xn;       // [n, n_embd] normalised input of a sub-layer
  std::vector<float> q;        // [n, n_heads * hd_k]
  std::vector<float> k;        // [n, k_dim]
  std::vector<float> v;        // [n, v_dim]
  std::vector<float> att;      // [n, n_heads * hd_v]
  std::vector<float> gate;     // [n, n_ff]
  std::vector<float> up;       // [n, n_ff]
  std::vector<float> ffn_out;  // [n, n_embd]
  std::vector<float> router_logits;   // [n, n_experts]
  std::vector<int32_t> expert_ids;    // [n, n_used]
  std::vector<float> expert_weights;  // [n, n_used]
  std::vector<int32_t> expert_tokens; // tokens routed to the current expert
  std::vector<int32_t> expert_slots;  // their slot in expert_ids
  std::vector<int32_t> out_rows;      // batch rows that want logits
  // Attention work: runs of consecutive batch tokens of one sequence, each
  // with its sequence's K/V block pointers for the current layer.
  struct AttnRun {
    int64_t t0, n_tok, ptrs;  // first batch row, token count, offset into att_k/att_v
  };
  std::vector<AttnRun> att_runs;
  std::vector<const uint8_t*> att_k, att_v;
  std::vector<int32_t> att_pos;                      // [n] positions of the batch rows
  std::vector<kernels::AttentionScratch> att_scratch;  // per thread
  std::vector<float> inv_freq;        // [rope_dims / 2]
  std::vector<float> rope;            // [n, rope_dims / 2, 2] cos, sin of each batch row
  kernels::Workspace ws;

 private:
  int64_t capacity_ = 0;
};

namespace {

// cos and sin of pos * inv_freq[i] for i < rope_dims / 2, interleaved.
void RopeAngles(int32_t pos, const float* inv_freq, int64_t rope_dims, float* cs) {
  for (int64_t i = 0; i < rope_dims / 2; ++i) {
    const float angle = static_cast<float>(pos) * inv_freq[i];
    cs[2 * i] = std::cos(angle);
    cs[2 * i + 1] = std::sin(angle);
  }
}

void ApplyRope(float* vec, int64_t n_heads, int64_t head_dim, int64_t rope_dims, const float* cs,
               bool neox) {
  const int64_t half = rope_dims / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* x = vec + h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      const float c = cs[2 * i], s = cs[2 * i + 1];
      const int64_t i0 = neox ? i : 2 * i;
      const int64_t i1 = neox ? i + half : 2 * i + 1;
      const float a = x[i0], b = x[i1];
      x[i0] = a * c - b * s;
      x[i1] = a * s + b * c;
    }
  }
}

// Runs fn(t) for every batch row t < n on the pool (per-row work only: each
// row's arithmetic is the same however rows are spread over threads).
template <typename Fn>
void ForRows(ThreadPool& pool, int64_t n, Fn&& fn) {
  pool.ParallelFor(n, 4, [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t) fn(t);
  });
}

inline void StoreRow(uint8_t* dst, const float* src, int64_t n, bool f16) {
  if (f16) {
    kernels::ConvertToF16(src, reinterpret_cast<uint16_t*>(dst), n);
  } else {
    std::memcpy(dst, src, n * sizeof(float));
  }
}

void AddBias(float* y, const std::vector<float>& b, int64_t n_rows) {
  if (b.empty()) return;
  const int64_t d = static_cast<int64_t>(b.size());
  for (int64_t t = 0; t < n_rows; ++t) kernels::AddInPlace(y + t * d, b.data(), d);
}

}  // namespace

Model::Model() = default;
Model::~Model() = default;

Result<std::unique_ptr<Model>> Model::Load(std::shared_ptr<const gguf::File> file,
                                           const ModelOptions& options) {
  std::unique_ptr<Model> m(new Model());
  auto cfg = ReadConfig(*file);
  if (!cfg.ok()) return cfg.status().WithContext(file->path());
  m->config_ = std::move(cfg).value();
  auto weights = BindWeights(*file, m->config_);
  if (!weights.ok()) return weights.status().WithContext(file->path());
  m->weights_ = std::move(weights).value();
  m->file_ = std::move(file);
  const int n_threads = options.n_threads > 0 ? options.n_threads : PhysicalCoreCount();
  m->pool_ = std::make_unique<ThreadPool>(n_threads);
  m->state_ = std::make_unique<ForwardState>();
  const ModelConfig& c = m->config_;
  m->state_->inv_freq.resize(c.rope_dims / 2);
  for (int64_t i = 0; i < c.rope_dims / 2; ++i) {
    const float e = static_cast<float>(2 * i) / static_cast<float>(c.rope_dims);
    float f = 1.0f / std::pow(c.rope_freq_base, e);
    if (!m->weights_->rope_freqs.empty()) f /= m->weights_->rope_freqs[i];
    m->state_->inv_freq[i] = f;
  }
  return m;
}

int64_t Model::KvBytesPerToken(DType kv_type) const {
  const int64_t elem = kv_type == DType::kF16 ? 2 : 4;
  return config_.n_layers * (config_.k_dim() + config_.v_dim()) * elem;
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
  return weights_->token_embd.type == DType::kF32 ? DType::kF32 : DType::kF16;
}

int64_t Model::WeightBytes() const { return weights_->bytes; }

Status Model::Forward(std::span<const BatchToken> tokens, std::span<kv::SeqBlocks* const> seqs,
                      kv::BlockPool& kv, float* logits) {
  const ModelConfig& c = config_;
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) return Status::Ok();
  const kv::BlockPoolConfig& kvc = kv.config();
  if (kvc.n_layers != c.n_layers || kvc.k_dim != c.k_dim() || kvc.v_dim != c.v_dim() ||
      kvc.n_heads != c.n_kv_heads) {
    return Errorf("KV pool shape does not match the model");
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
  ThreadPool& pool = *pool_;
  ForwardState& st = *state_;
  st.Reserve(c, n, pool.size());
  const bool f16 = kvc.dtype == DType::kF16;
  const int64_t esz = f16 ? 2 : 4;
  const int64_t d = c.n_embd;
  const int64_t q_dim = c.n_heads * c.head_dim_k;
  const int64_t o_dim = c.n_heads * c.head_dim_v;
  const int64_t kd = c.k_dim(), vd = c.v_dim();
  const Weights& w = *weights_;

  const int64_t rd = c.rope_dims;
  ForRows(pool, n, [&](int64_t t) {
    kernels::GetRow(w.token_embd, tokens[t].token, &st.x[t * d]);
    RopeAngles(tokens[t].pos, st.inv_freq.data(), rd, &st.rope[t * rd]);
  });

  for (int64_t li = 0; li < c.n_layers; ++li) {
    const LayerWeights& L = w.layers[li];
    // ---- attention ----
    ForRows(pool, n, [&](int64_t t) {
      kernels::RmsNorm(&st.x[t * d], L.attn_norm.data(), d, c.rms_eps, &st.xn[t * d]);
    });
    {
      const kernels::Matrix* qkv[] = {&L.wq, &L.wk, &L.wv};
      float* out[] = {st.q.data(), st.k.data(), st.v.data()};
      kernels::MatMulMulti(qkv, st.xn.data(), n, out, pool, st.ws);
    }
    AddBias(st.q.data(), L.bq, n);
    AddBias(st.k.data(), L.bk, n);
    AddBias(st.v.data(), L.bv, n);
    ForRows(pool, n, [&](int64_t t) {
      float* qt = &st.q[t * q_dim];
      float* kt = &st.k[t * kd];
      if (c.arch == Arch::kMiniMaxM2) {
        kernels::RmsNorm(qt, L.q_norm.data(), q_dim, c.rms_eps, qt);
        kernels::RmsNorm(kt, L.k_norm.data(), kd, c.rms_eps, kt);
      } else if (!L.q_norm.empty()) {
        for (int64_t h = 0; h < c.n_heads; ++h) {
          float* qh = qt + h * c.head_dim_k;
          kernels::RmsNorm(qh, L.q_norm.data(), c.head_dim_k, c.rms_eps, qh);
        }
        for (int64_t h = 0; h < c.n_kv_heads; ++h) {
          float* kh = kt + h * c.head_dim_k;
          kernels::RmsNorm(kh, L.k_norm.data(), c.head_dim_k, c.rms_eps, kh);
        }
      }
      ApplyRope(qt, c.n_heads, c.head_dim_k, rd, &st.rope[t * rd], c.rope_neox);
      ApplyRope(kt, c.n_kv_heads, c.head_dim_k, rd, &st.rope[t * rd], c.rope_neox);
      // Write this token's K/V into its sequence's block before anyone attends.
      const kv::SeqBlocks& s = *seqs[tokens[t].seq];
      const int32_t block = s.blocks[tokens[t].pos / bt];
      const int64_t row = tokens[t].pos % bt;
      // Head-major blocks (kv/block_pool.h): head h's row at (h * bt + row).
      for (int64_t h = 0; h < c.n_kv_heads; ++h) {
        StoreRow(kv.K(block, li) + (h * bt + row) * c.head_dim_k * esz, kt + h * c.head_dim_k,
                 c.head_dim_k, f16);
        StoreRow(kv.V(block, li) + (h * bt + row) * c.head_dim_v * esz,
                 &st.v[t * vd + h * c.head_dim_v], c.head_dim_v, f16);
      }
    });
    // Attention: one work item per (run of <= kRunTokens consecutive batch
    // tokens of one sequence, kv head, slice of its query heads); the kernel
    // converts each K/V tile once for all of them. Each (token, head) result
    // depends only on its q, position and the KV (kernels/attention.h), so
    // how tokens are grouped into runs never changes a bit.
    constexpr int64_t kRunTokens = 64;
    kernels::AttentionParams ap;
    ap.head_dim_k = c.head_dim_k;
    ap.head_dim_v = c.head_dim_v;
    ap.block_tokens = bt;
    ap.f16 = f16;
    ap.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim_k));
    st.att_runs.clear();
    int64_t n_ptrs = 0;
    for (int64_t t = 0; t < n;) {
      int64_t e = t + 1;
      while (e < n && e - t < kRunTokens && tokens[e].seq == tokens[t].seq) ++e;
      int32_t max_pos = 0;
      for (int64_t i = t; i < e; ++i) max_pos = std::max(max_pos, tokens[i].pos);
      st.att_runs.push_back({t, e - t, n_ptrs});
      n_ptrs += max_pos / bt + 1;
      t = e;
    }
    if (static_cast<int64_t>(st.att_k.size()) < n_ptrs) {
      st.att_k.resize(n_ptrs);
      st.att_v.resize(n_ptrs);
    }
    for (const auto& r : st.att_runs) {
      const kv::SeqBlocks& s = *seqs[tokens[r.t0].seq];
      int32_t max_pos = 0;
      for (int64_t i = r.t0; i < r.t0 + r.n_tok; ++i) max_pos = std::max(max_pos, tokens[i].pos);
      for (int64_t b = 0; b <= max_pos / bt; ++b) {
        st.att_k[r.ptrs + b] = kv.K(s.blocks[b], li);
        st.att_v[r.ptrs + b] = kv.V(s.blocks[b], li);
      }
    }
    for (int64_t t = 0; t < n; ++t) st.att_pos[t] = tokens[t].pos;
    const int64_t group = c.n_heads / c.n_kv_heads;
    // Split a GQA group across items only when there are too few items to
    // keep every thread busy (decode of few sequences).
    int64_t slices = 1;
    const int64_t n_runs = static_cast<int64_t>(st.att_runs.size());
    while (n_runs * c.n_kv_heads * slices < 2 * pool.size() && group % (slices * 2) == 0) {
      slices *= 2;
    }
    const int64_t per_slice = group / slices;
    const int64_t n_items = n_runs * c.n_kv_heads * slices;
    pool.ParallelFor(n_items, 1, [&](int64_t begin, int64_t end, int thread) {
      for (int64_t job = begin; job < end; ++job) {
        const int64_t slice = job % slices;
        const int64_t kvh = (job / slices) % c.n_kv_heads;
        const auto& r = st.att_runs[job / (slices * c.n_kv_heads)];
        kernels::AttentionRun run;
        run.q = &st.q[r.t0 * q_dim];
        run.q_stride = q_dim;
        run.pos = &st.att_pos[r.t0];
        run.n_tok = r.n_tok;
        run.out = &st.att[r.t0 * o_dim];
        run.out_stride = o_dim;
        run.k_blocks = &st.att_k[r.ptrs];
        run.v_blocks = &st.att_v[r.ptrs];
        run.kv_head = kvh;
        run.head_begin = kvh * group + slice * per_slice;
        run.head_end = run.head_begin + per_slice;
        kernels::Attend(ap, run, &st.att_scratch[thread]);
      }
    });
    kernels::MatMul(L.wo, st.att.data(), n, st.ffn_out.data(), pool, st.ws);

    // ---- feed-forward ----
    ForRows(pool, n, [&](int64_t t) {
      kernels::AddInPlace(&st.x[t * d], &st.ffn_out[t * d], d);
      kernels::RmsNorm(&st.x[t * d], L.ffn_norm.data(), d, c.rms_eps, &st.xn[t * d]);
    });
    if (c.n_experts == 0) {
      const kernels::Matrix* gate_up[] = {&L.w_gate, &L.w_up};
      float* out[] = {st.gate.data(), st.up.data()};
      kernels::MatMulMulti(gate_up, st.xn.data(), n, out, pool, st.ws);
      ForRows(pool, n, [&](int64_t t) {
        kernels::SiluMul(&st.gate[t * c.n_ff], &st.up[t * c.n_ff], c.n_ff);
      });
      kernels::MatMul(L.w_down, st.gate.data(), n, st.ffn_out.data(), pool, st.ws);
      ForRows(pool, n, [&](int64_t t) { kernels::AddInPlace(&st.x[t * d], &st.ffn_out[t * d], d); });
    } else {
      RETURN_IF_ERROR(MoeForward(li, n));
    }
  }

  // ---- output: final norm and logits for the rows that want them ----
  int64_t n_out = 0;
  for (int64_t t = 0; t < n; ++t) {
    if (!tokens[t].want_logits) continue;
    kernels::RmsNorm(&st.x[t * d], w.output_norm.data(), d, c.rms_eps, &st.xn[n_out * d]);
    ++n_out;
  }
  if (n_out > 0) kernels::MatMul(w.output, st.xn.data(), n_out, logits, pool, st.ws);
  return Status::Ok();
}

Status Model::MoeForward(int64_t li, int64_t n) {
  const ModelConfig& c = config_;
  const LayerWeights& L = weights_->layers[li];
  ForwardState& st = *state_;
  ThreadPool& pool = *pool_;
  const int64_t d = c.n_embd, E = c.n_experts, K = c.n_experts_used, F = c.n_ff_expert;
  kernels::MatMul(L.router, st.xn.data(), n, st.router_logits.data(), pool, st.ws);
  std::vector<float>& probs = st.gate;  // reuse: [E] scratch per token (gate is free here)
  for (int64_t t = 0; t < n; ++t) {
    const float* lg = &st.router_logits[t * E];
    float* p = probs.data();
    float* choice = probs.data() + E;
    if (c.expert_sigmoid) {
      for (int64_t e = 0; e < E; ++e) {
        p[e] = 1.0f / (1.0f + std::exp(-lg[e]));
        choice[e] = p[e] + (L.router_bias.empty() ? 0.0f : L.router_bias[e]);
      }
    } else {
      std::copy(lg, lg + E, p);
      kernels::SoftmaxInPlace(p, E);
      std::copy(p, p + E, choice);
    }
    int32_t* ids = &st.expert_ids[t * K];
    float* wts = &st.expert_weights[t * K];
    float sum = 0;
    for (int64_t j = 0; j < K; ++j) {
      int64_t best = -1;
      for (int64_t e = 0; e < E; ++e) {
        bool taken = false;
        for (int64_t q = 0; q < j; ++q) taken |= ids[q] == e;
        if (!taken && (best < 0 || choice[e] > choice[best])) best = e;
      }
      ids[j] = static_cast<int32_t>(best);
      wts[j] = p[best];
      sum += p[best];
    }
    if (c.expert_norm_topk && sum > 0) {
      for (int64_t j = 0; j < K; ++j) wts[j] /= sum;
    }
  }
  std::fill(st.ffn_out.begin(), st.ffn_out.begin() + n * d, 0.0f);
  // Experts in id order; each token accumulates its experts in that order, so
  // the sum does not depend on the batch.
  std::vector<float>& xin = st.att;   // reuse as gathered input [n_e, d]
  std::vector<float>& hid = st.up;    // [n_e, F]
  std::vector<float>& hid2 = st.q;    // [n_e, F] — q is free after attention
  std::vector<float>& dout = st.k;    // [n_e, d]
  if (static_cast<int64_t>(xin.size()) < n * d) xin.resize(n * d);
  if (static_cast<int64_t>(hid2.size()) < n * F) hid2.resize(n * F);
  if (static_cast<int64_t>(dout.size()) < n * d) dout.resize(n * d);
  for (int64_t e = 0; e < E; ++e) {
    int64_t ne = 0;
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t j = 0; j < K; ++j) {
        if (st.expert_ids[t * K + j] == e) {
          st.expert_tokens[ne] = static_cast<int32_t>(t);
          st.expert_slots[ne] = static_cast<int32_t>(j);
          std::memcpy(&xin[ne * d], &st.xn[t * d], d * sizeof(float));
          ++ne;
        }
      }
    }
    if (ne == 0) continue;
    kernels::MatMul(L.gate_exps[e], xin.data(), ne, hid2.data(), pool, st.ws);
    kernels::MatMul(L.up_exps[e], xin.data(), ne, hid.data(), pool, st.ws);
    kernels::SiluMul(hid2.data(), hid.data(), ne * F);
    kernels::MatMul(L.down_exps[e], hid2.data(), ne, dout.data(), pool, st.ws);
    for (int64_t i = 0; i < ne; ++i) {
      const int64_t t = st.expert_tokens[i];
      kernels::Axpy(st.expert_weights[t * K + st.expert_slots[i]], &dout[i * d],
                    &st.ffn_out[t * d], d);
    }
  }
  kernels::AddInPlace(st.x.data(), st.ffn_out.data(), n * d);
  return Status::Ok();
}

}  // namespace reprise::model
