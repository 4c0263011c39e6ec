// Internal to cuda_attention_mma*.cu: the tensor-core attention order's
// building blocks (cuda_attention_mma.cu's header comment defines the order):
// the staged query and K/V layouts, the mma.sync and ldmatrix wrappers, the
// f16 hi + lo split, and one 16-row tile's scores, softmax pieces, l and
// P . V. Invariant: every kernel of the order computes a (token, head)'s
// chunk state only through these, with the same instruction sequence per
// accumulator, so which kernel or launch shape runs never changes a bit.
#pragma once

#include <cuda_fp16.h>

#include <cfloat>
#include <cstdint>

#include "kernels/cuda/cuda_attention.cuh"

namespace reprise::kernels::cuda::attn {

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
// rest zero-filled. The caller commits. blockDim.x is a multiple of 32 and a
// row's 2 kD / 8 sixteen-byte pieces (K's, then V's) divide 32, so each
// thread keeps one piece of one of K or V and takes rows j0, j0 + step, ...:
// one division a chunk, the block table read once per KV block the thread
// enters (not once a row), no dependent load ahead of each copy.
template <int kD>
__device__ __forceinline__ void StageKv(const Ctx& c, const int32_t* table, int kvh, int p0,
                                        int valid, __half* ks, __half* vs) {
  constexpr int kPieces = kD / 8;  // 16-byte pieces of a row
  constexpr int kSlots = 2 * kPieces;
  const int slot = static_cast<int>(threadIdx.x) % kSlots;
  const int step = static_cast<int>(blockDim.x) / kSlots;
  const int j0 = static_cast<int>(threadIdx.x) / kSlots;
  const bool is_v = slot >= kPieces;
  const int piece = slot % kPieces;
  const int bt = c.kv.block_tokens;
  const int64_t row_bytes = is_v ? c.kv.v_row_bytes : c.kv.k_row_bytes;
  // Block 0's rows of this layer, kv head and piece; block b's are b *
  // block_bytes further.
  const uint8_t* const head0 = (is_v ? KvV(c.kv, 0, c.layer) : KvK(c.kv, 0, c.layer)) +
                               static_cast<int64_t>(kvh) * bt * row_bytes + piece * 16;
  __half* dst = (is_v ? vs : ks) + j0 * kStride<kD> + piece * 8;
  int bi = (p0 + j0) / bt, off = p0 + j0 - bi * bt, held = -1;
  const uint8_t* blk = head0;
  for (int j = j0; j < kChunk; j += step) {
    if (j < valid) {
      if (bi != held) {
        blk = head0 + static_cast<int64_t>(table[bi]) * c.kv.block_bytes;
        held = bi;
      }
      CpAsync16(dst, blk + off * row_bytes, true);
    } else {
      CpAsync16(dst, c.kv.base, false);
    }
    dst += step * kStride<kD>;
    off += step;
    while (off >= bt) off -= bt, ++bi;
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

// Warps (16-row tiles) for `rows` (token, head) rows.
inline int MmaWarps(int64_t rows) { return static_cast<int>((rows + 15) / 16); }

template <int kD>
size_t MmaSmem(int warps, int kv_buffers) {
  return static_cast<size_t>(2 * warps * 16 + 2 * kv_buffers * kChunk) * kStride<kD> *
         sizeof(__half);
}

}  // namespace reprise::kernels::cuda::attn
