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
// kWideMergeMinChunks grid chunks): MergeHead's arithmetic, split so that
// only its cheap part stays serial. A chunk-ordered merge is
//   M_i = fmaxf(M_{i-1}, m_i), ca_i = e^(M_{i-1} - M_i), cb_i = e^(m_i - M_i),
//   l_i = l_{i-1} ca_i + l2_i cb_i, o_i = o_{i-1} ca_i + o2_i cb_i
// (M_0, l_0, o_0 = chunk 0's state). The running maxima M_i are a max scan,
// exact in any order (a zero's sign can differ, which no e^(x - M) sees), so
// the block computes them, and then every ca_i and cb_i, in parallel; only
// the two-operation steps of l and o follow one another. Block (token, head,
// group of kMergeDims dims); chunk states copied kMergeStage at a time by
// cp.async (the m, l and the group's dims of each) into a ring of
// kMergeRing stages, the next kMergeRing - 1 in flight while one is merged
// (a 32k context has 513 chunks, five stages: with one stage ahead every
// stage waited a full memory latency).
constexpr int kMergeDims = 16;
constexpr int kMergeStage = kThreads;  // states a stage: one a thread in the scan
constexpr int kMergeRing = 4;
constexpr int kMergeWords = 2 + kMergeDims;  // a staged state: m, l, then the group's dims

// kFull: every group has kMergeDims dims (hv a multiple of it), so a staged
// state's word count is a constant and its copies' indices need no division.
// (Making l2_i cb_i and o2_i cb_i in the parallel phase, so that a serial
// step is one multiply and one add, was measured on an H100: 188.2 vs 187.9
// tok/s at 32k, within noise; removed.)
template <bool kFull>
__global__ void __launch_bounds__(kThreads)
    AttentionWideMergeKernel(Ctx c, int64_t max_chunks, const float* part, float* out) {
  extern __shared__ __align__(16) float ring_sh[];  // kMergeRing x kMergeStage x kMergeWords
  __shared__ float fac_sh[2][kMergeStage];  // ca, cb of the stage's states
  __shared__ float wmax_sh[kWarps];
  constexpr int kWords = kMergeWords;
  const int64_t hv = c.s.head_dim_v, stride = hv + 2;
  const int64_t groups = (hv + kMergeDims - 1) / kMergeDims;
  const int64_t th = blockIdx.x / groups, grp = blockIdx.x % groups;
  const int64_t t = th / c.s.n_heads, h = th % c.s.n_heads;
  const int dims = kFull ? kMergeDims
                         : static_cast<int>(hv - grp * kMergeDims < kMergeDims
                                                ? hv - grp * kMergeDims
                                                : kMergeDims);
  const int words = kFull ? kWords : 2 + dims;
  const int n_chunks = c.b.pos[t] / kChunk + 1;
  const int n_stages = (n_chunks + kMergeStage - 1) / kMergeStage;
  const float* src = part + (t * c.s.n_heads + h) * max_chunks * stride;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const auto stage_buf = [&](int it) { return ring_sh + (it % kMergeRing) * kMergeStage * kWords; };
  // Stage it's copies (none past the last stage), then one commit: every
  // stage is one cp.async group, empty or not, so a fixed wait count works.
  const auto issue = [&](int it) {
    if (it < n_stages) {
      const int s0 = it * kMergeStage;
      float* dst = stage_buf(it);
      const int cnt = min(kMergeStage, n_chunks - s0);
      for (int i = threadIdx.x; i < cnt * words; i += kThreads) {
        const int j = i / words, w = i % words;
        const int64_t col = w < 2 ? w : 2 + grp * kMergeDims + (w - 2);
        CpAsync4(dst + j * kWords + w, src + (s0 + j) * stride + col);
      }
    }
    CpAsyncCommit();
  };
  for (int it = 0; it < kMergeRing - 1; ++it) issue(it);
  float run_m = -INFINITY, l = 0.0f, o = 0.0f;  // o: dim grp * kMergeDims + lane (warp 0)
  for (int it = 0; it < n_stages; ++it) {
    const int s0 = it * kMergeStage;
    // The ring slot of stage it - 1 was freed by the last iteration's final
    // barrier; stage it is done once at most kMergeRing - 1 newer groups are
    // pending.
    issue(it + kMergeRing - 1);
    CpAsyncWait<kMergeRing - 1>();
    __syncthreads();
    float* st = stage_buf(it);
    const int cnt = min(kMergeStage, n_chunks - s0), j = threadIdx.x;
    const float mj = j < cnt ? st[j * kWords] : -INFINITY;
    float inc = mj;  // the warp's inclusive max scan
#pragma unroll
    for (int d = 1; d < 32; d *= 2) {
      const float v = __shfl_up_sync(0xffffffffu, inc, d);
      if (lane >= d) inc = fmaxf(inc, v);
    }
    if (lane == 31) wmax_sh[warp] = inc;
    __syncthreads();
    float before = run_m;  // M before this warp's first state
    for (int w = 0; w < warp; ++w) before = fmaxf(before, wmax_sh[w]);
    // M_j; the sequence's first state is M_0 = m_0 as it is (MergeHead's
    // start, NaN included).
    const float m_at = s0 == 0 && j == 0 ? mj : fmaxf(before, inc);
    float m_prev = __shfl_up_sync(0xffffffffu, m_at, 1);
    if (lane == 0) m_prev = before;
    if (j < cnt) {
      const float cb = expf(FSub(mj, m_at));
      fac_sh[0][j] = expf(FSub(m_prev, m_at));
      fac_sh[1][j] = cb;
    }
    for (int w = 0; w < kWarps; ++w) run_m = fmaxf(run_m, wmax_sh[w]);
    __syncthreads();  // fac_sh written, wmax_sh read
    if (warp == 0) {
      int j0 = 0;
      if (s0 == 0) {
        l = st[1];
        o = lane < dims ? st[2 + lane] : 0.0f;
        j0 = 1;
      }
#pragma unroll 8
      for (int k = j0; k < cnt; ++k) {
        const float ca = fac_sh[0][k], l2 = st[k * kWords + 1];
        const float o2 = lane < dims ? st[k * kWords + 2 + lane] : 0.0f;
        l = FAdd(FMul(l, ca), FMul(l2, fac_sh[1][k]));
        o = FAdd(FMul(o, ca), FMul(o2, fac_sh[1][k]));
      }
    }
    __syncthreads();  // the stage's buffer and factors are free again
  }
  if (warp == 0 && lane < dims) {
    out[t * c.s.n_heads * hv + h * hv + grp * kMergeDims + lane] = FDiv(o, l);
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
  const int64_t groups = (c.s.head_dim_v + kMergeDims - 1) / kMergeDims;
  const unsigned blocks = static_cast<unsigned>(c.b.n * c.s.n_heads * groups);
  constexpr size_t kSmem = sizeof(float) * kMergeRing * kMergeStage * kMergeWords;  // < 48 KiB
  if (c.s.head_dim_v % kMergeDims == 0) {
    AttentionWideMergeKernel<true><<<blocks, kThreads, kSmem, s>>>(c, chunks, scratch, out);
  } else {
    AttentionWideMergeKernel<false><<<blocks, kThreads, kSmem, s>>>(c, chunks, scratch, out);
  }
}

}  // namespace reprise::kernels::cuda::attn
