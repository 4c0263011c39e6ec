// Internal to the CUDA backend: the arithmetic of one 32-value sub-block of a
// quantized weight row against int8 activations, shared by every quantized
// matmul kernel (cuda_matmul_quant.cu) and the host emulation
// (cuda_matmul.cu's HostDot), so they cannot drift apart.
//
// Invariants:
//  - Q8_0 / Q4_0: a sub-block's term of one output is an exact integer dot
//    product x (dp4a, mma.sync s8 or a host loop: the same integer), scaled
//    by the row's scale d and the activation scale dx in one fixed order:
//    acc = fma(round(d * x), dx, acc) (Q32Add; round(d * x) is one fused
//    multiply-add from x's biased bits, Q32Scaled). Two float operations a
//    term: the tensor-core kernels' epilogue is most of their instructions.
//  - Q4_K / Q6_K: one contribution per 256-value unit. Their activations
//    share one scale per 256 values (ActGroup), so the unit's 8 sub-blocks
//    fold exactly in integers (KInts: the scales times the dot products, and
//    Q4_K's mins times the activation sums) and the float terms come once, in
//    one fixed order (UnitContrib). Integer sums are exact in any order, so a
//    kernel adds a unit's sub-blocks however it likes (dp4a, mma.sync,
//    shuffles) and still gets the bits of every other path.
//  - SubW / SubWAdd / SubWInts compute the same integers from 32-bit words
//    of the block's bytes (the GEMV's fast path) and the same float terms, so
//    they equal SubBlockAdd / SubBlockInts bit for bit
//    (tests/kernels/cuda_host_test.cc checks every type).
//  - Activations are quantized as the CPU does (ActScale / ActInvScale).
#pragma once

#include "kernels/cuda/cuda_common.cuh"

