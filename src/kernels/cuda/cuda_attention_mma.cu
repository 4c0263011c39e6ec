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
// Two kernels run it: the chunk kernel (decode: blocks of four warps per
// (token, kv head), each taking one or more chunks in turn, write the chunk
// states the f32 order's merges read: MergeHead in the last block to finish,
// or the merge / wide-merge kernels)
// and the tile kernel (prefill: one block per query tile of up to
// kMmaTileRows (token, head) rows of one kv head, each warp 16 rows, K/V
// chunks copied a chunk ahead by cp.async and shared by all rows; with no
// tiles, one token a block). Against the f32 order on the CUDA cores the
// results differ by the query's and the probabilities' rounding to ~22 bits
// and the tensor core's accumulation (GpuAttention.MmaShapes*).
#include <cuda_fp16.h>

#include <algorithm>
#include <cfloat>

#include "kernels/cuda/cuda_attention.cuh"

namespace reprise::kernels::cuda::attn {
namespace {

constexpr int kRowPad = 8;  // halves after each staged row: a 16-byte row offset mod 128,
                            // so ldmatrix's 8 rows hit 8 different bank groups

__device__ __forceinline__ uint32_t SmemAddr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Four 8x8 f16 matrices from shared memory (kTrans: each transposed); lane
// L gives the address of row L % 8 of matrix L / 8.
template <bool kTrans>
__device__ __forceinline__ void Ldm4(uint32_t (&r)[4], const __half* p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (kTrans) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(SmemAddr(p)));
  } else {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(SmemAddr(p)));
  }
#else
  (void)r, (void)p;
  __trap();
#endif
}

// d += a . b: mma.sync m16n8k16, f16 inputs, f32 accumulators.
__device__ __forceinline__ void Mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                    uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  (void)d, (void)a, (void)b0, (void)b1;
  __trap();
#endif
}

// v = hi + lo in f16 (hi saturated at +-65504; NaN stays NaN).
__device__ __forceinline__ void SplitHalf(float v, __half* hi, __half* lo) {
  if (fabsf(v) > 65504.0f) v = copysignf(65504.0f, v);
  *hi = __float2half_rn(v);
  *lo = __float2half_rn(FSub(v, __half2float(*hi)));
}

// SplitHalf of two values at once, for values that need no saturation (the
// probabilities: in [0, 1], or NaN): the paired conversions round each value
// exactly as the single ones do, so the same hi and lo bits, in fewer
// instructions. hi / lo: the first value in the low 16 bits.
__device__ __forceinline__ void SplitHalfPair(float a, float b, uint32_t* hi, uint32_t* lo) {
  const __half2 h = __float22half2_rn(make_float2(a, b));
  const float2 back = __half22float2(h);
  const __half2 l = __float22half2_rn(make_float2(FSub(a, back.x), FSub(b, back.y)));
  *hi = *reinterpret_cast<const uint32_t*>(&h);
  *lo = *reinterpret_cast<const uint32_t*>(&l);
}

template <int kD>
constexpr int kStride = kD + kRowPad;

// rows_total rows of (token, head) queries into qh / ql (stride kStride):
// row r is token t0 + r / group, head kvh * group + r % group; rows past
// n_tok * group are zero.
template <int kD>
__device__ __forceinline__ void StageQ(const Ctx& c, int64_t t0, int n_tok, int kvh,
                                       int rows_total, __half* qh, __half* ql) {
  const int group = static_cast<int>(c.s.n_heads / c.s.n_kv_heads);
  const int rows = n_tok * group;
  for (int i = threadIdx.x; i < rows_total * (kD / 2); i += blockDim.x) {
    const int r = i / (kD / 2), e = 2 * (i % (kD / 2));
    float2 v = make_float2(0.0f, 0.0f);
    if (r < rows) {
      const int64_t tok = t0 + r / group, h = kvh * group + r % group;
      v = *reinterpret_cast<const float2*>(c.q + (tok * c.s.n_heads + h) * kD + e);
    }
    __half h0, l0, h1, l1;
    SplitHalf(v.x, &h0, &l0);
    SplitHalf(v.y, &h1, &l1);
    *reinterpret_cast<__half2*>(qh + r * kStride<kD> + e) = __halves2half2(h0, h1);
    *reinterpret_cast<__half2*>(ql + r * kStride<kD> + e) = __halves2half2(l0, l1);
  }
}

