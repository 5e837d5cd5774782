// CUDA kernels of the fused IK: one thread per sample, each running the
// per-sample drivers of ik_tree.h (the same code the CPU loop runs).  Raw
// pointers only, no torch headers, so this compiles with plain nvcc
// (tests/test_cuda_compile.py); ik_cuda.cu adds the torch glue.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "ik/ik_tree.h"

namespace hybrik_fast {
namespace ik {

// One warp per block.  A thread needs 255 registers
// (bench/results/gpu-ptxas-sm90.txt), so an SM holds 256 such threads
// whatever the block size; small blocks spread a small batch over more SMs
// (B = 64: two SMs rather than one).
constexpr int kThreadsPerBlock = 32;

// joints (B, 29, 3), twist (B, 23, 2), rest (B, 29, 3) -> rot (B, 24, 3, 3);
// all contiguous, one sample per thread
template <typename S, Mode M>
__global__ void __launch_bounds__(kThreadsPerBlock)
    ik_forward_kernel(const S* __restrict__ joints, const S* __restrict__ twist, const S* __restrict__ rest,
                      double fallback, S* __restrict__ rot, int64_t B) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= B) return;
  ik_forward_sample<S, M>(joints + b * kNumJoints * 3, twist + b * kNumTwist * 2, rest + b * kNumJoints * 3,
                          fallback, rot + b * kNumSmplJoints * 9);
}

// grad_rot (B, 24, 3, 3) and the inputs -> grad_joints, grad_twist, grad_rest
// (shapes of the inputs); all contiguous, one sample per thread
template <typename S, Mode M>
__global__ void __launch_bounds__(kThreadsPerBlock)
    ik_backward_kernel(const S* __restrict__ grad_rot, const S* __restrict__ joints, const S* __restrict__ twist,
                       const S* __restrict__ rest, double fallback, S* __restrict__ grad_joints,
                       S* __restrict__ grad_twist, S* __restrict__ grad_rest, int64_t B) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= B) return;
  const int64_t j = b * kNumJoints * 3, t = b * kNumTwist * 2;
  ik_backward_sample<S, M>(grad_rot + b * kNumSmplJoints * 9, joints + j, twist + t, rest + j, fallback,
                           grad_joints + j, grad_twist + t, grad_rest + j);
}

inline unsigned int ik_blocks(int64_t B) {
  return static_cast<unsigned int>((B + kThreadsPerBlock - 1) / kThreadsPerBlock);
}

// Launchers on `stream`; mode is a Mode value.  The caller checks the launch.
template <typename S>
void launch_ik_forward(const S* joints, const S* twist, const S* rest, int mode, double fallback, S* rot,
                       int64_t B, cudaStream_t stream) {
  if (B == 0) return;
  const unsigned int blocks = ik_blocks(B);
  dispatch_mode(mode, [&](auto m) {
    ik_forward_kernel<S, decltype(m)::value>
        <<<blocks, kThreadsPerBlock, 0, stream>>>(joints, twist, rest, fallback, rot, B);
  });
}

template <typename S>
void launch_ik_backward(const S* grad_rot, const S* joints, const S* twist, const S* rest, int mode,
                        double fallback, S* grad_joints, S* grad_twist, S* grad_rest, int64_t B,
                        cudaStream_t stream) {
  if (B == 0) return;
  const unsigned int blocks = ik_blocks(B);
  dispatch_mode(mode, [&](auto m) {
    ik_backward_kernel<S, decltype(m)::value><<<blocks, kThreadsPerBlock, 0, stream>>>(
        grad_rot, joints, twist, rest, fallback, grad_joints, grad_twist, grad_rest, B);
  });
}

}  // namespace ik
}  // namespace hybrik_fast
