"""Networks: HybrIK (heatmap head), HybrIK-Transformer and the HMR baseline,
and the two published HybrIK networks (ResNet-34 and HRNet-W48 heads).

``build_model(head, backbone, image_size, heatmap_size, body, backend)`` is
the entry point for training; ``load_checkpoint(path)`` gives a ready model
from a published or a training checkpoint.  Every model maps images
(B, 3, S, S) to a :class:`ModelOutput` (fields by attribute or key).
"""
from .backbone import BACKBONES, ResNet, build_backbone, load_torchvision_weights
from .build import HEADS, build_model, load_pretrained_backbone
from .checkpoint import load_checkpoint
from .hmr import HMRModel, matrix_to_rot6d, rot6d_to_matrix
from .hybrik import HybrIKHRNetModel, HybrIKModel
from .hrnet import HRNet, build_hrnet
from .output import FIELDS, ModelOutput
from .public import HybrIKHRNetCam, HybrIKResNetCam
from .transformer import HybrIKTransformer

__all__ = ["BACKBONES", "FIELDS", "HEADS", "HMRModel", "HRNet", "HybrIKHRNetCam",
           "HybrIKHRNetModel", "HybrIKModel", "HybrIKResNetCam", "HybrIKTransformer",
           "ModelOutput", "ResNet", "build_backbone", "build_hrnet", "build_model",
           "load_checkpoint", "load_pretrained_backbone", "load_torchvision_weights",
           "matrix_to_rot6d", "rot6d_to_matrix"]
