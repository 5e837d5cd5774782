"""Fused 1×1 convolution + soft-argmax on GPU: the chunked form.

Shapes: features (B, C, H, W), weight (K·D, C), bias (K·D,) or None; coords
(B, K, 3), lse (B, K), conf (B, K) as in kernels/soft_argmax.py.

A chunk is ``CHUNK`` images: their logits (chunk, K·D, H·W) are one GEMM
(cuBLAS on CUDA), reduced by the Triton soft-argmax (kernels/soft_argmax.py)
and freed before the next chunk, so at most one chunk's logits (29 MB per
image at 29×64³ in float32) are ever held.  The backward recomputes each
chunk's logits, turns them into their gradient with the soft-argmax's
backward kernel, and accumulates

    d features_n = weightᵀ · dX_n,   d weight = Σ_n dX_n · features_nᵀ,   d bias = Σ_n Σ_columns dX_n

(dX_n (K·D, H·W) the gradient of image n's logits; the derivation is above
the backward kernel in csrc/conv_soft_argmax/conv_soft_argmax_cpu.cpp).
Accumulation of the gradients is in the input's dtype, as conv2d's.
"""
from __future__ import annotations

import torch

from . import soft_argmax

#: images per chunk
CHUNK = 1


def _logits(features: torch.Tensor, weight: torch.Tensor, bias, n0: int, n1: int, K: int) -> torch.Tensor:
    """The logits of images n0..n1 as heatmaps (n1 − n0, K, D, H, W)."""
    B, C, H, W = features.shape
    f = features[n0:n1].reshape(n1 - n0, C, H * W)
    x = torch.matmul(weight, f)                                          # (n, K·D, H·W)
    if bias is not None:
        x = x + bias[:, None]
    return x.view(n1 - n0, K, weight.shape[0] // K, H, W)


def conv_soft_argmax3d_fwd(features: torch.Tensor, weight: torch.Tensor, bias, num_joints: int):
    """-> coords (B, K, 3), lse (B, K), conf (B, K) (see the module docstring)."""
    B = features.shape[0]
    outs = [soft_argmax.soft_argmax3d_fwd(_logits(features, weight, bias, n, min(B, n + CHUNK), num_joints))
            for n in range(0, B, CHUNK)]
    if not outs:
        return soft_argmax.soft_argmax3d_fwd(_logits(features, weight, bias, 0, 0, num_joints))
    return tuple(torch.cat(parts) for parts in zip(*outs))


def conv_soft_argmax3d_bwd(grad_coords, features, weight, bias, coords, lse, num_joints: int, needs):
    """-> d features (B, C, H, W), d weight (K·D, C), d bias (K·D,), each an
    empty (0,) tensor where ``needs`` is False."""
    B, C, H, W = features.shape
    dF = torch.empty_like(features) if needs[0] else features.new_empty((0,))
    dW = torch.zeros_like(weight) if needs[1] else features.new_empty((0,))
    dB = weight.new_zeros(weight.shape[:1]) if needs[2] else features.new_empty((0,))
    for n0 in range(0, B, CHUNK):
        n1 = min(B, n0 + CHUNK)
        x = _logits(features, weight, bias, n0, n1, num_joints)
        dx = soft_argmax.soft_argmax3d_bwd(grad_coords[n0:n1], x, coords[n0:n1], lse[n0:n1])
        dx = dx.reshape(n1 - n0, weight.shape[0], H * W)                # (n, K·D, H·W)
        if needs[0]:
            dF[n0:n1] = torch.matmul(weight.t(), dx).view(n1 - n0, C, H, W)
        if needs[1]:
            dW += torch.matmul(dx, features[n0:n1].reshape(n1 - n0, C, H * W).transpose(1, 2)).sum(0)
        if needs[2]:
            dB += dx.sum((0, 2))
    return dF, dW, dB
