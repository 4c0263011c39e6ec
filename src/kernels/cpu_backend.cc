// The CPU backend: backend memory is host memory, ops run the kernels of
// ops.h / attention.h / vec.h on a persistent thread pool. Per-row ops give
// every row the same arithmetic whatever the split over threads; MatMul and
// Attend keep the determinism contract themselves. This is the arithmetic the
// golden tests pin down: moving it here from the forward pass changed no bit.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "core/check.h"
#include "core/cpu_features.h"
#include "kernels/alloc_ledger.h"
#include "kernels/attention.h"
#include "kernels/backend.h"
#include "kernels/kv_format.h"
#include "kernels/vec.h"

namespace reprise::kernels {
namespace {

// Runs fn(t) for every row t < n on the pool.
template <typename Fn>
void ForRows(ThreadPool& pool, int64_t n, Fn&& fn) {
  pool.ParallelFor(n, 4, [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t) fn(t);
  });
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

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int n_threads)
      : pool_(n_threads > 0 ? n_threads : PhysicalCoreCount()) {
    att_scratch_.resize(pool_.size());
  }
  ~CpuBackend() override {
    allocs_.ForEach([](void* p) { std::free(p); });
  }

  DeviceType type() const override { return DeviceType::kCpu; }
  std::string Describe() const override {
    return "cpu: " + GetCpuFeatures().ToString() + ", " + std::to_string(pool_.size()) +
           " threads";
  }
  bool host_memory() const override { return true; }
  int threads() const override { return pool_.size(); }
  int64_t HeldBytes() const override { return allocs_.held(); }

  Result<void*> Alloc(size_t bytes, const char* what) override {
    const size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (p == nullptr) return Errorf("cannot allocate %zu bytes for %s", bytes, what);
    allocs_.Add(p, rounded);
    return p;
  }
  void Free(void* p) override {
    if (p == nullptr) return;
    allocs_.Remove(p);
    std::free(p);
  }
  void CopyToDevice(void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
  }
  void CopyToHost(void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
  }
  void CopyOnDevice(void* dst, const void* src, size_t bytes) override {
    std::memmove(dst, src, bytes);
  }
  Status Synchronize() override { return Status::Ok(); }

  Result<Matrix> PrepareMatrix(const MatrixView& view) override { return Matrix::Prepare(view); }
  Result<Matrix> PrepareTable(const MatrixView& view) override {
    if (!IsSupportedWeightType(view.type)) {
      return Errorf("type %s is not supported", DTypeName(view.type));
    }
    return Matrix::FromBackend(view, nullptr, 0, 0);  // layout 0: in place
  }
  Result<const float*> UploadVector(std::span<const float> host) override {
    ASSIGN_OR_RETURN(void* p, Alloc(host.size() * sizeof(float), "a weight vector"));
    if (!host.empty()) std::memcpy(p, host.data(), host.size() * sizeof(float));
    return static_cast<const float*>(p);
  }

  Status BeginBatch(const BatchDesc& b) override {
    n_ = b.n;
    tokens_.assign(b.tokens, b.tokens + b.n);
    pos_.assign(b.pos, b.pos + b.n);
    seq_.assign(b.seq, b.seq + b.n);
    max_blocks_ = b.max_blocks;
    block_table_.assign(b.block_table, b.block_table + static_cast<int64_t>(b.n_seqs) * b.max_blocks);
    out_rows_.assign(b.out_rows, b.out_rows + b.n_out);
    return Status::Ok();
  }

  void Embed(const Matrix& table, float* x) override {
    const int64_t d = table.cols();
    ForRows(pool_, n_, [&](int64_t t) { GetRow(table.view(), tokens_[t], x + t * d); });
  }

