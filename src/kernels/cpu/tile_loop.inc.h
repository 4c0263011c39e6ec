// Instruction-set-neutral helpers for the SIMD kernel files: the tile loop
// and the Q4_K scale decoder. Anonymous namespace on purpose: each kernel file
// compiles its own copy with its own flags, so the linker can never hand an
// AVX-512 instantiation to the AVX2 path.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/matmul_internal.h"

// Fully unrolls the small loops over a tile's rows and tokens, so the
// accumulators live in registers.
#define REPRISE_UNROLL _Pragma("GCC unroll 16")

namespace reprise::kernels {
namespace {

// Dispatches a runtime tile size (1..R) to the template instance.
template <int R, int T, template <int, int> class K>
inline void RunTile(int r, int t, const GemmArgs& a, int64_t row, int64_t tok) {
  if constexpr (R > 1) {
    if (r < R) return RunTile<R - 1, T, K>(r, t, a, row, tok);
  }
  if constexpr (T > 1) {
    if (t < T) return RunTile<R, T - 1, K>(r, t, a, row, tok);
  }
  K<R, T>::Run(a, row, tok);
}

// Loops tiles over [r0, r1) x [t0, t1): rows outer so an R-row weight panel
// stays in L1 while the token chunk's activations stream from L2.
template <int R, int T, template <int, int> class K>
void TileLoop(const GemmArgs& a, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  for (int64_t r = r0; r < r1; r += R) {
    const int nr = static_cast<int>(std::min<int64_t>(R, r1 - r));
    for (int64_t t = t0; t < t1; t += T) {
      const int nt = static_cast<int>(std::min<int64_t>(T, t1 - t));
      RunTile<R, T, K>(nr, nt, a, r, t);
    }
  }
}

// Same tiles, tokens outer: a token tile's activations stay in L1 while the
// item's weight rows stream from L2 (better when a weight row is smaller
// than an activation row, as with 4-bit weights and int8 activations).
template <int R, int T, template <int, int> class K>
void TileLoopTokensOuter(const GemmArgs& a, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  for (int64_t t = t0; t < t1; t += T) {
    const int nt = static_cast<int>(std::min<int64_t>(T, t1 - t));
    for (int64_t r = r0; r < r1; r += R) {
      const int nr = static_cast<int>(std::min<int64_t>(R, r1 - r));
      RunTile<R, T, K>(nr, nt, a, r, t);
    }
  }
}

// Decodes the 6-bit scales and mins of a Q4_K block into 8 bytes each.
inline void DecodeScalesK4(const uint8_t* q, uint64_t* sc, uint64_t* m) {
  uint32_t a0, a1, a2;
  std::memcpy(&a0, q, 4);
  std::memcpy(&a1, q + 4, 4);
  std::memcpy(&a2, q + 8, 4);
  const uint32_t sc_lo = a0 & 0x3f3f3f3f, m_lo = a1 & 0x3f3f3f3f;
  const uint32_t sc_hi = (a2 & 0x0f0f0f0f) | (((a0 >> 6) & 0x03030303) << 4);
  const uint32_t m_hi = ((a2 >> 4) & 0x0f0f0f0f) | (((a1 >> 6) & 0x03030303) << 4);
  *sc = sc_lo | (uint64_t{sc_hi} << 32);
  *m = m_lo | (uint64_t{m_hi} << 32);
}

}  // namespace
}  // namespace reprise::kernels
