"""Public kinematics ops: validation and backend dispatch.

The fused IK is the operator ``hybrik_fast::hybrik_ik`` (a
``torch.library.custom_op`` with a fake implementation and a hand-written
backward), over the C++ operators ``hybrik_fast_C::hybrik_ik_fwd`` /
``hybrik_ik_bwd`` (csrc/ik/: schemas in ik_op.cpp, the maths in shared
HOST_DEVICE headers under ik_tree.h, a CPU loop and a CUDA kernel).  Shapes: B batch; joints (B, 29, 3), twist (B, 23, 2), rest joints
(B, 29, 3), local rotations (B, 24, 3, 3).
"""
from __future__ import annotations

from typing import Optional

import torch

from . import _backend, _ext, export_ops, reference
from ._validate import check_same, check_tensor, shape_str
from .skeleton import NUM_JOINTS, NUM_SMPL_JOINTS, NUM_TWIST

MODES = ("adaptive", "naive")

# the C++ ops' mode codes, defined in csrc/ik/mode.h and read from the
# extension (none are needed without it: only the reference runs then)
_CODES = _ext.C.ik_modes() if _ext.C is not None else {}

_IK_SPECS = {"joints": ("B", NUM_JOINTS, 3), "twist": ("B", NUM_TWIST, 2),
             "rest_joints": ("B", NUM_JOINTS, 3)}


def _check_rotations(op: str, rotmats, rest_joints, backend: str) -> None:
    """The checks of the ops on (rotmats (B, 24, 3, 3), rest_joints (B, 29, 3)), and their backend."""
    sizes = check_tensor("rotmats", rotmats, ("B", NUM_SMPL_JOINTS, 3, 3))
    check_tensor("rest_joints", rest_joints, ("B", NUM_JOINTS, 3), sizes=sizes)
    check_same("rotmats", rotmats, "rest_joints", rest_joints)
    _backend.resolve(op, backend, rotmats.device)


def forward_kinematics(rotmats: torch.Tensor, rest_joints: torch.Tensor,
                       backend: str = "auto") -> torch.Tensor:
    """rotmats (B, 24, 3, 3), rest_joints (B, 29, 3) -> root-relative joints (B, 29, 3)."""
    _check_rotations("forward_kinematics", rotmats, rest_joints, backend)
    return reference.forward_kinematics(rotmats, rest_joints)


def twist_angles(rotmats: torch.Tensor, rest_joints: torch.Tensor,
                 backend: str = "auto") -> torch.Tensor:
    """rotmats (B, 24, 3, 3), rest_joints (B, 29, 3) -> twist (B, 23, 2) as (cos φ, sin φ)."""
    _check_rotations("twist_angles", rotmats, rest_joints, backend)
    return reference.twist_angles(rotmats, rest_joints)


_FUSED_DTYPES = (torch.float32, torch.float64)


def _check_ik(joints, twist, rest_joints, mode, fallback) -> None:
    # the common case in a few attribute reads (this runs on every call, and
    # at B = 64 the fused op itself takes tens of microseconds); anything
    # unusual goes through the checks that name the expected shapes
    try:
        B = joints.shape[0]
        if (joints.shape == (B, NUM_JOINTS, 3) and twist.shape == (B, NUM_TWIST, 2)
                and rest_joints.shape == (B, NUM_JOINTS, 3) and joints.dtype in _FUSED_DTYPES
                and twist.dtype == joints.dtype and rest_joints.dtype == joints.dtype
                and twist.device == joints.device and rest_joints.device == joints.device
                and isinstance(joints, torch.Tensor) and isinstance(twist, torch.Tensor)
                and isinstance(rest_joints, torch.Tensor)
                and (mode == "adaptive" or mode == "naive") and (fallback is None or fallback >= 0)):
            return
    except (AttributeError, IndexError, TypeError):
        pass
    sizes = check_tensor("joints", joints, _IK_SPECS["joints"])
    check_tensor("twist", twist, _IK_SPECS["twist"], sizes=sizes)
    check_tensor("rest_joints", rest_joints, _IK_SPECS["rest_joints"], sizes=sizes)
    named = {k: f"{k} {shape_str(spec)}" for k, spec in _IK_SPECS.items()}
    check_same(named["joints"], joints, named["twist"], twist)
    check_same(named["joints"], joints, named["rest_joints"], rest_joints)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if fallback is not None and (isinstance(fallback, bool) or not isinstance(fallback, (int, float))):
        raise TypeError(f"fallback must be None or a distance in metres (a float), got {type(fallback).__name__}")
    if fallback is not None and not (fallback >= 0):
        raise ValueError(f"fallback must be None or a distance >= 0 in metres, got {fallback!r}")


def _mode_code(mode: str, fallback: Optional[float]) -> tuple[int, float]:
    """(mode, fallback) -> the C++ ops' (mode code, fallback in metres or -1)."""
    if mode == "naive":
        return _CODES["naive"], -1.0
    if fallback is None:
        return _CODES["adaptive"], -1.0
    return _CODES["adaptive_fallback"], float(fallback)


