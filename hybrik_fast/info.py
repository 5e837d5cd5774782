"""What this install is and where it runs: ``hybrik-fast info``.

The benchmark report reuses these functions for its header.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata

import torch

from . import _backend


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, else what platform reports."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """CPU model, logical core count, torch threads, and the CUDA device if any."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def versions() -> dict:
    """Versions of python, torch, triton (None if absent), numpy and hybrik_fast."""
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    from . import __version__
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_runtime": torch.version.cuda,
        "triton": version("triton"),
        "numpy": version("numpy"),
        "hybrik_fast": __version__,
    }


def git_commit() -> str | None:
    """Short commit of the checkout this package runs from, None outside git."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10, cwd=os.path.dirname(os.path.abspath(__file__)))
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def available_backends(device: torch.device) -> dict:
    """Per op, the backends that can run on ``device`` now."""
    return {op: [b for b in spec["backends"] if _backend.unavailable_reason(b, device) is None]
            for op, spec in _backend.OPS.items()}


def devices() -> list[torch.device]:
    """The CPU, plus the current CUDA device when there is one."""
    out = [torch.device("cpu")]
    if torch.cuda.is_available():
        out.append(torch.device("cuda", torch.cuda.current_device()))
    return out


def info_text() -> str:
    m, v, commit = machine(), versions(), git_commit()
    lines = ["hybrik_fast " + v["hybrik_fast"] + (f" (git {commit})" if commit else "")]
    lines.append("versions:  " + ", ".join(f"{k} {val}" for k, val in v.items()
                                            if k != "hybrik_fast" and val is not None))
    lines.append(f"python:    {sys.executable}")
    lines.append(f"cpu:       {m['cpu']}, {m['cores']} cores, torch threads {m['torch_threads']}")
    lines.append(f"cuda:      {m['cuda'] or 'none'}")
    compiled = _backend.compiled_backends()
    lines.append("compiled:  " + ", ".join(f"{k} {'yes' if ok else 'no'}" for k, ok in compiled.items()))
    for dev in devices():
        lines.append(f"available on {dev}:")
        for op, backends in available_backends(dev).items():
            lines.append(f"  {op:<20} {', '.join(backends)}")
    return "\n".join(lines)
