// The fused 1×1 convolution + soft-argmax operators of the torch.library
// namespace hybrik_fast_C: their schemas.  The CPU kernels register in
// conv_soft_argmax_cpu.cpp; the autograd formula is the custom op
// hybrik_fast::conv_soft_argmax3d in hybrik_fast/conv_soft_argmax.py.
#include <torch/library.h>

// conv_soft_argmax3d_fwd: features (B, C, H, W), weight (K·D, C), bias (K·D,)
// or None -> coords (B, K, 3), lse (B, K), conf (B, K) of the logits
// conv1x1(features) viewed as (B, K, D, H, W); coords and conf in the
// accumulation dtype (float, or double for double input), lse in double.
// tile_planes: d-planes per tile, 0 = chosen to sit in cache.
// conv_soft_argmax3d_bwd: grad_coords (B, K, 3), the forward's inputs and
// its coords, lse -> d features (B, C, H, W), d weight (K·D, C), d bias
// (K·D,), each only where needs[i] (else an empty (0,) tensor).
TORCH_LIBRARY_FRAGMENT(hybrik_fast_C, m) {
  m.def("conv_soft_argmax3d_fwd(Tensor features, Tensor weight, Tensor? bias, int num_joints, int tile_planes)"
        " -> (Tensor coords, Tensor lse, Tensor conf)");
  m.def("conv_soft_argmax3d_bwd(Tensor grad_coords, Tensor features, Tensor weight, Tensor? bias, Tensor coords,"
        " Tensor lse, int num_joints, int tile_planes, bool[3] needs) -> (Tensor, Tensor, Tensor)");
}
