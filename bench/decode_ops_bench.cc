// The decode step's other kernels alone on the GPU (the matmuls are
// gemv_bench's): RMSNorm, add + RMSNorm, activation quantization, SwiGLU, the
// residual add, and paged decode attention at several context lengths, for
// one token of the Llama-3-8B shape (d 4096, FFN 14336, 32 heads, 8 KV heads
// of 128, F16 KV in 16-position blocks). Each is launched `iters` times
// back to back on one stream and timed with CUDA events, so a figure is the
// kernel plus the gap between consecutive kernels (what a replayed decode
// graph pays per kernel). Prints one JSON line per op and the per-token sum
// of 32 layers.
// Usage: decode_ops_bench [iters=500]
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#ifdef REPRISE_HAVE_CUDA
#include "cuda_bench_util.h"
#include "kernels/cuda/cuda_kernels.h"
#endif

#ifndef REPRISE_HAVE_CUDA
int main() {
  std::fprintf(stderr, "decode_ops_bench: built without CUDA\n");
  return 1;
}
#else
namespace {

using namespace reprise;
using namespace reprise::kernels;
using namespace reprise::kernels::cuda;

using reprise::bench::BenchValues;
using reprise::bench::DevAlloc;
using reprise::bench::HaveGpu;

// Microseconds per launch of `launch`, over `iters` back-to-back launches.
double Time(cudaStream_t s, int iters, const std::function<void()>& launch) {
  return reprise::bench::TimeLaunchesUs(s, 20, iters, [&](int) { launch(); });
}

}  // namespace

