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


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix (…, 3, 3) -> axis-angle (…, 3), angle in [0, π] (SMPL's convention).

    Via the unit quaternion q = (w, v) of R, computed by Shepperd's method
    (from the largest of 4w², 4x², 4y², 4z², so no square root of a small
    difference), signed so that w ≥ 0; then θ = 2·atan2(|v|, w) and
    aa = v · θ/|v|, with θ/|v| → 2/w (its limit) below |v| = 1e-6.
    """
    m = R.reshape(-1, 3, 3)
    t = torch.stack([1 + m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2], 1 + m[:, 0, 0] - m[:, 1, 1] - m[:, 2, 2],
                     1 - m[:, 0, 0] + m[:, 1, 1] - m[:, 2, 2], 1 - m[:, 0, 0] - m[:, 1, 1] + m[:, 2, 2]], -1)
    k = t.argmax(-1)                                                # (N,) the largest of 4w², 4x², 4y², 4z²
    a = m[:, 2, 1] - m[:, 1, 2]                                     # 4wx
    b = m[:, 0, 2] - m[:, 2, 0]                                     # 4wy
    c = m[:, 1, 0] - m[:, 0, 1]                                     # 4wz
    d = m[:, 0, 1] + m[:, 1, 0]                                     # 4xy
    e = m[:, 0, 2] + m[:, 2, 0]                                     # 4xz
    f = m[:, 1, 2] + m[:, 2, 1]                                     # 4yz
    rows = torch.stack([torch.stack([t[:, 0], a, b, c], -1), torch.stack([a, t[:, 1], d, e], -1),
                        torch.stack([b, d, t[:, 2], f], -1), torch.stack([c, e, f, t[:, 3]], -1)], 1)
    q = rows[torch.arange(len(k)), k]                               # (N, 4) = 4·q_k·(w, x, y, z)
    q = q / q.norm(dim=-1, keepdim=True)
    q = torch.where(q[:, :1] < 0, -q, q)
    w, v = q[:, 0], q[:, 1:]
    n = v.norm(dim=-1)
    small = n < 1e-6
    ratio = torch.where(small, 2 / w, 2 * torch.atan2(n, w) / torch.where(small, torch.ones_like(n), n))
    return (v * ratio[:, None]).reshape(*R.shape[:-2], 3)
