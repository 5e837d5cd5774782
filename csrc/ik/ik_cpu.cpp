// Fused HybrIK IK on the CPU: one sample per iteration of at::parallel_for,
// the whole tree in registers (ik_math.h).  This file also declares the
// operators hybrik_fast_C::hybrik_ik_fwd / hybrik_ik_bwd; ik_cuda.cu adds
// their CUDA implementations.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "ik/ik_op.h"

namespace hybrik_fast {
namespace ik {
namespace {

// samples per parallel task: one sample is a few microseconds of work
constexpr int64_t kGrain = 16;

at::Tensor hybrik_ik_fwd_cpu(const at::Tensor& joints, const at::Tensor& twist, const at::Tensor& rest_joints,
                             int64_t mode, double fallback) {
  check_ik_inputs(joints, twist, rest_joints, mode);
  const at::Tensor j = joints.contiguous(), tw = twist.contiguous(), rest = rest_joints.contiguous();
  const int64_t B = j.size(0);
  at::Tensor rot = at::empty({B, kNumSmplJoints, 3, 3}, j.options());
  AT_DISPATCH_FLOATING_TYPES(j.scalar_type(), "hybrik_ik_fwd_cpu", [&] {
    const scalar_t* jp = j.const_data_ptr<scalar_t>();
    const scalar_t* tp = tw.const_data_ptr<scalar_t>();
    const scalar_t* rp = rest.const_data_ptr<scalar_t>();
    scalar_t* op = rot.mutable_data_ptr<scalar_t>();
    dispatch_mode(mode, [&](auto m) {
      constexpr Mode M = decltype(m)::value;
      at::parallel_for(0, B, kGrain, [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; ++b)
          ik_forward_sample<scalar_t, M>(jp + b * kJointsStride, tp + b * kTwistStride, rp + b * kJointsStride, fallback,
                                         op + b * kRotStride);
      });
    });
  });
  return rot;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> hybrik_ik_bwd_cpu(const at::Tensor& grad_rot, const at::Tensor& joints,
                                                                 const at::Tensor& twist,
                                                                 const at::Tensor& rest_joints, int64_t mode,
                                                                 double fallback) {
  check_ik_inputs(joints, twist, rest_joints, mode);
  const int64_t B = joints.size(0);
  HYBRIK_CHECK_SHAPE(grad_rot, B, 24, 3, 3);
  TORCH_CHECK(grad_rot.scalar_type() == joints.scalar_type(), "grad_rot must have the dtype of joints");
  const at::Tensor g = grad_rot.contiguous(), j = joints.contiguous(), tw = twist.contiguous(),
                   rest = rest_joints.contiguous();
  at::Tensor gj = at::empty_like(j), gtw = at::empty_like(tw), grest = at::empty_like(rest);
  AT_DISPATCH_FLOATING_TYPES(j.scalar_type(), "hybrik_ik_bwd_cpu", [&] {
    const scalar_t* gp = g.const_data_ptr<scalar_t>();
    const scalar_t* jp = j.const_data_ptr<scalar_t>();
    const scalar_t* tp = tw.const_data_ptr<scalar_t>();
    const scalar_t* rp = rest.const_data_ptr<scalar_t>();
    scalar_t* gjp = gj.mutable_data_ptr<scalar_t>();
    scalar_t* gtp = gtw.mutable_data_ptr<scalar_t>();
    scalar_t* grp = grest.mutable_data_ptr<scalar_t>();
    dispatch_mode(mode, [&](auto m) {
      constexpr Mode M = decltype(m)::value;
      at::parallel_for(0, B, kGrain, [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; ++b)
          ik_backward_sample<scalar_t, M>(gp + b * kRotStride, jp + b * kJointsStride, tp + b * kTwistStride,
                                          rp + b * kJointsStride, fallback, gjp + b * kJointsStride,
                                          gtp + b * kTwistStride, grp + b * kJointsStride);
      });
    });
  });
  return {gj, gtw, grest};
}

}  // namespace
}  // namespace ik
}  // namespace hybrik_fast

// mode: 0 naive, 1 adaptive, 2 adaptive with fallback (metres)
TORCH_LIBRARY_FRAGMENT(hybrik_fast_C, m) {
  m.def("hybrik_ik_fwd(Tensor joints, Tensor twist, Tensor rest_joints, int mode, float fallback) -> Tensor");
  m.def(
      "hybrik_ik_bwd(Tensor grad_rot, Tensor joints, Tensor twist, Tensor rest_joints, int mode, float fallback) "
      "-> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(hybrik_fast_C, CPU, m) {
  m.impl("hybrik_ik_fwd", &hybrik_fast::ik::hybrik_ik_fwd_cpu);
  m.impl("hybrik_ik_bwd", &hybrik_fast::ik::hybrik_ik_bwd_cpu);
}
