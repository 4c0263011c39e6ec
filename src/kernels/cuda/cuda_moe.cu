// CUDA MoE routing: per token, the router's probabilities (softmax, or
// sigmoid plus the score-correction bias for choosing), the top n_used
// experts (ties to the lower id, as the CPU backend), and their weights
// (renormalised to sum 1 when norm_topk). One thread per token, experts in id
// order: the choice and the weights of a token depend only on its logits.
#include <cfloat>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_kernels.h"

namespace reprise::kernels::cuda {
namespace {

__global__ void MoeRouteKernel(const float* logits, const float* bias, int64_t n, int64_t E,
                               int64_t K, bool sigmoid, bool norm_topk, int32_t* ids,
                               float* weights) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= n) return;
  const float* lg = logits + t * E;
  // Probabilities: softmax (max, then sum of exp in id order) or sigmoid.
  float mx = -FLT_MAX, sum = 0.0f;
  if (!sigmoid) {
    for (int64_t e = 0; e < E; ++e) mx = fmaxf(mx, lg[e]);
    for (int64_t e = 0; e < E; ++e) sum = __fadd_rn(sum, expf(__fsub_rn(lg[e], mx)));
  }
  auto prob = [&](int64_t e) {
    return sigmoid ? __fdiv_rn(1.0f, __fadd_rn(1.0f, expf(-lg[e])))
                   : __fdiv_rn(expf(__fsub_rn(lg[e], mx)), sum);
  };
  auto choice = [&](int64_t e) {
    const float p = prob(e);
    return sigmoid && bias != nullptr ? __fadd_rn(p, bias[e]) : p;
  };
  int32_t* id = ids + t * K;
  float* w = weights + t * K;
  float total = 0.0f;
  for (int64_t j = 0; j < K; ++j) {
    int64_t best = -1;
    float best_c = -FLT_MAX;
    for (int64_t e = 0; e < E; ++e) {
      bool taken = false;
      for (int64_t q = 0; q < j; ++q) taken |= id[q] == e;
      if (taken) continue;
      const float c = choice(e);
      if (best < 0 || c > best_c) {
        best = e;
        best_c = c;
      }
    }
    id[j] = static_cast<int32_t>(best);
    w[j] = prob(best);
    total = __fadd_rn(total, w[j]);
  }
  if (norm_topk && total > 0.0f) {
    for (int64_t j = 0; j < K; ++j) w[j] = __fdiv_rn(w[j], total);
  }
}

}  // namespace

void LaunchMoeRoute(const float* logits, const float* bias, int64_t n, int64_t n_experts,
                    int64_t n_used, bool sigmoid, bool norm_topk, int32_t* ids, float* weights,
                    cudaStream_t s) {
  MoeRouteKernel<<<static_cast<unsigned>((n + 127) / 128), 128, 0, s>>>(
      logits, bias, n, n_experts, n_used, sigmoid, norm_topk, ids, weights);
}

void BuildExpertLists(const int32_t* ids, const float* weights, int64_t n, int64_t n_used,
                      int64_t n_experts, std::vector<int32_t>* rows, std::vector<float>* wts,
                      std::vector<int64_t>* begin) {
  rows->clear();
  wts->clear();
  begin->assign(static_cast<size_t>(n_experts + 1), 0);
  for (int64_t e = 0; e < n_experts; ++e) {
    (*begin)[e] = static_cast<int64_t>(rows->size());
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t j = 0; j < n_used; ++j) {
        if (ids[t * n_used + j] == e) {
          rows->push_back(static_cast<int32_t>(t));
          wts->push_back(weights[t * n_used + j]);
        }
      }
    }
  }
  (*begin)[n_experts] = static_cast<int64_t>(rows->size());
}

}  // namespace reprise::kernels::cuda
