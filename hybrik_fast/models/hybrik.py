"""The HybrIK network with the 3D-heatmap head (Li et al., CVPR 2021, §3.3-3.4).

    images (B, 3, S, S)
      -> preact: ResNet trunk, C5 (B, C, S/32, S/32)
      -> deconv_layers: 3 × [ConvTranspose2d(k4, s2, p1) + BN + ReLU]  (B, 256, S/4, S/4)
         with ``lateral=True`` (not in the paper; the ``cpu-quick`` preset), C4, C3
         and C2 (1×1 convs to the deconv width) are added before the three ReLUs, FPN-style
      -> final_layer: 1×1 conv to K·D channels, viewed as (B, K, D, H, W)
         (channel k·D + d), -> soft_argmax3d -> uvd (B, 29, 3); with
         ``fused_head=True`` (the default) conv and soft-argmax are one op,
         conv_soft_argmax3d, that never stores the logits (models/heatmap.py;
         where the heatmap's (H, W) differs from the features' the logits are
         resampled, so that path stays materialised; ``fused_head=False``
         materialises always)
      -> FC branch: avgpool -> fc1 (C→1024) -> dropout -> fc2 (1024→1024)
         -> dropout -> decshape (β offset from init_shape), decphi (23×2
         twist), deccam (camera, see common.py), decsigma (σ, sigmoid)
      -> camera.back_project(uvd, camera) -> hybrik_ik -> body model.

With an HRNet backbone the head is :class:`HybrIKHRNetModel` (the public
``HRNetSMPLCam``'s: heatmap and 2048-d feature from the HRNet itself).

The state-dict names follow the public implementation's
``Simple3DPoseBaseSMPLCam``: ``preact.*``, ``deconv_layers.{0,1,3,4,6,7}.*``,
``final_layer.*``, ``fc1.*``, ``fc2.*``, ``dec{shape,phi,cam,sigma}.*``,
``init_cam``, ``init_shape`` and ``smpl.*`` (plus ``lateral.{0,1,2}.*`` with
``lateral=True``).  As there, fc1 and fc2 have no nonlinearity between them
(only dropout).

Lateral connections.  From C5 alone the heatmap's spatial detail must pass
through an (S/32)² map: 2×2 at the 64 px of ``cpu-quick``.  Trained from
scratch for 5 minutes that head learns joints to 7 px (the mean 2D pose is
off by 9); with the lateral connections the same 1200 steps reach 3.5 px.
Off by default, so the paper's configuration and checkpoints are unchanged.

Heatmap size.  The three stride-2 deconvolutions take C5 to S/4, so the
natural heatmap is (D, S/4, S/4) with D free.  A requested (H, W) other than
(S/4, S/4) is reached by bilinear resampling of the logits before the
soft-argmax (documented choice; the paper's 256 px / 64³ needs none).
"""
from __future__ import annotations

import torch
from torch import nn

from ..body import BodyModel
from ..skeleton import NUM_BETAS, NUM_JOINTS, NUM_TWIST
from .common import INIT_CAM, BodyHeadModel, unit_twist
from .heatmap import heatmap_uvd
from .hrnet import FEATURE_CHANNELS, build_hrnet, load_pose_hrnet_weights
from .output import ModelOutput


def check_heatmap_size(heatmap_size) -> tuple[int, int, int]:
    """(D, H, W) of positive ints, else ValueError."""
    try:
        D, H, W = (int(n) for n in heatmap_size)
        ok = all(int(n) == n for n in heatmap_size) and min(D, H, W) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"heatmap_size must be three positive ints (D, H, W), got {heatmap_size!r}")
    return D, H, W


def init_small_head(final_layer: nn.Conv2d, regressors) -> None:
    """Near-uniform heatmaps (final_layer ~ N(0, 0.001²), zero bias) and near-zero
    regressor outputs (Xavier, gain 0.01, zero bias): mean shape, initial camera."""
    nn.init.normal_(final_layer.weight, std=0.001)
    nn.init.zeros_(final_layer.bias)
    for m in regressors:
        nn.init.xavier_uniform_(m.weight, gain=0.01)
        nn.init.zeros_(m.bias)


