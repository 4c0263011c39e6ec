// Avx512 kernels (placeholder table: every type falls back to the level below).
#include "kernels/matmul_internal.h"

namespace reprise::kernels {

const KernelTable& Avx512Kernels() {
  static const KernelTable table;
  return table;
}

}  // namespace reprise::kernels
