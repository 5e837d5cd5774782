// Host-side glue shared by the CPU and CUDA entry points of the fused IK op:
// boundary checks that name the expected shapes, and the runtime -> compile
// time dispatch of the mode.  The maths is in ik_math.h.
#pragma once

#include <torch/library.h>

#include <type_traits>

#include "ik/ik_math.h"

namespace hybrik_fast {
namespace ik {

// x must have shape (B, d1, d2[, d3]); the message names the expected shape.
#define HYBRIK_CHECK_SHAPE(x, B, ...)                                                             \
  TORCH_CHECK((x).sizes() == at::IntArrayRef({B, __VA_ARGS__}), #x " must have shape (B=", B,      \
              ", " #__VA_ARGS__ "), got ", (x).sizes())

inline void check_ik_inputs(const at::Tensor& joints, const at::Tensor& twist, const at::Tensor& rest_joints,
                            int64_t mode) {
  TORCH_CHECK(joints.dim() == 3, "joints must have shape (B, 29, 3), got ", joints.sizes());
  const int64_t B = joints.size(0);
  HYBRIK_CHECK_SHAPE(joints, B, 29, 3);
  HYBRIK_CHECK_SHAPE(twist, B, 23, 2);
  HYBRIK_CHECK_SHAPE(rest_joints, B, 29, 3);
  TORCH_CHECK(twist.scalar_type() == joints.scalar_type() && rest_joints.scalar_type() == joints.scalar_type(),
              "joints, twist and rest_joints must share a dtype");
  TORCH_CHECK(twist.device() == joints.device() && rest_joints.device() == joints.device(),
              "joints, twist and rest_joints must be on one device");
  TORCH_CHECK(mode >= 0 && mode <= 2, "mode must be 0 (naive), 1 (adaptive) or 2 (adaptive with fallback), got ",
              mode);
}

// The backward's incoming gradient: (B, 24, 3, 3), dtype and device of joints.
inline void check_ik_grad(const at::Tensor& grad_rot, const at::Tensor& joints) {
  HYBRIK_CHECK_SHAPE(grad_rot, joints.size(0), 24, 3, 3);
  TORCH_CHECK(grad_rot.scalar_type() == joints.scalar_type() && grad_rot.device() == joints.device(),
              "grad_rot must have the dtype and device of joints");
}

// Calls f(std::integral_constant<Mode, M>{}) for the runtime mode.
template <typename F>
inline void dispatch_mode(int64_t mode, F&& f) {
  switch (static_cast<Mode>(mode)) {
    case Mode::kNaive: f(std::integral_constant<Mode, Mode::kNaive>{}); break;
    case Mode::kAdaptive: f(std::integral_constant<Mode, Mode::kAdaptive>{}); break;
    case Mode::kAdaptiveFallback: f(std::integral_constant<Mode, Mode::kAdaptiveFallback>{}); break;
  }
}

// per-sample strides of the contiguous tensors
constexpr int64_t kJointsStride = kNumJoints * 3;
constexpr int64_t kTwistStride = kNumTwist * 2;
constexpr int64_t kRotStride = kNumSmplJoints * 9;

}  // namespace ik
}  // namespace hybrik_fast