namespace reprise::kernels::cuda {

// The activation quantizer's arithmetic, exactly the CPU's (kernels/ref
// QuantizeBlock): d = amax / 127, q = round-to-nearest-even(x * (1 / d)). So
// the GPU's int8 activations equal the CPU's bit for bit, given the same x.
REPRISE_HD float ActScale(float amax) { return FDiv(amax, 127.0f); }
REPRISE_HD float ActInvScale(float d) { return d != 0.0f ? FDiv(1.0f, d) : 0.0f; }
// One activation's int8: round(v * inv), clamped to [-127, 127].
__device__ __forceinline__ int ActQuant(float v, float inv) {
  const int qi = __float2int_rn(FMul(v, inv));
  return max(-127, min(127, qi));
}
// Sub-block b of a row's activations, a warp's 32 values one per lane,
// quantized (qi: ActQuant): each lane stores its int8; lane 0 the scale and
// the sum of the 32 integers (a butterfly: exact in any order).
__device__ __forceinline__ void StoreActSubBlock(int qi, float scale, int64_t b, int8_t* q,
                                                 float* d, int32_t* sum) {
  const int lane = threadIdx.x % 32;
  q[b * 32 + lane] = static_cast<int8_t>(qi);
  int s = qi;
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if (lane == 0) {
    d[b] = scale;
    sum[b] = s;
  }
}

// Exact integer dot product of q[begin, end) and xq[begin, end) (begin and
// end multiples of 4; xq 4-byte aligned): dp4a on the device, the same sum on
// the host.
REPRISE_HD int DotSub(const SubBlock& s, const int8_t* xq, int begin, int end) {
  int acc = 0;
#ifdef __CUDA_ARCH__
  const int* qw = reinterpret_cast<const int*>(s.q);
  const int* xw = reinterpret_cast<const int*>(xq);
  for (int i = begin / 4; i < end / 4; ++i) acc = __dp4a(qw[i], xw[i], acc);
#else
  for (int i = begin; i < end; ++i) acc += static_cast<int>(s.q[i]) * static_cast<int>(xq[i]);
#endif
  return acc;
}

// The exact integer sums of a K-quant unit (Q4_K, Q6_K), added over its
// sub-blocks in any order:
//  - Q4_K: isum = sum_j sc_j * S_j, msum = sum_j m_j * sx_j (S_j the
//    sub-block's dot product, sx_j the sum of its 32 int8 activations, sc_j
//    and m_j its 6-bit scale and min). |isum| <= 8 * 63 * 32 * 15 * 127 < 2^25,
//    |msum| <= 8 * 63 * 32 * 127 < 2^21 (a float holds it exactly).
//  - Q6_K: isum = sum_j (sc0_j * lo_j + sc1_j * hi_j) (the two 16-value
//    halves); |isum| <= 16 * 128 * 16 * 32 * 127 < 2^27.
struct KInts {
  int isum = 0, msum = 0;
};

// A unit's float contribution from its integers: Q4_K d * isum and dmin *
// msum, their difference times the activation scale dx; Q6_K (d * dx) * isum.
template <int kKind>  // 1: Q4_K, 2: Q6_K
REPRISE_HD float UnitContrib(float d, float dmin, float dx, const KInts& k) {
  if (kKind == 1) {
    const float pos = FMul(d, static_cast<float>(k.isum));
    const float neg = FMul(dmin, static_cast<float>(k.msum));
    return FMul(dx, FSub(pos, neg));
  } else {
    return FMul(FMul(d, dx), static_cast<float>(k.isum));
  }
}

// Sub-block s's integers, added into k.
template <int kKind>  // 1: Q4_K, 2: Q6_K
REPRISE_HD void SubBlockInts(const SubBlock& s, const int8_t* xq, int32_t sx, KInts* k) {
  if (kKind == 1) {
    k->isum += s.sc0 * DotSub(s, xq, 0, 32);
    k->msum += s.m * sx;
  } else {
    k->isum += s.sc0 * DotSub(s, xq, 0, 16) + s.sc1 * DotSub(s, xq, 16, 32);
  }
}

// Q8_0 / Q4_0: round(d * x) for the integer x (|x| < 2^22) given as
// biased = BiasedBits(kSmallIntBias + x) and nb = Q32NegBias(d). d is a
// widened f16 (11 significant bits), so d * 1.5 * 2^23 is exact and
// fma(d, 1.5 * 2^23 + x, -d * 1.5 * 2^23) rounds d * x once: the tensor-core
// kernels get it in one instruction from an accumulator that started at
// kSmallIntBias, with nb computed once per row and sub-block.
REPRISE_HD float Q32NegBias(float d) { return FMul(d, -kSmallIntBiasF); }
REPRISE_HD float Q32Scaled(float d, float biased, float nb) { return FFma(d, biased, nb); }
// round(d * x) from the plain integer x (paths whose sums are not biased).
REPRISE_HD float Q32Round(float d, int x) {
  return Q32Scaled(d, BiasedBits(x + kSmallIntBias), Q32NegBias(d));
}
// The sub-block's term added into a segment sum: fma(round(d * x), dx, acc).
REPRISE_HD float Q32Add(float acc, float d, int x, float dx) {
  return FFma(Q32Round(d, x), dx, acc);
}

// acc plus one 32-value sub-block's term: Q8_0 / Q4_0 the canonical one
// (Q32Add); the K-quants the contribution of a unit made of this sub-block
// alone, added (what the tests compare the two load paths with).
template <int kKind>  // 0: Q8_0 / Q4_0, 1: Q4_K, 2: Q6_K
REPRISE_HD float SubBlockAdd(float acc, const SubBlock& s, const int8_t* xq, float dx,
                             int32_t sx) {
  if (kKind == 0) {
    return Q32Add(acc, s.d, DotSub(s, xq, 0, 32), dx);
  } else {
    KInts k;
    SubBlockInts<kKind>(s, xq, sx, &k);
    return FAdd(acc, UnitContrib<kKind>(s.d, s.dmin, dx, k));
  }
}

template <int kType>  // static_cast<int>(DType)
REPRISE_HD void LoadSub(const uint8_t* unit, int j, SubBlock* s) {
  if constexpr (kType == static_cast<int>(DType::kQ8_0)) {
    LoadSubBlockQ8_0(unit, s);
  } else if constexpr (kType == static_cast<int>(DType::kQ4_0)) {
    LoadSubBlockQ4_0(unit, s);
  } else if constexpr (kType == static_cast<int>(DType::kQ4_K)) {
    LoadSubBlockQ4K(unit, j, s);
  } else {
    LoadSubBlockQ6K(unit, j, s);
  }
}

// Value i of a 16-byte unit of F32 / F16 / BF16 weights.
template <int kElem>  // 0: F32, 1: F16, 2: BF16
REPRISE_HD float LoadValue(const uint8_t* unit, int i) {
  if constexpr (kElem == 0) {
    float v;
    std::memcpy(&v, unit + 4 * i, sizeof(v));
    return v;
  } else if constexpr (kElem == 1) {
    return HalfBitsToFloat(reinterpret_cast<const uint16_t*>(unit)[i]);
  } else {
    return Bf16BitsToFloat(reinterpret_cast<const uint16_t*>(unit)[i]);
  }
}

// ---- the word path (the decode GEMV) ----

// Signed 8-bit dot product of 4 packed bytes, plus c.
REPRISE_HD int Dp4a(uint32_t a, uint32_t b, int c) {
#ifdef __CUDA_ARCH__
  return __dp4a(static_cast<int>(a), static_cast<int>(b), c);
#else
  for (int k = 0; k < 4; ++k) {
    c += static_cast<int>(static_cast<int8_t>(a >> (8 * k))) *
         static_cast<int>(static_cast<int8_t>(b >> (8 * k)));
  }
  return c;
#endif
}

// 4 bytes at a 2-byte aligned address (every field the word path reads is).
REPRISE_HD uint32_t Ld32A2(const uint8_t* p) {
#ifdef __CUDA_ARCH__
  const uint16_t* h = reinterpret_cast<const uint16_t*>(p);
  return static_cast<uint32_t>(h[0]) | (static_cast<uint32_t>(h[1]) << 16);
#else
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
#endif
}

// Sub-block j of a unit as 8 words of 4 byte-values each (values 4k..4k+3 in
// word k, as SubBlock::q orders them) stored with a non-negative bias `off`
// (q = byte - off: Q4_0 8, Q6_K 32, else 0), and its float terms.
struct SubW {
  uint32_t w[8];
  int off = 0;
  float a = 0.0f, b = 0.0f;  // a = the unit's d; Q4_K: b = dmin
  int sc0 = 1, sc1 = 1;      // Q6_K's two 16-value scales; Q4_K: sc0 = the 6-bit scale
  int m = 0;                 // Q4_K: the 6-bit min
};

template <int kType>  // static_cast<int>(DType)
REPRISE_HD void LoadSubW(const uint8_t* unit, int j, SubW* s) {
  if constexpr (kType == static_cast<int>(DType::kQ8_0)) {
    s->a = HalfBitsToFloat(Ld16(unit));
    for (int k = 0; k < 8; ++k) s->w[k] = Ld32A2(unit + 2 + 4 * k);
  } else if constexpr (kType == static_cast<int>(DType::kQ4_0)) {
    s->a = HalfBitsToFloat(Ld16(unit));
    s->off = 8;
    for (int k = 0; k < 4; ++k) {
      const uint32_t v = Ld32A2(unit + 2 + 4 * k);
      s->w[k] = v & 0x0F0F0F0Fu;
      s->w[k + 4] = (v >> 4) & 0x0F0F0F0Fu;
    }
  } else if constexpr (kType == static_cast<int>(DType::kQ4_K)) {
    s->a = HalfBitsToFloat(Ld16(unit));
    s->b = HalfBitsToFloat(Ld16(unit + 2));
    ScaleMinK4(j, unit + 4, &s->sc0, &s->m);
    const uint8_t* qs = unit + 16 + 32 * (j / 2);  // 16-byte aligned
    const int shift = (j % 2) * 4;
#ifdef __CUDA_ARCH__
    const uint4 v0 = reinterpret_cast<const uint4*>(qs)[0], v1 = reinterpret_cast<const uint4*>(qs)[1];
    const uint32_t raw[8] = {v0.x, v0.y, v0.z, v0.w, v1.x, v1.y, v1.z, v1.w};
#else
    uint32_t raw[8];
    std::memcpy(raw, qs, 32);
#endif
    for (int k = 0; k < 8; ++k) s->w[k] = (raw[k] >> shift) & 0x0F0F0F0Fu;
  } else {
    const int half = j / 4, quarter = j % 4;
    const uint8_t* ql = unit + 64 * half + 32 * (quarter & 1);
    const uint8_t* qh = unit + 128 + 32 * half;
    const int sl = 4 * (quarter >> 1), sh = 2 * quarter;
    for (int k = 0; k < 8; ++k) {
      s->w[k] = ((Ld32A2(ql + 4 * k) >> sl) & 0x0F0F0F0Fu) |
                (((Ld32A2(qh + 4 * k) >> sh) & 0x03030303u) << 4);
    }
    s->off = 32;
    s->a = HalfBitsToFloat(Ld16(unit + 208));
    s->sc0 = static_cast<int8_t>(unit[192 + 8 * half + 2 * quarter]);
    s->sc1 = static_cast<int8_t>(unit[192 + 8 * half + 2 * quarter + 1]);
  }
}

// The two 16-value halves' exact dot products of a sub-block's words and the
// 8 activation words xw (the 32 int8 activations), bias removed.
REPRISE_HD void SubWDots(const SubW& s, const uint32_t* xw, int* lo_out, int* hi_out) {
  int lo = 0, hi = 0;
  for (int k = 0; k < 4; ++k) {
    lo = Dp4a(s.w[k], xw[k], lo);
    hi = Dp4a(s.w[k + 4], xw[k + 4], hi);
  }
  if (s.off != 0) {  // q = byte - off: subtract off * (sum of the activations of each half)
    int xlo = 0, xhi = 0;
    for (int k = 0; k < 4; ++k) {
      xlo = Dp4a(xw[k], 0x01010101u, xlo);
      xhi = Dp4a(xw[k + 4], 0x01010101u, xhi);
    }
    lo -= s.off * xlo;
    hi -= s.off * xhi;
  }
  *lo_out = lo;
  *hi_out = hi;
}

// SubBlockInts<kKind> of the same sub-block, from its words: the same integers.
template <int kKind>  // 1: Q4_K, 2: Q6_K
REPRISE_HD void SubWInts(const SubW& s, const uint32_t* xw, int32_t sx, KInts* k) {
  int lo, hi;
  SubWDots(s, xw, &lo, &hi);
  if (kKind == 1) {
    k->isum += s.sc0 * (lo + hi);
    k->msum += s.m * sx;
  } else {
    k->isum += s.sc0 * lo + s.sc1 * hi;
  }
}

// Q8_0 / Q4_0: the sub-block's exact integer dot product, from its words.
REPRISE_HD int SubWDot(const SubW& s, const uint32_t* xw) {
  int lo, hi;
  SubWDots(s, xw, &lo, &hi);
  return lo + hi;
}

// SubBlockAdd<kKind> of the same sub-block, from its words: the same bits.
template <int kKind>  // 0: Q8_0 / Q4_0, 1: Q4_K, 2: Q6_K
REPRISE_HD float SubWAdd(float acc, const SubW& s, const uint32_t* xw, float dx, int32_t sx) {
  if (kKind == 0) {
    return Q32Add(acc, s.a, SubWDot(s, xw), dx);
  } else {
    KInts k;
    SubWInts<kKind>(s, xw, sx, &k);
    return FAdd(acc, UnitContrib<kKind>(s.a, s.b, dx, k));
  }
}

}  // namespace reprise::kernels::cuda
