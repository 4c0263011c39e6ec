// The element formats of the paged KV cache, one row (one position of one KV
// head: head_dim values) at a time: F32, F16, and Q8_0 — groups of
// KvQ8Group(head_dim) values (32, or the whole row when a head is narrower),
// each an F16 scale d followed by that many int8 q, value = d * q. Q8_0 rows
// are 34/64 of F16's bytes at head_dim >= 32.
//
// Invariants: a row's bytes depend only on its values (StoreKvRow is a pure
// function), and LoadKvRow gives the same floats wherever it runs (every
// attention version dequantizes through it or its exact SIMD twin), so the
// determinism contract holds with a quantized cache too.
#pragma once

#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace reprise::kernels {

inline int64_t KvQ8Group(int64_t head_dim) { return head_dim < 32 ? head_dim : 32; }

// Bytes of one row of `head_dim` values; 0 for an unsupported type.
int64_t KvRowBytes(DType type, int64_t head_dim);
// Empty when `type` can hold rows of these head sizes; otherwise why not.
std::string KvTypeUnsupported(DType type, int64_t head_dim_k, int64_t head_dim_v);

void StoreKvRow(uint8_t* dst, const float* x, int64_t n, DType type);
void LoadKvRow(const uint8_t* src, int64_t n, DType type, float* out);

}  // namespace reprise::kernels
