// Scalar reference conversions between float32 and the GGUF weight types:
// DequantizeRow (bit-exact with ggml's reference dequantizers, evaluated in
// C order without fused multiply-add) and QuantizeRow (sensible quantizers:
// amax-based for Q8_0/Q4_0, a small least-squares scale/min search for Q4_K
// and Q6_K; they need not reproduce ggml's choices bit for bit).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/check.h"
#include "core/fp16.h"
#include "kernels/ops.h"
#include "kernels/quant_blocks.h"

namespace reprise::kernels {
namespace {

int RoundToInt(float v) { return static_cast<int>(std::nearbyint(v)); }

void DequantQ8_0(const BlockQ8_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = Fp16ToFp32(b[i].d);
    for (int j = 0; j < kQK; ++j) y[i * kQK + j] = static_cast<float>(b[i].qs[j]) * d;
  }
}

void DequantQ4_0(const BlockQ4_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = Fp16ToFp32(b[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[i * kQK + j] = static_cast<float>((b[i].qs[j] & 0xF) - 8) * d;
      y[i * kQK + j + 16] = static_cast<float>((b[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void DequantQ4K(const BlockQ4K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = Fp16ToFp32(b[i].d);
    const float dmin = Fp16ToFp32(b[i].dmin);
    const uint8_t* q = b[i].qs;
    for (int c = 0; c < 4; ++c) {  // 64 values per chunk
      uint8_t sc, m;
      GetScaleMinK4(2 * c, b[i].scales, &sc, &m);
      const float d1 = d * static_cast<float>(sc);
      const float m1 = dmin * static_cast<float>(m);
      GetScaleMinK4(2 * c + 1, b[i].scales, &sc, &m);
      const float d2 = d * static_cast<float>(sc);
      const float m2 = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
      q += 32;
    }
  }
}

void DequantQ6K(const BlockQ6K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = Fp16ToFp32(b[i].d);
    const uint8_t* ql = b[i].ql;
    const uint8_t* qh = b[i].qh;
    const int8_t* sc = b[i].scales;
    for (int h = 0; h < 2; ++h) {  // 128 values per half
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = static_cast<int8_t>((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = static_cast<int8_t>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = static_cast<int8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = static_cast<int8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
        y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

void QuantQ8_0(const float* x, BlockQ8_0* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = Fp32ToFp16(d);
    for (int j = 0; j < kQK; ++j) b[i].qs[j] = static_cast<int8_t>(RoundToInt(x[j] * id));
  }
}

void QuantQ4_0(const float* x, BlockQ4_0* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    // The value of largest magnitude maps to -8 exactly, so the full range is used.
    float amax = 0, vmax = 0;
    for (int j = 0; j < kQK; ++j) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        vmax = x[j];
      }
    }
    const float d = vmax / -8.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = Fp32ToFp16(d);
    auto q = [&](float v) {
      return static_cast<uint8_t>(std::clamp(RoundToInt(v * id) + 8, 0, 15));
    };
    for (int j = 0; j < kQK / 2; ++j) b[i].qs[j] = q(x[j]) | (q(x[j + 16]) << 4);
  }
}

// Fits x ~= scale * q + offset with q in [0, qmax], offset <= 0, by a few
// rounds of "round q, then least-squares (scale, offset)". Returns the scale
// and -offset (>= 0).
void FitScaleMin(const float* x, int n, int qmax, float* scale_out, float* min_out) {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  lo = std::min(lo, 0.0f);
  float scale = (hi - lo) / qmax, offset = lo;
  float best_scale = scale, best_offset = offset, best_err = INFINITY;
  for (int iter = 0; iter < 5 && scale > 0; ++iter) {
    double sq = 0, sq2 = 0, sx = 0, sqx = 0, err = 0;
    for (int i = 0; i < n; ++i) {
      const int q = std::clamp(RoundToInt((x[i] - offset) / scale), 0, qmax);
      const double e = scale * q + offset - x[i];
      err += e * e;
      sq += q;
      sq2 += double(q) * q;
      sx += x[i];
      sqx += double(q) * x[i];
    }
    if (err < best_err) {
      best_err = static_cast<float>(err);
      best_scale = scale;
      best_offset = offset;
    }
    const double det = n * sq2 - sq * sq;
    if (det <= 0) break;
    double s = (n * sqx - sq * sx) / det;
    double o = (sx - s * sq) / n;
    if (o > 0) {  // offset must stay <= 0: refit the scale alone
      o = 0;
      s = sq2 > 0 ? sqx / sq2 : 0;
    }
    if (s <= 0) break;
    scale = static_cast<float>(s);
    offset = static_cast<float>(o);
  }
  *scale_out = best_scale;
  *min_out = -best_offset;
}

void QuantQ4K(const float* x, BlockQ4K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    float scales[8], mins[8];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
      FitScaleMin(x + 32 * j, 32, 15, &scales[j], &mins[j]);
      max_scale = std::max(max_scale, scales[j]);
      max_min = std::max(max_min, mins[j]);
    }
    const float d = max_scale / 63.0f, dmin = max_min / 63.0f;
    b[i].d = Fp32ToFp16(d);
    b[i].dmin = Fp32ToFp16(dmin);
    const float dq = Fp16ToFp32(b[i].d), dminq = Fp16ToFp32(b[i].dmin);
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; ++j) {
      sc[j] = static_cast<uint8_t>(dq > 0 ? std::clamp(RoundToInt(scales[j] / dq), 0, 63) : 0);
      mn[j] = static_cast<uint8_t>(dminq > 0 ? std::clamp(RoundToInt(mins[j] / dminq), 0, 63) : 0);
    }
    std::memset(b[i].scales, 0, sizeof(b[i].scales));
    for (int j = 0; j < 8; ++j) {
      if (j < 4) {
        b[i].scales[j] |= sc[j];
        b[i].scales[j + 4] |= mn[j];
      } else {
        b[i].scales[j + 4] = static_cast<uint8_t>((sc[j] & 0xF) | ((mn[j] & 0xF) << 4));
        b[i].scales[j - 4] |= static_cast<uint8_t>((sc[j] >> 4) << 6);
        b[i].scales[j] |= static_cast<uint8_t>((mn[j] >> 4) << 6);
      }
    }
    uint8_t q[kQKK];
    for (int j = 0; j < 8; ++j) {
      const float s = dq * static_cast<float>(sc[j]);
      const float m = dminq * static_cast<float>(mn[j]);
      for (int l = 0; l < 32; ++l) {
        q[32 * j + l] = static_cast<uint8_t>(
            s > 0 ? std::clamp(RoundToInt((x[32 * j + l] + m) / s), 0, 15) : 0);
      }
    }
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        b[i].qs[32 * c + l] = static_cast<uint8_t>(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
      }
    }
  }
}

void QuantQ6K(const float* x, BlockQ6K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    // Per 16 values: the value of largest magnitude maps to -32 exactly.
    float scales[16];
    float max_abs_scale = 0;
    for (int j = 0; j < 16; ++j) {
      float amax = 0, vmax = 0;
      for (int l = 0; l < 16; ++l) {
        const float v = x[16 * j + l];
        if (std::fabs(v) > amax) {
          amax = std::fabs(v);
          vmax = v;
        }
      }
      scales[j] = vmax / -32.0f;
      max_abs_scale = std::max(max_abs_scale, std::fabs(scales[j]));
    }
    const float d = max_abs_scale / 127.0f;
    b[i].d = Fp32ToFp16(d);
    const float dq = Fp16ToFp32(b[i].d);
    uint8_t q[kQKK];
    for (int j = 0; j < 16; ++j) {
      const int sc = dq > 0 ? std::clamp(RoundToInt(scales[j] / dq), -127, 127) : 0;
      b[i].scales[j] = static_cast<int8_t>(sc);
      const float s = dq * static_cast<float>(sc);
      for (int l = 0; l < 16; ++l) {
        const int v = s != 0 ? std::clamp(RoundToInt(x[16 * j + l] / s), -32, 31) : 0;
        q[16 * j + l] = static_cast<uint8_t>(v + 32);
      }
    }
    for (int h = 0; h < 2; ++h) {
      const uint8_t* qq = q + 128 * h;
      uint8_t* ql = b[i].ql + 64 * h;
      uint8_t* qh = b[i].qh + 32 * h;
      for (int l = 0; l < 32; ++l) {
        const int q1 = qq[l], q2 = qq[l + 32], q3 = qq[l + 64], q4 = qq[l + 96];
        ql[l] = static_cast<uint8_t>((q1 & 0xF) | ((q3 & 0xF) << 4));
        ql[l + 32] = static_cast<uint8_t>((q2 & 0xF) | ((q4 & 0xF) << 4));
        qh[l] = static_cast<uint8_t>((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) |
                                     ((q4 >> 4) << 6));
      }
    }
  }
}

}  // namespace

