// CUDA graphs for decode steps: see cuda_graphs.h.
#include "kernels/cuda/cuda_graphs.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "core/log.h"
#include "kernels/cuda/cuda_common.cuh"

namespace reprise::kernels::cuda {

bool DecodeGraphs::On() {
  // REPRISE_CUDA_PROFILE=1 times ops: it needs the launches.
  static const bool on = EnvSwitchOn("REPRISE_CUDA_GRAPHS") && !EnvIsOne("REPRISE_CUDA_PROFILE");
  return on;
}

int32_t DecodeGraphs::TableStride(int32_t max_blocks) {
  table_stride_ = std::max<int32_t>(table_stride_, (max_blocks + 63) / 64 * 64);
  return table_stride_;
}

void DecodeGraphs::Drop() {
  for (auto& g : graphs_) cudaGraphExecDestroy(g.second);
  graphs_.clear();
  seen_.clear();
}

void DecodeGraphs::Start(const BatchDesc& bd, const GraphKey& key, cudaStream_t s) {
  mode_ = Mode::kOff;
  if (bd.n == 0 || bd.n_out != bd.n || bd.n > 256) return;
  for (int64_t i = 0; i < bd.n; ++i) {
    if (bd.out_rows[i] != i) return;
    for (int64_t j = 0; j < i; ++j) {
      if (bd.seq[j] == bd.seq[i]) return;  // two tokens of one sequence: a prefill
    }
  }
  if (generation_ != graphs_generation_) {
    Drop();
    graphs_generation_ = generation_;
  }
  for (auto& g : graphs_) {
    if (g.first == key) {
      mode_ = Mode::kReplay;
      replay_ = g.second;
      return;
    }
  }
  int* seen = nullptr;
  for (auto& e : seen_) {
    if (e.first == key) seen = &e.second;
  }
  if (seen == nullptr) {
    if (seen_.size() >= 1024) seen_.clear();  // bounded bookkeeping
    seen_.push_back({key, 0});
    seen = &seen_.back().second;
  }
  if (++*seen < 2) return;
  if (graphs_.size() >= 64) {  // keep the 63 newest
    cudaGraphExecDestroy(graphs_.front().second);
    graphs_.erase(graphs_.begin());
  }
  if (cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
    cudaGetLastError();
    return;
  }
  mode_ = Mode::kCapture;
  capture_key_ = key;
}

Status DecodeGraphs::Finish(cudaStream_t s) {
  const Mode mode = mode_;
  mode_ = Mode::kOff;
  if (mode == Mode::kOff) return Status::Ok();
  if (mode == Mode::kReplay) {
    const cudaError_t err = cudaGraphLaunch(replay_, s);
    return err == cudaSuccess ? Status::Ok() : CudaStatus(err, "graph launch");
  }
  cudaGraph_t graph = nullptr;
  cudaError_t err = cudaStreamEndCapture(s, &graph);
  cudaGraphExec_t exec = nullptr;
  if (err == cudaSuccess) err = cudaGraphInstantiate(&exec, graph, 0);
  if (graph != nullptr) cudaGraphDestroy(graph);
  if (err != cudaSuccess || generation_ != graphs_generation_) {
    // The step's kernels were captured, never run: its results are lost.
    if (exec != nullptr) cudaGraphExecDestroy(exec);
    cudaGetLastError();
    allowed_ = false;
    LOG_ERROR("cuda", "capturing a decode step as a CUDA graph failed (%s); graphs are off",
              err != cudaSuccess ? cudaGetErrorString(err) : "memory changed during capture");
    return Errorf("CUDA graph capture failed");
  }
  graphs_.push_back({capture_key_, exec});
  err = cudaGraphLaunch(exec, s);
  return err == cudaSuccess ? Status::Ok() : CudaStatus(err, "graph launch");
}

Status DecodeGraphs::Abandon(cudaStream_t s) {
  allowed_ = false;
  const Mode mode = mode_;
  mode_ = Mode::kOff;
  if (mode != Mode::kCapture) return Status::Ok();
  cudaGraph_t g = nullptr;
  cudaStreamEndCapture(s, &g);
  if (g != nullptr) cudaGraphDestroy(g);
  cudaGetLastError();
  return Errorf("CUDA graph capture reached a MoE layer");
}

}  // namespace reprise::kernels::cuda
