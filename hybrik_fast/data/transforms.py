"""Crops, augmentation and label transforms shared by the real-data loaders.

Coordinates.  Source-image points are OpenCV pixel coordinates (x right, y
down, integer values at pixel centres).  A crop of S×S pixels is cut by one
affine map A (2×3) from the source to crop pixels; the image is warped with
that same A, so image and labels cannot drift apart.  Crop-normalised
coordinates are ``u = x_crop / S − 0.5`` (the public HybrIK convention, and
the range of :func:`hybrik_fast.soft_argmax3d`).

The crop.  The bbox (x, y, w, h) becomes a square of side
``max(w, h) · padding · scale`` about the bbox centre; the crop maps that
centre to the crop point (S/2, S/2), i.e. u = v = 0.

Augmentation (train mode; :class:`AugmentConfig`, defaults below; the paper
presets use the public recipe: normal draws, factors 0.3 and 30°, occlusion):
    scale     the crop side times a factor uniform in [1 − 0.25, 1 + 0.25]
    rotation  with probability 0.6, uniform in [−30°, 30°]: the image content
              turns counter-clockwise (as displayed) about the crop centre
    occlusion off by default: a noise rectangle in the box
    flip      with probability 0.5, a horizontal mirror of the crop
              (x_crop → S − x_crop, i.e. u → −u), left/right labels swapped
    colour    each RGB channel times a factor uniform in [0.8, 1.2]

3D labels follow the 2D ones.  A crop rotation by r is a rotation of the
camera frame about its optical (z) axis, ``R_r = [[c, s, 0], [−s, c, 0],
[0, 0, 1]]`` with (c, s) = (cos r, sin r): under the crop camera of
:mod:`hybrik_fast.camera` it turns (u, v) exactly as A turns the crop
pixels.  Root-relative joints become R_r·x and the root rotation R_r·R_0.
A flip mirrors the camera x axis, M = diag(−1, 1, 1): joints become M·x with
left and right swapped; every local rotation becomes M·R·M, moved to its
mirror joint (for axis-angle (a, b, c) that is (a, −b, −c)); a twist
(cos φ, sin φ) becomes (cos φ, −sin φ) at the mirror joint, because
M·Rot(k, φ)·M = Rot(M·k, −φ).  Forward kinematics of the flipped rotations
on a mirror-symmetric rest skeleton gives exactly the flipped joints.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..skeleton import FLIP_PAIRS, NUM_JOINTS, NUM_SMPL_JOINTS

#: bbox side -> crop side, as in the public HybrIK code
PADDING = 1.25

_MIRROR = np.diag([-1.0, 1.0, 1.0])


def _flip_permutation(n: int) -> np.ndarray:
    perm = np.arange(n)
    for a, b in FLIP_PAIRS:
        if a < n and b < n:
            perm[a], perm[b] = b, a
    return perm


#: joint j of a flipped sample is joint FLIP_PERM_29[j] of the original
FLIP_PERM_29 = _flip_permutation(NUM_JOINTS)
FLIP_PERM_24 = _flip_permutation(NUM_SMPL_JOINTS)


@dataclass(frozen=True)
class Augment:
    """One draw of the augmentation; the default is the identity (evaluation)."""
    scale: float = 1.0                          # crop side multiplier
    rotation: float = 0.0                       # degrees, content turns counter-clockwise
    flip: bool = False                          # horizontal mirror + left/right swap
    colour: tuple[float, float, float] = (1.0, 1.0, 1.0)   # RGB channel gains
    #: occluding rectangle (x, y, w, h) as fractions of the padded box, and its noise seed; None: none
    occluder: tuple[float, float, float, float] | None = None
    occluder_seed: int = 0


IDENTITY = Augment()

SAMPLINGS = ("uniform", "normal")


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the training augmentation.

    sampling "uniform" (the default): scale uniform in [1 − f, 1 + f],
    rotation uniform in [−r, r].  "normal" (the public HybrIK recipe): scale
    1 + f·N(0, 1) clipped to [1 − f, 1 + f], rotation r·N(0, 1) clipped to
    [−2r, 2r].  Either way the rotation applies with ``rotation_prob``.

    occlusion (the public recipe): a rectangle of the padded box filled with
    uniform noise, of area uniform in ``occlusion_area`` (fractions of the
    box) and height/width ratio uniform in ``occlusion_ratio``, placed
    uniformly inside the box.  The public code redraws until the rectangle
    lies inside the image; here it is drawn once and left out if it does not.
    """
    scale_factor: float = 0.25
    rotation_factor: float = 30.0
    rotation_prob: float = 0.6
    flip_prob: float = 0.5
    colour_factor: float = 0.2
    sampling: str = "uniform"
    occlusion: bool = False
    occlusion_area: tuple[float, float] = (0.0, 0.3)
    occlusion_ratio: tuple[float, float] = (0.5, 2.0)

    def __post_init__(self):
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")

    def sample(self, rng: np.random.Generator) -> Augment:
        """Draw one :class:`Augment` (always the same number of draws from ``rng``)."""
        scale, rot_u, rot_p, flip_p = rng.random(4)
        colour = 1.0 + self.colour_factor * (2.0 * rng.random(3) - 1.0)
        normal = rng.standard_normal(2)
        occ = rng.random(5)
        sf, rf = self.scale_factor, self.rotation_factor
        if self.sampling == "normal":
            scale = float(np.clip(1.0 + sf * normal[0], 1.0 - sf, 1.0 + sf))
            rotation = float(np.clip(rf * normal[1], -2.0 * rf, 2.0 * rf))
        else:
            scale = float(1.0 + sf * (2.0 * scale - 1.0))
            rotation = float(rf * (2.0 * rot_u - 1.0))
        occluder = None
        if self.occlusion:
            lo, hi = self.occlusion_area
            area = lo + (hi - lo) * occ[0]
            lo, hi = self.occlusion_ratio
            ratio = lo + (hi - lo) * occ[1]                        # height / width
            h, w = math.sqrt(area * ratio), math.sqrt(area / ratio)
            occluder = (occ[2] * (1.0 - w), occ[3] * (1.0 - h), w, h)
        return Augment(scale=scale, rotation=rotation if rot_p < self.rotation_prob else 0.0,
                       flip=bool(flip_p < self.flip_prob), colour=tuple(float(c) for c in colour),
                       occluder=occluder, occluder_seed=int(occ[4] * 2**31))