  void RopeTable(const float* inv_freq, int64_t rope_dims, float* rope) override {
    ForRows(pool_, n_, [&](int64_t t) {
      float* cs = rope + t * rope_dims;
      for (int64_t i = 0; i < rope_dims / 2; ++i) {
        const float angle = static_cast<float>(pos_[t]) * inv_freq[i];
        cs[2 * i] = std::cos(angle);
        cs[2 * i + 1] = std::sin(angle);
      }
    });
  }

  void RmsNorm(const float* x, const float* w, int64_t n, int64_t d, float eps,
               float* out) override {
    ForRows(pool_, n, [&](int64_t t) { kernels::RmsNorm(x + t * d, w, d, eps, out + t * d); });
  }

  void AddRmsNorm(float* x, const float* y, const float* w, int64_t n, int64_t d, float eps,
                  float* out) override {
    ForRows(pool_, n, [&](int64_t t) {
      AddInPlace(x + t * d, y + t * d, d);
      kernels::RmsNorm(x + t * d, w, d, eps, out + t * d);
    });
  }

  void Add(float* x, const float* y, int64_t n, int64_t d) override {
    ForRows(pool_, n, [&](int64_t t) { AddInPlace(x + t * d, y + t * d, d); });
  }

  void AddBias(float* y, const float* b, int64_t n, int64_t d) override {
    for (int64_t t = 0; t < n; ++t) AddInPlace(y + t * d, b, d);
  }

  void SiluMul(float* gate, const float* up, int64_t n, int64_t d) override {
    ForRows(pool_, n, [&](int64_t t) { kernels::SiluMul(gate + t * d, up + t * d, d); });
  }

  void MatMul(std::span<const Matrix* const> ws, const float* x, int64_t n,
              std::span<float* const> ys) override {
    if (ws.size() == 1) {
      kernels::MatMul(*ws[0], x, n, ys[0], pool_, ws_);
    } else {
      MatMulMulti(ws, x, n, ys, pool_, ws_);
    }
  }

  void QkRopeStore(const QkRopeStoreArgs& a) override {
    const AttentionShape& s = a.shape;
    const int64_t q_dim = s.n_heads * s.head_dim_k;
    const int64_t kd = s.n_kv_heads * s.head_dim_k, vd = s.n_kv_heads * s.head_dim_v;
    const KvLayout& kv = *a.kv;
    const int64_t bt = kv.block_tokens;
    ForRows(pool_, n_, [&](int64_t t) {
      float* qt = a.q + t * q_dim;
      float* kt = a.k + t * kd;
      if (a.norm == QkNorm::kWhole) {
        kernels::RmsNorm(qt, a.q_norm, q_dim, a.eps, qt);
        kernels::RmsNorm(kt, a.k_norm, kd, a.eps, kt);
      } else if (a.norm == QkNorm::kPerHead) {
        for (int64_t h = 0; h < s.n_heads; ++h) {
          float* qh = qt + h * s.head_dim_k;
          kernels::RmsNorm(qh, a.q_norm, s.head_dim_k, a.eps, qh);
        }
        for (int64_t h = 0; h < s.n_kv_heads; ++h) {
          float* kh = kt + h * s.head_dim_k;
          kernels::RmsNorm(kh, a.k_norm, s.head_dim_k, a.eps, kh);
        }
      }
      const float* cs = a.rope + t * a.rope_dims;
      ApplyRope(qt, s.n_heads, s.head_dim_k, a.rope_dims, cs, a.neox);
      ApplyRope(kt, s.n_kv_heads, s.head_dim_k, a.rope_dims, cs, a.neox);
      // This token's K/V into its sequence's block, before anyone attends.
      const int32_t block = block_table_[static_cast<int64_t>(seq_[t]) * max_blocks_ + pos_[t] / bt];
      const int64_t row = pos_[t] % bt;
      for (int64_t h = 0; h < s.n_kv_heads; ++h) {
        StoreKvRow(kv.K(block, a.layer) + (h * bt + row) * kv.k_row_bytes,
                   kt + h * s.head_dim_k, s.head_dim_k, kv.type);
        StoreKvRow(kv.V(block, a.layer) + (h * bt + row) * kv.v_row_bytes,
                   a.v + t * vd + h * s.head_dim_v, s.head_dim_v, kv.type);
      }
    });
  }

