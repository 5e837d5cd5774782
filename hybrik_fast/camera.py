"""The crop camera: how joints in metres map to the heatmap's (u, v, d) and back.

Every crop of S×S pixels is seen by a virtual pinhole camera with focal length
FOCAL pixels per CROP_REF pixels of crop (1000 px for a 256 crop, as in the
public HybrIK code) and its principal point at the crop centre.  Camera
frame: x right, y down, z forward, metres.

    u = FOCAL_NORM · x / z,  v = FOCAL_NORM · y / z        (crop widths, ∈ [−0.5, 0.5))
    d = (z − z_root) / DEPTH_RANGE                         (∈ [−0.5, 0.5) for ±1.1 m)

with FOCAL_NORM = FOCAL / CROP_REF.  u, v, d are exactly the (x, y, z)
coordinates that :func:`hybrik_fast.soft_argmax3d` returns (x indexes W, y
H, z D).  The camera parameters of a sample are (s, tx, ty): the root depth
is z_root = FOCAL_NORM / s and (tx, ty) is the root's (x, y) in metres.
"""
from __future__ import annotations

import torch

FOCAL = 1000.0
CROP_REF = 256.0
FOCAL_NORM = FOCAL / CROP_REF
DEPTH_RANGE = 2.2


def project(xyz_cam: torch.Tensor, root: int = 0) -> torch.Tensor:
    """Camera-frame points (B, J, 3) -> normalised (u, v, d) (B, J, 3), depth relative to ``root``."""
    z = xyz_cam[..., 2:]
    uv = FOCAL_NORM * xyz_cam[..., :2] / z
    d = (z - z[:, root:root + 1]) / DEPTH_RANGE
    return torch.cat([uv, d], dim=-1)


def camera_from_root(root_cam: torch.Tensor) -> torch.Tensor:
    """Root position in the camera frame (B, 3) -> camera parameters (B, 3) = (s, tx, ty)."""
    return torch.stack([FOCAL_NORM / root_cam[:, 2], root_cam[:, 0], root_cam[:, 1]], dim=-1)


def root_from_camera(camera: torch.Tensor) -> torch.Tensor:
    """Camera parameters (B, 3) = (s, tx, ty) -> root position in the camera frame (B, 3)."""
    return torch.stack([camera[:, 1], camera[:, 2], FOCAL_NORM / camera[:, 0]], dim=-1)


def back_project(uvd: torch.Tensor, camera: torch.Tensor, offset: torch.Tensor | None = None,
                 root: int = 0) -> torch.Tensor:
    """Normalised (u, v, d) (B, J, 3) and camera (B, 3) -> root-relative metres (B, J, 3).

    z = d · DEPTH_RANGE + z_root, (x, y) = (uv + offset) · z / FOCAL_NORM, then
    the ``root`` joint is moved to the origin.  ``offset`` (B, 2) is the crop
    centre's offset from the principal point in crop widths (0 for crops
    centred on it, as the synthetic data's).
    """
    z_root = FOCAL_NORM / camera[:, 0]                           # (B,)
    z = uvd[..., 2:] * DEPTH_RANGE + z_root[:, None, None]       # (B, J, 1)
    uv = uvd[..., :2] if offset is None else uvd[..., :2] + offset[:, None]
    xyz = torch.cat([uv * z / FOCAL_NORM, z], dim=-1)            # (B, J, 3)
    return xyz - xyz[:, root:root + 1]
