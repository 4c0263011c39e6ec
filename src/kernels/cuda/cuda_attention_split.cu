// The split (decode) shape's faster kernels: the raw chunk kernel for F16
// KV and the wide merge for long contexts (cuda_attention.cu's header comment
// gives the canonical order both keep; cuda_attention.cuh the pieces they
// share with the default kernels).
#include "kernels/cuda/cuda_attention.cuh"

namespace reprise::kernels::cuda::attn {
namespace {

// ---- the raw decode shape (F16 KV) ----
// The split shape's block (token, kv head, chunk) with the chunk's K/V rows
// copied as stored, by cp.async, in one burst (the staged shape waits on
// memory four times a chunk: two batches of four rows a warp, two tiles), and
// read from shared memory as the blocked prefill shape reads them: lane j's
// K row 8 dims per 16-byte load against q's float4s, a lane's dims
// 4 lane + 128 g for P.V. Each (token, head) runs RunChunk's arithmetic:
// ScoreDot's partials in dim order, the same per-tile update in position
// order, the same chunk state; the merge is MergeHead's. The default since
// an H100 run validated it (REPRISE_CUDA_ATTN_RAW=0: off; AttentionRawOn).
template <int kVD>
struct RawHead {
  float m, l;
  float o[kVD][4];  // dims 128 g + 4 lane + i
};

template <int kVD, int kHpw>  // hv <= 128 kVD; heads per warp: group <= kHpw * kWarps
__global__ void __launch_bounds__(kThreads, 3)
    AttentionChunkRawKernel(Ctx c, int64_t max_chunks, float* part, int32_t* counters, float* out) {
  extern __shared__ __align__(16) float sh[];
  __shared__ int last_sh;
  PdlTrigger();  // as AttentionChunkKernel
  PdlWait();
  const int t = blockIdx.x, kvh = blockIdx.y, chunk = blockIdx.z;
  const int pos = c.b.pos[t];
  if (chunk * kChunk > pos) return;
  const int hk = static_cast<int>(c.s.head_dim_k), hv = static_cast<int>(c.s.head_dim_v);
  const int group = static_cast<int>(c.s.n_heads / c.s.n_kv_heads);
  float* q_sh = sh;
  __half* kraw = reinterpret_cast<__half*>(q_sh + group * hk);
  __half* vraw = kraw + kChunk * (hk + kKPad);
  const int p_begin = chunk * kChunk, p_end = min(pos, p_begin + kChunk - 1);
  const int32_t* table = c.b.block_table + static_cast<int64_t>(c.b.seq[t]) * c.b.max_blocks;
  StageRawRows<kThreads>(c, table, kvh, p_begin, p_end - p_begin + 1, kraw, vraw);
  CpAsyncCommit();
  LoadQ(c, t, kvh, q_sh);
  CpAsyncWait<0>();
  __syncthreads();  // every thread's rows have landed
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  RawHead<kVD> st[kHpw];
#pragma unroll
  for (int hi = 0; hi < kHpw; ++hi) {
    st[hi].m = -FLT_MAX;
    st[hi].l = 0.0f;
#pragma unroll
    for (int g = 0; g < kVD; ++g)
#pragma unroll
      for (int i = 0; i < 4; ++i) st[hi].o[g][i] = 0.0f;
  }
  for (int p0 = p_begin; p0 <= p_end; p0 += kTile) {
    const int valid = min(kTile, p_end - p0 + 1);
    const __half* krow = kraw + (p0 - p_begin + lane) * (hk + kKPad);  // row < kChunk
    const __half* vt = vraw + (p0 - p_begin) * hv;
#pragma unroll
    for (int hi = 0; hi < kHpw; ++hi) {
      const int gh = warp + hi * kWarps;
      if (gh >= group) break;
      const float* qh = q_sh + gh * hk;
      float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
      for (int e = 0; e < hk; e += 8) {
        float kf[8];
        Halves8(*reinterpret_cast<const uint4*>(krow + e), kf);
        const float4 qa = *reinterpret_cast<const float4*>(qh + e);
        const float4 qb = *reinterpret_cast<const float4*>(qh + e + 4);
        a0 = FFma(qa.x, kf[0], a0);
        a1 = FFma(qa.y, kf[1], a1);
        a2 = FFma(qa.z, kf[2], a2);
        a3 = FFma(qa.w, kf[3], a3);
        a0 = FFma(qb.x, kf[4], a0);
        a1 = FFma(qb.y, kf[5], a1);
        a2 = FFma(qb.z, kf[6], a2);
        a3 = FFma(qb.w, kf[7], a3);
      }
      RawHead<kVD>& h = st[hi];
      const float sc = lane < valid ? FMul(FAdd(FAdd(a0, a1), FAdd(a2, a3)), c.s.scale) : -FLT_MAX;
      const float m_new = fmaxf(h.m, WarpMax(sc));
      const float corr = expf(FSub(h.m, m_new));
      const float p = lane < valid ? expf(FSub(sc, m_new)) : 0.0f;
      h.l = FAdd(FMul(h.l, corr), WarpSum(p));
#pragma unroll
      for (int g = 0; g < kVD; ++g)
#pragma unroll
        for (int i = 0; i < 4; ++i) h.o[g][i] = FMul(h.o[g][i], corr);
      for (int j = 0; j < valid; ++j) {
        const float pj = __shfl_sync(0xffffffffu, p, j);
#pragma unroll
        for (int g = 0; g < kVD; ++g) {
          const int e = 128 * g + 4 * lane;
          if (e >= hv) continue;
          const uint2 r = *reinterpret_cast<const uint2*>(vt + j * hv + e);
          const float2 v01 = __half22float2(*reinterpret_cast<const __half2*>(&r.x));
          const float2 v23 = __half22float2(*reinterpret_cast<const __half2*>(&r.y));
          h.o[g][0] = FFma(pj, v01.x, h.o[g][0]);
          h.o[g][1] = FFma(pj, v01.y, h.o[g][1]);
          h.o[g][2] = FFma(pj, v23.x, h.o[g][2]);
          h.o[g][3] = FFma(pj, v23.y, h.o[g][3]);
        }
      }
      h.m = m_new;
    }
  }
  const int64_t stride = hv + 2;
#pragma unroll
  for (int hi = 0; hi < kHpw; ++hi) {
    const int gh = warp + hi * kWarps;
    if (gh >= group) break;
    const int64_t h = static_cast<int64_t>(kvh) * group + gh;
    float* dst = part + ((t * c.s.n_heads + h) * max_chunks + chunk) * stride;
    if (lane == 0) {
      dst[0] = st[hi].m;
      dst[1] = st[hi].l;
    }
#pragma unroll
    for (int g = 0; g < kVD; ++g) {
      const int e = 128 * g + 4 * lane;
      if (e >= hv) continue;
#pragma unroll
      for (int i = 0; i < 4; ++i) dst[2 + e + i] = st[hi].o[g][i];
    }
  }
  if (counters == nullptr) return;  // AttentionMergeKernel merges
  const int64_t n_chunks = pos / kChunk + 1;
  if (!LastChunkBlock(counters + static_cast<int64_t>(t) * c.s.n_kv_heads + kvh, n_chunks, &last_sh)) return;
  float* merged = c.act_group > 0 ? reinterpret_cast<float*>(kraw) : nullptr;  // free now
  for (int gh = warp; gh < group; gh += kWarps) {
    const int64_t h = static_cast<int64_t>(kvh) * group + gh;
    MergeHead(part + (t * c.s.n_heads + h) * max_chunks * stride, n_chunks, hv,
              out + t * c.s.n_heads * hv + h * hv, merged != nullptr ? merged + gh * hv : nullptr);
  }
  if (merged != nullptr) {
    __syncthreads();
    QuantizeMerged(c, t, kvh, merged);
  }
}

template <int kVD, int kHpw>
void LaunchChunkRaw(const Ctx& c, dim3 grid, int64_t chunks, float* scratch, int32_t* counters,
                    float* out, cudaStream_t s) {
  const int64_t group = c.s.n_heads / c.s.n_kv_heads;
  const int64_t hk = c.s.head_dim_k, hv = c.s.head_dim_v;
  const size_t smem = static_cast<size_t>(group * hk) * sizeof(float) +
                      static_cast<size_t>(kChunk * (hk + kKPad + hv)) * sizeof(__half);
  static bool configured = false;
  if (!configured) {
    cudaFuncSetAttribute(AttentionChunkRawKernel<kVD, kHpw>,
                         cudaFuncAttributeMaxDynamicSharedMemorySize, 160 << 10);
    configured = true;
  }
  PdlLaunch(AttentionChunkRawKernel<kVD, kHpw>, grid, dim3(kThreads), smem, s, c, chunks, scratch,
            counters, out);
}

// The split shape's merge for long contexts (default; off with
// REPRISE_CUDA_ATTN_WIDE_MERGE=0, AttentionWideMergeOn; from more than
// kWideMergeMinChunks grid chunks): a block of kThreads per (token, head), a
// thread per dim (two for hv <= 256), kWideAhead chunk states loaded at once
// (the m and l loads are one address for a warp), merged in chunk order with
// MergeState's arithmetic (every warp computes the same m and l). The one
// warp that merges a head in the last chunk block (MergeHead) waits on
// memory n_chunks / 8 times, here n_chunks / 32; the extra launch pays off
// past a few thousand positions.
constexpr int kWideAhead = 32;

template <int kD>  // dims per thread: hv <= kThreads * kD
__global__ void __launch_bounds__(kThreads)
    AttentionWideMergeKernel(Ctx c, int64_t max_chunks, const float* part, float* out) {
  const int64_t t = blockIdx.x / c.s.n_heads, h = blockIdx.x % c.s.n_heads;
  const int64_t hv = c.s.head_dim_v, stride = hv + 2;
  const int64_t n_chunks = c.b.pos[t] / kChunk + 1;
  const float* src = part + (t * c.s.n_heads + h) * max_chunks * stride;
  float m = src[0], l = src[1], o[kD];
#pragma unroll
  for (int d = 0; d < kD; ++d) {
    const int64_t e = threadIdx.x + kThreads * d;
    o[d] = e < hv ? src[2 + e] : 0.0f;
  }
  for (int64_t ch0 = 1; ch0 < n_chunks; ch0 += kWideAhead) {
    float m2[kWideAhead], l2[kWideAhead], o2[kWideAhead][kD];
#pragma unroll
    for (int a = 0; a < kWideAhead; ++a) {
      const float* sc = src + (ch0 + a) * stride;
      const bool ok = ch0 + a < n_chunks;
      m2[a] = ok ? sc[0] : 0.0f;
      l2[a] = ok ? sc[1] : 0.0f;
#pragma unroll
      for (int d = 0; d < kD; ++d) {
        const int64_t e = threadIdx.x + kThreads * d;
        o2[a][d] = ok && e < hv ? sc[2 + e] : 0.0f;
      }
    }
#pragma unroll
    for (int a = 0; a < kWideAhead; ++a) {
      if (ch0 + a >= n_chunks) break;
      const float mm = fmaxf(m, m2[a]);
      const float ca = expf(FSub(m, mm)), cb = expf(FSub(m2[a], mm));
      l = FAdd(FMul(l, ca), FMul(l2[a], cb));
#pragma unroll
      for (int d = 0; d < kD; ++d) o[d] = FAdd(FMul(o[d], ca), FMul(o2[a][d], cb));
      m = mm;
    }
  }
#pragma unroll
  for (int d = 0; d < kD; ++d) {
    const int64_t e = threadIdx.x + kThreads * d;
    if (e < hv) out[t * c.s.n_heads * hv + h * hv + e] = FDiv(o[d], l);
  }
}

}  // namespace

void LaunchChunkRawAny(const Ctx& c, dim3 grid, int64_t chunks, float* scratch, int32_t* counters,
                       float* out, cudaStream_t s) {
  const bool wide = c.s.head_dim_v > 128, two = c.s.n_heads / c.s.n_kv_heads > kWarps;
  if (!wide && !two) {
    LaunchChunkRaw<1, 1>(c, grid, chunks, scratch, counters, out, s);
  } else if (!wide) {
    LaunchChunkRaw<1, 2>(c, grid, chunks, scratch, counters, out, s);
  } else if (!two) {
    LaunchChunkRaw<2, 1>(c, grid, chunks, scratch, counters, out, s);
  } else {
    LaunchChunkRaw<2, 2>(c, grid, chunks, scratch, counters, out, s);
  }
}

void LaunchWideMerge(const Ctx& c, int64_t chunks, const float* scratch, float* out,
                     cudaStream_t s) {
  const unsigned blocks = static_cast<unsigned>(c.b.n * c.s.n_heads);
  if (c.s.head_dim_v <= kThreads) {
    AttentionWideMergeKernel<1><<<blocks, kThreads, 0, s>>>(c, chunks, scratch, out);
  } else {
    AttentionWideMergeKernel<2><<<blocks, kThreads, 0, s>>>(c, chunks, scratch, out);
  }
}

}  // namespace reprise::kernels::cuda::attn
