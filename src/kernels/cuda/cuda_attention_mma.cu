// Paged attention on the tensor cores (the default; REPRISE_CUDA_ATTN_MMA=0
// turns it off, AttentionMmaOn): a canonical order of its own, for F16 KV
// with head dims of 64 or 128 (K and V alike; MmaFits), that every launch shape follows, so
// with it on, which shape runs still never changes a bit.
//
// The order of one (token, query head):
//  - the query is split into two f16 halves, q = hi + lo (hi = q rounded,
//    magnitudes above 65504 saturated; lo = q - hi rounded), so the scores
//    keep ~22 bits of the query;
//  - positions are cut into the same 64-position chunks as the f32 order;
//    a chunk's state is computed from scratch in one step:
//      score_j = scale * acc_j, acc_j = one f32 accumulator from +0 taking
//        for each 16-dim slice of the head, in dim order, the mma.sync
//        m16n8k16 of the slice's hi and then of its lo against k_j;
//      m = max over the chunk's positions <= the token's (exact in any order);
//      p_j = e^(score_j - m) for those positions, 0 past the token;
//      p_j split into f16 hi + lo like q;
//      l and o: one f32 accumulator each from +0 taking, for each 16-position
//        slice of the chunk in position order, the mma of the slice's p hi
//        and then p lo against v (against a column of ones for l);
//  - chunk states merge in chunk order exactly as the f32 order merges them
//    (MergeState: the first chunk's state as it is, then each next one), and
//    the result is o / l.
// The tensor core adds a slice's 16 exact f16 products to its accumulator
// in its own fixed way, the same for every row and column of an
// instruction, so a (token, head) gets the same bits in whichever row of
// whichever warp it sits, beside whichever other rows. Positions past a
// token's own contribute p = 0 (their V rows are zero, or real values times
// 0: a +-0 product, which changes no sum); staged rows past the last valid
// position are zero-filled, so no garbage reaches an accumulator.
//
// Two kernels run it (their building blocks: cuda_attention_mma.cuh): the
// chunk kernel (cuda_attention_mma_decode.cu; decode: blocks of four warps per
// (token, kv head), each taking one or more chunks in turn, write the chunk
// states the f32 order's merges read: MergeHead in the last block to finish,
// or the merge / wide-merge kernels)
// and the tile kernel (prefill: one block per query tile of up to
// kMmaTileRows (token, head) rows of one kv head, each warp 16 rows, K/V
// chunks copied a chunk ahead by cp.async and shared by all rows; with no
// tiles, one token a block). Against the f32 order on the CUDA cores the
// results differ by the query's and the probabilities' rounding to ~22 bits
// and the tensor core's accumulation (GpuAttention.MmaShapes*).
#include <algorithm>

#include "kernels/cuda/cuda_attention_mma.cuh"

