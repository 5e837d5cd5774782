"""Reference soft-argmax over 3D heatmaps (integral regression)."""
from __future__ import annotations

import torch


def soft_argmax3d(heatmaps: torch.Tensor, return_confidence: bool = False):
    """Expected voxel coordinate of each joint's 3D heatmap.

    heatmaps: (B, K, D, H, W) logits.  p = softmax over the D·H·W voxels of
    each joint.  Per axis of size N the coordinate is Σ_n n·p_n / N − 0.5,
    using the marginal of p along that axis:

        x: sum over (D, H), indexes W
        y: sum over (D, W), indexes H
        z: sum over (H, W), indexes D

    Returns coords (B, K, 3) as (x, y, z), and with ``return_confidence`` also
    the confidence (B, K) = max_v p_v = exp(max − logsumexp), which carries no
    gradient.  Computes in the input's dtype.
    """
    B, K, D, H, W = heatmaps.shape
    p = torch.softmax(heatmaps.reshape(B, K, D * H * W), dim=-1).reshape(B, K, D, H, W)
    px = p.sum(dim=(2, 3))  # (B, K, W)
    py = p.sum(dim=(2, 4))  # (B, K, H)
    pz = p.sum(dim=(3, 4))  # (B, K, D)

    def expect(marginal: torch.Tensor, n: int) -> torch.Tensor:
        idx = torch.arange(n, dtype=marginal.dtype, device=marginal.device)
        return (marginal * idx).sum(-1) / n - 0.5  # (B, K)

    coords = torch.stack([expect(px, W), expect(py, H), expect(pz, D)], dim=-1)  # (B, K, 3)
    if not return_confidence:
        return coords
    conf = p.detach().reshape(B, K, D * H * W).amax(dim=-1)  # (B, K)
    return coords, conf
