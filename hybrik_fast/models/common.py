"""Parts shared by every head: input checks, the camera parametrisation, and
the skeleton -> IK -> body-model path.

Camera parametrisation (all heads).  A head predicts a raw (δs, δx, δy); the
camera (s, tx, ty) of :mod:`hybrik_fast.camera` is

    s  = init_cam[0] · exp(δs)      (always > 0, so the root depth F/s is finite)
    tx = init_cam[1] + δx,  ty = init_cam[2] + δy

with the buffer ``init_cam`` = (0.9, 0, 0) as in the public HybrIK code, so
a zero prediction gives the initial camera.  The exponential keeps the scale
positive smoothly where the public code adds δs and can cross zero.
"""
from __future__ import annotations

import torch
from torch import nn

from .. import _backend
from ..body import BodyModel
from ..camera import back_project
from ..ik import hybrik_ik
from ..skeleton import NUM_BETAS
from .backbone import build_backbone, load_torchvision_weights
from .output import ModelOutput

INIT_CAM = (0.9, 0.0, 0.0)
#: the ops a model passes its ``backend`` to
MODEL_OPS = ("soft_argmax3d", "conv_soft_argmax3d", "hybrik_ik")
#: the backends a model accepts: those both ops have ("auto", "reference", "cpu"), and the alias "fused"
MODEL_BACKENDS = _backend.shared_backends(MODEL_OPS) + tuple(_backend.ALIASES)


class BodyHeadModel(nn.Module):
    """Base of every model: backbone ``preact``, body model ``smpl``, the
    ``init_cam`` and ``init_shape`` buffers, image checks and the mesh path."""

    def __init__(self, backbone: str | nn.Module, image_size: int, body: BodyModel | None,
                 backend: str):
        """backbone: a ResNet name (:func:`build_backbone`) or a built trunk (the HRNet head's)."""
        super().__init__()
        backend = _backend.check_shared(backend, MODEL_OPS, "the model's")
        if not isinstance(image_size, int) or image_size <= 0 or image_size % 32:
            raise ValueError(f"image_size must be a positive multiple of 32 (the backbone's stride), "
                             f"got {image_size!r}")
        self.image_size = image_size
        self.backend = backend
        self.preact = build_backbone(backbone) if isinstance(backbone, str) else backbone
        self.smpl = BodyModel.synthetic() if body is None else body
        self.register_buffer("init_cam", torch.tensor(INIT_CAM))
        # mean of the SMPL shape space: the betas are PCA coefficients, so zero
        self.register_buffer("init_shape", torch.zeros(NUM_BETAS))

    # ------------------------------------------------------------ inputs
    def check_images(self, images) -> None:
        """ValueError naming the expected shape unless images is a floating (B, 3, S, S)."""
        check_images(images, self.image_size)

    def load_pretrained_backbone(self, source) -> None:
        """Load a torchvision-layout ImageNet state dict (path or dict) into ``preact``."""
        load_torchvision_weights(self.preact, source)

    # ------------------------------------------------------------ decoding
    def decode_camera(self, raw: torch.Tensor) -> torch.Tensor:
        """raw (B, 3) -> camera (B, 3) = (s, tx, ty); see the module docstring."""
        init = self.init_cam.to(raw.dtype)
        s = init[0] * torch.exp(raw[:, :1])
        return torch.cat([s, init[1:] + raw[:, 1:]], dim=-1)

    def mesh(self, rotmats: torch.Tensor, betas: torch.Tensor):
        """rotmats (B, 24, 3, 3), betas (B, 10) -> (vertices (B, V, 3),
        joints_from_mesh (B, 29, 3)), both relative to the body's posed root joint."""
        vertices, posed = self.smpl(rotmats, betas)                   # model frame
        vertices = vertices - posed[:, :1]                            # (B, V, 3)
        regressed = torch.matmul(self.smpl.J_regressor.to(vertices.dtype), vertices)  # (B, 24, 3)
        leaves = vertices[:, self.smpl.leaf_vertices]                 # (B, 5, 3)
        return vertices, torch.cat([regressed, leaves], dim=1)

    def decode(self, uvd: torch.Tensor, twist: torch.Tensor, betas: torch.Tensor,
               camera: torch.Tensor, sigma: torch.Tensor | None = None) -> ModelOutput:
        """The HybrIK path shared by the heatmap and transformer heads.

        uvd (B, 29, 3), camera (B, 3) -> joints = camera.back_project(uvd,
        camera), root-relative metres; rest = body.rest_joints(betas (B, 10));
        rotmats = hybrik_ik(joints, twist (B, 23, 2), rest); then the body
        model.  sigma (B, 29) is passed through.
        """
        joints = back_project(uvd, camera)                            # (B, 29, 3)
        rest = self.smpl.rest_joints(betas)                           # (B, 29, 3)
        rotmats = hybrik_ik(joints, twist, rest, backend=self.backend)  # (B, 24, 3, 3)
        vertices, joints_from_mesh = self.mesh(rotmats, betas)
        return ModelOutput(uvd=uvd, joints=joints, twist=twist, betas=betas, rotmats=rotmats,
                           vertices=vertices, joints_from_mesh=joints_from_mesh,
                           camera=camera, sigma=sigma)

def check_images(images, S: int) -> None:
    """TypeError unless images is a floating tensor, ValueError naming the
    expected shape unless it is (B, 3, S, S)."""
    want = f"(B, 3, {S}, {S})"
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor of shape {want}, got {type(images).__name__}")
    if not images.is_floating_point():
        raise TypeError(f"images must be a floating tensor of shape {want}, got dtype {images.dtype}")
    if images.dim() != 4 or tuple(images.shape[1:]) != (3, S, S):
        raise ValueError(f"images must have shape {want} (RGB, image_size={S}), "
                         f"got {tuple(images.shape)}")


def unit_twist(raw: torch.Tensor) -> torch.Tensor:
    """raw (B, 23, 2) -> unit (cos φ, sin φ); a zero vector stays finite (norm floored at 1e-6)."""
    return nn.functional.normalize(raw, dim=-1, eps=1e-6)
