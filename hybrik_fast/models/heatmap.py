"""The 3D-heatmap head's last step, shared by every heatmap model (ResNet and HRNet):
the final 1×1 convolution and the soft-argmax.

``heatmap_uvd(features, final_layer, heatmap_size, backend, fused)``:
features (B, C, h, w) -> uvd (B, K, 3), K = final_layer.out_channels / D.
With ``fused`` (the models' ``fused_head=True``) and (h, w) = (H, W)
it is :func:`hybrik_fast.conv_soft_argmax3d`, which never stores the
(B, K·D, H, W) logits; otherwise the materialised path: the conv, bilinear
resampling of the logits to (H, W) where (h, w) differs, the soft-argmax.
Both read the same ``final_layer`` parameters, so state dicts are the same.
"""
from __future__ import annotations

import torch
from torch import nn

from ..conv_soft_argmax import conv_soft_argmax3d
from ..soft_argmax import soft_argmax3d


def heatmap_logits(features: torch.Tensor, final_layer: nn.Conv2d, heatmap_size) -> torch.Tensor:
    """features (B, C, h, w) -> the heatmaps' logits (B, K, D, H, W) (channel k·D + d)."""
    D, H, W = heatmap_size
    logits = final_layer(features)                                       # (B, K·D, h, w)
    if tuple(logits.shape[-2:]) != (H, W):
        logits = nn.functional.interpolate(logits, size=(H, W), mode="bilinear", align_corners=False)
    return logits.reshape(logits.shape[0], -1, D, H, W)


def heatmap_uvd(features: torch.Tensor, final_layer: nn.Conv2d, heatmap_size, backend: str = "auto",
                fused: bool = True) -> torch.Tensor:
    """features (B, C, h, w) -> uvd (B, K, 3) in [−0.5, 0.5) (see the module docstring)."""
    D, H, W = heatmap_size
    if fused and tuple(features.shape[-2:]) == (H, W):
        return conv_soft_argmax3d(features, final_layer.weight, final_layer.bias,
                                  final_layer.out_channels // D, backend=backend)
    return soft_argmax3d(heatmap_logits(features, final_layer, heatmap_size), backend=backend)
