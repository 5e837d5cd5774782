"""Datasets: the synthetic default and loaders for the real annotation formats.

Names are loaded on first use, so importing the package does not import
OpenCV.  Every dataset yields the sample dict described in
:mod:`hybrik_fast.data.common`.
"""
import importlib

_EXPORTS = {
    "SyntheticHumans": "synthetic",
    "Human36M": "h36m",
    "PW3D": "pw3d",
    "MPIINF3DHP": "mpi_inf_3dhp",
    "COCO2D": "coco",
    "MixedDataset": "mixed",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
