"""Backend selection: the one place that maps ``backend=`` to an implementation.

One vocabulary, from the public ops through the models to the training
config (:data:`BACKENDS`):

- ``"auto"``: the fused kernel for the tensor's device (``"cpu"`` on CPU;
  ``"triton"`` for the soft-argmax and ``"cuda"`` for the IK on CUDA), or
  ``"reference"`` for an op that has no fused kernel there;
- ``"reference"``: the readable PyTorch implementation (hybrik_fast.reference);
- ``"cpu"``, ``"cuda"``, ``"triton"``: one fused implementation.

``"fused"`` is a documented alias of ``"auto"`` (:data:`ALIASES`), the name
the training config used first.  Which op has which backend is :data:`OPS`;
a model passes its one backend to every op it runs, so it accepts the names
those ops share (:func:`shared_backends`).

A backend asked for by name that the op lacks raises ValueError; one that
cannot run on the tensor's device raises RuntimeError saying why.  ``"auto"``
never falls back in silence: where the fused kernel for the device is not
available (extension not built, triton not installed) it runs the reference
and warns once (per op and device type), saying why.

The environment variable ``HYBRIK_FAST_BACKEND`` overrides ``"auto"`` (and
only ``"auto"``) in every op of the process.  The ops have different backends
(there is no "triton" IK, no fused forward kinematics), so a variable naming
a backend that an op lacks, or that cannot run on the tensor's device, does
not raise: that op runs what ``"auto"`` would pick and warns once (per op,
value and device type), naming the backend it used.  An unknown name in the
variable raises ValueError.

While :func:`exporting` is active (``hybrik_fast.export_onnx`` traces a
model inside it) every op runs its export decomposition
(:mod:`hybrik_fast.export_ops`) whatever its ``backend``: tensor algebra
that the ONNX exporter can follow, without SVD or host synchronisation.
"""
from __future__ import annotations

import contextlib
import os
import warnings

import torch

from . import _ext

ENV_VAR = "HYBRIK_FAST_BACKEND"

#: every backend name, in the order the docs list them
BACKENDS = ("auto", "reference", "cpu", "cuda", "triton")
#: alias -> the backend it names
ALIASES = {"fused": "auto"}

#: per op, the backends it has, and which one "auto" prefers on each device
OPS = {
    "soft_argmax3d": {"backends": ("reference", "cpu", "triton"), "cpu": "cpu", "cuda": "triton"},
    "conv_soft_argmax3d": {"backends": ("reference", "cpu", "triton"), "cpu": "cpu", "cuda": "triton"},
    "hybrik_ik": {"backends": ("reference", "cpu", "cuda"), "cpu": "cpu", "cuda": "cuda"},
    "forward_kinematics": {"backends": ("reference",), "cpu": "reference", "cuda": "reference"},
    "twist_angles": {"backends": ("reference",), "cpu": "reference", "cuda": "reference"},
}

_warned: set = set()  # keys of the warnings given once
_exporting = [False]  # set by exporting()


@contextlib.contextmanager
def exporting():
    """Within this block every op runs its export decomposition (module docstring)."""
    before = _exporting[0]
    _exporting[0] = True
    try:
        yield
    finally:
        _exporting[0] = before


def is_exporting() -> bool:
    """True inside :func:`exporting`."""
    return _exporting[0]


def _choices(names) -> str:
    alias = ", ".join(f"{a!r} = {b!r}" for a, b in ALIASES.items())
    return f"{', '.join(names)} (alias {alias})"


def canonical(backend, what: str = "backend") -> str:
    """``backend`` with the alias resolved ("fused" -> "auto").

    TypeError unless a str, ValueError (listing the names) unless one of
    :data:`BACKENDS` or :data:`ALIASES`.
    """
    if backend in BACKENDS:  # the common case first: this runs on every op call
        return backend
    if not isinstance(backend, str):
        raise TypeError(f"{what} must be a str, one of {_choices(BACKENDS)}, got {type(backend).__name__}")
    if backend not in ALIASES:
        raise ValueError(f"{what} must be one of {_choices(BACKENDS)}, got {backend!r}")
    return ALIASES[backend]


def shared_backends(ops) -> tuple[str, ...]:
    """"auto" and the backends that every op in ``ops`` has, in :data:`BACKENDS` order."""
    return ("auto",) + tuple(b for b in BACKENDS[1:] if all(b in OPS[op]["backends"] for op in ops))


def check_shared(backend, ops, who: str) -> str:
    """canonical(backend), checked to be a backend of every op in ``ops``
    (``who`` passes it to all of them); ValueError listing the valid names."""
    names = shared_backends(ops)
    b = canonical(backend, f"{who} backend")
    if b not in names:
        raise ValueError(f"{who} backend must be one of {_choices(names)}, got {backend!r} "
                         f"(it is passed to {', '.join(ops)}; 'auto' picks the fused kernels on each device)")
    return b


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


def warn_once(key, message: str) -> None:
    """``warnings.warn(message, RuntimeWarning)`` the first time ``key`` is seen in this process."""
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=5)  # at the caller of the op


def _auto(op: str, device: torch.device) -> str:
    """What "auto" runs: the op's fused kernel for ``device``, else the reference (warned once)."""
    preferred = OPS[op].get(device.type, "reference")
    why = unavailable_reason(preferred, device)
    if why is None:
        return preferred
    warn_once(("auto", op, device.type),
              f"hybrik_fast: {op} on {device.type} runs backend 'reference', not the fused "
              f"{preferred!r}: {why}")
    return "reference"


def _from_env(op: str, env: str, device: torch.device) -> str:
    """The backend that ``HYBRIK_FAST_BACKEND=env`` gives ``op`` on ``device`` (see the module docstring)."""
    info = OPS[op]
    why = (unavailable_reason(env, device) if env in info["backends"]
           else f"{op} has no backend {env!r} (it has {', '.join(info['backends'])})")
    if why is None:
        return env
    used = _auto(op, device)
    warn_once(("env", op, env, device.type),
              f"hybrik_fast: {ENV_VAR}={env!r} does not apply to {op} on {device.type} ({why}); "
              f"it runs backend {used!r}")
    return used


def resolve(op: str, backend: str, device: torch.device) -> str:
    """The concrete backend ("reference", "cpu", "cuda" or "triton") that runs
    ``op`` for a tensor on ``device``; see the module docstring."""
    backend = canonical(backend)
    if backend == "auto":
        env = os.environ.get(ENV_VAR, "")
        env = canonical(env.strip(), ENV_VAR) if env.strip() else "auto"
        return _auto(op, device) if env == "auto" else _from_env(op, env, device)
    info = OPS[op]
    if backend not in info["backends"]:
        raise ValueError(f"{op} has no backend {backend!r}; its backends are "
                         f"{_choices(('auto',) + info['backends'])}")
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
