// Internal to the CUDA backend: the host-side launchers of its kernels (one
// .cu file per family) and the weight layouts they read. Only
// cuda_backend.cu includes this.
//
// Determinism contract: every output element (row r, token t) of a matmul has
// one fixed operation sequence (segments of kSegCols columns, each summed in
// column order, then the segment sums in order: cuda_matmul.cu), whatever n,
// the tile it falls in or the grid; the same holds for every (token, head) of
// attention (positions in order, one online softmax) and every row of the
// per-row ops (fixed reduction trees). So batch composition, chunking and
// cache hits never change a bit.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "kernels/backend.h"

namespace reprise::kernels::cuda {

// Layout tags of matrices this backend prepared (Matrix::backend_layout()).
enum Layout : int {
  kLayoutRaw = 100,          // GGUF row layout, uploaded as is (embedding tables)
  kLayoutInterleaved = 101,  // rows in groups of 32, see RepackInterleaved
  kLayoutHalfFragments = 102,  // F16 / BF16 for the tensor cores, see RepackHalf
};

// Host-side repack of a GGUF matrix for the matmul kernels: rows in groups of
// kRowGroup (padded with zero rows); within a group, for each unit u of a row
// (a quant block, or 16 bytes of F32/F16/BF16 values, padded with zeros), the
// 32 rows' units side by side: group g, unit u, lane l at
// ((g * n_units + u) * 32 + l) * unit_bytes. Returns the bytes.
std::vector<uint8_t> RepackInterleaved(const MatrixView& v, int64_t* n_units, int* unit_bytes);

// ---- matmul (cuda_matmul.cu) ----
// Quantized activations for the int8 paths, as the CPU quantizes them for
// the weight type (per 32 values for Q8_0/Q4_0, per 256 for the K-quants):
// q (int8), and per 32 values d (f32, amax / 127 of its block) and the sum
// of q (int32).
struct ActQ {
  int8_t* q = nullptr;     // [n, cols]
  float* d = nullptr;      // [n, cols / 32]
  int32_t* sum = nullptr;  // [n, cols / 32]
};
int ActGroup(DType type);  // 32 or 256: the activation block of a quantized weight type
void LaunchQuantizeAct(DType type, const float* x, int64_t n, int64_t cols, const ActQ& a,
                       cudaStream_t s);
// Column segments of a row (the canonical order's split; cuda_matmul.cu).
int64_t MatMulSegments(int64_t cols);
// Floats of `part` scratch LaunchMatMul needs for this matmul: 0 except for
// the one-thread-per-row float kernel (REPRISE_CUDA_FLOAT_TILES=0), which
// writes segment sums (MatMulSegments(cols) * n * rows).
int64_t MatMulScratchFloats(DType type, int64_t rows, int64_t cols, int64_t n);
// y[t, r] (row stride ldy) for r < rows, t < n. `part`: MatMulScratchFloats
// floats of scratch (may be null when that is 0).
void LaunchMatMul(DType type, const uint8_t* w, int64_t rows, int64_t cols, int64_t n_units,
                  const float* x, const ActQ& act, int64_t n, float* part, float* y, int64_t ldy,
                  cudaStream_t s);
bool IsQuantType(DType type);
// The GEMV (cuda_gemv.cu): y for n tokens of any weight type (x for float
// weights, act for quantized ones), kGemvMaxTokens tokens per launch; the
// decode path (n < kGemvMaxTokens) of every type.
constexpr int kGemvMaxTokens = 16;
void LaunchGemv(DType type, const uint8_t* w, int64_t rows, int64_t cols, int64_t n_units,
                const float* x, const ActQ& act, int64_t n, float* y, int64_t ldy, cudaStream_t s);
// The staged GEMV of quantized weights (cuda_gemv.cu; on unless
// REPRISE_CUDA_GEMV_STAGED=0): up to kGemvMaxTargets matrices of one type and
// width against the same activations in one launch, y_m [n, rows_m] with row
// stride ldy_m; the same bits as LaunchGemv on each.
struct GemvTarget {
  const uint8_t* w;
  int64_t rows;
  float* y;
  int64_t ldy;
};
constexpr int kGemvMaxTargets = 4;
bool GemvStagedOn();
// Quantized matmuls of fewer than QuantGemvTokens() tokens run on the GEMV,
// the rest on the int8 tensor cores: kGemvWideTokens (the default: up to 16
// tokens, one GEMV pass), or kGemvMaxTokens with REPRISE_CUDA_GEMV_WIDE=0.
// Measured on an H100 (Q4_K, Llama-3-8B shape, total tok/s): 16 streams
// 1,082 on the tensor cores' 64-token tile, 1,580 on the GEMV; 24 streams
// (two GEMV passes) 1,538 on the tensor cores, 1,421 on the GEMV. Either way
// the same bits (every path gives them); a test's override (-1: the
// environment).
constexpr int kGemvWideTokens = kGemvMaxTokens + 1;
int64_t QuantGemvTokens();
void SetGemvWideForTest(int on);
// Split over K (GemvSplitOn(type): by default for Q8_0 and Q4_0, where it
// measured faster on an H100 (tg128, Llama-3-8B shape: Q8_0 234.6 -> 238.3,
// Q4_0 338.0 -> 347.0 tok/s) and not for the K-quants (Q4_K 373.6 -> 368.5);
// REPRISE_CUDA_GEMV_SPLIT=1 splits every type, =0 none):
// a launch of few row groups over many segments (the down projection: 128
// groups, 28 segments, one block an SM working through four rounds) gives
// each group `split` blocks taking every split-th round; they write their
// segment sums to `scratch` and the group's last block to finish (a
// counter per group, zero between launches) folds them in segment order:
// the same additions, the same bits. GemvSplitFactor: the split for
// `groups` row groups of `cols` columns (1: none); GemvSplitScratchFloats:
// the scratch one launch of up to n tokens needs (counters: `groups`).
struct GemvSplit {
  float* scratch = nullptr;
  int32_t* counters = nullptr;
  int split = 1;
};
bool GemvSplitOn(DType type);
void SetGemvSplitForTest(int on);  // -1: as the environment says, 0: none, 1: every type
int GemvSplitFactor(int64_t groups, int64_t cols, int n_sms);
int64_t GemvSplitScratchFloats(int64_t groups, int64_t cols, int64_t n);
void LaunchGemvStaged(DType type, const GemvTarget* targets, int count, int64_t cols,
                      int64_t n_units, const ActQ& act, int64_t n, cudaStream_t s,
                      const GemvSplit& sp = {});
// The quantized types' kernels (cuda_matmul_quant.cu): y for n tokens whose
// activations `act` holds; LaunchMatMul calls it.
// The pipelined Q4_K prefill kernel (default; REPRISE_CUDA_MMA_PIPE=0: off;
// the same bits), and a test's override (-1: the environment).
bool MmaPipeOn();
void SetMmaPipeForTest(int on);
// The pipelined Q8_0 / Q4_0 prefill kernel (cuda_matmul_q32_pipe.cu; on
// unless REPRISE_CUDA_MMA_PIPE32=0; the same bits) and a test's override.
bool MmaPipe32On();
void SetMmaPipe32ForTest(int on);
// Tensor-core tiles of a batch of fewer tokens than one tile (decode batches
// of 17-63 quantized, 16-127 F16 / BF16) skip their warps' column tiles past
// the last token (opt-in, REPRISE_CUDA_MMA_SKIP_TILES=1, written without a
// GPU: a 32-stream decode step computed a 64-token tile; the same bits) and
// a test's override.
bool MmaSkipTilesOn();
void SetMmaSkipTilesForTest(int on);
void LaunchMatMulQuant(DType type, const uint8_t* w, int64_t rows, int64_t cols, int64_t n_units,
                       const ActQ& act, int64_t n, float* y, int64_t ldy, cudaStream_t s);

// Host emulations of the kernels' arithmetic, running the same __host__
// __device__ code (cuda_common.cuh) on the CPU: tests compare them with the
// CPU reference on machines without a GPU. `row` is one GGUF row.
// Dequantized values of a quantized row (Embed's).
void HostDequantizeRow(DType type, const uint8_t* row, int64_t cols, float* out);
// The matmul kernels' y for one row and one token x (activations quantized as
// LaunchQuantizeAct does for quantized types).
float HostDot(DType type, const uint8_t* row, int64_t cols, const float* x);
// Sub-block j of one quantized unit against 32 int8 activations, added to
// acc through both paths of cuda_subblock.cuh (SubBlock: prefill and HostDot;
// SubW: the decode GEMV): tests assert the two are the same bits.
void HostSubAdd(DType type, const uint8_t* unit, int j, const int8_t* xq, float dx, int32_t sx,
                float acc, float* slow, float* fast);
// Q8_0 / Q4_0's round(d * x) as the kernels compute it (Q32Round, one fused
// multiply-add from x's biased bits): tests assert it is d * float(x) rounded.
float HostQ32Round(float d, int x);

// ---- F16 / BF16 weights on the tensor cores (cuda_matmul_half.cu) ----
// Whether `type`'s matrices take this path (F16 and BF16 unless
// REPRISE_CUDA_HALF_MMA=0, which keeps them on the f32 kernels above; read at
// upload, since the two paths have different layouts).
bool HalfTensorCores(DType type);
// Decode (n < kGemvMaxTokens) F16 / BF16 GEMV of up to kGemvMaxTargets
// matrices of one type and width (HalfActCols(cols) / 16 chunks) against the
// same rounded activations in one launch: the bits of one launch each. Used
// for Q/K/V and gate/up unless REPRISE_CUDA_HALF_MULTI=0 (HalfMultiOn).
void LaunchGemvHalf(DType type, const GemvTarget* targets, int count, int64_t n_kc,
                    const uint16_t* xh, int64_t n, cudaStream_t s);
bool HalfMultiOn();
void SetHalfMultiForTest(int on);
// Host-side repack into mma.sync A fragments: 16-row tiles x 16-column
// chunks, 512 bytes each (cuda_matmul_half.cu). *n_kc: chunks per row.
std::vector<uint8_t> RepackHalf(const MatrixView& v, int64_t* n_kc);
// Columns of the rounded activations (cols padded to a multiple of 16).
int64_t HalfActCols(int64_t cols);
// x [n, cols] f32 -> xh [n, HalfActCols(cols)] f16 or bf16 bits as the
// canonical order rounds them (HostHalfActivation: one value on the host).
void LaunchHalfAct(DType type, const float* x, int64_t n, int64_t cols, uint16_t* xh,
                   cudaStream_t s);
uint16_t HostHalfActivation(DType type, float v);
// y[t, r] (row stride ldy) for r < rows, t < n, from RepackHalf weights.
void LaunchMatMulHalf(DType type, const uint8_t* w, int64_t rows, int64_t n_kc,
                      const uint16_t* xh, int64_t n, float* y, int64_t ldy, cudaStream_t s);
// Prefill (n >= kGemvMaxTokens) of up to kGemvMaxTargets matrices of one
// type and width in one launch (Q/K/V, gate/up: K and V alone fill a
// quarter of an H100), with the tile's segment totals in shared memory so
// that two blocks share an SM (REPRISE_CUDA_HALF_PREFILL_SMEM, on unless =0;
// REPRISE_CUDA_HALF_PREFILL_MULTI=1 with it off: the shared launch with the
// totals in registers) (HalfPrefillMultiOn); the bits of LaunchMatMulHalf.
// A test's override: multi, smem (-1: the environment).
void LaunchMatMulHalfMulti(DType type, const GemvTarget* targets, int count, int64_t n_kc,
                           const uint16_t* xh, int64_t n, cudaStream_t s);
bool HalfPrefillMultiOn();
void SetHalfPrefillForTest(int multi, int smem);

// ---- per-row ops (cuda_ops.cu); batch arrays are device memory ----
void LaunchEmbed(DType type, const uint8_t* table, int64_t row_bytes, int64_t d,
                 const int32_t* tokens, int64_t n, float* x, cudaStream_t s);
void LaunchRopeTable(const int32_t* pos, int64_t n, const float* inv_freq, int64_t rope_dims,
                     float* rope, cudaStream_t s);
void LaunchRmsNorm(const float* x, const float* w, int64_t n, int64_t d, float eps, float* out,
                   cudaStream_t s);
void LaunchAddRmsNorm(float* x, const float* y, const float* w, int64_t n, int64_t d, float eps,
                      float* out, cudaStream_t s);
void LaunchAdd(float* x, const float* y, int64_t count, cudaStream_t s);
// The same ops, also writing their output quantized as LaunchQuantizeAct
// would for activation group `group` (32 or 256; d a multiple of it) into
// act: the decode path's fusion of the quantization into its producer. The
// norms fuse it only where RmsNormQuantFits(d, group) (cuda_norm.cu's row shape).
bool RmsNormQuantFits(int64_t d, int group);
void LaunchRmsNormQuant(const float* x, const float* w, int64_t n, int64_t d, float eps,
                        float* out, int group, const ActQ& act, cudaStream_t s);
void LaunchAddRmsNormQuant(float* x, const float* y, const float* w, int64_t n, int64_t d,
                           float eps, float* out, int group, const ActQ& act, cudaStream_t s);
void LaunchSiluMulQuant(float* gate, const float* up, int64_t n, int64_t d, int group,
                        const ActQ& act, cudaStream_t s);
void LaunchAddBias(float* y, const float* b, int64_t n, int64_t d, cudaStream_t s);
void LaunchSiluMul(float* gate, const float* up, int64_t count, cudaStream_t s);
void LaunchGatherRows(const float* x, const int32_t* rows, int64_t n_rows, int64_t d, float* out,
                      cudaStream_t s);
// Weighted scatter-add: out[rows[i]] += weights[i] * src[i], i < n_rows, in i order.
void LaunchScatterAxpy(const float* src, const int32_t* rows, const float* weights,
                       int64_t n_rows, int64_t d, float* out, cudaStream_t s);

struct BatchDev {
  int64_t n = 0;
  const int32_t* tokens = nullptr;
  const int32_t* pos = nullptr;
  const int32_t* seq = nullptr;
  const int32_t* block_table = nullptr;  // [n_seqs, max_blocks]
  int32_t max_blocks = 0;
};
void LaunchQkRopeStore(const QkRopeStoreArgs& a, const BatchDev& b, cudaStream_t s);

// ---- attention (cuda_attention.cu) ----
// Whether the kernels handle this shape (GQA group <= 32, head dims <= 256).
bool AttentionShapeSupported(const AttentionShape& s);
// Floats of scratch the split (decode) shape needs for n tokens up to max_pos.
int64_t AttentionScratchFloats(const AttentionShape& s, int64_t n, int32_t max_pos);
// `scratch` may be null or smaller than AttentionScratchFloats: then the
// serial shape runs (same bits). `counters`: n * n_kv_heads ints, zero when
// allocated (the split shape leaves them zero; null: the serial shape).
// `tiles` (device, may be null): n_tiles
// query tiles covering the batch, each (first batch index, tokens) of
// consecutive positions of one sequence and at most AttentionTileTokens
// tokens; with tiles of several tokens the tiled prefill shape runs (same
// bits again). act_group > 0 asks for the output's int8 activations of that
// group in `act` too (the bytes LaunchQuantizeAct would make from `out`);
// returns the group it wrote them for, 0 when the shape that ran cannot
// (then quantize `out` as usual). `singles` (device, may be null): the batch
// indices of the one-token tiles among `tiles` (decode tokens beside prompt
// chunks), which the tensor-core order may split over the context. Opt-in for now: act_group is honoured only
// with REPRISE_CUDA_FUSE_ATTN=1 (AttentionFuseOn).
int LaunchAttention(const float* q, const AttentionShape& shape, const KvLayout& kv, int layer,
                    const BatchDev& b, int32_t max_pos, float* scratch, int64_t scratch_floats,
                    int32_t* counters, const int32_t* tiles, int64_t n_tiles, int n_sms,
                    float* out, cudaStream_t s, int act_group = 0, const ActQ& act = {},
                    const int32_t* singles = nullptr, int64_t n_singles = 0);
bool AttentionFuseOn();
// The faster attention shapes, on by default (=0 turns one off):
// REPRISE_CUDA_ATTN_BLOCKED (the blocked tiled prefill shape),
// REPRISE_CUDA_ATTN_RAW (the raw split shape), REPRISE_CUDA_ATTN_WIDE_MERGE
// (long contexts' chunk states merged by a kernel with a thread per dim);
// and a test's override of them (-1: as the environment says), so one
// process compares their bits with the older shapes'.
bool AttentionBlockedOn();
bool AttentionRawOn();
bool AttentionWideMergeOn();
void SetAttentionShapesForTest(int blocked, int raw, int wide_merge = -1);
// The same for REPRISE_CUDA_FUSE_ATTN (AttentionFuseOn).
void SetAttentionFuseForTest(int fuse);
// The tensor-core decode chunk kernel with the queries in registers, three
// blocks an SM (on unless REPRISE_CUDA_ATTN_QREGS=0; GQA groups of at most
// 16, larger ones take the shared-memory kernel; the same bits) and a test's
// override.
bool AttentionQRegsOn();
void SetAttentionQRegsForTest(int on);
// The tensor-core attention order (cuda_attention_mma.cu), on unless
// REPRISE_CUDA_ATTN_MMA=0: F16 KV with head dims 64 or 128; with it on every
// attention shape follows it (other bits than the f32 order's, the same bits
// from every shape). A test's override: on (-1: as the environment says) and
// the shape to force (-1: the usual choice, 0: split chunks, 1: query tiles,
// 2: a token a block).
bool AttentionMmaOn();
void SetAttentionMmaForTest(int on, int shape = -1);
// Tokens per query tile of the tiled prefill shape for this head shape and
// KV layout.
int64_t AttentionTileTokens(const AttentionShape& s, const KvLayout& kv);
// Positions per attention chunk (the fixed split of the context; the split
// decode shape launches one block per chunk).
constexpr int kAttentionChunk = 64;
// Chunks the split shape's grid (and scratch) is sized for: a multiple of
// kGridChunkRound, blocks past a token's position exit at once, so a captured
// decode graph serves kGridChunkRound * kAttentionChunk positions of growth.
constexpr int kGridChunkRound = 8;
int64_t AttentionGridChunks(int32_t max_pos);
// False when REPRISE_CUDA_ATTN_TILES=0.
bool AttentionTilesOn();

// ---- MoE routing (cuda_moe.cu) ----
// ids/weights [n, n_used]: the chosen experts of each token (CPU backend's rule).
void LaunchMoeRoute(const float* logits, const float* bias, int64_t n, int64_t n_experts,
                    int64_t n_used, bool sigmoid, bool norm_topk, int32_t* ids, float* weights,
                    cudaStream_t s);
// Host side, from the routing's ids / weights [n, n_used] copied back: every
// expert's (token, weight) list, experts in id order, tokens in order; expert
// e's entries are [begin[e], begin[e + 1]) of rows / wts.
void BuildExpertLists(const int32_t* ids, const float* weights, int64_t n, int64_t n_used,
                      int64_t n_experts, std::vector<int32_t>* rows, std::vector<float>* wts,
                      std::vector<int64_t>* begin);

}  // namespace reprise::kernels::cuda
