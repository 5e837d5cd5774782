"""``build_model``: one entry point for every head and backbone."""
from __future__ import annotations

from torch import nn

from ..body import BodyModel
from .backbone import BACKBONES
from .hmr import HMRModel
from .hrnet import HRNET_WIDTHS
from .hybrik import HybrIKHRNetModel, HybrIKModel
from .transformer import HybrIKTransformer

#: head name -> model class
HEADS = {"heatmap": HybrIKModel, "transformer": HybrIKTransformer, "hmr": HMRModel}


def build_model(head: str = "heatmap", backbone: str = "resnet34", image_size: int = 256,
                heatmap_size=(64, 64, 64), body: BodyModel | None = None,
                backend: str = "auto", pretrained=None, **head_options) -> nn.Module:
    """Build a model that maps images (B, 3, S, S), S = ``image_size``, to a ModelOutput.

    head: "heatmap" (HybrIK, paper §3.3-3.4) | "transformer" (HybrIK-Transformer)
        | "hmr" (the HMR baseline).
    backbone: "resnet18" | "resnet34" | "resnet50", or for the heatmap head
        "hrnet48" | "hrnet32" | "hrnet18" (:class:`HybrIKHRNetModel`, the public
        HRNetSMPLCam's head).
    image_size: S, a multiple of 32.
    heatmap_size: (D, H, W) of the heatmap head (ignored by the others).  The
        deconvolutions give H = W = S/4; another (H, W) is reached by bilinear
        resampling.  D is free.
    body: the body model; None uses ``BodyModel.synthetic()``.
    backend: passed to soft_argmax3d and hybrik_ik: "auto" (alias "fused": the
        fused kernels of each device), "reference" or "cpu"; see
        :mod:`hybrik_fast._backend`.
    pretrained: None, or a path (or dict) of torchvision-layout ImageNet
        weights for a ResNet backbone (``fc.*`` ignored), or of a COCO
        pose-HRNet (``pose_hrnet_w48_256x192.pth``) for an HRNet's trunk.
    head_options: extra arguments of the head's class, e.g. ``deconv_channels``,
        ``dropout`` (heatmap); ``d_model``, ``num_heads``, ``num_layers``,
        ``dropout``, ``keep_range`` (transformer); ``iterations``, ``dropout`` (hmr).
    Raises ValueError listing the valid choices for an unknown head or backbone.
    """
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; valid choices: {', '.join(HEADS)}")
    hrnet = head == "heatmap" and backbone in HRNET_WIDTHS
    if backbone not in BACKBONES and not hrnet:
        valid = BACKBONES + (tuple(HRNET_WIDTHS) if head == "heatmap" else ())
        raise ValueError(f"unknown backbone {backbone!r} for the {head} head; valid choices: "
                         f"{', '.join(valid)}")
    kwargs = dict(backbone=backbone, image_size=image_size, body=body, backend=backend)
    if head == "heatmap":
        kwargs["heatmap_size"] = heatmap_size
    try:
        model = (HybrIKHRNetModel if hrnet else HEADS[head])(**kwargs, **head_options)
    except TypeError as e:
        raise TypeError(f"invalid option for head {head!r}: {e}") from None
    if pretrained is not None:
        model.load_pretrained_backbone(pretrained)
    return model


def load_pretrained_backbone(model: nn.Module, source) -> None:
    """Load torchvision-layout ImageNet weights (a path or a dict) into ``model.preact``.

    Raises ValueError naming missing or unexpected keys, or a shape mismatch.
    """
    model.load_pretrained_backbone(source)
