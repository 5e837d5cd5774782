"""Public kinematics ops: validation and backend dispatch."""
from __future__ import annotations

import torch

from . import _backend, reference
from ._validate import check_same, check_tensor
from .skeleton import NUM_JOINTS, NUM_SMPL_JOINTS, NUM_TWIST

MODES = ("adaptive", "naive")


def forward_kinematics(rotmats: torch.Tensor, rest_joints: torch.Tensor,
                       backend: str = "auto") -> torch.Tensor:
    """rotmats (B, 24, 3, 3), rest_joints (B, 29, 3) -> root-relative joints (B, 29, 3)."""
    sizes = check_tensor("rotmats", rotmats, ("B", NUM_SMPL_JOINTS, 3, 3))
    check_tensor("rest_joints", rest_joints, ("B", NUM_JOINTS, 3), sizes=sizes)
    check_same("rotmats", rotmats, "rest_joints", rest_joints)
    _backend.resolve("forward_kinematics", backend, rotmats.device)
    return reference.forward_kinematics(rotmats, rest_joints)


def twist_angles(rotmats: torch.Tensor, rest_joints: torch.Tensor,
                 backend: str = "auto") -> torch.Tensor:
    """rotmats (B, 24, 3, 3), rest_joints (B, 29, 3) -> twist (B, 23, 2) as (cos φ, sin φ)."""
    sizes = check_tensor("rotmats", rotmats, ("B", NUM_SMPL_JOINTS, 3, 3))
    check_tensor("rest_joints", rest_joints, ("B", NUM_JOINTS, 3), sizes=sizes)
    check_same("rotmats", rotmats, "rest_joints", rest_joints)
    _backend.resolve("twist_angles", backend, rotmats.device)
    return reference.twist_angles(rotmats, rest_joints)


def _check_ik(joints, twist, rest_joints, mode, fallback) -> None:
    sizes = check_tensor("joints", joints, ("B", NUM_JOINTS, 3))
    check_tensor("twist", twist, ("B", NUM_TWIST, 2), sizes=sizes)
    check_tensor("rest_joints", rest_joints, ("B", NUM_JOINTS, 3), sizes=sizes)
    check_same("joints", joints, "twist", twist)
    check_same("joints", joints, "rest_joints", rest_joints)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if fallback is not None and not (float(fallback) >= 0):
        raise ValueError(f"fallback must be None or a distance >= 0 in metres, got {fallback!r}")


def hybrik_ik(joints: torch.Tensor, twist: torch.Tensor, rest_joints: torch.Tensor,
              mode: str = "adaptive", fallback: float | None = 0.015,
              backend: str = "auto") -> torch.Tensor:
    """HybrIK inverse kinematics.

    joints (B, 29, 3) root-relative metres, twist (B, 23, 2) as (cos, sin) of
    any length, rest_joints (B, 29, 3) -> local rotations (B, 24, 3, 3).
    mode: "adaptive" | "naive"; fallback: metres or None (adaptive only).
    backend: "auto" | "reference" | "cpu" | "cuda".  The exact semantics are
    in :mod:`hybrik_fast.reference.kinematics`.
    """
    _check_ik(joints, twist, rest_joints, mode, fallback)
    impl = _backend.resolve("hybrik_ik", backend, joints.device)
    if impl == "reference":
        return reference.hybrik_ik(joints, twist, rest_joints, mode, fallback)
    raise AssertionError(impl)
