#include "kernels/kv_format.h"

#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "kernels/vec.h"

namespace reprise::kernels {

int64_t KvRowBytes(DType type, int64_t head_dim) {
  switch (type) {
    case DType::kF32: return 4 * head_dim;
    case DType::kF16: return 2 * head_dim;
    case DType::kQ8_0: {
      const int64_t g = KvQ8Group(head_dim);
      if (g <= 0 || head_dim % g != 0) return 0;
      return head_dim / g * (2 + g);
    }
    default: return 0;
  }
}

std::string KvTypeUnsupported(DType type, int64_t head_dim_k, int64_t head_dim_v) {
  if (type != DType::kF32 && type != DType::kF16 && type != DType::kQ8_0) {
    return std::string("KV cache type must be f16, f32 or q8_0, not ") + DTypeName(type);
  }
  if (KvRowBytes(type, head_dim_k) == 0 || KvRowBytes(type, head_dim_v) == 0) {
    return "q8_0 KV needs head sizes that are multiples of 32 (or below 32); this model's are " +
           std::to_string(head_dim_k) + " and " + std::to_string(head_dim_v);
  }
  return "";
}

void StoreKvRow(uint8_t* dst, const float* x, int64_t n, DType type) {
  if (type == DType::kF16) {
    ConvertToF16(x, reinterpret_cast<uint16_t*>(dst), n);
    return;
  }
  if (type == DType::kF32) {
    std::memcpy(dst, x, static_cast<size_t>(n) * sizeof(float));
    return;
  }
  const int64_t g = KvQ8Group(n);
  for (int64_t b = 0; b < n / g; ++b, x += g, dst += 2 + g) {
    float amax = 0.0f;
    for (int64_t i = 0; i < g; ++i) amax = std::fmax(amax, std::fabs(x[i]));
    // The scale as stored (F16), so values are rounded against what a reader
    // multiplies by.
    const uint16_t dh = Fp32ToFp16(amax / 127.0f);
    const float d = Fp16ToFp32(dh);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    std::memcpy(dst, &dh, 2);
    int8_t* q = reinterpret_cast<int8_t*>(dst + 2);
    for (int64_t i = 0; i < g; ++i) {
      float v = std::nearbyint(x[i] * id);
      v = std::fmin(127.0f, std::fmax(-127.0f, v));
      q[i] = static_cast<int8_t>(v);
    }
  }
}

void LoadKvRow(const uint8_t* src, int64_t n, DType type, float* out) {
  if (type == DType::kF16) {
    const uint16_t* h = reinterpret_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) out[i] = Fp16ToFp32(h[i]);
    return;
  }
  if (type == DType::kF32) {
    std::memcpy(out, src, static_cast<size_t>(n) * sizeof(float));
    return;
  }
  const int64_t g = KvQ8Group(n);
  for (int64_t b = 0; b < n / g; ++b, out += g, src += 2 + g) {
    uint16_t dh;
    std::memcpy(&dh, src, 2);
    const float d = Fp16ToFp32(dh);
    const int8_t* q = reinterpret_cast<const int8_t*>(src + 2);
    for (int64_t i = 0; i < g; ++i) out[i] = d * static_cast<float>(q[i]);
  }
}

}  // namespace reprise::kernels