  // One work item per (run of <= kRunTokens consecutive batch tokens of one
  // sequence, kv head, slice of its query heads); Attend converts each K/V
  // tile once for all of them. Each (token, head) result depends only on its
  // q, position and the KV (attention.h), so the grouping never changes a bit.
  void Attention(const float* q, const AttentionShape& s, const KvLayout& kv, int layer,
                 float* out) override {
    constexpr int64_t kRunTokens = 64;
    const int64_t q_dim = s.n_heads * s.head_dim_k, o_dim = s.n_heads * s.head_dim_v;
    const int64_t bt = kv.block_tokens;
    AttentionParams ap;
    ap.head_dim_k = s.head_dim_k;
    ap.head_dim_v = s.head_dim_v;
    ap.block_tokens = kv.block_tokens;
    ap.kv_type = kv.type;
    ap.k_row_bytes = kv.k_row_bytes;
    ap.v_row_bytes = kv.v_row_bytes;
    ap.scale = s.scale;
    runs_.clear();
    int64_t n_ptrs = 0;
    for (int64_t t = 0; t < n_;) {
      int64_t e = t + 1;
      while (e < n_ && e - t < kRunTokens && seq_[e] == seq_[t]) ++e;
      int32_t max_pos = 0;
      for (int64_t i = t; i < e; ++i) max_pos = std::max(max_pos, pos_[i]);
      runs_.push_back({t, e - t, n_ptrs, max_pos / bt + 1});
      n_ptrs += max_pos / bt + 1;
      t = e;
    }
    if (static_cast<int64_t>(att_k_.size()) < n_ptrs) {
      att_k_.resize(n_ptrs);
      att_v_.resize(n_ptrs);
    }
    for (const Run& r : runs_) {
      const int32_t* table = &block_table_[static_cast<int64_t>(seq_[r.t0]) * max_blocks_];
      for (int64_t b = 0; b < r.n_blocks; ++b) {
        att_k_[r.ptrs + b] = kv.K(table[b], layer);
        att_v_[r.ptrs + b] = kv.V(table[b], layer);
      }
    }
    const int64_t group = s.n_heads / s.n_kv_heads;
    // Split a GQA group across items only when there are too few items to
    // keep every thread busy (decode of few sequences).
    int64_t slices = 1;
    const int64_t n_runs = static_cast<int64_t>(runs_.size());
    while (n_runs * s.n_kv_heads * slices < 2 * pool_.size() && group % (slices * 2) == 0) {
      slices *= 2;
    }
    const int64_t per_slice = group / slices;
    const int64_t n_items = n_runs * s.n_kv_heads * slices;
    pool_.ParallelFor(n_items, 1, [&](int64_t begin, int64_t end, int thread) {
      for (int64_t job = begin; job < end; ++job) {
        const int64_t slice = job % slices;
        const int64_t kvh = (job / slices) % s.n_kv_heads;
        const Run& r = runs_[job / (slices * s.n_kv_heads)];
        AttentionRun run;
        run.q = q + r.t0 * q_dim;
        run.q_stride = q_dim;
        run.pos = &pos_[r.t0];
        run.n_tok = r.n_tok;
        run.out = out + r.t0 * o_dim;
        run.out_stride = o_dim;
        run.k_blocks = &att_k_[r.ptrs];
        run.v_blocks = &att_v_[r.ptrs];
        run.kv_head = kvh;
        run.head_begin = kvh * group + slice * per_slice;
        run.head_end = run.head_begin + per_slice;
        Attend(ap, run, &att_scratch_[thread]);
      }
    });
  }