class HybrIKModel(BodyHeadModel):
    """HybrIK with a 3D-heatmap head; ``model(images) -> ModelOutput``."""

    def __init__(self, backbone: str = "resnet34", image_size: int = 256,
                 heatmap_size=(64, 64, 64), body: BodyModel | None = None,
                 backend: str = "auto", deconv_channels: int = 256, dropout: float = 0.5,
                 lateral: bool = False, fused_head: bool = True):
        super().__init__(backbone, image_size, body, backend)
        self.heatmap_size = check_heatmap_size(heatmap_size)
        self.fused_head = bool(fused_head)
        D = self.heatmap_size[0]
        cin, ch = self.preact.out_channels, deconv_channels
        layers = []
        for i in range(3):
            layers += [nn.ConvTranspose2d(cin if i == 0 else ch, ch, kernel_size=4, stride=2,
                                          padding=1, bias=False),
                       nn.BatchNorm2d(ch), nn.ReLU(inplace=True)]
        self.deconv_layers = nn.Sequential(*layers)                   # keys 0,1 / 3,4 / 6,7
        # lateral[i]: 1×1 conv C4, C3, C2 -> ch, added before deconv stage i's ReLU
        self.lateral = nn.ModuleList(
            nn.Conv2d(c, ch, kernel_size=1) for c in reversed(self.preact.stage_channels[:3])
        ) if lateral else None
        self.final_layer = nn.Conv2d(ch, NUM_JOINTS * D, kernel_size=1)

        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(cin, 1024)
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, 1024)
        self.drop2 = nn.Dropout(dropout)
        self.decshape = nn.Linear(1024, NUM_BETAS)
        self.decphi = nn.Linear(1024, NUM_TWIST * 2)
        self.deccam = nn.Linear(1024, 3)
        self.decsigma = nn.Linear(1024, NUM_JOINTS)
        self._init_head()

    def _init_head(self) -> None:
        """Small initial outputs: near-uniform heatmaps, mean shape, initial camera."""
        for m in self.deconv_layers.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
        init_small_head(self.final_layer, (self.decshape, self.decphi, self.deccam, self.decsigma))

    def heatmap_features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images (B, 3, S, S) -> the final layer's input (B, ch, S/4, S/4) and C5 (B, C, S/32, S/32)."""
        c2, c3, c4, c5 = self.preact.pyramid(images)                  # c5 (B, C, S/32, S/32)
        y = c5
        for i, c in enumerate((c4, c3, c2)):                          # to S/16, S/8, S/4
            deconv, bn, relu = self.deconv_layers[3 * i:3 * i + 3]
            z = bn(deconv(y))
            y = relu(z if self.lateral is None else z + self.lateral[i](c))
        return y, c5

    def predict(self, images: torch.Tensor) -> dict:
        """images (B, 3, S, S) -> the network's raw predictions: uvd (B, 29, 3),
        twist (B, 23, 2) unit, betas (B, 10), camera (B, 3), sigma (B, 29)."""
        self.check_images(images)
        B = images.shape[0]
        y, c5 = self.heatmap_features(images)
        uvd = heatmap_uvd(y, self.final_layer, self.heatmap_size,     # (B, 29, 3)
                          self.backend, self.fused_head)

        x = self.avg_pool(c5).flatten(1)                              # (B, C)
        x = self.drop2(self.fc2(self.drop1(self.fc1(x))))             # (B, 1024)
        betas = self.init_shape.to(x.dtype) + self.decshape(x)        # (B, 10)
        twist = unit_twist(self.decphi(x).reshape(B, NUM_TWIST, 2))   # (B, 23, 2)
        camera = self.decode_camera(self.deccam(x))                   # (B, 3)
        sigma = torch.sigmoid(self.decsigma(x))                       # (B, 29)
        return {"uvd": uvd, "twist": twist, "betas": betas, "camera": camera, "sigma": sigma}

    def forward(self, images: torch.Tensor) -> ModelOutput:
        """images (B, 3, S, S) -> :class:`ModelOutput` (all fields; sigma (B, 29))."""
        return self.decode(**self.predict(images))