// The cp.async copies of a chunk's 64 K and V rows from p0 on (kv head kvh)
// into ks / vs (stride kStride): rows [0, valid) from the KV blocks, the
// rest zero-filled. The caller commits.
template <int kD>
__device__ __forceinline__ void StageKv(const Ctx& c, const int32_t* table, int kvh, int p0,
                                        int valid, __half* ks, __half* vs) {
  constexpr int kPieces = kD / 8;  // 16-byte pieces of a row
  const int bt = static_cast<int>(c.kv.block_tokens);
  for (int i = threadIdx.x; i < kChunk * 2 * kPieces; i += blockDim.x) {
    const int j = i / (2 * kPieces), rest = i % (2 * kPieces);
    const bool is_v = rest >= kPieces;
    const int piece = rest % kPieces;
    __half* dst = (is_v ? vs : ks) + j * kStride<kD> + piece * 8;
    if (j < valid) {
      const int p = p0 + j;
      const int32_t block = table[p / bt];
      const int64_t row = static_cast<int64_t>(kvh) * bt + p % bt;
      const uint8_t* src = is_v ? KvV(c.kv, block, c.layer) + row * c.kv.v_row_bytes
                                : KvK(c.kv, block, c.layer) + row * c.kv.k_row_bytes;
      CpAsync16(dst, src + piece * 16, true);
    } else {
      CpAsync16(dst, c.kv.base, false);
    }
  }
}

// Scores of kN 16-position slices of a staged chunk, slices sl0 .. sl0 + kN
// - 1, for a warp's 16 rows: s[2 i + j] is the chunk's n-tile 2 (sl0 + i) +
// j (positions 8 (2 (sl0 + i) + j) + 2 q4 and + 1 of row g in [0], [1] and
// of row g + 8 in [2], [3]), scaled. Each accumulator starts at +0 and takes,
// per 16-dim slice in dim order, the mma of q hi and then of q lo; q_at(k16,
// ah, al) gives slice k16's query fragments.
template <int kD, int kN, typename QAt>
__device__ __forceinline__ void SliceScoresBy(QAt&& q_at, const __half* ks, int sl0, float scale,
                                              float (&s)[2 * kN][4]) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int nt = 0; nt < 2 * kN; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
  for (int k16 = 0; k16 < kD / 16; ++k16) {
    uint32_t ah[4], al[4];
    q_at(k16, ah, al);
#pragma unroll
    for (int i = 0; i < kN; ++i) {
      uint32_t b[4];
      const int krow = (sl0 + i) * 16 + lane % 8 + (lane / 16) * 8;
      Ldm4<false>(b, ks + krow * kStride<kD> + k16 * 16 + ((lane / 8) % 2) * 8);
      Mma(s[2 * i], ah, b[0], b[1]);
      Mma(s[2 * i], al, b[0], b[1]);
      Mma(s[2 * i + 1], ah, b[2], b[3]);
      Mma(s[2 * i + 1], al, b[2], b[3]);
    }
  }
#pragma unroll
  for (int nt = 0; nt < 2 * kN; ++nt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) s[nt][i] = FMul(s[nt][i], scale);
  }
}

// The A fragments of a warp's 16 query rows (hi, lo) for one 16-dim slice,
// from the staged qh / ql.
template <int kD>
__device__ __forceinline__ void LoadQSlice(const __half* qh, const __half* ql, int k16,
                                           uint32_t (&ah)[4], uint32_t (&al)[4]) {
  const int lane = threadIdx.x % 32;
  const int qoff = (lane % 16) * kStride<kD> + k16 * 16 + (lane / 16) * 8;
  Ldm4<false>(ah, qh + qoff);
  Ldm4<false>(al, ql + qoff);
}

