// Fused HybrIK IK on CUDA: the torch glue around ik_cuda_kernel.cuh.  The
// operators are declared in ik_op.cpp; this file adds their CUDA kernels.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "ik/ik_cuda_kernel.cuh"
#include "ik/ik_op.h"

namespace hybrik_fast {
namespace ik {
namespace {

at::Tensor hybrik_ik_fwd_cuda(const at::Tensor& joints, const at::Tensor& twist, const at::Tensor& rest_joints,
                              int64_t mode, double fallback) {
  check_ik_inputs(joints, twist, rest_joints, mode);
  const c10::cuda::CUDAGuard guard(joints.device());
  const at::Tensor j = joints.contiguous(), tw = twist.contiguous(), rest = rest_joints.contiguous();
  const int64_t B = j.size(0);
  at::Tensor rot = at::empty({B, kNumSmplJoints, 3, 3}, j.options());
  AT_DISPATCH_FLOATING_TYPES(j.scalar_type(), "hybrik_ik_fwd_cuda", [&] {
    launch_ik_forward<scalar_t>(j.const_data_ptr<scalar_t>(), tw.const_data_ptr<scalar_t>(),
                                rest.const_data_ptr<scalar_t>(), static_cast<int>(mode), fallback,
                                rot.mutable_data_ptr<scalar_t>(), B, c10::cuda::getCurrentCUDAStream());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return rot;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> hybrik_ik_bwd_cuda(const at::Tensor& grad_rot,
                                                                  const at::Tensor& joints,
                                                                  const at::Tensor& twist,
                                                                  const at::Tensor& rest_joints, int64_t mode,
                                                                  double fallback) {
  check_ik_inputs(joints, twist, rest_joints, mode);
  check_ik_grad(grad_rot, joints);
  const int64_t B = joints.size(0);
  const c10::cuda::CUDAGuard guard(joints.device());
  const at::Tensor g = grad_rot.contiguous(), j = joints.contiguous(), tw = twist.contiguous(),
                   rest = rest_joints.contiguous();
  at::Tensor gj = at::empty_like(j), gtw = at::empty_like(tw), grest = at::empty_like(rest);
  AT_DISPATCH_FLOATING_TYPES(j.scalar_type(), "hybrik_ik_bwd_cuda", [&] {
    launch_ik_backward<scalar_t>(g.const_data_ptr<scalar_t>(), j.const_data_ptr<scalar_t>(),
                                 tw.const_data_ptr<scalar_t>(), rest.const_data_ptr<scalar_t>(),
                                 static_cast<int>(mode), fallback, gj.mutable_data_ptr<scalar_t>(),
                                 gtw.mutable_data_ptr<scalar_t>(), grest.mutable_data_ptr<scalar_t>(), B,
                                 c10::cuda::getCurrentCUDAStream());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {gj, gtw, grest};
}

}  // namespace
}  // namespace ik
}  // namespace hybrik_fast

TORCH_LIBRARY_IMPL(hybrik_fast_C, CUDA, m) {
  m.impl("hybrik_ik_fwd", &hybrik_fast::ik::hybrik_ik_fwd_cuda);
  m.impl("hybrik_ik_bwd", &hybrik_fast::ik::hybrik_ik_bwd_cuda);
  m.impl("hybrik_ik", &hybrik_fast::ik::hybrik_ik_fwd_cuda);  // below autograd (inference mode)
}
