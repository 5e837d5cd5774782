"""The paper's IK checks (HybrIK §4.2), on a body model with random plausible poses.

* round trip: IK(FK(θ), twist(θ), T) recovers θ;
* Table 1 shape: random twist keeps the 24 chain joints but moves the mesh;
  zero twist lies in between random and true twist;
* Table 3 shape: with Gaussian jitter on the input joints, adaptive HybrIK
  accumulates less error than naive HybrIK.

Each check returns rows (dicts) that :func:`format_table` prints; the tests in
tests/test_paper.py assert on them and ``hybrik-fast paper`` prints them.
"""
from __future__ import annotations

import math

import torch

from .benchmark import ik_sample
from .ik import forward_kinematics, hybrik_ik
from .skeleton import IK_CHILD, NUM_BETAS, NUM_SMPL_JOINTS, NUM_TWIST, PARENTS_29


def _positional_twist_joints() -> tuple[int, ...]:
    """Joints whose twist moves other joints: a joint with children besides its
    IK child (spine3) is turned about its aimed bone by its own twist and by
    the twists of its ancestors (the pelvis is solved by Kabsch, not twist)."""
    out = set()
    for j in range(1, NUM_SMPL_JOINTS):
        if any(PARENTS_29[c] == j and c != IK_CHILD[j] for c in range(len(PARENTS_29))):
            while j > 0:
                out.add(j)
                j = PARENTS_29[j]
    return tuple(sorted(out))


#: spine1, spine2, spine3
POSITIONAL_TWIST = _positional_twist_joints()


def sample_inputs(body, B: int, seed: int = 0, dtype=torch.float64):
    """Random plausible pose and shape on ``body``, clean IK inputs (:func:`hybrik_fast.benchmark.ik_sample`):
    rotmats (B, 24, 3, 3), betas (B, 10), joints (B, 29, 3), twist (B, 23, 2), rest (B, 29, 3)."""
    g = torch.Generator().manual_seed(seed)
    betas = torch.randn(B, NUM_BETAS, generator=g, dtype=torch.float64).to(dtype)
    rot, P, tw, T = ik_sample(B, seed, dtype, rest=body.to(dtype).rest_joints(betas))
    return rot, betas, P, tw, T


def rotation_angle(R1: torch.Tensor, R2: torch.Tensor) -> torch.Tensor:
    """Geodesic angle between rotations (…, 3, 3) -> (…), stable near 0: 2 asin(‖R1 − R2‖_F / √8)."""
    return 2 * torch.asin((torch.linalg.matrix_norm(R1 - R2) / math.sqrt(8)).clamp(max=1))


def round_trip(body, B: int = 64, seed: int = 0, backend: str = "auto") -> list[dict]:
    """Max rotation error (rad) and max joint error (mm), float64, per mode."""
    rot, _, P, tw, T = sample_inputs(body, B, seed)
    rows = []
    for mode in ("naive", "adaptive"):
        R = hybrik_ik(P, tw, T, mode=mode, backend=backend)
        rows.append({
            "mode": mode,
            "rot_err_rad": rotation_angle(R, rot).max().item(),
            "joint_err_mm": 1000 * (forward_kinematics(R, T) - P).norm(dim=-1).max().item(),
        })
    return rows


def twist_ablation(body, B: int = 64, seed: int = 0, backend: str = "auto") -> list[dict]:
    """Mean error (mm) of the 24 chain joints and the vertices for random, true and zero twist.

    Random twists are uniform in [−π, π]; the joints in POSITIONAL_TWIST keep
    their true twist in every row.
    """
    rot, betas, P, true, T = sample_inputs(body, B, seed)
    verts_true, _ = body(rot, betas)
    g = torch.Generator().manual_seed(seed + 1)
    phi = (2 * torch.rand(B, NUM_TWIST, generator=g, dtype=P.dtype) - 1) * math.pi
    random = torch.stack([phi.cos(), phi.sin()], -1)
    zero = torch.stack([torch.ones_like(phi), torch.zeros_like(phi)], -1)
    # spine3 is aimed at the neck, so the twists of spine1..3 place the
    # collars: they act as swings of the collar chains and stay true here
    for j in POSITIONAL_TWIST:
        random[:, j - 1] = zero[:, j - 1] = true[:, j - 1]
    twists = {"random": random, "true": true, "zero": zero}
    rows = []
    for name, tw in twists.items():
        R = hybrik_ik(P, tw, T, backend=backend)
        verts, _ = body(R, betas)
        rows.append({
            "twist": name,
            "joints24_mm": 1000 * (forward_kinematics(R, T) - P)[:, :NUM_SMPL_JOINTS].norm(dim=-1).mean().item(),
            "vertices_mm": 1000 * (verts - verts_true).norm(dim=-1).mean().item(),
        })
    return rows


def jitter_ablation(body, B: int = 256, seed: int = 0, levels=(0, 10, 20, 30),
                    backend: str = "auto") -> list[dict]:
    """MPJPE (mm, 24 joints) of FK(IK(P + noise)) against the clean P.

    Noise is Gaussian with the given standard deviation (mm) per coordinate,
    on every joint but the root (the joints are root-relative).  Rows: naive, adaptive (Alg. 2), adaptive with the 15 mm
    fallback.
    """
    _, _, P, tw, T = sample_inputs(body, B, seed)
    g = torch.Generator().manual_seed(seed + 2)
    noise = torch.randn(len(levels), *P.shape, generator=g, dtype=P.dtype)
    noise[:, :, 0] = 0  # the input is root-relative: the root is the frame, not a measurement
    variants = {"naive": ("naive", None), "adaptive": ("adaptive", None),
                "adaptive+fallback": ("adaptive", 0.015)}
    rows = []
    for name, (mode, fallback) in variants.items():
        row = {"method": name}
        for level, n in zip(levels, noise):
            R = hybrik_ik(P + n * level / 1000, tw, T, mode=mode, fallback=fallback, backend=backend)
            err = (forward_kinematics(R, T) - P)[:, :NUM_SMPL_JOINTS].norm(dim=-1).mean()
            row[f"{level}mm"] = 1000 * err.item()
        rows.append(row)
    return rows


def format_table(title: str, rows: list[dict]) -> str:
    """Rows of equal keys as an aligned text table."""
    keys = list(rows[0])
    cells = [[k for k in keys]] + [[_fmt(r[k]) for k in keys] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(keys))]
    lines = [title] + ["  ".join(c[i].rjust(widths[i]) for i in range(len(keys))) for c in cells]
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e-2 else f"{v:.2f}"
    return str(v)


def report(body=None, backend: str = "auto") -> str:
    """All three checks as printed tables (the main job prints this)."""
    from .body import BodyModel
    body = BodyModel.synthetic() if body is None else body
    return "\n\n".join([
        format_table("Round trip IK(FK(θ), twist(θ)) in float64 (max errors)", round_trip(body, backend=backend)),
        format_table("Table 1 shape: twist ablation (mean errors)", twist_ablation(body, backend=backend)),
        format_table("Table 3 shape: MPJPE under joint jitter (24 joints)", jitter_ablation(body, backend=backend)),
    ])
