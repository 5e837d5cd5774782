"""A model of this project's training checkpoints behind the inference call
of the published ones: ``model(images, bboxes=None, img_center=None, flip_test=False)``."""
from __future__ import annotations

import torch
from torch import nn

from ..body import BodyModel
from ..camera import FOCAL_NORM, root_from_camera
from .output import ModelOutput
from .public import box_offset


class TrainedModel(nn.Module):
    """Wraps a model built by ``hybrik-fast train`` (``self.net``).

    Its camera (s, tx, ty) gives the root (tx, ty, F/s) of a crop centred on
    the principal point; with a box, the root moves by the box-centre offset
    o (box widths and heights from ``img_center``) as the public code's
    back-projection does: (x, y) += o · z / F.  ``transl`` equals
    ``cam_root`` (the mesh is relative to the posed root joint), ``scores``
    is 1 − sigma where the head predicts sigma.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    # what the Predictor reads off any loaded model: the wrapped network's body,
    # crop size, ops backend, and its prediction before the IK (``predict``)
    @property
    def smpl(self) -> BodyModel:
        return self.net.smpl

    @property
    def image_size(self) -> int:
        return self.net.image_size

    @property
    def backend(self) -> str:
        return self.net.backend

    def predict(self, images: torch.Tensor) -> dict:
        """The wrapped network's ``predict``: images (B, 3, S, S) -> its raw predictions."""
        return self.net.predict(images)

    @classmethod
    def from_checkpoint(cls, path: str, map_location="cpu", backend: str = "auto",
                        body: BodyModel | None = None) -> "TrainedModel":
        """A checkpoint of ``hybrik-fast train`` -> the wrapped model in eval mode."""
        from ..train import config
        from ..train.checkpoint import load, model_state
        from ..train.loop import build_body
        from .build import build_model
        ckpt = load(path, map_location)
        cfg = config.from_dict(ckpt["config"])
        net = build_model(head=cfg.head, backbone=cfg.backbone, image_size=cfg.image_size,
                          heatmap_size=tuple(cfg.heatmap_size),
                          body=body if body is not None else build_body(cfg), backend=backend,
                          **cfg.model_kwargs)
        try:
            net.load_state_dict(model_state(ckpt))
        except RuntimeError as e:
            raise ValueError(f"{path}: the weights do not fit the configured model: {e}") from e
        return cls(net).to(map_location).eval()

    def forward(self, images: torch.Tensor, bboxes: torch.Tensor | None = None,
                img_center: torch.Tensor | None = None, flip_test: bool = False) -> ModelOutput:
        """images (B, 3, S, S), bboxes (B, 4) | None, img_center (B, 2) | None -> ModelOutput."""
        if flip_test:
            raise ValueError("flip_test is implemented for the published HybrIK layouts only; "
                             "call this training checkpoint's model with flip_test=False")
        if (bboxes is None) != (img_center is None):
            raise ValueError("pass bboxes (B, 4) and img_center (B, 2) together, or neither")
        out = self.net(images)
        root = root_from_camera(out.camera)                                   # (B, 3)
        if bboxes is not None:
            shift = box_offset(bboxes, img_center) * root[:, 2:] / FOCAL_NORM
            root = torch.cat([root[:, :2] + shift, root[:, 2:]], dim=-1)
        out.cam_root = root
        out.transl = root
        out.scores = None if out.sigma is None else 1 - out.sigma
        return out
