"""Public soft-argmax op: validation and backend dispatch."""
from __future__ import annotations

import torch

from . import _backend, reference
from ._validate import check_tensor


def _check_heatmaps(heatmaps) -> None:
    check_tensor("heatmaps", heatmaps, ("B", "K", "D", "H", "W"))
    B, K, D, H, W = heatmaps.shape
    if D == 0 or H == 0 or W == 0:
        raise ValueError(
            f"heatmaps must have shape (B, K, D, H, W) with D, H, W > 0, got {tuple(heatmaps.shape)}")


def soft_argmax3d(heatmaps: torch.Tensor, return_confidence: bool = False,
                  backend: str = "auto"):
    """Soft-argmax of 3D heatmaps.

    heatmaps: (B, K, D, H, W) logits, fp32/fp16/bf16/fp64, any strides.
    Returns coords (B, K, 3) as (x, y, z) in [−0.5, 0.5), x indexing W, y H
    and z D; with ``return_confidence`` also the non-differentiable
    confidence (B, K) = the maximum voxel probability.
    backend: "auto" | "reference" | "cpu" | "triton" (see ``_backend``).
    """
    _check_heatmaps(heatmaps)
    impl = _backend.resolve("soft_argmax3d", backend, heatmaps.device)
    if impl == "reference":
        return reference.soft_argmax3d(heatmaps, return_confidence)
    raise AssertionError(impl)
