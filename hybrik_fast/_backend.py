"""Backend selection: the one place that maps ``backend=`` to an implementation.

``"auto"`` resolves to the fastest compiled backend for the tensor's device, or
to the value of the environment variable ``HYBRIK_FAST_BACKEND`` when that is
set.  A backend that was asked for explicitly but cannot run raises.
"""
from __future__ import annotations

import os

import torch

from . import _ext

ENV_VAR = "HYBRIK_FAST_BACKEND"

#: per op, the backends it has, and which one "auto" prefers on each device
OPS = {
    "soft_argmax3d": {"backends": ("reference", "cpu", "triton"), "cpu": "cpu", "cuda": "triton"},
    "hybrik_ik": {"backends": ("reference", "cpu", "cuda"), "cpu": "cpu", "cuda": "cuda"},
    "forward_kinematics": {"backends": ("reference",), "cpu": "reference", "cuda": "reference"},
    "twist_angles": {"backends": ("reference",), "cpu": "reference", "cuda": "reference"},
}
ALL_BACKENDS = ("auto", "reference", "cpu", "cuda", "triton")


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def unavailable_reason(backend: str, device: torch.device) -> str | None:
    """None if ``backend`` can run on ``device``, else why not."""
    if backend == "reference":
        return None
    if backend == "cpu":
        if device.type != "cpu":
            return f"backend 'cpu' needs CPU tensors, got a tensor on {device}"
        return None if _ext.C is not None else f"the C++ extension is not built ({_ext.LOAD_ERROR})"
    if backend == "cuda":
        if device.type != "cuda":
            return f"backend 'cuda' needs CUDA tensors, got a tensor on {device}"
        if _ext.C is None:
            return f"the C++ extension is not built ({_ext.LOAD_ERROR})"
        return None if _ext.C.compiled_with_cuda() else "the C++ extension was built without CUDA"
    if backend == "triton":
        if not triton_available():
            return "triton is not installed"
        interpret = os.environ.get("TRITON_INTERPRET", "0") == "1"
        if device.type != "cuda" and not interpret:
            return f"backend 'triton' needs CUDA tensors (or TRITON_INTERPRET=1), got a tensor on {device}"
        return None
    return f"unknown backend {backend!r}"


def resolve(op: str, backend: str, device: torch.device) -> str:
    """Return the concrete backend that runs ``op`` for a tensor on ``device``."""
    info = OPS[op]
    if backend not in ALL_BACKENDS:
        raise ValueError(f"backend must be one of {ALL_BACKENDS}, got {backend!r}")
    if backend == "auto":
        env = os.environ.get(ENV_VAR, "").strip()
        if env and env != "auto":
            if env not in ALL_BACKENDS:
                raise ValueError(f"{ENV_VAR} must be one of {ALL_BACKENDS}, got {env!r}")
            backend = env if env in info["backends"] else "reference"
        else:
            preferred = info.get(device.type, "reference")
            return preferred if unavailable_reason(preferred, device) is None else "reference"
    if backend not in info["backends"]:
        raise ValueError(f"{op} has backends {info['backends']}, got {backend!r}")
    why = unavailable_reason(backend, device)
    if why is not None:
        raise RuntimeError(f"{op}: backend {backend!r} is unavailable: {why}")
    return backend


def compiled_backends() -> dict:
    """What was compiled into this install, for ``hybrik-fast info``."""
    return {
        "cpu": _ext.C is not None,
        "cuda": _ext.C is not None and _ext.C.compiled_with_cuda(),
        "triton": triton_available(),
    }