void DequantizeRow(DType type, const void* src, float* dst, int64_t n) {
  const int64_t block = GetDTypeInfo(static_cast<uint32_t>(type))->block_elems;
  CHECK_MSG(n % block == 0, "DequantizeRow: %lld not a multiple of %lld", (long long)n,
            (long long)block);
  switch (type) {
    case DType::kF32:
      std::memcpy(dst, src, n * sizeof(float));
      return;
    case DType::kF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = Fp16ToFp32(s[i]);
      return;
    }
    case DType::kBF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = Bf16ToFp32(s[i]);
      return;
    }
    case DType::kQ8_0:
      return DequantQ8_0(static_cast<const BlockQ8_0*>(src), dst, n / kQK);
    case DType::kQ4_0:
      return DequantQ4_0(static_cast<const BlockQ4_0*>(src), dst, n / kQK);
    case DType::kQ4_K:
      return DequantQ4K(static_cast<const BlockQ4K*>(src), dst, n / kQKK);
    case DType::kQ6_K:
      return DequantQ6K(static_cast<const BlockQ6K*>(src), dst, n / kQKK);
    default:
      CHECK_MSG(false, "DequantizeRow: unsupported type %s", DTypeName(type));
  }
}

void QuantizeRow(DType type, const float* src, void* dst, int64_t n) {
  const int64_t block = GetDTypeInfo(static_cast<uint32_t>(type))->block_elems;
  CHECK_MSG(n % block == 0, "QuantizeRow: %lld not a multiple of %lld", (long long)n,
            (long long)block);
  switch (type) {
    case DType::kF32:
      std::memcpy(dst, src, n * sizeof(float));
      return;
    case DType::kF16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = Fp32ToFp16(src[i]);
      return;
    }
    case DType::kBF16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = Fp32ToBf16(src[i]);
      return;
    }
    case DType::kQ8_0:
      return QuantQ8_0(src, static_cast<BlockQ8_0*>(dst), n / kQK);
    case DType::kQ4_0:
      return QuantQ4_0(src, static_cast<BlockQ4_0*>(dst), n / kQK);
    case DType::kQ4_K:
      return QuantQ4K(src, static_cast<BlockQ4K*>(dst), n / kQKK);
    case DType::kQ6_K:
      return QuantQ6K(src, static_cast<BlockQ6K*>(dst), n / kQKK);
    default:
      CHECK_MSG(false, "QuantizeRow: unsupported type %s", DTypeName(type));
  }
}

}  // namespace reprise::kernels