// SliceScoresBy with the queries read from shared memory slice by slice.
template <int kD, int kN>
__device__ __forceinline__ void SliceScores(const __half* qh, const __half* ql, const __half* ks,
                                            int sl0, float scale, float (&s)[2 * kN][4]) {
  SliceScoresBy<kD, kN>(
      [&](int k16, uint32_t (&ah)[4], uint32_t (&al)[4]) { LoadQSlice<kD>(qh, ql, k16, ah, al); },
      ks, sl0, scale, s);
}

// A warp's 16 query rows as A fragments held in registers (all slices).
template <int kD>
struct QFrags {
  uint32_t h[kD / 16][4], l[kD / 16][4];
};

// The maxima of rows g and g + 8 over s's positions at or before each row's
// own (pos_a, pos_b; -1: no token); col0 is s's first position. Max is exact
// in any order, so slices' maxima may be combined in any order too.
template <int kN>
__device__ __forceinline__ void SliceMax(const float (&s)[2 * kN][4], int col0, int pos_a,
                                         int pos_b, float (&m)[2]) {
  const int q4 = threadIdx.x % 4;
  m[0] = m[1] = -FLT_MAX;
#pragma unroll
  for (int nt = 0; nt < 2 * kN; ++nt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int col = col0 + nt * 8 + 2 * q4 + i % 2;
      if (col <= (i < 2 ? pos_a : pos_b)) m[i / 2] = fmaxf(m[i / 2], s[nt][i]);
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    m[r] = fmaxf(m[r], __shfl_xor_sync(0xffffffffu, m[r], 1));
    m[r] = fmaxf(m[r], __shfl_xor_sync(0xffffffffu, m[r], 2));
  }
}

// The probabilities e^(s - m) (0 past a row's position) of kN slices as A
// fragments, hi and lo: slice i's registers are n-tiles 2 i (k 0-7) and 2 i +
// 1 (k 8-15), rows g then g + 8.
template <int kN>
__device__ __forceinline__ void SliceProbs(const float (&s)[2 * kN][4], int col0, int pos_a,
                                           int pos_b, const float (&m)[2], uint32_t (&ph)[kN][4],
                                           uint32_t (&pl)[kN][4]) {
  const int q4 = threadIdx.x % 4;
#pragma unroll
  for (int kk = 0; kk < kN; ++kk) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int nt = 2 * kk + j, pos = r == 0 ? pos_a : pos_b;
        const int col = col0 + nt * 8 + 2 * q4;
        const float p0 = col <= pos ? expf(FSub(s[nt][2 * r], m[r])) : 0.0f;
        const float p1 = col + 1 <= pos ? expf(FSub(s[nt][2 * r + 1], m[r])) : 0.0f;
        SplitHalfPair(p0, p1, &ph[kk][2 * j + r], &pl[kk][2 * j + r]);
      }
    }
  }
}

// l of rows g and g + 8: the mma of each slice's p hi and then p lo against a
// column of ones, slices in position order, from +0.
__device__ __forceinline__ void OnesSum(const uint32_t (&ph)[4][4], const uint32_t (&pl)[4][4],
                                        float (&l)[2]) {
  float la[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  constexpr uint32_t kOnes = 0x3C003C00u;  // two f16 1.0
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    Mma(la, ph[kk], kOnes, kOnes);
    Mma(la, pl[kk], kOnes, kOnes);
  }
  l[0] = la[0];
  l[1] = la[2];
}

// One warp's 16 rows against a staged chunk: the chunk max m and sum l of
// the thread's two rows (g and g + 8, g = lane / 4) and the probabilities as
// A fragments (ph / pl: hi / lo, one set per 16-position slice). pos_a /
// pos_b: the two rows' positions (-1: no token).
template <int kD>
__device__ __forceinline__ void MmaScores(const __half* qh, const __half* ql, const __half* ks,
                                          int c_begin, int pos_a, int pos_b, float scale,
                                          float (&m)[2], float (&l)[2], uint32_t (&ph)[4][4],
                                          uint32_t (&pl)[4][4]) {
  float s[8][4];
  SliceScores<kD, 4>(qh, ql, ks, 0, scale, s);
  SliceMax<4>(s, c_begin, pos_a, pos_b, m);
  SliceProbs<4>(s, c_begin, pos_a, pos_b, m, ph, pl);
  OnesSum(ph, pl, l);
}

