"""Training losses (HybrIK paper eq. 18-23) with label masks.

    L = λ_uvd L_pose + λ_beta L_shape + λ_rot L_rot + λ_twist L_tw
        + λ_camera (L_cam + L_reproj)

The paper's eq. 23 is L_pose + μ1 L_shape + μ2 L_rot + μ3 L_tw, so
``beta`` = μ1 (default 1), ``rot`` = μ2 and ``twist`` = μ3 (default 0.01
each); ``uvd`` scales L_pose and ``camera`` the two camera terms.

Every term is a masked mean over the label entries,
``Σ w·err / max(Σ w, 1)``, with the weights of the sample dict
(:mod:`hybrik_fast.data.common`), broadcast to the entries:

    L_pose    |uvd − uvd*| per coordinate (eq. 18), weight joints_uvd_weight;
              with ``use_xyz`` |joints − xyz*| in metres, weight joints_xyz_weight;
              with ``laplace`` the public LaplaceLossDimSMPLCam's negative
              log-likelihood log σ_k + |err| / (√2 σ_k) (its constant
              log √(2π) dropped) with the model's per-joint σ (heatmap head),
              so σ learns the error scale on the public scale (the published
              HRNet reads it back: weights 1 − 10 σ in its camera fit)
    L_shape   (β − β*)² per coefficient (eq. 21), weight smpl_weight
    L_rot     (R − R*)² per matrix entry (eq. 22), weight smpl_weight
    L_tw      ((cos, sin) − (cos*, sin*))² (eq. 19), weight twist_weight
    L_cam     |camera − camera*| per parameter (s, tx, ty), weight
              ``camera_weight`` (B, 1) if the batch has it, else 1 for
              samples with any 3D joint label or SMPL label (2D-only data has
              no root depth, hence no camera label)
    L_reproj  |uv − uv*| per coordinate, weight joints_uvd_weight[..., :2]:
              the predicted root-relative joints placed at the predicted
              camera's root (tx, ty, F/s) and projected by
              :func:`hybrik_fast.camera.project` (depths floored at
              MIN_DEPTH metres so a degenerate camera stays finite).  It ties
              the camera to the 2D labels, which every dataset has.

Squared errors are the per-entry form of the paper's ℓ2 terms (as the public
code's MSE losses).  Batch tensors have a leading B and may differ in dtype
from the output; they are cast to the output's dtype and device.  Shapes are
``OUTPUT_SHAPES`` and ``LABEL_SHAPES``; a wrong one raises ValueError, a
non-floating tensor TypeError (the weights may also be bool).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ._validate import FLOAT_DTYPES, check_tensor
from .camera import project, root_from_camera
from .skeleton import NUM_BETAS, NUM_JOINTS, NUM_SMPL_JOINTS, NUM_TWIST

MIN_DEPTH = 0.1  # metres
SIGMA_EPS = 1e-6

#: the fields of the model output the loss reads, and their shapes
OUTPUT_SHAPES = {"uvd": ("B", NUM_JOINTS, 3), "joints": ("B", NUM_JOINTS, 3), "twist": ("B", NUM_TWIST, 2),
                 "betas": ("B", NUM_BETAS), "rotmats": ("B", NUM_SMPL_JOINTS, 3, 3), "camera": ("B", 3),
                 "sigma": ("B", NUM_JOINTS)}
#: the batch keys the loss reads (hybrik_fast.data.common), and their shapes
LABEL_SHAPES = {"joints_uvd": ("B", NUM_JOINTS, 3), "joints_uvd_weight": ("B", NUM_JOINTS, 3),
                "joints_xyz": ("B", NUM_JOINTS, 3), "joints_xyz_weight": ("B", NUM_JOINTS, 3),
                "betas": ("B", NUM_BETAS), "rotmats": ("B", NUM_SMPL_JOINTS, 3, 3),
                "twist": ("B", NUM_TWIST, 2), "twist_weight": ("B", NUM_TWIST, 2),
                "smpl_weight": ("B", 1), "camera": ("B", 3), "camera_weight": ("B", 1)}
_WEIGHT_DTYPES = FLOAT_DTYPES + (torch.bool,)


def masked_mean(err: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Σ w·err / max(Σ w, 1) with weight broadcast to err's shape."""
    weight = weight.expand_as(err)
    return (weight * err).sum() / weight.sum().clamp_min(1.0)


