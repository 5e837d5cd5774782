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
    θ = 1e-4 where the quotients lose precision, so θ = 0 is exact; the
    square root is taken of a safe θ² only, so the gradient at θ = 0 is
    finite (the series' gradient) rather than 0·∞.
    """
    theta2 = (aa * aa).sum(-1)
    small = theta2 < 1e-8
    safe = torch.where(small, torch.ones_like(theta2), theta2).sqrt()
    a = torch.where(small, 1 - theta2 / 6, torch.sin(safe) / safe)              # sin θ / θ
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(safe)) / (safe * safe))  # (1 − cos θ)/θ²
    x, y, z = aa.unbind(-1)
    o = torch.zeros_like(x)
    K = torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(*aa.shape, 3)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device)
    return eye + a[..., None, None] * K + b[..., None, None] * (K @ K)


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix (…, 3, 3) -> axis-angle (…, 3), angle in [0, π].

    Through the unit quaternion q = (w, v) of R: for each of the four
    candidates 4w², 4x², 4y², 4z² (from the trace and the diagonal) the
    largest is the best-conditioned pivot (Shepperd 1978); then
    θ = 2·atan2(|v|, w) and aa = θ·v/|v|, with θ/|v| → 2 as |v| → 0 written
    as 2·atan2(|v|, w)/|v| only where |v| > 0 (exactly 0 at the identity).
    """
    m = R.reshape(-1, 3, 3)
    r00, r11, r22 = m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]
    cand = torch.stack([1 + r00 + r11 + r22, 1 + r00 - r11 - r22,
                        1 - r00 + r11 - r22, 1 - r00 - r11 + r22], -1)      # 4·(w², x², y², z²)
    d21, d02, d10 = m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]
    s21, s02, s10 = m[:, 2, 1] + m[:, 1, 2], m[:, 0, 2] + m[:, 2, 0], m[:, 1, 0] + m[:, 0, 1]
    # rows: 4·pivot·(w, x, y, z) for the pivot w, x, y, z
    rows = torch.stack([
        torch.stack([cand[:, 0], d21, d02, d10], -1),
        torch.stack([d21, cand[:, 1], s10, s02], -1),
        torch.stack([d02, s10, cand[:, 2], s21], -1),
        torch.stack([d10, s02, s21, cand[:, 3]], -1)], 1)                   # (N, 4, 4)
    best = cand.argmax(-1)
    q = rows[torch.arange(m.shape[0], device=m.device), best]               # (N, 4)
    q = q * torch.where(q[:, :1] < 0, -1.0, 1.0)                            # w ≥ 0: θ ≤ π
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    w, v = q[:, 0], q[:, 1:]
    n = torch.linalg.vector_norm(v, dim=-1)
    pos = n > 0
    scale = torch.where(pos, 2 * torch.atan2(n, w) / torch.where(pos, n, torch.ones_like(n)),
                        torch.full_like(n, 2.0))
    return (scale[:, None] * v).reshape(*R.shape[:-2], 3)


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