int main(int argc, char** argv) {
  const int iters = argc > 1 ? std::atoi(argv[1]) : 500;
  if (!HaveGpu()) return 1;
  if (iters < 1) {
    std::fprintf(stderr, "decode_ops_bench: iters must be >= 1\n");
    return 2;
  }
  constexpr int64_t d = 4096, ff = 14336, n_heads = 32, n_kv = 8, hd = 128;
  constexpr int kLayers = 32;
  cudaStream_t s;
  BENCH_CUDA_CHECK(cudaStreamCreate(&s));
  const std::vector<float> host = BenchValues(ff);
  float* x = DevAlloc<float>(ff);
  float* y = DevAlloc<float>(ff);
  float* w = DevAlloc<float>(ff);
  float* out = DevAlloc<float>(ff);
  BENCH_CUDA_CHECK(cudaMemcpy(x, host.data(), sizeof(float) * ff, cudaMemcpyHostToDevice));
  BENCH_CUDA_CHECK(cudaMemcpy(y, host.data(), sizeof(float) * ff, cudaMemcpyHostToDevice));
  BENCH_CUDA_CHECK(cudaMemcpy(w, host.data(), sizeof(float) * ff, cudaMemcpyHostToDevice));
  ActQ act{DevAlloc<int8_t>(ff), DevAlloc<float>(ff / 32), DevAlloc<int32_t>(ff / 32)};

  struct Op {
    const char* name;
    int per_layer;  // launches per layer of a decode step
    double us;
  };
  std::vector<Op> ops;
  auto add = [&](const char* name, int per_layer, double us) {
    ops.push_back({name, per_layer, us});
    std::printf("{\"op\": \"%s\", \"us\": %.2f, \"per_layer\": %d}\n", name, us, per_layer);
    std::fflush(stdout);
  };
  // Launches per layer as model.cc issues them: two add + norms (the
  // previous layer's residual add runs in the attention norm), four
  // quantizations, one SwiGLU; the plain norm and add run once a step.
  add("rms_norm", 0, Time(s, iters, [&] { LaunchRmsNorm(x, w, 1, d, 1e-5f, out, s); }));
  // x += 0 keeps x bounded however many times it runs: y is zero here.
  float* zero = DevAlloc<float>(ff);
  add("add_rms_norm", 2,
      Time(s, iters, [&] { LaunchAddRmsNorm(x, zero, w, 1, d, 1e-5f, out, s); }));
  const double quant_4096 =
      Time(s, iters, [&] { LaunchQuantizeAct(DType::kQ4_K, out, 1, d, act, s); });
  add("quantize_act_4096", 3, quant_4096);
  add("quantize_act_14336", 1,
      Time(s, iters, [&] { LaunchQuantizeAct(DType::kQ4_K, y, 1, ff, act, s); }));
  add("silu_mul", 1, Time(s, iters, [&] { LaunchSiluMul(out, y, ff, s); }));
  add("add", 0, Time(s, iters, [&] { LaunchAdd(x, zero, d, s); }));
  // The fused decode path (REPRISE_CUDA_FUSE, on by default): the add + norms
  // and SwiGLU write the next matmul's activations; only the attention
  // output (the O projection's input) keeps its quantize kernel.
  const double fused_norm = Time(s, iters, [&] {
    LaunchAddRmsNormQuant(x, zero, w, 1, d, 1e-5f, out, 256, act, s);
  });
  add("add_rms_norm_quant", 0, fused_norm);
  const double fused_silu = Time(s, iters, [&] { LaunchSiluMulQuant(out, y, 1, ff, 256, act, s); });
  add("silu_mul_quant", 0, fused_silu);
  const double fused_extra = 2 * fused_norm + fused_silu + quant_4096;  // the O input's quantization

  // Paged decode attention over F16 KV: one layer, blocks in order.
  const AttentionShape shape{n_heads, n_kv, hd, hd, 1.0f / 11.3137085f};
  constexpr int kBlockTokens = 16;
  double attn_512 = 0;
  for (const int32_t ctx : {512, 4096, 32768}) {
    const int64_t blocks = (ctx + kBlockTokens - 1) / kBlockTokens;
    KvLayout kv;
    kv.n_layers = 1;
    kv.n_kv_heads = n_kv;
    kv.block_tokens = kBlockTokens;
    kv.head_dim_k = kv.head_dim_v = hd;
    kv.type = DType::kF16;
    kv.k_row_bytes = kv.v_row_bytes = hd * 2;
    kv.k_layer_bytes = kv.v_layer_bytes = n_kv * kBlockTokens * hd * 2;
    kv.block_bytes = kv.k_layer_bytes + kv.v_layer_bytes;
    kv.base = DevAlloc<uint8_t>(blocks * kv.block_bytes, 0x3c);  // f16 0x3c3c: ~1.06
    std::vector<int32_t> table(static_cast<size_t>(blocks));
    for (int64_t i = 0; i < blocks; ++i) table[i] = static_cast<int32_t>(i);
    int32_t* table_d = DevAlloc<int32_t>(blocks);
    BENCH_CUDA_CHECK(
        cudaMemcpy(table_d, table.data(), sizeof(int32_t) * blocks, cudaMemcpyHostToDevice));
    const int32_t pos_h = ctx - 1, zero_h = 0;
    int32_t* pos_d = DevAlloc<int32_t>(1);
    int32_t* seq_d = DevAlloc<int32_t>(1);
    BENCH_CUDA_CHECK(cudaMemcpy(pos_d, &pos_h, sizeof(int32_t), cudaMemcpyHostToDevice));
    BENCH_CUDA_CHECK(cudaMemcpy(seq_d, &zero_h, sizeof(int32_t), cudaMemcpyHostToDevice));
    BatchDev b;
    b.n = 1;
    b.tokens = seq_d;
    b.pos = pos_d;
    b.seq = seq_d;
    b.block_table = table_d;
    b.max_blocks = static_cast<int32_t>(blocks);
    float* q = DevAlloc<float>(n_heads * hd);
    BENCH_CUDA_CHECK(
        cudaMemcpy(q, host.data(), sizeof(float) * n_heads * hd, cudaMemcpyHostToDevice));
    float* att = DevAlloc<float>(n_heads * hd);
    const int64_t scratch_floats = AttentionScratchFloats(shape, 1, ctx - 1);
    float* scratch = DevAlloc<float>(scratch_floats);
    int sms = 0;
    BENCH_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    int32_t* counters = DevAlloc<int32_t>(n_kv);
    BENCH_CUDA_CHECK(cudaMemset(counters, 0, sizeof(int32_t) * n_kv));
    const double us = Time(s, iters, [&] {
      LaunchAttention(q, shape, kv, 0, b, ctx - 1, scratch, scratch_floats, counters, nullptr, 0,
                      sms, att, s);
    });
    BENCH_CUDA_CHECK(cudaFree(counters));
    const double kv_gb_s = static_cast<double>(ctx) * kv.k_row_bytes * 2 * n_kv / us / 1000.0;
    std::printf(
        "{\"op\": \"attention_decode\", \"ctx\": %d, \"us\": %.2f, \"kv_gb_per_s\": %.1f}\n", ctx,
        us, kv_gb_s);
    std::fflush(stdout);
    if (ctx == 512) {
      attn_512 = us;
      // The q/k RoPE + KV store kernel of the same step (Llama: no q/k norm).
      float* k = DevAlloc<float>(n_kv * hd);
      float* v = DevAlloc<float>(n_kv * hd);
      float* rope = DevAlloc<float>(hd);
      BENCH_CUDA_CHECK(cudaMemcpy(rope, host.data(), sizeof(float) * hd, cudaMemcpyHostToDevice));
      QkRopeStoreArgs qa;
      qa.q = q;
      qa.k = k;
      qa.v = v;
      qa.rope = rope;
      qa.rope_dims = hd;
      qa.shape = shape;
      qa.kv = &kv;
      qa.layer = 0;
      const double rope_us = Time(s, iters, [&] { LaunchQkRopeStore(qa, b, s); });
      add("qk_rope_kv_store", 1, rope_us);
      for (void* p : std::vector<void*>{k, v, rope}) BENCH_CUDA_CHECK(cudaFree(p));
    }
    for (void* p : std::vector<void*>{kv.base, table_d, pos_d, seq_d, q, att, scratch})
      BENCH_CUDA_CHECK(cudaFree(p));
  }
  double per_layer = attn_512;
  for (const Op& o : ops) per_layer += o.per_layer * o.us;
  std::printf("{\"op\": \"per_token_non_matmul_at_512\", \"layers\": %d, \"us\": %.1f}\n", kLayers,
              kLayers * per_layer);
  // Fused: the same minus the separate norms, quantizations and SwiGLU.
  double fused_layer = per_layer + fused_extra;
  for (const Op& o : ops) {
    const std::string name = o.name;
    if (name == "add_rms_norm" || name.rfind("quantize_act", 0) == 0 || name == "silu_mul") {
      fused_layer -= o.per_layer * o.us;
    }
  }
  std::printf("{\"op\": \"per_token_non_matmul_fused_at_512\", \"layers\": %d, \"us\": %.1f}\n",
              kLayers, kLayers * fused_layer);
  for (void* p : std::vector<void*>{x, y, w, out, zero, act.q, act.d, act.sum})
    BENCH_CUDA_CHECK(cudaFree(p));
  BENCH_CUDA_CHECK(cudaStreamDestroy(s));
  return 0;
}
#endif
