// GPU tests of single backend ops (run by scripts/gpu_check.sh on a GPU
// machine; where no GPU is usable every test skips with a one-line reason):
//  - RMSNorm, plain and with the residual add, in both of cuda_norm.cu's
//    shapes (the row shape for d = 128 W K, the loop shape otherwise): within
//    float rounding of a float64 evaluation, and a row's bits the same
//    whatever the batch holds;
//  - the decode path's fused activation quantization (a norm, or the
//    attention's merging block, writing the next matmul's int8
//    activations): the matmul after it gives the same bits as after a
//    separate quantize kernel;
//  - the opt-in attention paths (raw split shape, blocked tiled shape, wide
//    merge) give the default ones' bits on the same batches.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "float_bits.h"
#include "quant_rows.h"
#include "require_gpu.h"
#include "core/dtype.h"
#include "core/fp16.h"
#include "kernels/backend.h"
#include "kernels/ops.h"
#include "kv/block_pool.h"
#ifdef REPRISE_HAVE_CUDA
#include "kernels/cuda/cuda_kernels.h"
#endif

namespace reprise::testing {
namespace {

constexpr kernels::DevicePreference kCuda = kernels::DevicePreference::kCuda;

struct DevBuf {
  kernels::Backend* be = nullptr;
  void* p = nullptr;
  DevBuf(kernels::Backend* b, size_t floats) : be(b) {
    auto r = b->Alloc(floats * sizeof(float), "test buffer");
    if (r.ok()) p = *r;
  }
  ~DevBuf() {
    if (p != nullptr) be->Free(p);
  }
  float* f() const { return static_cast<float*>(p); }
};

std::vector<float> Download(kernels::Backend* be, const DevBuf& b, size_t floats) {
  std::vector<float> h(floats);
  be->CopyToHost(h.data(), b.p, floats * sizeof(float));
  EXPECT_TRUE(be->Synchronize().ok());
  return h;
}

// d: 64 and 288 take the loop shape; the others the row shape with 1 to 10
// warps and 1 to 4 float4 per lane.
TEST(GpuNorm, BothShapesMatchFloat64AndARowIgnoresTheBatch) {
  REQUIRE_GPU();
  auto gpu = kernels::CreateBackend(kCuda, 1);
  ASSERT_TRUE(gpu.ok());
  kernels::Backend* be = gpu->get();
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const float eps = 1e-5f;
  for (const int64_t d : {int64_t{64}, int64_t{288}, int64_t{512}, int64_t{896}, int64_t{3584},
                          int64_t{4096}, int64_t{5120}}) {
    const int64_t n = 5;
    std::vector<float> x(static_cast<size_t>(n * d)), y(x.size()), w(static_cast<size_t>(d));
    for (size_t i = 0; i < x.size(); ++i) x[i] = dist(rng) * (i % 61 == 0 ? 30.0f : 1.0f);
    for (auto& v : y) v = dist(rng);
    for (auto& v : w) v = 1.0f + 0.1f * dist(rng);
    auto wd = be->UploadVector(w);
    ASSERT_TRUE(wd.ok());
    DevBuf xd(be, x.size()), yd(be, x.size()), od(be, x.size());
    ASSERT_TRUE(xd.p && yd.p && od.p);
    for (const bool add : {false, true}) {
      std::vector<float> first;  // row 0 computed alone (n = 1)
      for (const int64_t rows : {int64_t{1}, n}) {
        be->CopyToDevice(xd.p, x.data(), x.size() * sizeof(float));
        be->CopyToDevice(yd.p, y.data(), y.size() * sizeof(float));
        if (add) {
          be->AddRmsNorm(xd.f(), yd.f(), *wd, rows, d, eps, od.f());
        } else {
          be->RmsNorm(xd.f(), *wd, rows, d, eps, od.f());
        }
        const std::vector<float> out = Download(be, od, static_cast<size_t>(rows * d));
        const std::vector<float> xs = Download(be, xd, static_cast<size_t>(rows * d));
        if (rows == 1) {
          first.assign(out.begin(), out.begin() + d);
          continue;
        }
        ASSERT_EQ(std::memcmp(out.data(), first.data(), d * sizeof(float)), 0)
            << "d " << d << (add ? " add+norm" : " norm") << ": row 0 changed with the batch";
        for (int64_t t = 0; t < rows; ++t) {
          std::vector<double> v(static_cast<size_t>(d));
          double ss = 0;
          for (int64_t i = 0; i < d; ++i) {
            const size_t k = static_cast<size_t>(t * d + i);
            v[i] = add ? static_cast<double>(static_cast<float>(x[k] + y[k])) : x[k];
            ss += v[i] * v[i];
            if (add) {
              ASSERT_EQ(xs[k], static_cast<float>(x[k] + y[k])) << "the residual sum, d " << d;
            }
          }
          const double scale = 1.0 / std::sqrt(ss / static_cast<double>(d) + eps);
          double worst = 0, mag = 0;
          for (int64_t i = 0; i < d; ++i) {
            const double want = v[i] * scale * w[i];
            worst = std::max(worst, std::fabs(want - out[static_cast<size_t>(t * d + i)]));
            mag = std::max(mag, std::fabs(want));
          }
          EXPECT_LE(worst, 4e-6 * mag) << "d " << d << (add ? " add+norm" : " norm") << " row " << t;
        }
      }
    }
  }
}

// A norm, then a decode matmul on its output (n < 16): once right after the
// norm (the norm wrote the activations), once with an op in between (the
// matmul quantizes them itself). The outputs must be the same bits.
TEST(GpuNorm, FusedQuantizationGivesTheMatmulTheSameBits) {
  REQUIRE_GPU();
  auto gpu = kernels::CreateBackend(kCuda, 1);
  ASSERT_TRUE(gpu.ok());
  kernels::Backend* be = gpu->get();
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  struct Case {
    DType type;
    int64_t d;
  };
  // Q8_0: 32-value activation groups; Q4_K / Q6_K: 256. 896 = 7 warps of one float4 per lane.
  for (const Case c : {Case{DType::kQ8_0, 4096}, Case{DType::kQ8_0, 896}, Case{DType::kQ4_K, 4096},
                       Case{DType::kQ4_K, 512}, Case{DType::kQ6_K, 3584}}) {
    const int64_t rows = 96, d = c.d, max_n = 3;
    const int64_t rb = RowBytes(c.type, d);
    std::vector<float> wf(static_cast<size_t>(rows * d));
    for (auto& v : wf) v = 0.05f * dist(rng);
    std::vector<uint8_t> wq(static_cast<size_t>(rows * rb));
    for (int64_t r = 0; r < rows; ++r) {
      kernels::QuantizeRow(c.type, wf.data() + r * d, wq.data() + r * rb, d);
    }
    auto m = be->PrepareMatrix({c.type, rows, d, wq.data()});
    ASSERT_TRUE(m.ok());
    std::vector<float> x(static_cast<size_t>(max_n * d)), y(x.size()), w(static_cast<size_t>(d));
    for (size_t i = 0; i < x.size(); ++i) x[i] = dist(rng) * (i % 53 == 0 ? 25.0f : 1.0f);
    for (auto& v : y) v = dist(rng);
    for (auto& v : w) v = 1.0f + 0.2f * dist(rng);
    auto wd = be->UploadVector(w);
    ASSERT_TRUE(wd.ok());
    DevBuf xd(be, x.size()), yd(be, x.size()), nd(be, x.size()), other(be, x.size());
    DevBuf out_fused(be, static_cast<size_t>(max_n * rows)), out_plain(be, static_cast<size_t>(max_n * rows));
    ASSERT_TRUE(xd.p && yd.p && nd.p && other.p && out_fused.p && out_plain.p);
    const kernels::Matrix* ws[1] = {&*m};
    for (const bool add : {false, true}) {
      for (int64_t n = 1; n <= max_n; ++n) {
        std::vector<float> got[2];
        for (int pass = 0; pass < 2; ++pass) {
          be->CopyToDevice(xd.p, x.data(), x.size() * sizeof(float));
          be->CopyToDevice(yd.p, y.data(), y.size() * sizeof(float));
          be->CopyToDevice(other.p, y.data(), y.size() * sizeof(float));
          float* out[1] = {pass == 0 ? out_fused.f() : out_plain.f()};
          be->MatMul(ws, yd.f(), n, out);  // a decode matmul first: the backend learns the group
          if (add) {
            be->AddRmsNorm(xd.f(), yd.f(), *wd, n, d, 1e-5f, nd.f());
          } else {
            be->RmsNorm(xd.f(), *wd, n, d, 1e-5f, nd.f());
          }
          if (pass == 1) be->Add(other.f(), yd.f(), n, d);  // breaks the fusion
          be->MatMul(ws, nd.f(), n, out);
          got[pass] = Download(be, pass == 0 ? out_fused : out_plain, static_cast<size_t>(n * rows));
        }
        ASSERT_EQ(std::memcmp(got[0].data(), got[1].data(), got[0].size() * sizeof(float)), 0)
            << DTypeName(c.type) << " d " << d << " n " << n << (add ? " add+norm" : " norm")
            << ": the matmul after a fused norm differs from one after a separate quantization";
        double mag = 0;
        for (const float v : got[0]) mag = std::max(mag, static_cast<double>(std::fabs(v)));
        ASSERT_GT(mag, 0.0) << "an all-zero output proves nothing";
      }
    }
  }
}

#ifdef REPRISE_HAVE_CUDA
// A one-layer F16 KV pool for `shape` with n_seqs sequences of max_blocks
// blocks of block_tokens positions, every value random; the block table to
// match.
struct RandomKv {
  std::unique_ptr<kv::BlockPool> pool;
  std::vector<int32_t> table;
  int max_blocks = 0;
  RandomKv(kernels::Backend* be, const kernels::AttentionShape& shape, int n_seqs, int blocks,
           std::mt19937* rng, int block_tokens = 32) : max_blocks(blocks) {
    std::normal_distribution<float> dist(0.0f, 1.0f);
    kv::BlockPoolConfig pc;
    pc.n_layers = 1;
    pc.k_dim = static_cast<int>(shape.n_kv_heads * shape.head_dim_k);
    pc.v_dim = static_cast<int>(shape.n_kv_heads * shape.head_dim_v);
    pc.n_heads = static_cast<int>(shape.n_kv_heads);
    pc.block_tokens = block_tokens;
    pc.dtype = DType::kF16;
    pc.max_bytes = int64_t{256} << 20;
    auto p = kv::BlockPool::Create(pc, be);
    if (!p.ok()) return;
    pool = std::move(*p);
    std::vector<uint8_t> block(static_cast<size_t>(pool->block_bytes()));
    table.resize(static_cast<size_t>(n_seqs * blocks));
    for (auto& b : table) {
      b = pool->Allocate();
      if (b < 0) {
        pool.reset();
        return;
      }
      for (size_t i = 0; i + 1 < block.size(); i += 2) {
        const uint16_t h = Fp32ToFp16((*rng)() % 4 == 0 ? 3.0f * dist(*rng) : dist(*rng));
        block[i] = static_cast<uint8_t>(h & 0xFF);
        block[i + 1] = static_cast<uint8_t>(h >> 8);
      }
      pool->WriteBlock(b, block.data());
    }
  }
  ~RandomKv() {
    if (pool) {
      for (const int32_t b : table) pool->Unref(b);
    }
  }
  kernels::BatchDesc Batch(const std::vector<int32_t>& pos, const std::vector<int32_t>& seq) {
    tokens.assign(pos.size(), 1);
    kernels::BatchDesc bd;
    bd.n = static_cast<int64_t>(pos.size());
    bd.tokens = tokens.data();
    bd.pos = pos.data();
    bd.seq = seq.data();
    bd.n_seqs = static_cast<int32_t>(table.size() / max_blocks);
    bd.max_blocks = max_blocks;
    bd.block_table = table.data();
    return bd;
  }
  std::vector<int32_t> tokens;
};

// The f32 attention order for the life of a test (the tensor-core order is
// the default where it fits; these tests are about the f32 order's shapes).
struct F32AttentionOrder {
  F32AttentionOrder() { kernels::cuda::SetAttentionMmaForTest(0, -1); }
  ~F32AttentionOrder() { kernels::cuda::SetAttentionMmaForTest(-1, -1); }
};

// Decode attention (the split shape: positions past one 64-position chunk,
// few tokens), then the O projection's decode matmul on its output: once
// right after the attention (the merging block wrote the activations), once with an op in between (the matmul quantizes
// them itself). The same bits either way. The fusion is opt-in
// (REPRISE_CUDA_FUSE_ATTN=1); the test turns it on for itself.
TEST(GpuAttention, FusedQuantizationGivesTheMatmulTheSameBits) {
  REQUIRE_GPU();
  F32AttentionOrder f32_order;
  kernels::cuda::SetAttentionFuseForTest(1);
  struct Restore {
    ~Restore() {
      kernels::cuda::SetAttentionFuseForTest(-1);
      kernels::cuda::SetAttentionShapesForTest(-1, -1, -1);
    }
  } restore;
  auto gpu = kernels::CreateBackend(kCuda, 1);
  ASSERT_TRUE(gpu.ok());
  kernels::Backend* be = gpu->get();
  std::mt19937 rng(23);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  // Llama-3's head shape: 32 query heads of 128, 8 KV heads.
  const kernels::AttentionShape shape{32, 8, 128, 128, 1.0f / std::sqrt(128.0f)};
  const int64_t d = shape.n_heads * shape.head_dim_v;
  // Three sequences of 8 blocks (256 positions) of random K/V.
  const int n = 3;
  RandomKv rkv(be, shape, n, 8, &rng);
  ASSERT_TRUE(rkv.pool != nullptr);
  const kernels::KvLayout kv = rkv.pool->layout();
  const std::vector<int32_t> pos = {100, 255, 70}, seq = {0, 1, 2};
  const kernels::BatchDesc bd = rkv.Batch(pos, seq);
  std::vector<float> q(static_cast<size_t>(n * shape.n_heads * shape.head_dim_k));
  for (auto& v : q) v = dist(rng);
  DevBuf qd(be, q.size()), att(be, static_cast<size_t>(n * d)), other(be, static_cast<size_t>(n * d));
  ASSERT_TRUE(qd.p && att.p && other.p);
  be->CopyToDevice(qd.p, q.data(), q.size() * sizeof(float));
  // Q8_0: 32-value activation groups; Q4_K: 256.
  // Both chunk kernels merge and quantize: the default one and the raw one.
  for (int run = 0; run < 4; ++run) {
    const int raw = run / 2;
    const DType type = run % 2 == 0 ? DType::kQ8_0 : DType::kQ4_K;
    kernels::cuda::SetAttentionShapesForTest(0, raw, 0);
    const int64_t rows = 64;
    const std::vector<uint8_t> wq = RandomQuantRows(type, rows, d, &rng);
    auto m = be->PrepareMatrix({type, rows, d, wq.data()});
    ASSERT_TRUE(m.ok());
    const kernels::Matrix* ws[1] = {&*m};
    DevBuf y0(be, static_cast<size_t>(n * rows)), y1(be, static_cast<size_t>(n * rows));
    ASSERT_TRUE(y0.p && y1.p);
    std::vector<float> got[2];
    for (int pass = 0; pass < 2; ++pass) {
      ASSERT_TRUE(be->BeginBatch(bd).ok());
      float* out[1] = {pass == 0 ? y0.f() : y1.f()};
      be->MatMul(ws, other.f(), n, out);  // a decode matmul first: the backend learns the group
      be->Attention(qd.f(), shape, kv, 0, att.f());
      if (pass == 1) be->Add(other.f(), other.f(), n, d);  // breaks the fusion
      be->MatMul(ws, att.f(), n, out);
      got[pass] = Download(be, pass == 0 ? y0 : y1, static_cast<size_t>(n * rows));
    }
    ASSERT_EQ(std::memcmp(got[0].data(), got[1].data(), got[0].size() * sizeof(float)), 0)
        << DTypeName(type) << (raw ? " (raw chunk kernel)" : "")
        << ": the O projection after the attention differs from one after a separate quantization";
    ASSERT_GT(MaxMagnitude(got[0]), 0.0) << "an all-zero output proves nothing";
  }
}

// A batch for the attention tests: decode tokens (pos, seq), then a prompt
// chunk of sequence chunk_seq at positions [first, end) (none when first ==
// end).
struct AttentionCase {
  const char* name;
  std::vector<int32_t> pos, seq;
};
AttentionCase MakeCase(const char* name, std::vector<int32_t> pos, std::vector<int32_t> seq,
                       int32_t chunk_seq = 0, int32_t first = 0, int32_t end = 0) {
  AttentionCase c{name, std::move(pos), std::move(seq)};
  for (int32_t p = first; p < end; ++p) c.pos.push_back(p), c.seq.push_back(chunk_seq);
  return c;
}

// The opt-in attention shapes against the default ones, bit for bit, on the
// same batch in one process (SetAttentionShapesForTest): the raw split shape
// for decode tokens, the blocked tiled shape for prompt chunks (from position
// 0, and later in a sequence with a chunk boundary inside a query tile, and
// beside decode tokens), for three head shapes (Llama-3's; GQA 8 with 64-dim
// heads; 256-dim heads).
TEST(GpuAttention, OptInShapesGiveTheDefaultShapesBits) {
  REQUIRE_GPU();
  F32AttentionOrder f32_order;
  auto gpu = kernels::CreateBackend(kCuda, 1);
  ASSERT_TRUE(gpu.ok());
  kernels::Backend* be = gpu->get();
  std::mt19937 rng(29);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const std::vector<AttentionCase> cases = {
      MakeCase("decode", {100, 255, 70}, {0, 1, 2}),
      MakeCase("chunk from 0", {}, {}, 0, 0, 48),
      MakeCase("chunk at 180", {}, {}, 1, 180, 220),
      // 140 tokens: enough that every head shape below takes the tiled path
      // (tokens x KV heads past twice the SMs), so the blocked kernel runs
      // for 64-, 128- and 256-dim heads.
      MakeCase("long chunk at 60", {}, {}, 2, 60, 200),
      MakeCase("decode beside a chunk", {130, 90}, {0, 2}, 1, 61, 97)};
  for (const kernels::AttentionShape shape :
       {kernels::AttentionShape{32, 8, 128, 128, 1.0f / std::sqrt(128.0f)},
        kernels::AttentionShape{16, 2, 64, 64, 0.125f},
        kernels::AttentionShape{8, 4, 256, 256, 0.0625f}}) {
    RandomKv rkv(be, shape, 3, 8, &rng);
    ASSERT_TRUE(rkv.pool != nullptr);
    const kernels::KvLayout kv = rkv.pool->layout();
    for (const AttentionCase& c : cases) {
      const int64_t n = static_cast<int64_t>(c.pos.size());
      const int64_t d = shape.n_heads * shape.head_dim_v;
      std::vector<float> q(static_cast<size_t>(n * shape.n_heads * shape.head_dim_k));
      for (auto& v : q) v = dist(rng);
      DevBuf qd(be, q.size()), out(be, static_cast<size_t>(n * d));
      ASSERT_TRUE(qd.p && out.p);
      be->CopyToDevice(qd.p, q.data(), q.size() * sizeof(float));
      std::vector<float> got[2];
      for (int opt = 0; opt < 2; ++opt) {
        kernels::cuda::SetAttentionShapesForTest(opt, opt, opt);
        ASSERT_TRUE(be->BeginBatch(rkv.Batch(c.pos, c.seq)).ok());
        be->Attention(qd.f(), shape, kv, 0, out.f());
        got[opt] = Download(be, out, static_cast<size_t>(n * d));
      }
      kernels::cuda::SetAttentionShapesForTest(-1, -1, -1);
      const size_t first = FirstDifference(got[0], got[1]);
      ASSERT_EQ(first, got[0].size())
          << c.name << ", heads " << shape.n_heads << "/" << shape.n_kv_heads << " of "
          << shape.head_dim_k << ": the opt-in shapes differ first at token " << first / d
          << " dim " << first % d << " (" << got[0][first] << " vs " << got[1][first] << ")";
      ASSERT_GT(MaxMagnitude(got[0]), 0.0) << "an all-zero output proves nothing";
    }
  }
}

// Decode at long contexts (up to 3,000 positions: 47 chunks, so the wide
// merge kernel runs) through the older shapes (the chunk kernel, each
// head's states merged by one warp) and through the default ones (raw split
// shape, wide merge), and with the wide merge's prescaled terms (opt-in):
// the same bits.
TEST(GpuAttention, OptInShapesAtLongContextsGiveTheDefaultBits) {
  REQUIRE_GPU();
  F32AttentionOrder f32_order;
  auto gpu = kernels::CreateBackend(kCuda, 1);
  ASSERT_TRUE(gpu.ok());
  kernels::Backend* be = gpu->get();
  std::mt19937 rng(37);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const std::vector<int32_t> pos = {3000, 2100, 700}, seq = {0, 1, 2};
  for (const kernels::AttentionShape shape :
       {kernels::AttentionShape{32, 8, 128, 128, 1.0f / std::sqrt(128.0f)},
        kernels::AttentionShape{8, 4, 256, 256, 0.0625f}}) {
    RandomKv rkv(be, shape, 3, 96, &rng);
    ASSERT_TRUE(rkv.pool != nullptr);
    const kernels::KvLayout kv = rkv.pool->layout();
    const int64_t n = static_cast<int64_t>(pos.size()), d = shape.n_heads * shape.head_dim_v;
    std::vector<float> q(static_cast<size_t>(n * shape.n_heads * shape.head_dim_k));
    for (auto& v : q) v = dist(rng);
    DevBuf qd(be, q.size()), out(be, static_cast<size_t>(n * d));
    ASSERT_TRUE(qd.p && out.p);
    be->CopyToDevice(qd.p, q.data(), q.size() * sizeof(float));
    // The older shapes, wide merge alone, raw + wide.
    const char* const names[3] = {"older shapes", "wide merge", "raw + wide merge"};
    std::vector<float> got[3];
    for (int variant = 0; variant < 3; ++variant) {
      kernels::cuda::SetAttentionShapesForTest(0, variant >= 2 ? 1 : 0, variant > 0 ? 1 : 0);
      ASSERT_TRUE(be->BeginBatch(rkv.Batch(pos, seq)).ok());
      be->Attention(qd.f(), shape, kv, 0, out.f());
      got[variant] = Download(be, out, static_cast<size_t>(n * d));
    }
    kernels::cuda::SetAttentionShapesForTest(-1, -1, -1);
    for (int variant = 1; variant < 3; ++variant) {
      const size_t first = FirstDifference(got[0], got[variant]);
      ASSERT_EQ(first, got[0].size())
          << names[variant] << ", heads " << shape.n_heads
          << "/" << shape.n_kv_heads << " of " << shape.head_dim_k << ": token " << first / d
          << " dim " << first % d << " (" << got[0][first] << " vs " << got[variant][first] << ")";
    }
    ASSERT_GT(MaxMagnitude(got[0]), 0.0) << "an all-zero output proves nothing";
  }
}

// The tensor-core attention order (the default; REPRISE_CUDA_ATTN_MMA=0 is off): every
// launch shape forced in turn on the same batch (split chunks with their
// merges, query tiles, a token a block) gives the automatic choice's bits,
// and the result stays within 1e-4 (of max(1, |value|)) of the f32 order's:
// the two differ only by the query's and probabilities' rounding to ~22 bits
// and the tensor core's accumulation, so a wrong fragment, mask or merge
// shows as an O(1) difference. Head shapes: Llama-3's (GQA 4), GQA 8 with
// 64-dim heads, no GQA (64-token tiles), GQA 5 (a token's heads split
// across warps) and GQA 32 (two 16-row tiles a decode block), in KV blocks
// of 32 positions; Llama-3's again in blocks of 3 (smaller than a staging
// thread's row step, and not dividing a 64-position chunk). The chunk
// kernel with the queries in shared memory (REPRISE_CUDA_ATTN_QREGS=0; the
// default keeps them in registers for groups of at most 16) gives the same
// bits too.
TEST(GpuAttention, MmaShapesGiveEachOthersBitsAndStayCloseToTheF32Order) {
  REQUIRE_GPU();
  struct Restore {
    ~Restore() {
      kernels::cuda::SetAttentionMmaForTest(-1, -1);
      kernels::cuda::SetAttentionQRegsForTest(-1);
    }
  } restore;
  auto gpu = kernels::CreateBackend(kCuda, 1);
  ASSERT_TRUE(gpu.ok());
  kernels::Backend* be = gpu->get();
  std::mt19937 rng(41);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const std::vector<AttentionCase> cases = {
      MakeCase("decode", {100, 255, 70}, {0, 1, 2}),
      MakeCase("long decode", {3000, 2100, 700}, {0, 1, 2}),
      MakeCase("chunk from 0", {}, {}, 0, 0, 48),
      MakeCase("long chunk at 60", {}, {}, 2, 60, 200),
      MakeCase("decode beside chunks", {130, 2900}, {0, 2}, 1, 1000, 1077)};
  const kernels::AttentionShape llama{32, 8, 128, 128, 1.0f / std::sqrt(128.0f)};
  const std::pair<kernels::AttentionShape, int> layouts[] = {
      {llama, 32},
      {kernels::AttentionShape{16, 2, 64, 64, 0.125f}, 32},
      {kernels::AttentionShape{8, 8, 128, 128, 1.0f / std::sqrt(128.0f)}, 32},
      {kernels::AttentionShape{40, 8, 128, 128, 1.0f / std::sqrt(128.0f)}, 32},
      {kernels::AttentionShape{64, 2, 128, 128, 1.0f / std::sqrt(128.0f)}, 32},
      {llama, 3}};
  for (const auto& [shape, block_tokens] : layouts) {
    // Blocks enough for position 3,000 (the longest case).
    RandomKv rkv(be, shape, 3, 3072 / block_tokens + 1, &rng, block_tokens);
    ASSERT_TRUE(rkv.pool != nullptr);
    const kernels::KvLayout kv = rkv.pool->layout();
    for (const AttentionCase& c : cases) {
      const int64_t n = static_cast<int64_t>(c.pos.size());
      const int64_t d = shape.n_heads * shape.head_dim_v;
      std::vector<float> q(static_cast<size_t>(n * shape.n_heads * shape.head_dim_k));
      for (auto& v : q) v = dist(rng);
      DevBuf qd(be, q.size()), out(be, static_cast<size_t>(n * d));
      ASSERT_TRUE(qd.p && out.p);
      be->CopyToDevice(qd.p, q.data(), q.size() * sizeof(float));
      const auto run = [&](int on, int forced) {
        kernels::cuda::SetAttentionMmaForTest(on, forced);
        EXPECT_TRUE(be->BeginBatch(rkv.Batch(c.pos, c.seq)).ok());
        be->Attention(qd.f(), shape, kv, 0, out.f());
        return Download(be, out, static_cast<size_t>(n * d));
      };
      const std::vector<float> f32 = run(0, -1), mma = run(1, -1);
      const std::string what = std::string(c.name) + ", heads " + std::to_string(shape.n_heads) +
                               "/" + std::to_string(shape.n_kv_heads) + " of " +
                               std::to_string(shape.head_dim_k) + ", KV blocks of " +
                               std::to_string(block_tokens);
      ASSERT_GT(MaxMagnitude(mma), 0.0) << what << ": an all-zero output proves nothing";
      double worst = 0;
      size_t at = 0;
      for (size_t i = 0; i < f32.size(); ++i) {
        const double diff = std::fabs(static_cast<double>(mma[i]) - f32[i]) /
                            std::max(1.0, std::fabs(static_cast<double>(f32[i])));
        if (!(diff <= worst)) worst = diff, at = i;  // NaN counts as worst
      }
      EXPECT_LE(worst, 1e-4) << what << ": the tensor-core order is " << worst
                             << " from the f32 order at token " << at / d << " dim " << at % d
                             << " (" << mma[at] << " vs " << f32[at] << ")";
      // Each launch shape forced: the automatic choice's bits. Returns where
      // the bits first differ ("" if nowhere).
      const auto differs = [&](int forced) -> std::string {
        const std::vector<float> got = run(1, forced);
        const size_t first = FirstDifference(mma, got);
        if (first == mma.size()) return "";
        std::ostringstream at;
        at << "token " << first / d << " dim " << first % d << " (" << got[first] << " vs "
           << mma[first] << ")";
        return at.str();
      };
      ASSERT_EQ(differs(0), "") << what << ": shape split differs from the automatic choice";
      ASSERT_EQ(differs(1), "") << what << ": shape tiles differs from the automatic choice";
      ASSERT_EQ(differs(2), "") << what << ": shape per token differs from the automatic choice";
      kernels::cuda::SetAttentionQRegsForTest(0);  // the queries in shared memory
      ASSERT_EQ(differs(0), "") << what << ": the chunk kernel with shared-memory queries differs";
      ASSERT_EQ(differs(-1), "") << what << ": shared-memory queries (automatic) differ";
      kernels::cuda::SetAttentionQRegsForTest(-1);
    }
  }
}

#endif  // REPRISE_HAVE_CUDA

}  // namespace
}  // namespace reprise::testing
