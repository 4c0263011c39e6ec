// Run-time detection of the x86-64 SIMD extensions the kernels can use.
#pragma once

#include <string>

namespace reprise {

struct CpuFeatures {
  bool avx2 = false;      // AVX2 + FMA + F16C
  bool avx512 = false;    // AVX-512 F, BW, VL, DQ (and OS support for ZMM state)
  bool avx512_vnni = false;
  bool avx_vnni = false;  // VEX-encoded VNNI (256-bit)
  std::string ToString() const;
};

// Detected once; never changes during the process.
const CpuFeatures& GetCpuFeatures();

// Number of physical cores this process may use (affinity-aware; SMT siblings
// counted once). At least 1.
int PhysicalCoreCount();

}  // namespace reprise