  // Routing per token (softmax or sigmoid top-k), then experts in id order;
  // each token accumulates its experts in that order, so the sum does not
  // depend on the batch.
  Status Moe(const MoeArgs& a, const float* xn, int64_t n, float* out) override {
    const int64_t d = a.d, E = a.n_experts, K = a.n_used, F = a.ff;
    router_logits_.resize(n * E);
    ids_.resize(n * K);
    weights_.resize(n * K);
    probs_.resize(2 * E);
    kernels::MatMul(*a.router, xn, n, router_logits_.data(), pool_, ws_);
    for (int64_t t = 0; t < n; ++t) {
      const float* lg = &router_logits_[t * E];
      float* p = probs_.data();
      float* choice = probs_.data() + E;
      if (a.sigmoid) {
        for (int64_t e = 0; e < E; ++e) {
          p[e] = 1.0f / (1.0f + std::exp(-lg[e]));
          choice[e] = p[e] + (a.router_bias == nullptr ? 0.0f : a.router_bias[e]);
        }
      } else {
        std::copy(lg, lg + E, p);
        SoftmaxInPlace(p, E);
        std::copy(p, p + E, choice);
      }
      int32_t* ids = &ids_[t * K];
      float* wts = &weights_[t * K];
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
      if (a.norm_topk && sum > 0) {
        for (int64_t j = 0; j < K; ++j) wts[j] /= sum;
      }
    }
    std::fill(out, out + n * d, 0.0f);
    xin_.resize(n * d);
    hid_.resize(n * F);
    hid2_.resize(n * F);
    dout_.resize(n * d);
    tok_.resize(n);
    slot_.resize(n);
    for (int64_t e = 0; e < E; ++e) {
      int64_t ne = 0;
      for (int64_t t = 0; t < n; ++t) {
        for (int64_t j = 0; j < K; ++j) {
          if (ids_[t * K + j] == e) {
            tok_[ne] = static_cast<int32_t>(t);
            slot_[ne] = static_cast<int32_t>(j);
            std::memcpy(&xin_[ne * d], xn + t * d, d * sizeof(float));
            ++ne;
          }
        }
      }
      if (ne == 0) continue;
      kernels::MatMul(a.gate[e], xin_.data(), ne, hid2_.data(), pool_, ws_);
      kernels::MatMul(a.up[e], xin_.data(), ne, hid_.data(), pool_, ws_);
      kernels::SiluMul(hid2_.data(), hid_.data(), ne * F);
      kernels::MatMul(a.down[e], hid2_.data(), ne, dout_.data(), pool_, ws_);
      for (int64_t i = 0; i < ne; ++i) {
        const int64_t t = tok_[i];
        Axpy(weights_[t * K + slot_[i]], &dout_[i * d], out + t * d, d);
      }
    }
    return Status::Ok();
  }

  void GatherOutRows(const float* x, int64_t d, float* out) override {
    for (size_t i = 0; i < out_rows_.size(); ++i) {
      std::memcpy(out + i * d, x + static_cast<int64_t>(out_rows_[i]) * d, d * sizeof(float));
    }
  }

 private:
  struct Run {
    int64_t t0, n_tok, ptrs, n_blocks;
  };
  ThreadPool pool_;
  Workspace ws_;
  AllocLedger allocs_;
  // The current batch (BeginBatch).
  int64_t n_ = 0;
  std::vector<int32_t> tokens_, pos_, seq_, block_table_, out_rows_;
  int32_t max_blocks_ = 0;
  // Attention work.
  std::vector<Run> runs_;
  std::vector<const uint8_t*> att_k_, att_v_;
  std::vector<AttentionScratch> att_scratch_;
  // MoE scratch.
  std::vector<float> router_logits_, weights_, probs_, xin_, hid_, hid2_, dout_;
  std::vector<int32_t> ids_, tok_, slot_;
};

}  // namespace

std::unique_ptr<Backend> CreateCpuBackend(int n_threads) {
  return std::make_unique<CpuBackend>(n_threads);
}

}  // namespace reprise::kernels