class HybrIKLoss(nn.Module):
    """``loss(output, batch) -> (total, terms)``; see the module docstring.

    ``terms`` holds the unweighted terms "pose", "beta", "rot", "twist",
    "camera" and "reproj" (scalars with autograd history).
    """

    def __init__(self, uvd: float = 1.0, beta: float = 1.0, rot: float = 0.01,
                 twist: float = 0.01, camera: float = 1.0, use_xyz: bool = False,
                 laplace: bool = False):
        super().__init__()
        self.weights = {"pose": float(uvd), "beta": float(beta), "rot": float(rot),
                        "twist": float(twist), "camera": float(camera), "reproj": float(camera)}
        self.use_xyz = bool(use_xyz)
        self.laplace = bool(laplace)

    def extra_repr(self) -> str:
        w = ", ".join(f"{k}={v}" for k, v in self.weights.items())
        return f"{w}, use_xyz={self.use_xyz}, laplace={self.laplace}"

    def forward(self, output, batch: dict):
        if self.laplace and output.get("sigma") is None:
            raise ValueError("HybrIKLoss(laplace=True) needs an output with sigma "
                             "(the heatmap head); this output has none")
        sizes: dict = {}  # binds B across every tensor
        for key in (k for k in OUTPUT_SHAPES if k != "sigma" or self.laplace):
            check_tensor(f"output[{key!r}]", output[key], OUTPUT_SHAPES[key], sizes=sizes)
        ref = output["uvd"]

        def label(key: str) -> torch.Tensor:
            if key not in batch:
                raise KeyError(f"the batch has no {key!r}; HybrIKLoss needs the sample-dict keys "
                               "of hybrik_fast.data.common")
            check_tensor(f"batch[{key!r}]", batch[key], LABEL_SHAPES[key], sizes=sizes,
                         dtypes=_WEIGHT_DTYPES if key.endswith("_weight") else FLOAT_DTYPES)
            return batch[key].to(dtype=ref.dtype, device=ref.device)

        B = ref.shape[0]
        smpl_w = label("smpl_weight")                                          # (B, 1)
        xyz_w = label("joints_xyz_weight")                                     # (B, 29, 3)
        uvd_w = label("joints_uvd_weight")                                     # (B, 29, 3)

        if self.use_xyz:
            err, w = (output["joints"] - label("joints_xyz")).abs(), xyz_w
        else:
            err, w = (output["uvd"] - label("joints_uvd")).abs(), uvd_w
        if self.laplace:
            b = output["sigma"][..., None] + SIGMA_EPS                         # (B, 29, 1)
            err = torch.log(b) + err / (math.sqrt(2.0) * b)
        terms = {"pose": masked_mean(err, w)}

        terms["beta"] = masked_mean((output["betas"] - label("betas")) ** 2, smpl_w)
        terms["rot"] = masked_mean((output["rotmats"] - label("rotmats")) ** 2,
                                   smpl_w[:, :, None, None])
        terms["twist"] = masked_mean((output["twist"] - label("twist")) ** 2, label("twist_weight"))

        if "camera_weight" in batch:
            cam_w = label("camera_weight")                                     # (B, 1)
        else:
            has_3d = (xyz_w.reshape(B, -1) > 0).any(dim=1, keepdim=True)
            cam_w = (has_3d | (smpl_w > 0)).to(ref.dtype)                      # (B, 1)
        terms["camera"] = masked_mean((output["camera"] - label("camera")).abs(), cam_w)

        points = output["joints"] + root_from_camera(output["camera"])[:, None]  # (B, 29, 3)
        points = torch.cat([points[..., :2], points[..., 2:].clamp_min(MIN_DEPTH)], dim=-1)
        uv = project(points)[..., :2]                                          # (B, 29, 2)
        terms["reproj"] = masked_mean((uv - label("joints_uvd")[..., :2]).abs(), uvd_w[..., :2])

        total = sum(self.weights[k] * v for k, v in terms.items())
        return total, terms
