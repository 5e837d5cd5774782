// The fused soft-argmax operators of the torch.library namespace
// hybrik_fast_C: their schemas.  Each device's kernels register under their
// dispatch key (CPU: soft_argmax_cpu.cpp); the autograd formula is the
// custom op hybrik_fast::soft_argmax3d in hybrik_fast/soft_argmax.py, which
// also routes the "triton" backend to hybrik_fast/kernels/soft_argmax.py.
#include <torch/library.h>

// soft_argmax3d_fwd: x (B, K, D, H, W) -> coords (B, K, 3), lse (B, K), conf (B, K);
// coords and conf in the accumulation dtype (float, or double for double
// input), lse in double.
// soft_argmax3d_bwd: grad_coords (B, K, 3), x (B, K, D, H, W), coords (B, K, 3),
// lse (B, K) -> dx (B, K, D, H, W), contiguous, in x's dtype.
TORCH_LIBRARY_FRAGMENT(hybrik_fast_C, m) {
  m.def("soft_argmax3d_fwd(Tensor x) -> (Tensor coords, Tensor lse, Tensor conf)");
  m.def("soft_argmax3d_bwd(Tensor grad_coords, Tensor x, Tensor coords, Tensor lse) -> Tensor");
}
