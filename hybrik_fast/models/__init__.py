"""Networks: HybrIK (heatmap head), HybrIK-Transformer and the HMR baseline.

``build_model(head, backbone, image_size, heatmap_size, body, backend)`` is
the entry point; every model maps images (B, 3, S, S) to a
:class:`ModelOutput` (fields by attribute or key).
"""
from .backbone import BACKBONES, ResNet, build_backbone, load_torchvision_weights
from .build import HEADS, build_model, load_pretrained_backbone
from .hmr import HMRModel, matrix_to_rot6d, rot6d_to_matrix
from .hybrik import HybrIKModel
from .output import FIELDS, ModelOutput
from .transformer import HybrIKTransformer

__all__ = ["BACKBONES", "FIELDS", "HEADS", "HMRModel", "HybrIKModel", "HybrIKTransformer",
           "ModelOutput", "ResNet", "build_backbone", "build_model", "load_pretrained_backbone",
           "load_torchvision_weights", "matrix_to_rot6d", "rot6d_to_matrix"]