def hybrik_ik(joints: torch.Tensor, twist: torch.Tensor, rest_joints: torch.Tensor,
              mode: str = "adaptive", fallback: float | None = 0.015,
              backend: str = "auto") -> torch.Tensor:
    """HybrIK inverse kinematics.

    joints (B, 29, 3) root-relative metres, twist (B, 23, 2) as (cos, sin) of
    any length, rest_joints (B, 29, 3) -> local rotations (B, 24, 3, 3).
    mode: "adaptive" | "naive"; fallback: metres or None (adaptive only).
    backend: "auto" (alias "fused") | "reference" | "cpu" | "cuda" (see
    :mod:`hybrik_fast._backend`).  The exact semantics are
    in :mod:`hybrik_fast.reference.kinematics`; the fused backends compute in
    float64 internally (float32 results are the exact answer, rounded) and
    differentiate joints, twist and rest_joints with a hand-written backward.
    """
    _check_ik(joints, twist, rest_joints, mode, fallback)
    if _backend.is_exporting():
        return export_ops.hybrik_ik(joints, twist, rest_joints, mode, fallback)
    impl = _backend.resolve("hybrik_ik", backend, joints.device)
    if impl == "reference":
        return reference.hybrik_ik(joints, twist, rest_joints, mode, fallback)
    if joints.dtype not in _FUSED_DTYPES:  # float16, bfloat16: the kernels take float32 and float64
        return hybrik_ik(joints.float(), twist.float(), rest_joints.float(), mode, fallback,
                         impl).to(joints.dtype)
    if torch.compiler.is_compiling():
        # torch.compile / torch.export trace the custom op (fake impl + autograd formula)
        return torch.ops.hybrik_fast.hybrik_ik(joints, twist, rest_joints, mode, fallback)
    # eager: the same kernels behind a C++ autograd node, no Python in the
    # forward or the backward (the custom op's Python layers cost ~10x the
    # kernel at B = 64); without gradients, the bare forward kernel
    code, f = _mode_code(mode, fallback)
    if torch.is_grad_enabled() and (joints.requires_grad or twist.requires_grad or rest_joints.requires_grad):
        return torch.ops.hybrik_fast_C.hybrik_ik(joints, twist, rest_joints, code, f)
    return torch.ops.hybrik_fast_C.hybrik_ik_fwd(joints, twist, rest_joints, code, f)


# ---------------------------------------------------------------- the operator
# Defined only when the extension (and so hybrik_fast_C::hybrik_ik_*) exists.

if _ext.C is not None:

    @torch.library.custom_op("hybrik_fast::hybrik_ik", mutates_args=())
    def _hybrik_ik_op(joints: torch.Tensor, twist: torch.Tensor, rest_joints: torch.Tensor,
                      mode: str, fallback: Optional[float]) -> torch.Tensor:
        """Fused HybrIK IK: (B, 29, 3), (B, 23, 2), (B, 29, 3) -> (B, 24, 3, 3)."""
        code, f = _mode_code(mode, fallback)
        return torch.ops.hybrik_fast_C.hybrik_ik_fwd(joints, twist, rest_joints, code, f)

    @_hybrik_ik_op.register_fake
    def _(joints, twist, rest_joints, mode, fallback):
        return joints.new_empty(joints.shape[0], NUM_SMPL_JOINTS, 3, 3)

    @torch.library.register_fake("hybrik_fast_C::hybrik_ik_fwd")
    def _(joints, twist, rest_joints, mode, fallback):
        return joints.new_empty(joints.shape[0], NUM_SMPL_JOINTS, 3, 3)

    @torch.library.register_fake("hybrik_fast_C::hybrik_ik")
    def _(joints, twist, rest_joints, mode, fallback):
        return joints.new_empty(joints.shape[0], NUM_SMPL_JOINTS, 3, 3)

    @torch.library.register_fake("hybrik_fast_C::hybrik_ik_bwd")
    def _(grad_rot, joints, twist, rest_joints, mode, fallback):
        return torch.empty_like(joints), torch.empty_like(twist), torch.empty_like(rest_joints)

    def _setup_context(ctx, inputs, output):
        joints, twist, rest_joints, mode, fallback = inputs
        # the backward recomputes the forward from the inputs: nothing else is kept
        ctx.save_for_backward(joints, twist, rest_joints)
        ctx.code = _mode_code(mode, fallback)

    def _backward(ctx, grad_rot):
        joints, twist, rest_joints = ctx.saved_tensors
        g_joints, g_twist, g_rest = torch.ops.hybrik_fast_C.hybrik_ik_bwd(
            grad_rot, joints, twist, rest_joints, *ctx.code)
        need = ctx.needs_input_grad
        return (g_joints if need[0] else None, g_twist if need[1] else None,
                g_rest if need[2] else None, None, None)

    _hybrik_ik_op.register_autograd(_backward, setup_context=_setup_context)
