"""Public soft-argmax op: validation, backend dispatch and the fused custom op.

Shapes: heatmaps (B, K, D, H, W) logits; coords (B, K, 3) as (x, y, z), x
indexing W, y H and z D; confidence (B, K).

The fused backends ("cpu": C++ in csrc/soft_argmax/, "triton":
kernels/soft_argmax.py) sit behind two torch.library custom ops, so that
torch.compile and torch.export see them as single nodes:

- ``hybrik_fast::soft_argmax3d(heatmaps, backend) -> (coords, lse, conf)``
- ``hybrik_fast::soft_argmax3d_backward(grad_coords, heatmaps, coords, lse, backend) -> dx``

coords and conf come out in the accumulation dtype (float32, or float64 for
float64 input) so that backward sees unrounded coordinates, and lse in
float64 (at |x| ~ 1e4 a float32 lse would shift every recomputed p by up to
5e-4); the public function casts coords and conf to the input's dtype.  Autograd saves only the
logits, coords and lse, and only when the logits need a gradient.
"""
from __future__ import annotations

import torch

from . import _backend, reference
from ._validate import check_tensor

SHAPE = "(B, K, D, H, W)"


def _check_heatmaps(heatmaps) -> None:
    """TypeError for anything but a floating tensor, ValueError unless its shape
    is (B, K, D, H, W) with D, H, W > 0; both name the expected shape."""
    check_tensor("heatmaps", heatmaps, ("B", "K", "D", "H", "W"))
    B, K, D, H, W = heatmaps.shape
    if D == 0 or H == 0 or W == 0:
        raise ValueError(
            f"heatmaps must have shape {SHAPE} with D, H, W > 0, got {tuple(heatmaps.shape)}")


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


@torch.library.custom_op("hybrik_fast::soft_argmax3d", mutates_args=())
def _fused(heatmaps: torch.Tensor, backend: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """heatmaps (B, K, D, H, W) -> coords (B, K, 3), lse (B, K), conf (B, K);
    coords and conf in the accumulation dtype, lse in float64.
    backend: "cpu" (C++) or "triton"."""
    if backend == "triton":
        from .kernels import soft_argmax as triton_kernels
        return triton_kernels.soft_argmax3d_fwd(heatmaps)
    return torch.ops.hybrik_fast_C.soft_argmax3d_fwd(heatmaps)


@_fused.register_fake
def _(heatmaps, backend):
    B, K = heatmaps.shape[:2]
    acc = _acc_dtype(heatmaps.dtype)
    return (heatmaps.new_empty((B, K, 3), dtype=acc), heatmaps.new_empty((B, K), dtype=torch.float64),
            heatmaps.new_empty((B, K), dtype=acc))


@torch.library.custom_op("hybrik_fast::soft_argmax3d_backward", mutates_args=())
def _fused_backward(grad_coords: torch.Tensor, heatmaps: torch.Tensor, coords: torch.Tensor,
                    lse: torch.Tensor, backend: str) -> torch.Tensor:
    """grad_coords (B, K, 3), heatmaps (B, K, D, H, W), coords (B, K, 3), lse (B, K)
    -> d heatmaps (B, K, D, H, W), contiguous, in the heatmaps' dtype."""
    if backend == "triton":
        from .kernels import soft_argmax as triton_kernels
        return triton_kernels.soft_argmax3d_bwd(grad_coords, heatmaps, coords, lse)
    return torch.ops.hybrik_fast_C.soft_argmax3d_bwd(grad_coords, heatmaps, coords, lse)


@_fused_backward.register_fake
def _(grad_coords, heatmaps, coords, lse, backend):
    return heatmaps.new_empty(heatmaps.shape)


def _setup_context(ctx, inputs, output):
    heatmaps, backend = inputs
    coords, lse, conf = output
    ctx.backend = backend
    ctx.mark_non_differentiable(lse, conf)
    if ctx.needs_input_grad[0]:
        ctx.save_for_backward(heatmaps, coords, lse)


def _backward(ctx, grad_coords, grad_lse, grad_conf):
    # lse and conf are non-differentiable: their incoming gradients are ignored
    heatmaps, coords, lse = ctx.saved_tensors
    return _fused_backward(grad_coords, heatmaps, coords, lse, ctx.backend), None


_fused.register_autograd(_backward, setup_context=_setup_context)


def soft_argmax3d(heatmaps: torch.Tensor, return_confidence: bool = False,
                  backend: str = "auto"):
    """Soft-argmax of 3D heatmaps.

    heatmaps: (B, K, D, H, W) logits, fp32/fp16/bf16/fp64, any strides.
    Returns coords (B, K, 3) as (x, y, z) in [−0.5, 0.5), x indexing W, y H
    and z D; with ``return_confidence`` also the non-differentiable
    confidence (B, K) = the maximum voxel probability.  Both in the input's
    dtype; the fused backends accumulate in float32 (float64 for float64).
    backend: "auto" (alias "fused") | "reference" | "cpu" | "triton" (see
    :mod:`hybrik_fast._backend`).
    """
    _check_heatmaps(heatmaps)
    impl = _backend.resolve("soft_argmax3d", backend, heatmaps.device)
    if impl == "reference" or _backend.is_exporting():  # the export decomposition is the reference
        return reference.soft_argmax3d(heatmaps, return_confidence)
    coords, _, conf = _fused(heatmaps, impl)
    coords = coords.to(heatmaps.dtype)  # (B, K, 3)
    if not return_confidence:
        return coords
    return coords, conf.to(heatmaps.dtype)  # (B, K)
