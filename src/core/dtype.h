// Tensor element types, numbered as in GGUF/ggml (the file format fixes the
// ids). Block geometry for every type the format defines, so the GGUF reader
// can validate sizes of any valid file; which types the engine can *compute*
// with is the kernels module's business.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace reprise {

enum class DType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIQ2_XXS = 16,
  kIQ2_XS = 17,
  kIQ3_XXS = 18,
  kIQ1_S = 19,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ2_S = 22,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIQ1_M = 29,
  kBF16 = 30,
  kTQ1_0 = 34,
  kTQ2_0 = 35,
  kMXFP4 = 39,
};

struct DTypeInfo {
  const char* name;
  int64_t block_elems;  // elements per block (1 for plain types)
  int64_t block_bytes;  // bytes per block
};

// nullptr when `raw` is not a type id the GGUF format defines.
const DTypeInfo* GetDTypeInfo(uint32_t raw);
const char* DTypeName(DType t);
// Parses "f32", "F16", "q8_0", "Q4_K", ... (case-insensitive).
std::optional<DType> ParseDType(const std::string& name);
// Bytes of one row of `n_elems` elements; n_elems must be a multiple of the
// block size (CHECKed: callers validate first).
int64_t RowBytes(DType t, int64_t n_elems);

}  // namespace reprise