// P . V for the warp's 16 rows, 8 dims at a time, for the 16-dim groups dp0,
// dp0 + dp_step, ...: on_tile(d8, acc) gets dims d8 * 8 + 2 q4 (+1) of row g
// in acc[0] (acc[1]) and of row g + 8 in acc[2] (acc[3]). Each accumulator
// starts at +0 and takes, per 16-position slice in position order, the mma
// of p hi and then of p lo.
template <int kD, typename OnTile>
__device__ __forceinline__ void MmaPv(const uint32_t (&ph)[4][4], const uint32_t (&pl)[4][4],
                                      const __half* vs, int dp0, int dp_step, OnTile&& on_tile) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int dp = dp0; dp < kD / 16; dp += dp_step) {
    float o0[4] = {0.0f, 0.0f, 0.0f, 0.0f}, o1[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      uint32_t b[4];
      const int vrow = kk * 16 + lane % 8 + ((lane / 8) % 2) * 8;
      Ldm4<true>(b, vs + vrow * kStride<kD> + dp * 16 + (lane / 16) * 8);
      Mma(o0, ph[kk], b[0], b[1]);
      Mma(o0, pl[kk], b[0], b[1]);
      Mma(o1, ph[kk], b[2], b[3]);
      Mma(o1, pl[kk], b[2], b[3]);
    }
    on_tile(2 * dp, o0);
    on_tile(2 * dp + 1, o1);
  }
}

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
// does. With c.sub, row r serves batch token c.sub[r].
// kRing (opt-in, REPRISE_CUDA_ATTN_RING=1, AttentionRingOn; written without
// a GPU): three K/V buffers instead of two, so two chunks' copies are in
// flight while one is computed (at a 32k context the two-buffer kernel waits
// on each copy: ~1.4 TB/s), and the queries' fragments kept in registers
// (their shared memory is the third buffer's until the first copy into it).
// The same instructions on the same operands: the same bits.
constexpr int kChunkWarps = 4;

