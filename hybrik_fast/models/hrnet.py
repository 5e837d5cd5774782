"""HRNet backbones (Sun et al., "Deep High-Resolution Representation
Learning for Human Pose Estimation", CVPR 2019), written for this project,
with the module names of the public HybrIK checkpoints (``HRNetSMPLCam``'s
``preact``), so that ``hybrik_hrnet.pth`` loads strictly.

    images (B, 3, S, S)
      -> stem: conv1 (3×3 s2) bn1 relu, conv2 (3×3 s2) bn2 relu     (B, 64, S/4, S/4)
      -> layer1: 4 bottlenecks                                      (B, 256, S/4, S/4)
      -> transition1, stage2 (2 branches), transition2, stage3 (3),
         transition3, stage4 (4): branch i runs at S/2^(i+2) with WIDTHS[i] channels
      -> final_layer (1×1) on branch 0: heatmap logits (B, K·D, S/4, S/4)
      -> incre_modules (a bottleneck per branch to 128, 256, 512, 1024
         channels), downsamp_modules (3×3 s2 conv + BN + ReLU, summing the
         branches from fine to coarse), final_feat_layer (1×1 to 2048 + BN +
         ReLU), global average pool: feature (B, 2048)

Each stage module runs its branches (BasicBlocks), then fuses: output i is
ReLU(Σ_j f_ij(x_j)) with f_ii the identity, f_ij for j > i a 1×1 conv + BN
and a nearest upsampling by 2^(j−i), and f_ij for j < i a chain of i − j
stride-2 3×3 conv + BN (ReLU between them, none after the last).
"""
from __future__ import annotations

import torch
from torch import nn

from .backbone import BasicBlock, Bottleneck, _read_state_dict, check_weights

#: name -> branch widths (C, 2C, 4C, 8C); stages 2-4 have 1, 4 and 3 modules of
#: 4 BasicBlocks per branch in every configuration
HRNET_WIDTHS = {"hrnet48": (48, 96, 192, 384), "hrnet32": (32, 64, 128, 256),
                "hrnet18": (18, 36, 72, 144)}
STAGE_MODULES = (1, 4, 3)
BLOCKS_PER_BRANCH = 4
#: widths of the classification head's bottlenecks, one per branch (×4 out)
HEAD_WIDTHS = (32, 64, 128, 256)
FEATURE_CHANNELS = 2048
#: the trunk's modules that a COCO pose-estimation HRNet file (``pose_hrnet_w48_256x192.pth``,
#: the public HRNet configuration's HR_PRETRAINED) provides: its PRETRAINED_LAYERS
POSE_HRNET_LAYERS = ("conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2",
                     "transition2", "stage3", "transition3", "stage4")


def _conv_bn(cin: int, cout: int, kernel: int, stride: int, relu: bool,
             bias: bool = False) -> nn.Sequential:
    """conv (padding kernel // 2) + BN (+ ReLU): keys ``0.*``, ``1.*``."""
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=bias), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


