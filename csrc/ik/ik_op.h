// Host-side glue shared by the CPU and CUDA entry points of the fused IK op:
// boundary checks that name the expected shapes, and the runtime -> compile
// time dispatch of the mode.  The maths is in ik_tree.h; the schemas are in
// ik_op.cpp.
#pragma once

#include <ATen/core/Tensor.h>

#include "common/check.h"
#include "ik/ik_tree.h"

namespace hybrik_fast {
namespace ik {

static_assert(kNumJoints == 29 && kNumTwist == 23 && kNumSmplJoints == 24, "the messages below spell the shapes");

// joints (B, 29, 3), twist (B, 23, 2), rest_joints (B, 29, 3) of one dtype
// (float32 or float64) on one device; mode a code of mode.h.
inline void check_ik_inputs(const at::Tensor& joints, const at::Tensor& twist, const at::Tensor& rest_joints,
                            int64_t mode) {
  TORCH_CHECK_VALUE(joints.dim() == 3, "joints must have shape (B, 29, 3), got ", joints.sizes());
  const int64_t B = joints.size(0);
  HYBRIK_CHECK_SHAPE(joints, B, 29, 3);
  HYBRIK_CHECK_SHAPE(twist, B, 23, 2);
  HYBRIK_CHECK_SHAPE(rest_joints, B, 29, 3);
  TORCH_CHECK_TYPE(joints.scalar_type() == at::kFloat || joints.scalar_type() == at::kDouble,
                   "joints must be float32 or float64, got ", joints.scalar_type());
  HYBRIK_CHECK_LIKE(twist, joints);
  HYBRIK_CHECK_LIKE(rest_joints, joints);
  TORCH_CHECK_VALUE(mode >= 0 && mode < kNumModes,
                    "mode must be 0 (naive), 1 (adaptive) or 2 (adaptive with fallback), got ", mode);
}

// The backward's incoming gradient: (B, 24, 3, 3), dtype and device of joints.
inline void check_ik_grad(const at::Tensor& grad_rot, const at::Tensor& joints) {
  HYBRIK_CHECK_SHAPE(grad_rot, joints.size(0), 24, 3, 3);
  HYBRIK_CHECK_LIKE(grad_rot, joints);
}

// per-sample strides of the contiguous tensors
constexpr int64_t kJointsStride = kNumJoints * 3;
constexpr int64_t kTwistStride = kNumTwist * 2;
constexpr int64_t kRotStride = kNumSmplJoints * 9;

}  // namespace ik
}  // namespace hybrik_fast
