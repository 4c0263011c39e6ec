// Blocked causal attention over a sequence's KV blocks (F32, F16 or Q8_0 rows)
// with an online softmax, for the query heads of one GQA group.
//
// Positions are processed in tiles of kAttentionTile (32) consecutive
// positions, tile 0 first (Q8_0 rows are dequantized a tile at a time, through
// LoadKvRow: never a float copy of the whole context). Each tile's K rows for
// the kv head are converted to F32 once into scratch, transposed ([head_dim][32]) so that 32 scores come
// out of head_dim broadcast-FMAs, and its V rows are converted once; both are
// then reused by every query head of the group and every query token of the
// run. Per (query token, head) the state is the running max m, the running sum
// l and the accumulator o[head_dim_v]; the result is o / l.
//
// Determinism contract: the float operations applied for one (token, head)
// depend only on its q vector, its position and the KV contents, never on the
// other tokens or heads of the call, so batch composition, prompt chunking and
// thread count do not change results by a single bit. The SIMD versions differ
// from the scalar reference only by exp() and by the order of the 32-lane sum.
#pragma once

#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace reprise::kernels {

inline constexpr int kAttentionTile = 32;

struct AttentionParams {
  int64_t head_dim_k = 0;  // per-head width of q and K
  int64_t head_dim_v = 0;  // per-head width of V and the output
  int block_tokens = 0;    // rows per KV block
  DType kv_type = DType::kF32;  // KV row format (kernels/kv_format.h): F32, F16 or Q8_0
  int64_t k_row_bytes = 0;      // bytes of one K row (0: head_dim_k F32 values)
  int64_t v_row_bytes = 0;
  float scale = 1.0f;      // score multiplier (1/sqrt(head_dim_k))
};

inline int64_t KRowBytes(const AttentionParams& p) {
  return p.k_row_bytes > 0 ? p.k_row_bytes : 4 * p.head_dim_k;
}
inline int64_t VRowBytes(const AttentionParams& p) {
  return p.v_row_bytes > 0 ? p.v_row_bytes : 4 * p.head_dim_v;
}

// Query tokens of one sequence and the query heads [head_begin, head_end) that
// all read kv head `kv_head`.
struct AttentionRun {
  const float* q = nullptr;  // token t, head h: q + t * q_stride + h * head_dim_k
  int64_t q_stride = 0;
  const int32_t* pos = nullptr;  // [n_tok] position of each token (attends to 0..pos)
  int64_t n_tok = 0;
  float* out = nullptr;  // token t, head h: out + t * out_stride + h * head_dim_v
  int64_t out_stride = 0;
  // Block b of the sequence (this layer), head-major (kv/block_pool.h): K
  // [n_kv_heads][block_tokens][head_dim_k], V [n_kv_heads][block_tokens]
  // [head_dim_v]; at least max(pos) / block_tokens + 1 entries.
  const uint8_t* const* k_blocks = nullptr;
  const uint8_t* const* v_blocks = nullptr;
  int64_t kv_head = 0;
  int64_t head_begin = 0, head_end = 0;
};

// Per-thread scratch; grows on first use for a shape and never shrinks.
class AttentionScratch {
 public:
  float* Get(int64_t n) {
    if (static_cast<int64_t>(buf_.size()) < n) buf_.resize(n);
    return buf_.data();
  }

 private:
  std::vector<float> buf_;
};

// Writes the attention output of every (token, head) of `run`. Uses the best
// implementation for this CPU (chosen once).
void Attend(const AttentionParams& p, const AttentionRun& run, AttentionScratch* scratch);

// The portable version of the same algorithm (the oracle in tests).
namespace ref {
void Attend(const AttentionParams& p, const AttentionRun& run, AttentionScratch* scratch);
}  // namespace ref

// The SIMD versions behind Attend(), exposed for tests; call one only when
// GetCpuFeatures() reports its extension (avx2 / avx512).
namespace avx2 {
void Attend(const AttentionParams& p, const AttentionRun& run, AttentionScratch* scratch);
}  // namespace avx2
namespace avx512 {
void Attend(const AttentionParams& p, const AttentionRun& run, AttentionScratch* scratch);
}  // namespace avx512

}  // namespace reprise::kernels
