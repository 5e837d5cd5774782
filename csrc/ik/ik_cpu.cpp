// Fused HybrIK IK on the CPU: one sample per iteration of at::parallel_for,
// the whole tree in registers (ik_tree.h).  The kernels of the operators
// hybrik_fast_C::hybrik_ik_fwd / hybrik_ik_bwd / hybrik_ik under the CPU
// dispatch key; the schemas are in ik_op.cpp, the CUDA kernels in ik_cuda.cu.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "common/multiversion.h"
#include "ik/ik_op.h"

namespace hybrik_fast {
namespace ik {
namespace {

// samples per parallel task: one sample is a few microseconds of work
constexpr int64_t kGrain = 16;

// The per-sample loops are compiled for AVX2+FMA and baseline x86-64 and
// picked at load time (common/multiversion.h).  `flatten` inlines the whole
// of ik_tree.h into each clone, so the maths is compiled for the clone's
// target: the serial chain of the tree walk is FMA-bound, and the per-joint
// square roots and divisions vectorise across joints.  (An AVX-512 clone
// measured ~6% slower: 8-wide vectors do not fit 23 joints.)
#define IK_MULTIVERSION __attribute__((flatten)) HYBRIK_MULTIVERSION(HYBRIK_ISA_AVX2)

template <typename S, Mode M>
IK_MULTIVERSION void forward_range(const S* joints, const S* twist, const S* rest, double fallback, S* rot,
                                   int64_t begin, int64_t end) {
  for (int64_t b = begin; b < end; ++b)
    ik_forward_sample<S, M>(joints + b * kJointsStride, twist + b * kTwistStride, rest + b * kJointsStride, fallback,
                            rot + b * kRotStride);
}

template <typename S, Mode M>
IK_MULTIVERSION void backward_range(const S* grad_rot, const S* joints, const S* twist, const S* rest,
                                    double fallback, S* grad_joints, S* grad_twist, S* grad_rest, int64_t begin,
                                    int64_t end) {
  for (int64_t b = begin; b < end; ++b)
    ik_backward_sample<S, M>(grad_rot + b * kRotStride, joints + b * kJointsStride, twist + b * kTwistStride,
                             rest + b * kJointsStride, fallback, grad_joints + b * kJointsStride,
                             grad_twist + b * kTwistStride, grad_rest + b * kJointsStride);
}

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
        forward_range<scalar_t, M>(jp, tp, rp, fallback, op, begin, end);
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
  check_ik_grad(grad_rot, joints);
  const int64_t B = joints.size(0);
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
        backward_range<scalar_t, M>(gp, jp, tp, rp, fallback, gjp, gtp, grp, begin, end);
      });
    });
  });
  return {gj, gtw, grest};
}

}  // namespace
}  // namespace ik
}  // namespace hybrik_fast

// the schemas are in ik_op.cpp
TORCH_LIBRARY_IMPL(hybrik_fast_C, CPU, m) {
  m.impl("hybrik_ik_fwd", &hybrik_fast::ik::hybrik_ik_fwd_cpu);
  m.impl("hybrik_ik_bwd", &hybrik_fast::ik::hybrik_ik_bwd_cpu);
  m.impl("hybrik_ik", &hybrik_fast::ik::hybrik_ik_fwd_cpu);  // below autograd (inference mode)
}
