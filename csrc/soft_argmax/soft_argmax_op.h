// Host-side glue shared by the device entry points of the fused soft-argmax
// op (today the CPU's, soft_argmax_cpu.cpp; the GPU form is the Triton kernel
// in hybrik_fast/kernels/soft_argmax.py): the boundary check that names the
// expected shape.  The schemas are in soft_argmax_op.cpp.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace hybrik_fast {

// x (B, K, D, H, W), floating, with D, H, W > 0 (ValueError for the shape,
// TypeError for the dtype).
inline void check_heatmaps(const at::Tensor& x) {
  TORCH_CHECK_VALUE(x.dim() == 5 && x.size(2) > 0 && x.size(3) > 0 && x.size(4) > 0,
                    "x must have shape (B, K, D, H, W) with D, H, W > 0, got ", x.sizes());
  TORCH_CHECK_TYPE(x.is_floating_point(), "x must be a floating tensor (float16, bfloat16, float32 or float64), got ",
                   x.scalar_type());
}

}  // namespace hybrik_fast
