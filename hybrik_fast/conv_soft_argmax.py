"""Public fused 1×1 convolution + soft-argmax: the heatmap that is never stored.

Shapes: features (B, C, H, W); weight (K·D, C) or (K·D, C, 1, 1); bias
(K·D,) or None; coords (B, K, 3) as in :func:`~hybrik_fast.soft_argmax3d`
(x indexing W, y H, z D); confidence (B, K).

``conv_soft_argmax3d(f, w, b, K)`` equals
``soft_argmax3d(conv2d(f, w, b).view(B, K, D, H, W))`` (channel k·D + d is
plane d of joint k) without holding the (B, K·D, H, W) logits or their
gradient: the fused backends compute them tile by tile, reduce each tile
into the soft-argmax and keep only the per-joint coords and log-sum-exp;
the backward recomputes each tile (derivation above the backward kernel in
csrc/conv_soft_argmax/conv_soft_argmax_cpu.cpp).

Backends (:mod:`hybrik_fast._backend`): "cpu" (C++, csrc/conv_soft_argmax/),
"triton" (kernels/conv_soft_argmax.py: a flash-style Triton kernel, GEMM
tiles into an online softmax, with a chunked fallback), "reference" (the
materialised path, :func:`materialised`, with the reference soft-argmax).
The fused ones sit behind the custom ops ``hybrik_fast::conv_soft_argmax3d``
and ``hybrik_fast::conv_soft_argmax3d_backward``, so that torch.compile and
torch.export see single nodes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _backend
from ._validate import check_tensor
from .soft_argmax import _acc_dtype, soft_argmax3d


def _check(features, weight, bias, num_joints) -> torch.Tensor:
    """Validates the inputs (TypeError for types and dtypes, ValueError for
    shapes and devices); returns the weight as (K·D, C)."""
    sizes = check_tensor("features", features, ("B", "C", "H", "W"))
    if features.shape[2] == 0 or features.shape[3] == 0:
        raise ValueError(f"features must have shape (B, C, H, W) with H, W > 0, got {tuple(features.shape)}")
    if not isinstance(num_joints, int) or isinstance(num_joints, bool) or num_joints <= 0:
        raise ValueError(f"num_joints must be a positive int, got {num_joints!r}")
    if isinstance(weight, torch.Tensor) and weight.dim() == 4:
        if weight.shape[2:] != (1, 1):
            raise ValueError(f"weight must have shape (K·D, C) or (K·D, C, 1, 1), got {tuple(weight.shape)}")
        weight = weight.flatten(1)
    check_tensor("weight", weight, ("KD", "C"), sizes=sizes)
    KD = weight.shape[0]
    if KD == 0 or KD % num_joints:
        raise ValueError(f"weight must have shape (K·D, C) with K·D a positive multiple of "
                         f"num_joints = {num_joints}, got {tuple(weight.shape)}")
    if bias is not None:
        check_tensor("bias", bias, ("KD",), sizes=sizes)
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.dtype != features.dtype:
            raise TypeError(f"{name} must have the dtype of features ({features.dtype}), got {t.dtype}")
        if t is not None and t.device != features.device:
            raise ValueError(f"{name} must be on the device of features ({features.device}), got {t.device}")
    return weight


@torch.library.custom_op("hybrik_fast::conv_soft_argmax3d", mutates_args=())
def _fused(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, num_joints: int,
           backend: str, tile_planes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """features (B, C, H, W), weight (K·D, C), bias (K·D,) or None -> coords
    (B, K, 3), lse (B, K), conf (B, K); coords and conf in the accumulation
    dtype, lse in float64.  backend: "cpu" or "triton"."""
    if backend == "triton":
        from .kernels import conv_soft_argmax as triton_kernels
        return triton_kernels.conv_soft_argmax3d_fwd(features, weight, bias, num_joints)
    return torch.ops.hybrik_fast_C.conv_soft_argmax3d_fwd(features, weight, bias, num_joints, tile_planes)


@_fused.register_fake
def _(features, weight, bias, num_joints, backend, tile_planes):
    B, K = features.shape[0], num_joints
    acc = _acc_dtype(features.dtype)
    return (features.new_empty((B, K, 3), dtype=acc), features.new_empty((B, K), dtype=torch.float64),
            features.new_empty((B, K), dtype=acc))


@torch.library.custom_op("hybrik_fast::conv_soft_argmax3d_backward", mutates_args=())
def _fused_backward(grad_coords: torch.Tensor, features: torch.Tensor, weight: torch.Tensor,
                    bias: torch.Tensor | None, coords: torch.Tensor, lse: torch.Tensor, num_joints: int,
                    backend: str, tile_planes: int, needs: list[bool]
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """grad_coords (B, K, 3), the forward's inputs, coords (B, K, 3), lse (B, K)
    -> d features (B, C, H, W), d weight (K·D, C), d bias (K·D,), each only
    where ``needs`` says so (else an empty (0,) tensor)."""
    if backend == "triton":
        from .kernels import conv_soft_argmax as triton_kernels
        return triton_kernels.conv_soft_argmax3d_bwd(grad_coords, features, weight, bias, coords, lse,
                                                     num_joints, needs)
    return torch.ops.hybrik_fast_C.conv_soft_argmax3d_bwd(grad_coords, features, weight, bias, coords, lse,
                                                           num_joints, tile_planes, needs)


@_fused_backward.register_fake
def _(grad_coords, features, weight, bias, coords, lse, num_joints, backend, tile_planes, needs):
    return (features.new_empty(features.shape if needs[0] else (0,)),
            weight.new_empty(weight.shape if needs[1] else (0,)),
            weight.new_empty(weight.shape[:1] if needs[2] else (0,)))


def _setup_context(ctx, inputs, output):
    features, weight, bias, num_joints, backend, tile_planes = inputs
    coords, lse, conf = output
    ctx.mark_non_differentiable(lse, conf)
    ctx.args = (num_joints, backend, tile_planes)
    ctx.has_bias = bias is not None
    if any(ctx.needs_input_grad[:3]):
        ctx.save_for_backward(features, weight, bias, coords, lse)


def _backward(ctx, grad_coords, grad_lse, grad_conf):
    # lse and conf are non-differentiable: their incoming gradients are ignored
    features, weight, bias, coords, lse = ctx.saved_tensors
    needs = [bool(ctx.needs_input_grad[0]), bool(ctx.needs_input_grad[1]),
             bool(ctx.needs_input_grad[2]) and ctx.has_bias]
    d = _fused_backward(grad_coords, features, weight, bias, coords, lse, ctx.args[0], ctx.args[1],
                        ctx.args[2], needs)
    return (*(g if need else None for g, need in zip(d, needs)), None, None, None)


_fused.register_autograd(_backward, setup_context=_setup_context)


def materialised(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, num_joints: int,
                 return_confidence: bool = False, backend: str = "auto"):
    """The same result through the stored logits: conv2d, view (B, K, D, H, W),
    :func:`~hybrik_fast.soft_argmax3d` (``backend`` is the soft-argmax's).
    The path of ``fused_head=False`` and of anything that needs the heatmaps."""
    w = _check(features, weight, bias, num_joints)
    B, _, H, W = features.shape
    logits = F.conv2d(features, w[:, :, None, None], bias)               # (B, K·D, H, W)
    heatmaps = logits.reshape(B, num_joints, w.shape[0] // num_joints, H, W)
    return soft_argmax3d(heatmaps, return_confidence, backend=backend)


def conv_soft_argmax3d(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                       num_joints: int = 29, return_confidence: bool = False, backend: str = "auto",
                       tile_planes: int = 0):
    """Soft-argmax of the 3D heatmaps ``conv2d(features, weight, bias)``, never stored.

    features (B, C, H, W); weight (K·D, C) or (K·D, C, 1, 1) with K =
    ``num_joints``; bias (K·D,) or None; all of one floating dtype and
    device.  Returns coords (B, K, 3) (and with ``return_confidence`` the
    non-differentiable confidence (B, K), the maximum voxel probability) in
    the features' dtype, equal to
    ``soft_argmax3d(conv2d(features, weight, bias).view(B, K, D, H, W))``.
    backend: "auto" (alias "fused") | "reference" | "cpu" | "triton" (see
    :mod:`hybrik_fast._backend`); "reference" is the materialised path.
    tile_planes: rows (d-planes) per tile of the "cpu" kernel: fewer than D
    cut each heatmap into runs of planes, D or more hold ⌊tile_planes / D⌋
    whole joints (0: as many voxels as the kernel's default tile); the tests
    force many tiles with it.
    """
    w = _check(features, weight, bias, num_joints)
    impl = _backend.resolve("conv_soft_argmax3d", backend, features.device)
    if impl == "reference" or _backend.is_exporting():  # the export decomposition is the materialised path
        return materialised(features, w, bias, num_joints, return_confidence, backend="reference")
    coords, _, conf = _fused(features, w, bias, num_joints, impl, int(tile_planes))
    coords = coords.to(features.dtype)  # (B, K, 3)
    if not return_confidence:
        return coords
    return coords, conf.to(features.dtype)  # (B, K)
