// AVX-512 (F/BW/VL/DQ, no VNNI) kernels: the micro-kernels of
// gemm_avx512.inc.h with int8 dot products through vpmaddubsw + vpmaddwd.
#define REPRISE_VNNI 0
#include "kernels/cpu/gemm_avx512.inc.h"

namespace reprise::kernels {

const KernelTable& Avx512Kernels() {
  static const KernelTable table = {
      GemmFloat<FloatKind::kF32>,
      GemmFloat<FloatKind::kF16>,
      GemmFloat<FloatKind::kBF16>,
      GemmQ32<true>,
      GemmQ32<false>,
      GemmQ4K,
      GemmQ6K,
      nullptr,
      nullptr,
      nullptr,
      nullptr,
      GemmF16Panels,
  };
  return table;
}

}  // namespace reprise::kernels
