// AVX-512 VNNI kernels (vpdpbusd / vpdpwssd); the micro-kernels are in
// gemm_avx512.inc.h, shared with the plain AVX-512 level.
#define REPRISE_VNNI 1
#include "kernels/cpu/gemm_avx512.inc.h"

namespace reprise::kernels {

const KernelTable& Avx512VnniKernels() {
  static const KernelTable table = {
      GemmFloat<FloatKind::kF32>, GemmFloat<FloatKind::kF16>, GemmFloat<FloatKind::kBF16>,
      GemmQ32<true>, GemmQ32<false>, GemmQ4K, GemmQ6K,
      GemmPacked<PackedLayout::kQ8_0x16>, GemmPacked<PackedLayout::kQ4_0x16>,
      GemmPacked<PackedLayout::kQ4_Kx16>, GemmPacked<PackedLayout::kQ6_Kx16>,
  };
  return table;
}

}  // namespace reprise::kernels
