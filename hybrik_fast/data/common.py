"""What every dataset yields: the sample dict, label weights, image normalisation.

A sample is a dict of tensors (S = crop size):

    image              (3, S, S)  float32, RGB, normalised by IMAGE_MEAN / IMAGE_STD
    joints_uvd         (29, 3)    crop-normalised (u, v, d), see hybrik_fast.camera
    joints_uvd_weight  (29, 3)    1 where the label exists (2D-only data: d has 0)
    joints_xyz         (29, 3)    root-relative metres, camera frame (x right, y down, z forward)
    joints_xyz_weight  (29, 3)
    betas              (10,)
    rotmats            (24, 3, 3) local rotations, root in the camera frame
    twist              (23, 2)    (cos φ, sin φ) from hybrik_fast.twist_angles
    twist_weight       (23, 2)
    smpl_weight        (1,)       1 if betas and rotmats are labels
    bbox               (4,)       x, y, w, h of the crop in the source image, pixels
    camera             (3,)       (s, tx, ty), see hybrik_fast.camera
    index              ()         int64, the item's index

Missing labels are filled with neutral values (zeros, identity rotations,
twist (1, 0)) and weight 0, so batches always collate.
"""
from __future__ import annotations

import numpy as np
import torch

from ..skeleton import NUM_BETAS, NUM_JOINTS, NUM_SMPL_JOINTS, NUM_TWIST

#: per-channel mean and std (RGB order) of the public HybrIK input normalisation
IMAGE_MEAN = (0.406, 0.457, 0.480)
IMAGE_STD = (0.225, 0.224, 0.229)

SAMPLE_KEYS = ("image", "joints_uvd", "joints_uvd_weight", "joints_xyz", "joints_xyz_weight",
               "betas", "rotmats", "twist", "twist_weight", "smpl_weight", "bbox", "camera", "index")


def normalize_image(rgb: np.ndarray) -> torch.Tensor:
    """uint8 RGB image (S, S, 3) -> float32 (3, S, S) normalised."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"image must be uint8 of shape (S, S, 3), got {rgb.dtype} {rgb.shape}")
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(IMAGE_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(3, 1, 1)
    return (x - mean) / std


def denormalize_image(image: torch.Tensor) -> np.ndarray:
    """float (3, S, S) normalised -> uint8 RGB (S, S, 3), for visualisation."""
    mean = torch.tensor(IMAGE_MEAN, dtype=image.dtype).view(3, 1, 1)
    std = torch.tensor(IMAGE_STD, dtype=image.dtype).view(3, 1, 1)
    x = (image * std + mean).clamp(0, 1).mul(255).round().byte()
    return x.permute(1, 2, 0).contiguous().numpy()


def empty_labels() -> dict:
    """All label fields with neutral values and zero weights (no image, bbox, camera, index)."""
    return {
        "joints_uvd": torch.zeros(NUM_JOINTS, 3),
        "joints_uvd_weight": torch.zeros(NUM_JOINTS, 3),
        "joints_xyz": torch.zeros(NUM_JOINTS, 3),
        "joints_xyz_weight": torch.zeros(NUM_JOINTS, 3),
        "betas": torch.zeros(NUM_BETAS),
        "rotmats": torch.eye(3).repeat(NUM_SMPL_JOINTS, 1, 1),
        "twist": torch.tensor([1.0, 0.0]).repeat(NUM_TWIST, 1),
        "twist_weight": torch.zeros(NUM_TWIST, 2),
        "smpl_weight": torch.zeros(1),
    }
