"""ResNet-18/34/50 backbones (He et al., "Deep Residual Learning for Image
Recognition", CVPR 2016), written for this project.

The module and parameter names follow torchvision's layout (``conv1``,
``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0``, ...), so an ImageNet
weights file saved from torchvision loads with :func:`load_torchvision_weights`.
There is no ``fc``: the backbone ends at C5 and returns the feature map.
ResNet-50 uses the "v1.5" bottleneck (stride in the 3×3 conv), as torchvision.

Shapes: images (B, 3, S, S) -> C5 (B, C, S/32, S/32) with C = 512 for
ResNet-18/34 and 2048 for ResNet-50.
"""
from __future__ import annotations

import os

import torch
from torch import nn


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convs with an identity (or 1×1 projection) shortcut."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = _conv3x3(cin, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + identity)


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (carries the stride), 1×1 expand by 4."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = _conv1x1(cin, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, cout)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + identity)


def _shortcut(cin: int, cout: int, stride: int) -> nn.Sequential | None:
    """The projection shortcut (``downsample.0`` conv, ``downsample.1`` BN), or None."""
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(_conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))


#: name -> (block type, blocks per stage)
ARCHS = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}
BACKBONES = tuple(ARCHS)


class ResNet(nn.Module):
    """ResNet trunk up to C5 (stride 32), torchvision parameter names, no ``fc``."""

    def __init__(self, block: type, layers: tuple[int, int, int, int]):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        cin = 64
        for stage, (width, n) in enumerate(zip((64, 128, 256, 512), layers), start=1):
            blocks = []
            for j in range(n):
                blocks.append(block(cin, width, stride=2 if (j == 0 and stage > 1) else 1))
                cin = width * block.expansion
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
        #: channels of C2..C5 (64, 128, 256, 512 for ResNet-18/34; ×4 for ResNet-50)
        self.stage_channels = tuple(w * block.expansion for w in (64, 128, 256, 512))
        self.out_channels = cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, S, S) -> C5 features (B, C, S/32, S/32)."""
        return self.pyramid(images)[-1]

    def pyramid(self, images: torch.Tensor) -> list[torch.Tensor]:
        """images (B, 3, S, S) -> [C2, C3, C4, C5], Ck (B, stage_channels[k-2], S/2^k, S/2^k)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))   # (B, 64, S/4, S/4)
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        return [c2, c3, c4, self.layer4(c4)]


def build_backbone(name: str) -> ResNet:
    """``"resnet18" | "resnet34" | "resnet50"`` -> a freshly initialised :class:`ResNet`."""
    if name not in ARCHS:
        raise ValueError(f"unknown backbone {name!r}; valid choices: {', '.join(BACKBONES)}")
    block, layers = ARCHS[name]
    return ResNet(block, layers)


def _read_state_dict(source) -> dict:
    """A state dict from a path (``torch.load``, weights only) or a mapping.

    A checkpoint dict with the key ``'state_dict'`` or ``'model'`` is unwrapped.
    """
    if isinstance(source, (str, os.PathLike)):
        if not os.path.isfile(source):
            raise FileNotFoundError(f"pretrained backbone weights not found: {source}")
        source = torch.load(source, map_location="cpu", weights_only=True)
    if not isinstance(source, dict):
        raise TypeError(f"expected a state dict (a mapping of names to tensors), got {type(source).__name__}")
    for key in ("state_dict", "model"):
        if key in source and isinstance(source[key], dict):
            return source[key]
    return source


def _name_list(names, limit: int = 8) -> str:
    names = sorted(names)
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def check_weights(state: dict, own: dict, required: set, layout: str, target: str) -> None:
    """ValueError naming the ``required`` keys that ``state`` lacks (``num_batches_tracked``
    excepted: older files have none) and its keys that ``own`` lacks, or a key whose shape
    differs from ``own``'s.  ``layout`` and ``target`` name the two sides in the message."""
    missing = {k for k in required - set(state) if not k.endswith("num_batches_tracked")}
    unexpected = set(state) - set(own)
    if missing or unexpected:
        parts = [f"{label} keys: {_name_list(names)}"
                 for label, names in (("missing", missing), ("unexpected", unexpected)) if names]
        raise ValueError(f"the pretrained weights do not match {layout}; " + "; ".join(parts))
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(f"pretrained weight {k!r} has shape {tuple(v.shape)}, "
                             f"{target} expects {tuple(own[k].shape)}")


def load_torchvision_weights(backbone: ResNet, source) -> None:
    """Load an ImageNet state dict in torchvision's key layout into ``backbone``.

    ``source`` is a path or a dict (``conv1.weight``, ``bn1.*``,
    ``layer1.0.conv1.weight``, ...).  ``fc.*`` is ignored, and so is a missing
    ``num_batches_tracked`` (older torchvision files have none).  Raises
    ValueError naming the missing or unexpected keys, or a key whose shape
    differs (e.g. a ResNet-50 file for a ResNet-34 backbone).
    """
    state = {k: v for k, v in _read_state_dict(source).items() if not k.startswith("fc.")}
    own = backbone.state_dict()
    check_weights(state, own, set(own), "the backbone's torchvision layout", "the backbone")
    full = {k: state.get(k, own[k]) for k in own}
    backbone.load_state_dict(full, strict=True)
