"""Export-friendly decompositions of the ops: what runs while a model is
being traced for ONNX (:func:`hybrik_fast._backend.exporting`).

The fused kernels are opaque to the exporter, and the reference pelvis uses
an SVD (no ONNX operator, and a host-side LAPACK call).  Under export:

- ``soft_argmax3d`` runs its reference math (softmax and three marginal sums);
- ``hybrik_ik`` runs the reference recursion (23 joints unrolled in tree
  order: the loop's trip count is fixed, no value of the data steers it; the
  adaptive mode's fallback is a per-sample ``where``) with the pelvis solved
  by :func:`pelvis_rotation_horn`, which has no SVD and no data-dependent
  loop;
- the body model's LBS is plain tensor algebra already.

Shapes: B batch; joints, rest joints (B, 29, 3); R0 (B, 3, 3).
"""
from __future__ import annotations

import torch

from . import reference
from .skeleton import PELVIS_CHILDREN

#: squarings of the shifted Horn matrix: its top eigenvector dominates
#: A^(2^k) by (λ2 + c)/(λ1 + c) to the power 2^k, so 40 squarings separate
#: eigenvalues whose gap is 1e-11 of the spectrum's width (float64 rounding
#: is reached long before)
HORN_SQUARINGS = 40
#: power steps with the unsquared matrix after the squarings (polish the
#: rounding of the products)
HORN_POLISH = 2


def _horn_matrix(S: torch.Tensor) -> torch.Tensor:
    """Horn's symmetric 4×4 matrix N (B, 4, 4) of S = Σ_c t_c p_cᵀ (B, 3, 3).

    For a unit quaternion q = (w, x, y, z), Σ_c p_c · (R(q) t_c) = qᵀ N q, so
    the best proper rotation taking the t_c onto the p_c is R(q*) with q* the
    eigenvector of N's largest eigenvalue (Horn 1987, JOSA A 4(4)).
    """
    (xx, xy, xz), (yx, yy, yz), (zx, zy, zz) = (S[:, i].unbind(-1) for i in range(3))
    rows = [
        [xx + yy + zz, yz - zy, zx - xz, xy - yx],
        [yz - zy, xx - yy - zz, xy + yx, zx + xz],
        [zx - xz, xy + yx, yy - xx - zz, yz + zy],
        [xy - yx, zx + xz, yz + zy, zz - xx - yy],
    ]
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def _quat_to_mat(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternions (B, 4) as (w, x, y, z) -> rotation matrices (B, 3, 3)."""
    w, x, y, z = q.unbind(-1)
    m = [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
         2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
         2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]
    return torch.stack(m, dim=-1).reshape(*q.shape[:-1], 3, 3)


def pelvis_rotation_horn(joints: torch.Tensor, rest_joints: torch.Tensor) -> torch.Tensor:
    """The pelvis rotation of :func:`hybrik_fast.reference.pelvis_rotation`
    (Kabsch over the pelvis children, proper rotations only), without an SVD.

    joints, rest_joints: (B, 29, 3).  Returns R0 (B, 3, 3): the identity where
    S = 0, NaN where S is not finite.

    Method: Horn's matrix N (:func:`_horn_matrix`) shifted by c = |N|_F, which
    bounds its spectral radius, is positive semi-definite with the top
    eigenvector of N as its dominant one.  HORN_SQUARINGS normalised squarings
    A <- A² / |A²|_F take it to ≈ q* q*ᵀ; the column with the largest diagonal
    entry is ∝ q* (a gather, no branch), and HORN_POLISH power steps with
    N + cI remove the squarings' rounding.  Where the top eigenvalue is
    repeated the minimiser is not unique and any vector of that eigenspace is
    one.  A fixed operation count per sample: no loop depends on the data.
    """
    ch = list(PELVIS_CHILDREN)
    t = rest_joints[:, ch] - rest_joints[:, :1]                 # (B, 3, 3) rows t_c
    p = joints[:, ch] - joints[:, :1]                           # (B, 3, 3) rows p_c
    S = t.transpose(1, 2) @ p                                   # (B, 3, 3)
    finite = torch.isfinite(S).all(dim=(1, 2))
    zero = (S == 0).all(dim=(1, 2))
    good = (finite & ~zero)[:, None, None]
    N = _horn_matrix(torch.where(good, S, torch.eye(3, dtype=S.dtype, device=S.device)))
    eye4 = torch.eye(4, dtype=S.dtype, device=S.device)
    c = torch.linalg.matrix_norm(N)                             # Frobenius, (B,)
    A0 = N + c[:, None, None] * eye4                            # PSD, (B, 4, 4)
    A = A0
    for _ in range(HORN_SQUARINGS):                             # a fixed count
        A = A @ A
        A = A / torch.linalg.matrix_norm(A, keepdim=True)
    top = A.diagonal(dim1=1, dim2=2).argmax(dim=-1)             # (B,)
    q = torch.gather(A, 2, top[:, None, None].expand(-1, 4, 1))  # (B, 4, 1) column ∝ q*
    for _ in range(HORN_POLISH):
        q = A0 @ q
        q = q / torch.linalg.vector_norm(q, dim=1, keepdim=True)
    R = _quat_to_mat(q[..., 0])
    eye3 = torch.eye(3, dtype=S.dtype, device=S.device).expand_as(R)
    R = torch.where(zero[:, None, None], eye3, R)
    return torch.where(finite[:, None, None], R, torch.full_like(R, float("nan")))


def hybrik_ik(joints: torch.Tensor, twist: torch.Tensor, rest_joints: torch.Tensor,
              mode: str = "adaptive", fallback: float | None = 0.015) -> torch.Tensor:
    """The IK of :func:`hybrik_fast.hybrik_ik` as exportable tensor algebra:
    (B, 29, 3), (B, 23, 2), (B, 29, 3) -> rotmats (B, 24, 3, 3).  The
    reference recursion with the SVD-free pelvis (module docstring)."""
    return reference.hybrik_ik(joints, twist, rest_joints, mode, fallback,
                               pelvis=pelvis_rotation_horn)
