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
