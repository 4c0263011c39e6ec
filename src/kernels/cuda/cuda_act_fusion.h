// Internal to the CUDA backend: which op output already has its int8
// activations, so the decode matmul that reads it skips its quantize kernel.
//
// The norms and SwiGLU can write their output quantized too (the *Quant
// kernels of cuda_ops.cu: the same bytes LaunchQuantizeAct makes from the
// same floats). ActFusion remembers the last such output and the op sequence
// number it was made at; a MatMul may use it only as the very next op, on the
// same pointer, shape and activation group. Every backend op calls NextOp(),
// so anything in between (another op writing the buffer, another matmul
// overwriting the activations) invalidates it. The group to produce is
// learned from the decode matmuls themselves (0 until the first one).
// Plain logic: no CUDA types.
#pragma once

#include <cstdint>

namespace reprise::kernels::cuda {

class ActFusion {
 public:
  void NextOp() { ++seq_; }
  // The activation group decode matmuls quantize for (0: none seen yet).
  int group() const { return group_; }
  void Learn(int group) { group_ = group; }
  // `out` [n, cols] was just written with its activations for `group`.
  void Produced(const float* out, int64_t n, int64_t cols, int group) {
    ready_ = out;
    n_ = n;
    cols_ = cols;
    ready_group_ = group;
    ready_seq_ = seq_;
  }
  // The group x's activations were made for, when the op just before this
  // one (the caller has called NextOp) produced them; 0 otherwise.
  int ReadyGroup(const float* x, int64_t n, int64_t cols) const {
    return seq_ == ready_seq_ + 1 && x == ready_ && n == n_ && cols == cols_ ? ready_group_ : 0;
  }

 private:
  uint64_t seq_ = 1, ready_seq_ = 0;
  const float* ready_ = nullptr;
  int64_t n_ = 0, cols_ = 0;
  int group_ = 0, ready_group_ = 0;
};

}  // namespace reprise::kernels::cuda
