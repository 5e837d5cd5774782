// Fused HybrIK IK on the CPU: at::parallel_for over lane groups of 4 or 2
// samples (AVX-512, AVX2, baseline x86-64), each group running the
// per-sample maths of ik_tree.h with one sample per SIMD lane (ik_simd.h).
// The kernels of the operators hybrik_fast_C::hybrik_ik_fwd / hybrik_ik_bwd /
// hybrik_ik under the CPU dispatch key; the schemas are in ik_op.cpp, the
// CUDA kernels in ik_cuda.cu.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "common/env.h"
#include "common/multiversion.h"
#include "ik/ik_op.h"
#include "ik/ik_simd.h"

namespace hybrik_fast {
namespace ik {
namespace {

// samples per parallel task: a lane group of 4 is about a microsecond of work
constexpr int64_t kGrain = 32;

// Variants: lane groups of 4 (AVX-512, AVX2+FMA) or 2 (baseline x86-64),
// and the scalar per-sample loop (T = double: the arithmetic the CUDA kernel
// runs).  The best one the CPU supports is used; the environment variable
// HYBRIK_FAST_IK_SIMD = avx512 | avx2 | baseline | scalar picks one (tests
// compare them).  These are explicit variants (common/multiversion.h's
// HYBRIK_TARGET), not target_clones: the lane count differs per target and
// the environment must be able to pick one.  `flatten` inlines the whole of
// ik_tree.h into each variant, so the maths is compiled for the variant's
// target.  AVX-512 runs 4 lanes too, in 256-bit registers: 8 lanes (one zmm
// per value) measured 25-30% slower forward and backward on this EPYC
// (B = 1024, one thread: 0.44-0.51 against 0.35-0.37 µs forward, 1.26-1.34
// against 0.84-1.0 µs backward), the group's working set (the backward's
// tape, 24 joints of ~50 values per lane) doubling out of L1; what AVX-512
// adds is 32 registers.
enum class Variant { kAvx512, kAvx2, kBaseline, kScalar };
constexpr const char* kVariantNames[] = {"avx512", "avx2", "baseline", "scalar"};

bool variant_supported(Variant v) {
  if (v == Variant::kAvx512) return cpu_supports(HYBRIK_ARCH_AVX512);
  if (v == Variant::kAvx2) return cpu_supports(HYBRIK_ARCH_AVX2);
  return true;
}

Variant pick_variant() {
  const int k = env_choice("HYBRIK_FAST_IK_SIMD", kVariantNames, 4);
  if (k < 0) {
    for (const Variant v : {Variant::kAvx512, Variant::kAvx2})
      if (variant_supported(v)) return v;
    return Variant::kBaseline;
  }
  const Variant v = static_cast<Variant>(k);
  TORCH_CHECK(variant_supported(v), "HYBRIK_FAST_IK_SIMD=", kVariantNames[k], " but this CPU does not support it");
  return v;
}

template <typename S, Mode M, int N>
IK_INLINE void forward_groups(const S* joints, const S* twist, const S* rest, double fallback, S* rot, int64_t begin,
                              int64_t end) {
  for (int64_t b = begin; b < end; b += N)
    ik_forward_group<S, M, N>(joints + b * kJointsStride, twist + b * kTwistStride, rest + b * kJointsStride,
                              fallback, rot + b * kRotStride, static_cast<int>(std::min<int64_t>(N, end - b)));
}

template <typename S, Mode M, int N>
IK_INLINE void backward_groups(const S* grad_rot, const S* joints, const S* twist, const S* rest, double fallback,
                               S* grad_joints, S* grad_twist, S* grad_rest, int64_t begin, int64_t end) {
  for (int64_t b = begin; b < end; b += N)
    ik_backward_group<S, M, N>(grad_rot + b * kRotStride, joints + b * kJointsStride, twist + b * kTwistStride,
                               rest + b * kJointsStride, fallback, grad_joints + b * kJointsStride,
                               grad_twist + b * kTwistStride, grad_rest + b * kJointsStride,
                               static_cast<int>(std::min<int64_t>(N, end - b)));
}

// the scalar variant: one sample at a time, T = double
template <typename S, Mode M>
IK_INLINE void forward_scalar(const S* joints, const S* twist, const S* rest, double fallback, S* rot, int64_t begin,
                              int64_t end) {
  for (int64_t b = begin; b < end; ++b)
    ik_forward_sample<S, M>(joints + b * kJointsStride, twist + b * kTwistStride, rest + b * kJointsStride, fallback,
                            rot + b * kRotStride);
}

template <typename S, Mode M>
IK_INLINE void backward_scalar(const S* grad_rot, const S* joints, const S* twist, const S* rest, double fallback,
                               S* grad_joints, S* grad_twist, S* grad_rest, int64_t begin, int64_t end) {
  for (int64_t b = begin; b < end; ++b)
    ik_backward_sample<S, M>(grad_rot + b * kRotStride, joints + b * kJointsStride, twist + b * kTwistStride,
                             rest + b * kJointsStride, fallback, grad_joints + b * kJointsStride,
                             grad_twist + b * kTwistStride, grad_rest + b * kJointsStride);
}

// One function per (variant, target); the arguments are forwarded whole.
#define IK_VARIANTS(name, groups, scalar)                                                                      \
  template <typename S, Mode M, typename... A>                                                                 \
  __attribute__((flatten)) HYBRIK_TARGET(HYBRIK_ARCH_AVX512) void name##_avx512(A... a) {                      \
    groups<S, M, 4>(a...);                                                                                     \
  }                                                                                                            \
  template <typename S, Mode M, typename... A>                                                                 \
  __attribute__((flatten)) HYBRIK_TARGET(HYBRIK_ARCH_AVX2) void name##_avx2(A... a) { groups<S, M, 4>(a...); } \
  template <typename S, Mode M, typename... A>                                                                 \
  __attribute__((flatten)) void name##_baseline(A... a) { groups<S, M, 2>(a...); }                             \
  template <typename S, Mode M, typename... A>                                                                 \
  __attribute__((flatten)) void name##_scalar(A... a) { scalar<S, M>(a...); }                                  \
  template <typename S, Mode M, typename... A>                                                                 \
  void name##_range(Variant v, A... a) {                                                                       \
    switch (v) {                                                                                               \
      case Variant::kAvx512: name##_avx512<S, M>(a...); break;                                                 \
      case Variant::kAvx2: name##_avx2<S, M>(a...); break;                                                     \
      case Variant::kBaseline: name##_baseline<S, M>(a...); break;                                             \
      case Variant::kScalar: name##_scalar<S, M>(a...); break;                                                 \
    }                                                                                                          \
  }

IK_VARIANTS(forward, forward_groups, forward_scalar)
IK_VARIANTS(backward, backward_groups, backward_scalar)

at::Tensor hybrik_ik_fwd_cpu(const at::Tensor& joints, const at::Tensor& twist, const at::Tensor& rest_joints,
                             int64_t mode, double fallback) {
  check_ik_inputs(joints, twist, rest_joints, mode);
  const at::Tensor j = joints.contiguous(), tw = twist.contiguous(), rest = rest_joints.contiguous();
  const int64_t B = j.size(0);
  at::Tensor rot = at::empty({B, kNumSmplJoints, 3, 3}, j.options());
  const Variant variant = pick_variant();
  AT_DISPATCH_FLOATING_TYPES(j.scalar_type(), "hybrik_ik_fwd_cpu", [&] {
    const scalar_t* jp = j.const_data_ptr<scalar_t>();
    const scalar_t* tp = tw.const_data_ptr<scalar_t>();
    const scalar_t* rp = rest.const_data_ptr<scalar_t>();
    scalar_t* op = rot.mutable_data_ptr<scalar_t>();
    dispatch_mode(mode, [&](auto m) {
      constexpr Mode M = decltype(m)::value;
      at::parallel_for(0, B, kGrain, [&](int64_t begin, int64_t end) {
        forward_range<scalar_t, M>(variant, jp, tp, rp, fallback, op, begin, end);
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
  const Variant variant = pick_variant();
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
        backward_range<scalar_t, M>(variant, gp, jp, tp, rp, fallback, gjp, gtp, grp, begin, end);
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
