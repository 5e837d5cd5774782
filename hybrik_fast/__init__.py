"""hybrik_fast: fast, exact HybrIK (Li et al., CVPR 2021).

Shapes: B batch, K joints, D/H/W heatmap depth/height/width, V vertices.
"""
from . import _ext  # noqa: F401  (warns once if the extension is missing)
from ._ext import cache_info, empty_cache
from . import skeleton
from .body import BodyModel
from .conv_soft_argmax import conv_soft_argmax3d
from .ik import forward_kinematics, hybrik_ik, twist_angles
from .onnx_export import export_onnx
from .soft_argmax import soft_argmax3d

__version__ = "0.1.0"


def __getattr__(name: str):
    """``hybrik_fast.Predictor`` is imported on first use (it pulls in OpenCV, SciPy and the models)."""
    if name == "Predictor":
        from .predict import Predictor
        return Predictor
    raise AttributeError(f"module 'hybrik_fast' has no attribute {name!r}")


__all__ = ["BodyModel", "Predictor", "cache_info", "conv_soft_argmax3d", "empty_cache", "export_onnx",
           "forward_kinematics", "hybrik_ik", "twist_angles", "soft_argmax3d", "skeleton", "__version__"]