def occlude(image: np.ndarray, center: np.ndarray, side: float, aug: Augment) -> np.ndarray:
    """uint8 image (H, W, 3) with ``aug.occluder`` (fractions of the square box
    ``center`` ± side/2) filled with uniform noise; unchanged if it has none or
    it does not lie inside the image."""
    if aug.occluder is None:
        return image
    fx, fy, fw, fh = aug.occluder
    x0, y0 = center[0] - side / 2 + fx * side, center[1] - side / 2 + fy * side
    w, h = int(fw * side), int(fh * side)
    if x0 < 0 or y0 < 0 or x0 + w >= image.shape[1] or y0 + h >= image.shape[0] or w < 1 or h < 1:
        return image
    out = image.copy()
    noise = np.random.default_rng(aug.occluder_seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    out[int(y0):int(y0) + h, int(x0):int(x0) + w] = noise
    return out


def square_box(bbox: np.ndarray, padding: float = PADDING) -> tuple[np.ndarray, float]:
    """bbox (4,) = x, y, w, h -> (centre (2,), side): the padded square about its centre."""
    x, y, w, h = (float(v) for v in bbox)
    return np.array([x + w / 2.0, y + h / 2.0]), max(w, h) * padding


def crop_matrix(center: np.ndarray, side: float, size: int, rotation: float = 0.0,
                flip: bool = False) -> np.ndarray:
    """Affine map (2, 3) from source pixels to crop pixels.

    ``q = S/2 + (S/side)·Rot(r)·(p − center)`` with Rot(r) = [[c, s], [−s, c]]
    (content turns counter-clockwise by ``rotation`` degrees as displayed),
    then ``q_x → S − q_x`` if ``flip``.
    """
    r = math.radians(rotation)
    c, s = math.cos(r), math.sin(r)
    k = size / side
    lin = k * np.array([[c, s], [-s, c]])
    if flip:
        lin = np.diag([-1.0, 1.0]) @ lin
    # with flip, q'_x = S − q_x, and S − S/2 = S/2: the shift keeps the same form
    shift = np.array([size / 2.0, size / 2.0]) - lin @ np.asarray(center, dtype=np.float64)
    return np.concatenate([lin, shift[:, None]], axis=1)


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Affine (2, 3) applied to points (N, 2) -> (N, 2)."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def camera_rotation(rotation: float) -> np.ndarray:
    """(3, 3) rotation of the camera frame about z matching a crop rotation of ``rotation`` degrees."""
    r = math.radians(rotation)
    c, s = math.cos(r), math.sin(r)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def warp_image(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """uint8 image (H, W, 3) -> (S, S, 3) crop by ``matrix`` (bilinear, black outside)."""
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def colour_jitter(image: np.ndarray, gains) -> np.ndarray:
    """uint8 RGB image times per-channel ``gains`` (3,), clipped to [0, 255]."""
    if all(g == 1.0 for g in gains):
        return image
    out = image.astype(np.float32) * np.asarray(gains, dtype=np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def flip_joints(x: np.ndarray) -> np.ndarray:
    """Per-joint array (29, ...) -> left/right swapped (no mirroring of values)."""
    return x[FLIP_PERM_29]


def flip_xyz(xyz: np.ndarray) -> np.ndarray:
    """Joints (29, 3) in the camera frame -> mirrored about x = 0, left/right swapped."""
    return flip_joints(xyz) @ _MIRROR


def flip_rotmats(rotmats: np.ndarray) -> np.ndarray:
    """Local rotations (24, 3, 3) -> mirrored pose: M·R·M at the mirror joint."""
    return _MIRROR @ rotmats[FLIP_PERM_24] @ _MIRROR


def flip_twist(twist: np.ndarray) -> np.ndarray:
    """Twist (23, 2) as (cos φ, sin φ) -> mirrored pose: the mirror joint's, sin negated."""
    return twist[TWIST_FLIP_ROWS] * np.array([1.0, -1.0])


#: twist row i of a flipped sample is row TWIST_FLIP_ROWS[i] of the original (row = joint − 1)
TWIST_FLIP_ROWS = FLIP_PERM_24[1:] - 1