template <int kD, bool kRing>
__global__ void __launch_bounds__(kChunkWarps * 32)
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
  // Two buffers: qh, ql, K 0, K 1, V 0, V 1. Ring: stage i % 3 is K then V;
  // the queries are staged in stage 2 and read into registers first.
  __half* const base = reinterpret_cast<__half*>(mma_sh);
  __half* qh = base;
  __half* ql = qh + row_tiles * 16 * kStride<kD>;
  __half* const kv_sh = kRing ? base : ql + row_tiles * 16 * kStride<kD>;
  const auto kbuf = [&](int i) {
    return kRing ? kv_sh + (i % 3) * 2 * kBuf : kv_sh + (i & 1) * kBuf;
  };
  const auto vbuf = [&](int i) {
    return kRing ? kv_sh + ((i % 3) * 2 + 1) * kBuf : kv_sh + (2 + (i & 1)) * kBuf;
  };
  QFrags<kD> qf[kRing ? 2 : 1];
  stage_chunk(0, kbuf(0), vbuf(0));
  if constexpr (kRing) {
    if (mine > 1) stage_chunk(1, kbuf(1), vbuf(1));
    qh = kbuf(2);
    ql = qh + row_tiles * 16 * kStride<kD>;
    StageQ<kD>(c, t, 1, kvh, row_tiles * 16, qh, ql);
    __syncthreads();
#pragma unroll
    for (int rt = 0; rt < 2; ++rt) {
      if (rt >= row_tiles) break;
#pragma unroll
      for (int k16 = 0; k16 < kD / 16; ++k16) {
        LoadQSlice<kD>(qh + rt * 16 * kStride<kD>, ql + rt * 16 * kStride<kD>, k16, qf[rt].h[k16],
                       qf[rt].l[k16]);
      }
    }
    __syncthreads();  // stage 2 is free for its chunk
  } else {
    StageQ<kD>(c, t, 1, kvh, row_tiles * 16, qh, ql);
  }
  const int64_t stride = kD + 2;
  for (int i = 0; i < mine; ++i) {
    const int chunk = z + i * zs, p_begin = chunk * kChunk;
    if (kRing && i + 2 < mine) {
      stage_chunk(i + 2, kbuf(i + 2), vbuf(i + 2));
      CpAsyncWait<2>();
    } else if (!kRing && i + 1 < mine) {
      stage_chunk(i + 1, kbuf(i + 1), vbuf(i + 1));
      CpAsyncWait<1>();
    } else if (kRing && i + 1 < mine) {
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
      if constexpr (kRing) {
        SliceScoresBy<kD, 1>(
            [&](int k16, uint32_t (&ah)[4], uint32_t (&al)[4]) {
#pragma unroll
              for (int k = 0; k < 4; ++k) ah[k] = qf[rt].h[k16][k], al[k] = qf[rt].l[k16][k];
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

int MmaWarps(int64_t rows) { return static_cast<int>((rows + 15) / 16); }

template <int kD>
size_t MmaSmem(int warps, int kv_buffers) {
  return static_cast<size_t>(2 * warps * 16 + 2 * kv_buffers * kChunk) * kStride<kD> *
         sizeof(__half);
}

template <int kD, bool kRing>
void ChunksWith(const Ctx& c, dim3 grid, int row_tiles, int64_t chunks, float* scratch,
                int32_t* counters, float* out, cudaStream_t s) {
  // Ring: three stages of K and V, the queries inside the third.
  const size_t smem = kRing ? static_cast<size_t>(3 * 2 * kChunk) * kStride<kD> * sizeof(__half)
                            : MmaSmem<kD>(row_tiles, 2);
  static bool configured = false;
  if (!configured) {
    cudaFuncSetAttribute(AttentionMmaChunkKernel<kD, kRing>,
                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                         static_cast<int>(std::max(smem, MmaSmem<kD>(2, 2))));
    configured = true;
  }
  AttentionMmaChunkKernel<kD, kRing>
      <<<grid, kChunkWarps * 32, smem, s>>>(c, chunks, scratch, counters, out);
}

template <int kD>
void ChunksFor(const Ctx& c, int64_t rows, int64_t chunks, int n_sms, float* scratch,
               int32_t* counters, float* out, cudaStream_t s) {
  const int row_tiles = MmaWarps(c.s.n_heads / c.s.n_kv_heads);
  // Chunks a block: enough that the grid fits about two blocks an SM (a
  // block's shared memory allows two), so each block's copies of the next
  // chunks overlap its work on this one. Which block takes which chunk
  // changes no bit (each chunk's state is computed alone).
  const int64_t units = rows * c.s.n_kv_heads * chunks;
  const int64_t resident = 2 * static_cast<int64_t>(std::max(n_sms, 1));
  const int64_t per = std::max<int64_t>(1, (units + resident - 1) / resident);
  const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(c.s.n_kv_heads),
                  static_cast<unsigned>((chunks + per - 1) / per));
  if (AttentionRingOn()) {
    ChunksWith<kD, true>(c, grid, row_tiles, chunks, scratch, counters, out, s);
  } else {
    ChunksWith<kD, false>(c, grid, row_tiles, chunks, scratch, counters, out, s);
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
  const int64_t rows = AttentionSmallTilesOn() ? kMmaTileRows / 2 : kMmaTileRows;
  return std::max<int64_t>(1, std::min<int64_t>(64, rows / group));
}

void LaunchMmaChunks(const Ctx& c, int64_t rows, int64_t chunks, int n_sms, float* scratch,
                     int32_t* counters, float* out, cudaStream_t s) {
  if (c.s.head_dim_k == 64) {
    ChunksFor<64>(c, rows, chunks, n_sms, scratch, counters, out, s);
  } else {
    ChunksFor<128>(c, rows, chunks, n_sms, scratch, counters, out, s);
  }
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