class HybrIKHRNetModel(BodyHeadModel):
    """HybrIK with the HRNet head of the public ``HRNetSMPLCam`` (``--preset
    hrnet48-3dpw``); ``model(images) -> ModelOutput``.

        images (B, 3, S, S) -> preact (HRNet, models/hrnet.py): branch 0 (B, C, S/4, S/4)
          and feature (B, 2048) -> preact.final_layer + soft-argmax -> uvd (B, 29, 3)
          (heatmap_size (D, H, W); (H, W) other than (S/4, S/4) by bilinear resampling)
        feature -> decshape (β offset from init_shape), decphi (23×2 twist),
          deccam (1 value: the scale), decsigma (σ, sigmoid); no FC layers, no dropout

    Camera: as published, the head predicts the scale only, here
    s = init_cam · exp(δs) with ``init_cam`` = (0.9,) (see common.py for the
    exponential; the public head's is 0.9 + δs, see ``train.checkpoint.init_weights``),
    and the root's (x, y) comes from its own (u, v): the camera
    is (s, u_0 / s, v_0 / s), i.e. the root at depth FOCAL_NORM / s on the ray
    through (u_0, v_0) (camera.py).  The state dict has the public keys (``preact.*``,
    ``dec{shape,phi,cam,sigma}.*``, ``init_cam`` (1), ``init_shape``; the
    body's buffers under ``smpl.*``), so ``hybrik_hrnet.pth`` fine-tunes from
    its weights (``--init``).
    """

    def __init__(self, backbone: str = "hrnet48", image_size: int = 256,
                 heatmap_size=(64, 64, 64), body: BodyModel | None = None,
                 backend: str = "auto", fused_head: bool = True):
        size = check_heatmap_size(heatmap_size)
        super().__init__(build_hrnet(backbone, NUM_JOINTS * size[0]), image_size, body, backend)
        self.heatmap_size = size
        self.fused_head = bool(fused_head)
        self.register_buffer("init_cam", torch.tensor(INIT_CAM[:1]))
        self.decshape = nn.Linear(FEATURE_CHANNELS, NUM_BETAS)
        self.decphi = nn.Linear(FEATURE_CHANNELS, NUM_TWIST * 2)
        self.deccam = nn.Linear(FEATURE_CHANNELS, 1)
        self.decsigma = nn.Linear(FEATURE_CHANNELS, NUM_JOINTS)
        init_small_head(self.preact.final_layer, (self.decshape, self.decphi, self.deccam, self.decsigma))

    def load_pretrained_backbone(self, source) -> None:
        """Load a COCO pose-HRNet file's trunk (path or dict) into ``preact``, as the public
        configuration does (:func:`~.hrnet.load_pose_hrnet_weights`)."""
        load_pose_hrnet_weights(self.preact, source)

    def predict(self, images: torch.Tensor) -> dict:
        """images (B, 3, S, S) -> uvd (B, 29, 3), twist (B, 23, 2) unit, betas (B, 10),
        camera (B, 3) = (s, u_0/s, v_0/s), sigma (B, 29)."""
        self.check_images(images)
        B = images.shape[0]
        fine, x = self.preact.features(images)                        # (B, C, S/4, S/4), (B, 2048)
        uvd = heatmap_uvd(fine, self.preact.final_layer, self.heatmap_size, self.backend,
                          self.fused_head)                            # (B, 29, 3)
        scale = self.init_cam.to(x.dtype) * torch.exp(self.deccam(x))  # (B, 1)
        camera = torch.cat([scale, uvd[:, 0, :2] / scale], dim=-1)    # (B, 3)
        return {"uvd": uvd, "twist": unit_twist(self.decphi(x).reshape(B, NUM_TWIST, 2)),
                "betas": self.init_shape.to(x.dtype) + self.decshape(x), "camera": camera,
                "sigma": torch.sigmoid(self.decsigma(x))}

    def forward(self, images: torch.Tensor) -> ModelOutput:
        """images (B, 3, S, S) -> :class:`ModelOutput` (all fields; sigma (B, 29))."""
        return self.decode(**self.predict(images))
