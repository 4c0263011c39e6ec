// The tensor-core attention order's decode chunk kernel (the split shape;
// the order itself: cuda_attention_mma.cu's header comment) and its launch.
#include <algorithm>
#include <type_traits>

#include "kernels/cuda/cuda_attention_mma.cuh"

namespace reprise::kernels::cuda::attn {
namespace {

// Decode (the split shape): block (row r, kv head, z) computes chunks z, z +
// gridDim.z, ... (those at or before the token's position) one after the
// other, the next chunks' K/V copied by cp.async while this one is computed,
// and writes each chunk's state in the f32 order's scratch layout ([(r *
// n_heads + h) * max_chunks + chunk] of (m, l, o[hv])). Within a chunk the
// kChunkWarps warps share each 16-row tile of the group's heads: warp w
// scores the chunk's slice w (16 positions), the row maxima meet in shared
// memory, warp w's probabilities go to shared memory as slice w's A
// fragments, and then warp w takes the 16-dim groups w, w + kChunkWarps, ...
// of P . V (warp 0 also l): every accumulator takes the same mma sequence as
// in one warp, so the same bits. The last block of a (row, kv head) to
// finish merges the states (counters non-null), as AttentionChunkKernel
// does. With c.sub, row r serves batch token c.sub[r]. (Three K/V buffers,
// two copies in flight, measured no faster on an H100: the kernel issues
// more than it waits.)
// kQRegs (the default, off with REPRISE_CUDA_ATTN_QREGS=0, AttentionQRegsOn;
// one 16-row tile, group <= 16): the queries' fragments held
// in registers (staged once through chunk 1's V buffer), so a block's
// shared memory is its four K/V buffers alone (68 KiB) and three blocks
// share an SM instead of two (at 32k the kernel kept 8 warps an SM busy
// 30% of issue slots, stalled on dependent latencies; on an H100 tg32 after
// 32,768 tokens went 187.9 -> 204.5 tok/s). The same instructions on the
// same operands: the same bits.
constexpr int kChunkWarps = 4;

template <int kD, bool kQRegs>
__global__ void __launch_bounds__(kChunkWarps * 32, kQRegs ? 3 : 0)
    AttentionMmaChunkKernel(Ctx c, int64_t max_chunks, float* part, int32_t* counters,
                            float* out) {
  extern __shared__ __align__(16) unsigned char mma_sh[];
  __shared__ int last_sh;
  __shared__ float max_sh[kChunkWarps][16];
  __shared__ uint4 frag_sh[kChunkWarps][2][32];  // slice w's p fragments (hi, lo) by lane
  const int64_t r = blockIdx.x;  // scratch and counter row
  const int64_t t = c.sub != nullptr ? c.sub[r] : r;
  const int kvh = static_cast<int>(blockIdx.y);
  const int pos = c.b.pos[t];
  const int n_chunks = pos / kChunk + 1;
  const int z = static_cast<int>(blockIdx.z), zs = static_cast<int>(gridDim.z);
  if (z >= n_chunks) return;
  const int mine = (n_chunks - 1 - z) / zs + 1;  // chunks z, z + zs, ... before n_chunks
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, q4 = lane % 4;
  const int group = static_cast<int>(c.s.n_heads / c.s.n_kv_heads);
  const int row_tiles = (group + 15) / 16;
  constexpr int kBuf = kChunk * kStride<kD>;
  const int32_t* table = c.b.block_table + static_cast<int64_t>(c.b.seq[t]) * c.b.max_blocks;
  const auto stage_chunk = [&](int i, __half* k_dst, __half* v_dst) {
    const int p0 = (z + i * zs) * kChunk;
    StageKv<kD>(c, table, kvh, p0, min(kChunk, pos + 1 - p0), k_dst, v_dst);
    CpAsyncCommit();
  };
  // qh, ql, K 0, K 1, V 0, V 1 (kQRegs: K 0, K 1, V 0, V 1, the queries
  // staged in V 1 until they are in registers).
  __half* const base = reinterpret_cast<__half*>(mma_sh);
  __half* const kv_sh = kQRegs ? base : base + 2 * row_tiles * 16 * kStride<kD>;
  const auto kbuf = [&](int i) { return kv_sh + (i & 1) * kBuf; };
  const auto vbuf = [&](int i) { return kv_sh + (2 + (i & 1)) * kBuf; };
  __half* const qh = kQRegs ? vbuf(1) : base;
  __half* const ql = qh + row_tiles * 16 * kStride<kD>;
  stage_chunk(0, kbuf(0), vbuf(0));
  StageQ<kD>(c, t, 1, kvh, row_tiles * 16, qh, ql);
  std::conditional_t<kQRegs, QFrags<kD>, int> qf{};  // kQRegs: the queries' fragments
  if constexpr (kQRegs) {
    __syncthreads();  // the staged queries visible to all
#pragma unroll
    for (int k16 = 0; k16 < kD / 16; ++k16) LoadQSlice<kD>(qh, ql, k16, qf.h[k16], qf.l[k16]);
    __syncthreads();  // V 1 is free for chunk 1
  }
  const int64_t stride = kD + 2;
  for (int i = 0; i < mine; ++i) {
    const int chunk = z + i * zs, p_begin = chunk * kChunk;
    if (i + 1 < mine) {
      stage_chunk(i + 1, kbuf(i + 1), vbuf(i + 1));
      CpAsyncWait<1>();
    } else {
      CpAsyncWait<0>();
    }
    __syncthreads();  // chunk i (and, the first time, the queries) visible to all
#pragma unroll
    for (int rt = 0; rt < 2; ++rt) {
      if (rt >= row_tiles) break;
      const int ra = rt * 16 + g, rb = ra + 8;
      const int pos_a = ra < group ? pos : -1, pos_b = rb < group ? pos : -1;
      float s[2][4], m[2];
      if constexpr (kQRegs) {  // one row tile
        SliceScoresBy<kD, 1>(
            [&](int k16, uint32_t (&ah)[4], uint32_t (&al)[4]) {
#pragma unroll
              for (int k = 0; k < 4; ++k) ah[k] = qf.h[k16][k], al[k] = qf.l[k16][k];
            },
            kbuf(i), warp, c.s.scale, s);
      } else {
        SliceScores<kD, 1>(qh + rt * 16 * kStride<kD>, ql + rt * 16 * kStride<kD>, kbuf(i), warp,
                           c.s.scale, s);
      }
      SliceMax<1>(s, p_begin + warp * 16, pos_a, pos_b, m);
      if (q4 == 0) max_sh[warp][g] = m[0], max_sh[warp][g + 8] = m[1];
      __syncthreads();
#pragma unroll
      for (int w = 0; w < kChunkWarps; ++w) {
        m[0] = fmaxf(m[0], max_sh[w][g]);
        m[1] = fmaxf(m[1], max_sh[w][g + 8]);
      }
      uint32_t mh[1][4], ml[1][4];
      SliceProbs<1>(s, p_begin + warp * 16, pos_a, pos_b, m, mh, ml);
      frag_sh[warp][0][lane] = make_uint4(mh[0][0], mh[0][1], mh[0][2], mh[0][3]);
      frag_sh[warp][1][lane] = make_uint4(ml[0][0], ml[0][1], ml[0][2], ml[0][3]);
      __syncthreads();
      uint32_t ph[4][4], pl[4][4];
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        const uint4 hi = frag_sh[kk][0][lane], lo = frag_sh[kk][1][lane];
        ph[kk][0] = hi.x, ph[kk][1] = hi.y, ph[kk][2] = hi.z, ph[kk][3] = hi.w;
        pl[kk][0] = lo.x, pl[kk][1] = lo.y, pl[kk][2] = lo.z, pl[kk][3] = lo.w;
      }
      const auto state = [&](int row) {
        return row < group ? part + ((r * c.s.n_heads + kvh * group + row) * max_chunks + chunk) *
                                        stride
                           : nullptr;
      };
      float* dst_a = state(ra);
      float* dst_b = state(rb);
      if (warp == 0) {
        float l[2];
        OnesSum(ph, pl, l);
        if (q4 == 0) {
          if (dst_a != nullptr) dst_a[0] = m[0], dst_a[1] = l[0];
          if (dst_b != nullptr) dst_b[0] = m[1], dst_b[1] = l[1];
        }
      }
      MmaPv<kD>(ph, pl, vbuf(i), warp, kChunkWarps, [&](int d8, const float (&acc)[4]) {
        const int e = 2 + d8 * 8 + 2 * q4;
        if (dst_a != nullptr) dst_a[e] = acc[0], dst_a[e + 1] = acc[1];
        if (dst_b != nullptr) dst_b[e] = acc[2], dst_b[e + 1] = acc[3];
      });
      __syncthreads();  // max_sh and frag_sh are read: the next tile or chunk may write them
    }
  }
  if (counters == nullptr) return;  // a merge kernel merges
  if (!LastChunkBlock(counters + r * c.s.n_kv_heads + kvh, n_chunks, &last_sh, mine)) return;
  for (int gh = warp; gh < group; gh += kChunkWarps) {
    const int64_t h = static_cast<int64_t>(kvh) * group + gh;
    MergeHead(part + (r * c.s.n_heads + h) * max_chunks * stride, n_chunks, kD,
              out + (t * c.s.n_heads + h) * kD);
  }
}

template <int kD, bool kQRegs>
void ChunksWith(const Ctx& c, int64_t rows, int64_t chunks, int n_sms, int row_tiles,
                float* scratch, int32_t* counters, float* out, cudaStream_t s) {
  // Chunks a block: enough that the grid fits about the blocks an SM holds
  // at once (two; three with kQRegs, whose shared memory is the K/V buffers
  // alone), so each block's copies of the next chunks overlap its work on
  // this one. Which block takes which chunk changes no bit (each chunk's
  // state is computed alone).
  const int64_t units = rows * c.s.n_kv_heads * chunks;
  const int64_t resident = (kQRegs ? 3 : 2) * static_cast<int64_t>(std::max(n_sms, 1));
  const int64_t per = std::max<int64_t>(1, (units + resident - 1) / resident);
  const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(c.s.n_kv_heads),
                  static_cast<unsigned>((chunks + per - 1) / per));
  const size_t smem = kQRegs ? MmaSmem<kD>(0, 2) : MmaSmem<kD>(row_tiles, 2);
  static bool configured = false;
  if (!configured) {
    cudaFuncSetAttribute(AttentionMmaChunkKernel<kD, kQRegs>,
                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                         static_cast<int>(kQRegs ? smem : MmaSmem<kD>(2, 2)));
    configured = true;
  }
  AttentionMmaChunkKernel<kD, kQRegs>
      <<<grid, kChunkWarps * 32, smem, s>>>(c, chunks, scratch, counters, out);
}

template <int kD>
void ChunksFor(const Ctx& c, int64_t rows, int64_t chunks, int n_sms, float* scratch,
               int32_t* counters, float* out, cudaStream_t s) {
  const int row_tiles = MmaWarps(c.s.n_heads / c.s.n_kv_heads);
  if (row_tiles == 1 && AttentionQRegsOn()) {
    ChunksWith<kD, true>(c, rows, chunks, n_sms, row_tiles, scratch, counters, out, s);
  } else {
    ChunksWith<kD, false>(c, rows, chunks, n_sms, row_tiles, scratch, counters, out, s);
  }
}

}  // namespace

void LaunchMmaChunks(const Ctx& c, int64_t rows, int64_t chunks, int n_sms, float* scratch,
                     int32_t* counters, float* out, cudaStream_t s) {
  if (c.s.head_dim_k == 64) {
    ChunksFor<64>(c, rows, chunks, n_sms, scratch, counters, out, s);
  } else {
    ChunksFor<128>(c, rows, chunks, n_sms, scratch, counters, out, s);
  }
}

}  // namespace reprise::kernels::cuda::attn
