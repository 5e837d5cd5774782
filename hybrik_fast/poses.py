"""Random plausible SMPL poses within per-joint angle limits.

Limits are boxes on the axis-angle vector of each local rotation, in SMPL's
T-pose frame (y up, x to the body's left, z forward), radians.  They are
rough anatomical ranges, enough to keep samples human: knees and elbows bend
one way, shoulders and hips have the widest range.
"""
from __future__ import annotations

import math

import torch

from .skeleton import NUM_SMPL_JOINTS

# (x, y, z) ranges per joint 1..23; joint 0 is the global orientation
_S, _N = 0.3, 0.05
JOINT_LIMITS: dict[int, tuple[tuple[float, float], ...]] = {
    1: ((-1.2, 0.4), (-0.4, 0.4), (-0.2, 0.6)),    # left hip: flex forward is −x
    2: ((-1.2, 0.4), (-0.4, 0.4), (-0.6, 0.2)),    # right hip
    3: ((-0.2, 0.5), (-_S, _S), (-_S, _S)),        # spine1
    4: ((0.0, 2.0), (-_N, _N), (-_N, _N)),         # left knee: bends backwards only
    5: ((0.0, 2.0), (-_N, _N), (-_N, _N)),         # right knee
    6: ((-0.2, 0.3), (-_S, _S), (-0.2, 0.2)),      # spine2
    7: ((-0.4, 0.4), (-0.2, 0.2), (-0.2, 0.2)),    # left ankle
    8: ((-0.4, 0.4), (-0.2, 0.2), (-0.2, 0.2)),    # right ankle
    9: ((-0.2, 0.3), (-_S, _S), (-0.2, 0.2)),      # spine3
    10: ((-0.2, 0.2), (-0.2, 0.2), (-0.2, 0.2)),   # left foot
    11: ((-0.2, 0.2), (-0.2, 0.2), (-0.2, 0.2)),   # right foot
    12: ((-0.4, 0.4), (-0.4, 0.4), (-0.3, 0.3)),   # neck
    13: ((-0.2, 0.2), (-0.2, 0.2), (-0.2, 0.2)),   # left collar
    14: ((-0.2, 0.2), (-0.2, 0.2), (-0.2, 0.2)),   # right collar
    15: ((-0.3, 0.3), (-0.4, 0.4), (-0.3, 0.3)),   # jaw / head
    16: ((-0.6, 0.6), (-0.8, 0.8), (-1.2, 0.6)),   # left shoulder: arm down is −z
    17: ((-0.6, 0.6), (-0.8, 0.8), (-0.6, 1.2)),   # right shoulder: arm down is +z
    18: ((-0.5, 0.5), (-2.3, 0.0), (-_N, _N)),     # left elbow: forearm forward is −y
    19: ((-0.5, 0.5), (0.0, 2.3), (-_N, _N)),      # right elbow: forearm forward is +y
    20: ((-0.5, 0.5), (-0.3, 0.3), (-0.5, 0.5)),   # left wrist
    21: ((-0.5, 0.5), (-0.3, 0.3), (-0.5, 0.5)),   # right wrist
    22: ((-0.2, 0.2), (-0.2, 0.2), (-0.2, 0.2)),   # left hand
    23: ((-0.2, 0.2), (-0.2, 0.2), (-0.2, 0.2)),   # right hand
}


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues: axis-angle (…, 3) -> rotation matrix (…, 3, 3).

    Uses sin θ/θ and (1 − cos θ)/θ², switching to their Taylor series below
    θ = 1e-4 where the quotients lose precision, so θ = 0 is exact.
    """
    theta2 = (aa * aa).sum(-1)
    theta = theta2.sqrt()
    small = theta < 1e-4
    safe = torch.where(small, torch.ones_like(theta), theta)
    a = torch.where(small, 1 - theta2 / 6, torch.sin(safe) / safe)              # sin θ / θ
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(safe)) / (safe * safe))  # (1 − cos θ)/θ²
    x, y, z = aa.unbind(-1)
    o = torch.zeros_like(x)
    K = torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(*aa.shape, 3)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device)
    return eye + a[..., None, None] * K + b[..., None, None] * (K @ K)


def sample_axis_angles(B: int, generator: torch.Generator | None = None,
                       dtype=torch.float64, scale: float = 1.0) -> torch.Tensor:
    """(B, 24, 3) axis-angle pose within JOINT_LIMITS (scaled by ``scale``).

    The root turns uniformly about the vertical and up to 0.3 rad about the
    other axes.
    """
    lo = torch.zeros(NUM_SMPL_JOINTS, 3, dtype=torch.float64)
    hi = torch.zeros(NUM_SMPL_JOINTS, 3, dtype=torch.float64)
    for j, lim in JOINT_LIMITS.items():
        lo[j] = torch.tensor([r[0] for r in lim]) * scale
        hi[j] = torch.tensor([r[1] for r in lim]) * scale
    lo[0] = torch.tensor([-0.3, -math.pi, -0.3])
    hi[0] = torch.tensor([0.3, math.pi, 0.3])
    u = torch.rand(B, NUM_SMPL_JOINTS, 3, generator=generator, dtype=torch.float64)
    return (lo + (hi - lo) * u).to(dtype)


def sample_rotmats(B: int, generator: torch.Generator | None = None, dtype=torch.float64,
                   scale: float = 1.0) -> torch.Tensor:
    """(B, 24, 3, 3) local rotations of a random plausible pose."""
    return axis_angle_to_matrix(sample_axis_angles(B, generator, torch.float64, scale)).to(dtype)
