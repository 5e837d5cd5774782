"""Loads the compiled extension ``hybrik_fast._C``.

If it is missing, the package still imports, runs on the reference backend,
and says so once with a warning.
"""
from __future__ import annotations

import warnings

try:
    import torch  # noqa: F401  (loads libtorch before the extension)
    from . import _C as C
    LOAD_ERROR = None
except ImportError as e:  # not built, or built against another torch
    C = None
    LOAD_ERROR = str(e)
    warnings.warn(
        "hybrik_fast: the compiled extension hybrik_fast._C could not be loaded "
        f"({e}); only backend='reference' is available. Build it with "
        "`pip install --no-build-isolation -e .`",
        RuntimeWarning, stacklevel=2)


def empty_cache() -> None:
    """Frees the output buffers the CPU kernels keep for reuse.

    The fused CPU backward of ``soft_argmax3d`` takes its gradient (1 MiB or
    more) from a cache of buffers that earlier gradients freed, so that a
    training step writes into memory that is already mapped instead of
    memory the OS must zero first (csrc/common/output_cache.h).  The cache
    holds at most two such buffers; this frees them.  Buffers of tensors
    still alive are not touched.  ``HYBRIK_FAST_CACHE_OUTPUTS=0`` turns the
    cache off.  A no-op without the extension.
    """
    if C is not None:
        C.clear_output_cache()


def cache_info() -> dict:
    """``{"blocks": n, "bytes": b}``: the output buffers the cache holds now."""
    if C is None:
        return {"blocks": 0, "bytes": 0}
    return {"blocks": C.output_cache_blocks(), "bytes": C.output_cache_bytes()}
