// Avx512Vnni kernels (placeholder table: every type falls back to the level below).
#include "kernels/matmul_internal.h"

namespace reprise::kernels {

const KernelTable& Avx512VnniKernels() {
  static const KernelTable table;
  return table;
}

}  // namespace reprise::kernels