namespace reprise::kernels::cuda::attn {
namespace {

// Prefill: block (query tile, kv head); tiles[2 i] = the tile's first batch
// index, tiles[2 i + 1] = its token count (consecutive positions of one
// sequence), or with tiles == nullptr block i is token i alone. `only`: 0
// every tile, 1 the tiles of several tokens, 2 the one-token tiles (decode
// tokens beside a prompt chunk, run by a launch of one- or two-warp blocks
// instead of idling most of a block sized for the prompt's tiles). Warp w owns
// rows 16 w .. 16 w + 15 (row = token * group + head within the group) and
// keeps their running (m, l, o) in registers; the K/V chunks are copied a
// chunk ahead into two buffers.
template <int kD>
__global__ void __launch_bounds__(kMmaTileRows / 16 * 32, 1)
    AttentionMmaTileKernel(Ctx c, const int32_t* tiles, int only, float* out) {
  extern __shared__ __align__(16) unsigned char mma_sh[];
  const int64_t t0 = tiles != nullptr ? tiles[2 * blockIdx.x] : blockIdx.x;
  const int nt = tiles != nullptr ? tiles[2 * blockIdx.x + 1] : 1;
  if ((only == 1 && nt == 1) || (only == 2 && nt != 1)) return;  // the other launch's tile
  const int kvh = static_cast<int>(blockIdx.y);
  const int nw = blockDim.x / 32, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, q4 = lane % 4;
  const int group = static_cast<int>(c.s.n_heads / c.s.n_kv_heads);
  const int rows = nt * group;
  __half* qh = reinterpret_cast<__half*>(mma_sh);
  __half* ql = qh + nw * 16 * kStride<kD>;
  // K buffers 0, 1 then V buffers 0, 1, kBuf halves each.
  constexpr int kBuf = kChunk * kStride<kD>;
  __half* const kv_sh = ql + nw * 16 * kStride<kD>;
  const auto kbuf = [&](int i) { return kv_sh + (i & 1) * kBuf; };
  const auto vbuf = [&](int i) { return kv_sh + (2 + (i & 1)) * kBuf; };
  const int32_t* table = c.b.block_table + static_cast<int64_t>(c.b.seq[t0]) * c.b.max_blocks;
  const int max_pos = c.b.pos[t0 + nt - 1];  // positions increase along the tile
  StageKv<kD>(c, table, kvh, 0, min(kChunk, max_pos + 1), kbuf(0), vbuf(0));
  CpAsyncCommit();
  StageQ<kD>(c, t0, nt, kvh, nw * 16, qh, ql);
  const int ra = warp * 16 + g, rb = ra + 8;
  const int pos_a = ra < rows ? c.b.pos[t0 + ra / group] : -1;
  const int pos_b = rb < rows ? c.b.pos[t0 + rb / group] : -1;
  const int last_row = min(warp * 16 + 15, rows - 1);
  const int warp_pos = warp * 16 < rows ? c.b.pos[t0 + last_row / group] : -1;
  const int n_chunks = max_pos / kChunk + 1;
  float o[kD / 8][4];
#pragma unroll
  for (int d8 = 0; d8 < kD / 8; ++d8) o[d8][0] = o[d8][1] = o[d8][2] = o[d8][3] = 0.0f;
  float tm[2] = {-FLT_MAX, -FLT_MAX}, tl[2] = {0.0f, 0.0f};
  for (int ch = 0; ch < n_chunks; ++ch) {
    const int c_begin = ch * kChunk;
    if (ch + 1 < n_chunks) {
      const int next = c_begin + kChunk;
      StageKv<kD>(c, table, kvh, next, min(kChunk, max_pos + 1 - next), kbuf(ch + 1), vbuf(ch + 1));
      CpAsyncCommit();
      CpAsyncWait<1>();
    } else {
      CpAsyncWait<0>();
    }
    __syncthreads();  // chunk ch (and, the first time, the queries) visible to all
    if (warp_pos >= c_begin) {
      float m[2], l[2];
      uint32_t ph[4][4], pl[4][4];
      MmaScores<kD>(qh + warp * 16 * kStride<kD>, ql + warp * 16 * kStride<kD>, kbuf(ch),
                    c_begin, pos_a, pos_b, c.s.scale, m, l, ph, pl);
      const bool act[2] = {pos_a >= c_begin, pos_b >= c_begin};
      const bool first = ch == 0;
      float ca[2] = {0.0f, 0.0f}, cb[2] = {1.0f, 1.0f};
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        if (!act[r]) continue;
        if (first) {
          tm[r] = m[r];
          tl[r] = l[r];
        } else {  // MergeState
          const float mn = fmaxf(tm[r], m[r]);
          ca[r] = expf(FSub(tm[r], mn));
          cb[r] = expf(FSub(m[r], mn));
          tl[r] = FAdd(FMul(tl[r], ca[r]), FMul(l[r], cb[r]));
          tm[r] = mn;
        }
      }
      MmaPv<kD>(ph, pl, vbuf(ch), 0, 1, [&](int d8, const float (&acc)[4]) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int r = i / 2;
          if (!act[r]) continue;
          o[d8][i] = first ? acc[i] : FAdd(FMul(o[d8][i], ca[r]), FMul(acc[i], cb[r]));
        }
      });
    }
    __syncthreads();  // chunk ch is no longer read: its buffers take chunk ch + 2
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = r == 0 ? ra : rb;
    if (row >= rows) continue;
    const int64_t tok = t0 + row / group, h = static_cast<int64_t>(kvh) * group + row % group;
    float* dst = out + (tok * c.s.n_heads + h) * kD + 2 * q4;
#pragma unroll
    for (int d8 = 0; d8 < kD / 8; ++d8) {
      dst[d8 * 8] = FDiv(o[d8][2 * r], tl[r]);
      dst[d8 * 8 + 1] = FDiv(o[d8][2 * r + 1], tl[r]);
    }
  }
}

template <int kD>
void TilesFor(const Ctx& c, const int32_t* tiles, int64_t n_blocks, int64_t tile_tokens, int only,
              float* out, cudaStream_t s) {
  const int warps = MmaWarps(tile_tokens * (c.s.n_heads / c.s.n_kv_heads));
  const size_t smem = MmaSmem<kD>(warps, 2);
  static bool configured = false;
  if (!configured) {
    cudaFuncSetAttribute(AttentionMmaTileKernel<kD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         static_cast<int>(MmaSmem<kD>(kMmaTileRows / 16, 2)));
    configured = true;
  }
  const dim3 grid(static_cast<unsigned>(n_blocks), static_cast<unsigned>(c.s.n_kv_heads));
  AttentionMmaTileKernel<kD><<<grid, warps * 32, smem, s>>>(c, tiles, only, out);
}

}  // namespace


bool MmaFits(const AttentionShape& s, const KvLayout& kv) {
  const int64_t group = s.n_kv_heads > 0 ? s.n_heads / s.n_kv_heads : 0;
  Ctx c{};
  c.s = s;
  c.kv = kv;
  return (s.head_dim_k == 64 || s.head_dim_k == 128) && s.head_dim_v == s.head_dim_k &&
         group >= 1 && group <= 32 && s.n_heads == group * s.n_kv_heads && RawRowsFit(c);
}

int64_t MmaTileTokens(const AttentionShape& s) {
  const int64_t group = s.n_heads / s.n_kv_heads;
  return std::max<int64_t>(1, std::min<int64_t>(64, kMmaTileRows / group));
}

void LaunchMmaTiles(const Ctx& c, const int32_t* tiles, int64_t n_blocks, int64_t tile_tokens,
                    int only, float* out, cudaStream_t s) {
  if (c.s.head_dim_k == 64) {
    TilesFor<64>(c, tiles, n_blocks, tile_tokens, only, out, s);
  } else {
    TilesFor<128>(c, tiles, n_blocks, tile_tokens, only, out, s);
  }
}

}  // namespace reprise::kernels::cuda::attn