class FuseModule(nn.Module):
    """One HRNet stage module: per-branch BasicBlocks, then the multi-resolution fusion."""

    def __init__(self, widths: tuple[int, ...]):
        super().__init__()
        n = len(widths)
        self.branches = nn.ModuleList(
            nn.Sequential(*(BasicBlock(c, c) for _ in range(BLOCKS_PER_BRANCH))) for c in widths)
        fuse = []
        for i in range(n):
            row = []
            for j in range(n):
                if j > i:
                    f = _conv_bn(widths[j], widths[i], 1, 1, relu=False)
                    f.append(nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"))
                elif j < i:   # i - j stride-2 steps; the last one changes the width
                    f = nn.Sequential(*(
                        _conv_bn(widths[j], widths[i] if k == i - j - 1 else widths[j], 3, 2,
                                 relu=k < i - j - 1) for k in range(i - j)))
                else:
                    f = None
                row.append(f)
            fuse.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """xs[i] (B, widths[i], h/2^i, w/2^i) -> the fused list of the same shapes."""
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for row in self.fuse_layers:
            y = xs[0] if row[0] is None else row[0](xs[0])
            for j in range(1, len(xs)):
                y = y + (xs[j] if row[j] is None else row[j](xs[j]))
            out.append(self.relu(y))
        return out


class HRNet(nn.Module):
    """HRNet trunk with HybrIK's two outputs: heatmap logits and a 2048-d feature."""

    def __init__(self, widths: tuple[int, int, int, int], heatmap_channels: int):
        super().__init__()
        self.widths = tuple(widths)
        self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(*(Bottleneck(64 if k == 0 else 256, 64) for k in range(4)))
        previous = [256]
        for s, modules in enumerate(STAGE_MODULES, start=2):
            current = list(widths[:s])
            setattr(self, f"transition{s - 1}", self._transition(previous, current))
            setattr(self, f"stage{s}", nn.Sequential(*(FuseModule(current) for _ in range(modules))))
            previous = current
        self.final_layer = nn.Conv2d(widths[0], heatmap_channels, 1)
        self.incre_modules = nn.ModuleList(
            nn.Sequential(Bottleneck(c, h)) for c, h in zip(widths, HEAD_WIDTHS))
        self.downsamp_modules = nn.ModuleList(
            _conv_bn(4 * HEAD_WIDTHS[i], 4 * HEAD_WIDTHS[i + 1], 3, 2, relu=True, bias=True)
            for i in range(len(widths) - 1))
        self.final_feat_layer = _conv_bn(4 * HEAD_WIDTHS[-1], FEATURE_CHANNELS, 1, 1, relu=True,
                                         bias=True)
        # He initialisation, as the ResNet backbones (a checkpoint replaces it)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _transition(previous: list[int], current: list[int]) -> nn.ModuleList:
        """Entry i: a 3×3 conv to the new width where it changes (None where
        it doesn't); for a new branch, stride-2 3×3 convs from the coarsest one."""
        out = []
        for i, c in enumerate(current):
            if i < len(previous):
                out.append(None if c == previous[i] else _conv_bn(previous[i], c, 3, 1, relu=True))
            else:
                steps = i + 1 - len(previous)
                out.append(nn.Sequential(*(
                    _conv_bn(previous[-1], c if k == steps - 1 else previous[-1], 3, 2, relu=True)
                    for k in range(steps))))
        return nn.ModuleList(out)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images (B, 3, S, S) -> (heatmap logits (B, K·D, S/4, S/4), feature (B, 2048))."""
        fine, feature = self.features(images)
        return self.final_layer(fine), feature

    def features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images (B, 3, S, S) -> (branch 0 (B, widths[0], S/4, S/4), the input of
        ``final_layer``; feature (B, 2048))."""
        x = self.relu(self.bn1(self.conv1(images)))
        x = self.layer1(self.relu(self.bn2(self.conv2(x))))               # (B, 256, S/4, S/4)
        ys = [x]
        for s in range(2, 2 + len(STAGE_MODULES)):
            transition = getattr(self, f"transition{s - 1}")
            xs = [ys[min(i, len(ys) - 1)] if t is None else t(ys[min(i, len(ys) - 1)])
                  for i, t in enumerate(transition)]
            ys = getattr(self, f"stage{s}")(xs)
        y = self.incre_modules[0](ys[0])
        for i, down in enumerate(self.downsamp_modules):
            y = self.incre_modules[i + 1](ys[i + 1]) + down(y)
        feature = self.final_feat_layer(y).mean(dim=(2, 3))               # (B, 2048)
        return ys[0], feature


def build_hrnet(name: str, heatmap_channels: int) -> HRNet:
    """``"hrnet48" | "hrnet32" | "hrnet18"`` -> a freshly initialised :class:`HRNet`."""
    if name not in HRNET_WIDTHS:
        raise ValueError(f"unknown HRNet {name!r}; valid choices: {', '.join(HRNET_WIDTHS)}")
    return HRNet(HRNET_WIDTHS[name], heatmap_channels)


def load_pose_hrnet_weights(hrnet: HRNet, source) -> None:
    """Load the trunk (:data:`POSE_HRNET_LAYERS`) of a pose-estimation HRNet state dict (a path
    or a dict; bare or under ``state_dict`` / ``model``, ``module.`` prefixes allowed) into
    ``hrnet``; its other entries (the 17-keypoint ``final_layer``) are ignored and the heads
    (``final_layer``, ``incre_modules``, ``downsamp_modules``, ``final_feat_layer``) keep their
    initialisation.  ValueError naming the missing or unexpected trunk keys, or a key whose
    shape differs (e.g. a W32 file for a W48 trunk)."""
    def trunk(keys):
        return {k for k in keys if k.split(".")[0] in POSE_HRNET_LAYERS}
    state = {k.removeprefix("module."): v for k, v in _read_state_dict(source).items()}
    state = {k: state[k] for k in trunk(state)}
    own = hrnet.state_dict()
    check_weights(state, own, trunk(own), "the pose-HRNet trunk layout", "the HRNet")
    hrnet.load_state_dict(state, strict=False)
