// Internal to the CUDA backend: CUDA graphs for decode steps (on unless
// REPRISE_CUDA_GRAPHS=0 or REPRISE_CUDA_PROFILE=1). A decode step (every token its own sequence's next
// one, each wanting logits) launches ~10 kernels per layer; replaying them as
// one graph saves the launch overhead.
//
// The graph of a step shape (GraphKey: tokens, sequences, attention chunks,
// block-table stride) is captured on its second occurrence (the first runs
// normally: buffers grow, kernels get their attributes) and replayed after.
// Between Start and Finish a replayed step's ops launch nothing (the backend
// asks replaying()); Finish launches the graph, with the same kernels and
// arguments, so the same bits.
//
// Invariants: any device allocation or free (NoteMemoryChange) invalidates
// every graph, since they hold pointers; a capture that saw one fails and
// turns graphs off. A MoE model (host round trips inside the forward) calls
// Disallow before anything is captured: a shape is captured only on its
// second occurrence. At most 64 graphs are kept (a growing context moves
// into new shapes), and 1024 shapes seen once.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "core/status.h"
#include "kernels/backend.h"

namespace reprise::kernels::cuda {

struct GraphKey {
  int64_t n, n_seqs, chunks, table_stride;
  bool operator==(const GraphKey&) const = default;
};

class DecodeGraphs {
 public:
  DecodeGraphs() = default;
  DecodeGraphs(const DecodeGraphs&) = delete;
  DecodeGraphs& operator=(const DecodeGraphs&) = delete;
  ~DecodeGraphs() { Drop(); }

  // Not REPRISE_CUDA_GRAPHS=0 (read once).
  static bool On();
  // On() and not disallowed: BeginBatch pads the block table and calls Start.
  bool enabled() const { return On() && allowed_; }
  void Disallow() { allowed_ = false; }
  void NoteMemoryChange() { ++generation_; }

  // The block-table row stride while graphs are on: only grows (rounded up
  // to 64 blocks), so a decode step's arguments stay the same as its
  // context grows.
  int32_t TableStride(int32_t max_blocks);

  // A batch begins on `s`: a decode step of a shape seen before replays (or
  // is captured on its second occurrence); anything else runs as usual.
  void Start(const BatchDesc& bd, const GraphKey& key, cudaStream_t s);
  bool active() const { return mode_ != Mode::kOff; }
  bool replaying() const { return mode_ == Mode::kReplay; }
  // The step ends (before its results are read): launches its graph. An
  // error when the capture failed (the step's results are lost; graphs are
  // off from then on).
  Status Finish(cudaStream_t s);
  // A layer that cannot be captured (MoE) was reached: graphs are off; an
  // error when a capture was under way (that step's results are lost).
  Status Abandon(cudaStream_t s);

 private:
  enum class Mode { kOff, kCapture, kReplay };
  void Drop();

  std::vector<std::pair<GraphKey, cudaGraphExec_t>> graphs_;
  std::vector<std::pair<GraphKey, int>> seen_;  // occurrences of shapes not captured yet
  Mode mode_ = Mode::kOff;
  GraphKey capture_key_{};
  cudaGraphExec_t replay_ = nullptr;
  uint64_t generation_ = 0;         // device allocations and frees so far
  uint64_t graphs_generation_ = 0;  // generation_ when graphs_ were captured
  bool allowed_ = true;             // off for MoE models and after a failed capture
  int32_t table_stride_ = 0;
};

}  // namespace reprise::kernels::cuda
