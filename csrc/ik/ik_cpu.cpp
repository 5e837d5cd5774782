// Fused HybrIK IK on the CPU: one sample per iteration of at::parallel_for,
// the whole tree in registers (ik_math.h).  This file also declares the
// operators hybrik_fast_C::hybrik_ik_fwd / hybrik_ik_bwd; ik_cuda.cu adds
// their CUDA implementations.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include "ik/ik_op.h"

namespace hybrik_fast {
namespace ik {
namespace {

// samples per parallel task: one sample is a few microseconds of work
constexpr int64_t kGrain = 16;

// The per-sample loops are compiled for AVX2+FMA and baseline x86-64 and
// picked at load time (GCC function multi-versioning).  `flatten` inlines the
// whole of ik_math.h into each clone, so the maths is compiled for the
// clone's target: the serial chain of the tree walk is FMA-bound, and the
// per-joint square roots and divisions vectorise across joints.  (An
// AVX-512 clone measured ~6% slower: 8-wide vectors do not fit 23 joints.)
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define IK_MULTIVERSION __attribute__((flatten, target_clones("arch=x86-64-v3", "default")))
#else
#define IK_MULTIVERSION
#endif

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

// hybrik_fast_C::hybrik_ik: the forward op with its backward attached in C++,
// for eager autograd without a Python layer (the torch.library.custom_op
// hybrik_fast::hybrik_ik in hybrik_fast/ik.py is the traceable face of the
// same two kernels, used by torch.compile and torch.export).  Calls the
// kernels through the dispatcher, so it serves every device.
class HybrikIKFunction : public torch::autograd::Function<HybrikIKFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& joints,
                            const at::Tensor& twist, const at::Tensor& rest_joints, int64_t mode, double fallback) {
    static const auto fwd = c10::Dispatcher::singleton()
                                .findSchemaOrThrow("hybrik_fast_C::hybrik_ik_fwd", "")
                                .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t,
                                                  double)>();
    // the backward recomputes the forward from the inputs: nothing else is kept
    ctx->save_for_backward({joints, twist, rest_joints});
    ctx->saved_data["mode"] = mode;
    ctx->saved_data["fallback"] = fallback;
    return fwd.call(joints, twist, rest_joints, mode, fallback);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    static const auto bwd =
        c10::Dispatcher::singleton()
            .findSchemaOrThrow("hybrik_fast_C::hybrik_ik_bwd", "")
            .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                                  const at::Tensor&, const at::Tensor&, int64_t,
                                                                  double)>();
    const auto saved = ctx->get_saved_variables();
    auto [g_joints, g_twist, g_rest] = bwd.call(grad[0], saved[0], saved[1], saved[2],
                                                ctx->saved_data["mode"].toInt(),
                                                ctx->saved_data["fallback"].toDouble());
    return {g_joints, g_twist, g_rest, at::Tensor(), at::Tensor()};
  }
};

at::Tensor hybrik_ik_autograd(const at::Tensor& joints, const at::Tensor& twist, const at::Tensor& rest_joints,
                              int64_t mode, double fallback) {
  return HybrikIKFunction::apply(joints, twist, rest_joints, mode, fallback);
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
  m.def("hybrik_ik(Tensor joints, Tensor twist, Tensor rest_joints, int mode, float fallback) -> Tensor");
}

TORCH_LIBRARY_IMPL(hybrik_fast_C, Autograd, m) {
  m.impl("hybrik_ik", &hybrik_fast::ik::hybrik_ik_autograd);
}

TORCH_LIBRARY_IMPL(hybrik_fast_C, CPU, m) {
  m.impl("hybrik_ik_fwd", &hybrik_fast::ik::hybrik_ik_fwd_cpu);
  m.impl("hybrik_ik_bwd", &hybrik_fast::ik::hybrik_ik_bwd_cpu);
  m.impl("hybrik_ik", &hybrik_fast::ik::hybrik_ik_fwd_cpu);  // below autograd (inference mode)
}
