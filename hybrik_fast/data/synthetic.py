"""SyntheticHumans: rendered synthetic people with exact labels, no downloads.

Each item is the procedural body of :meth:`hybrik_fast.BodyModel.synthetic`
in a random plausible pose and shape, seen by the crop camera of
:mod:`hybrik_fast.camera` and rasterised with OpenCV
(:mod:`hybrik_fast.data.render`) over a random background, sometimes partly
hidden by occluders.  Items are the sample dict of
:mod:`hybrik_fast.data.common`; every label weight is 1.

Scene, per item (all ranges are the module constants below):

* **Pose.** ``poses.sample_axis_angles`` within the per-joint limits.  The
  root's local rotation (a yaw over the full circle plus small tilts, in the
  model frame: y up, z forward) is carried into the camera frame (y down, z
  forward) by R_x(π), which turns a body facing +z in the model into one
  facing the camera, and then by a small random camera pitch and roll:
  ``rotmats[0] = R_view · R_x(π) · R_body``.  So ``rotmats`` are the labels
  as the sample dict defines them, and ``forward_kinematics(rotmats,
  rest_joints(betas))`` gives ``joints_xyz`` in the camera frame.  Poses
  whose depth range would leave |d| ≥ DEPTH_MARGIN are redrawn.
* **Shape.** β ~ N(0, 1) clipped to ±BETA_CLIP.
* **Camera.** The root depth is chosen so the person's mesh spans a random
  FILL fraction of the crop (z_root ≈ 5–13 m, median 8 m),
  and the root is moved sideways at random so that the whole mesh stays
  inside the crop with an EDGE margin.  ``camera = camera_from_root(root)``.
* **Image.** Background: a linear gradient, often low-frequency noise, and
  random rectangles, ellipses and lines.  The body: flat Lambert shading with
  a random light direction, ambient and tint.  Occluders: with probability
  OCCLUDER_PROB, 1–3 shapes over the person whose areas sum to less than
  OCCLUDER_COVER of the person's box.  Then sensor noise and sometimes blur.
* **Colouring** (fixed, :func:`face_colors`): each body part (the argmax of
  the skinning weights) has its own colour and left and right limbs have
  different hues; around each bone the back half is darker and a light
  stripe runs along one side of the front, so the twist about every bone
  shows in the image.

Labels: ``bbox`` is (0, 0, S, S): the crop is the whole rendered image, its
centre on the optical axis (``back_project`` offset 0).  ``twist`` equals
``twist_angles(rotmats, rest_joints(betas))`` (the tests check it); it is
computed in closed form from the sampled axis-angles, since the reference op
costs ~6 ms at B = 1, more than the rest of an item.

Determinism: item i of (split, seed) draws everything from
``numpy.random.default_rng([seed, split_id, i, stream])`` (separate streams
for the pose, the background and the occluders), so it is bitwise the same
in any process and any order.  With ``cache_dir`` items are stored as
compressed npz (uint8 image, float32 labels), written atomically; a file
that cannot be read is regenerated with a warning.

Speed: each item runs a few tiny (B = 1) torch ops.  Generate in DataLoader
workers (torch gives each worker one thread); in a process with several
torch threads on a busy machine those ops slow down by thread contention.
``bench/bench_data.py`` measures the throughput.
"""
from __future__ import annotations

import math
import operator
import os
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from .. import camera
from ..body import BodyModel
from ..poses import axis_angle_to_matrix, sample_axis_angles
from ..skeleton import IK_CHILD, NUM_BETAS, NUM_JOINTS, NUM_SMPL_JOINTS, NUM_TWIST
from .._io import atomic_write
from .common import SAMPLE_KEYS, normalize_image
from .render import draw_mesh, render_mesh, to_pixels  # noqa: F401  (draw_mesh re-exported)

__all__ = ["SyntheticHumans", "Scene", "face_colors", "draw_mesh"]

SPLITS = {"train": 0, "val": 1}
#: bump when the generator changes: it names the cache folder
FORMAT_VERSION = 1

# ---- scene ranges
BETA_CLIP = 2.5
POSE_SCALE = 1.0           # scale of poses.JOINT_LIMITS for joints 1..23
MAX_POSE_TRIES = 20        # then the rest pose, facing the camera, which always fits
DEPTH_MARGIN = 0.48        # |d| of every joint stays below this
VIEW_PITCH = 0.35          # camera pitch about x, ± radians
VIEW_ROLL = 0.2            # camera roll about the optical axis, ± radians
FILL = (0.6, 0.9)          # the mesh's larger box side, in crop widths
EDGE = 0.02                # margin between the mesh and the crop border, crop widths

# ---- lighting
AMBIENT = (0.3, 0.6)
DIFFUSE = (0.4, 0.8)
TINT = 0.1                 # per-channel light colour, 1 ± TINT

# ---- image
BACKGROUND_SHAPES = 10     # at most this many
OCCLUDER_PROB = 0.3
OCCLUDER_COVER = 0.2       # summed occluder area / person box area (< 0.3 with edges)
NOISE_PROB, NOISE_SIGMA = 0.5, (2.0, 10.0)
BLUR_PROB = 0.2

_STREAMS = {"pose": 0, "background": 1, "occluders": 2}
_FLIP = np.diag([1.0, -1.0, -1.0])          # R_x(π): model frame -> camera frame
_LABEL_SHAPES = {
    "joints_uvd": (NUM_JOINTS, 3), "joints_xyz": (NUM_JOINTS, 3), "betas": (NUM_BETAS,),
    "rotmats": (NUM_SMPL_JOINTS, 3, 3), "twist": (NUM_TWIST, 2), "bbox": (4,), "camera": (3,),
}


# --------------------------------------------------------------------------
# colouring

#: base colour (RGB) of each body part, by SMPL joint; left limbs warm, right limbs cool
PART_COLORS = {
    0: (60, 60, 150), 3: (40, 150, 60), 6: (50, 170, 70), 9: (60, 190, 80),
    12: (220, 180, 140), 15: (230, 190, 150),
    13: (210, 200, 60), 16: (230, 70, 60), 18: (240, 140, 60), 20: (250, 200, 120),
    22: (250, 225, 170),
    14: (160, 60, 200), 17: (60, 90, 230), 19: (60, 180, 230), 21: (130, 220, 250),
    23: (170, 230, 250),
    1: (200, 40, 120), 4: (230, 100, 170), 7: (240, 150, 200), 10: (120, 40, 60),
    2: (30, 140, 140), 5: (60, 200, 180), 8: (120, 230, 200), 11: (30, 70, 70),
}
BACK_SHADE = 0.55                      # the back half of each part: base × this
STRIPE = (math.radians(25), math.radians(70))   # azimuth band of the stripe
STRIPE_MIX = 0.6                       # the stripe: this much white


def face_colors(body: BodyModel) -> np.ndarray:
    """Fixed base colours (F, 3), RGB in 0..255, of the faces of ``body``.

    A face belongs to the joint with the largest summed skinning weight of
    its vertices.  Around that joint's bone (joint -> its IK child, rest
    pose, β = 0) the face's azimuth α is measured from the bone's front (the
    model's +z made perpendicular to the bone; +y for bones along z, the
    feet), positive towards bone × front.  |α| > 90° is the back (darker);
    α in STRIPE is a light stripe.  Mirrored limbs have mirrored bones, so
    their stripes sit on mirrored sides too.
    """
    v = body.v_template.detach().cpu().double().numpy()                 # (V, 3)
    faces = body.faces.cpu().numpy()
    rest = body.rest_joints(torch.zeros(1, NUM_BETAS, dtype=body.v_template.dtype))[0]
    rest = rest.detach().cpu().double().numpy()                          # (29, 3)
    part = body.weights.cpu().numpy()[faces].sum(axis=1).argmax(axis=1)  # (F,)
    centre = v[faces].mean(axis=1)                                       # (F, 3)

    bone = rest[np.asarray(IK_CHILD)[part]] - rest[part]                 # (F, 3)
    bone /= np.linalg.norm(bone, axis=1, keepdims=True)
    radial = centre - rest[part]
    radial -= (radial * bone).sum(-1, keepdims=True) * bone
    front = np.array([0.0, 0.0, 1.0]) - bone[:, 2:] * bone
    along_z = np.linalg.norm(front, axis=1) < 0.5
    front[along_z] = np.array([0.0, 1.0, 0.0]) - bone[along_z, 1:2] * bone[along_z]
    front /= np.linalg.norm(front, axis=1, keepdims=True)
    side = np.cross(bone, front)
    azimuth = np.arctan2((radial * side).sum(-1), (radial * front).sum(-1))

    palette = np.array([PART_COLORS[j] for j in range(NUM_SMPL_JOINTS)], dtype=np.float64)
    colors = palette[part]
    colors[np.abs(azimuth) > math.pi / 2] *= BACK_SHADE
    stripe = (azimuth > STRIPE[0]) & (azimuth < STRIPE[1])
    colors[stripe] = (1 - STRIPE_MIX) * colors[stripe] + STRIPE_MIX * 255.0
    return colors


# --------------------------------------------------------------------------
# labels


def twist_from_axis_angle(aa: np.ndarray, bones: np.ndarray) -> np.ndarray:
    """Twist (cos φ, sin φ) (N, 2) of the rotations exp(aa) (N, 3) about bones (N, 3).

    The same decomposition as :func:`hybrik_fast.twist_angles` (R = swing ·
    twist, swing the minimal rotation taking t̂ to R t̂), read off the
    quaternion q = (w, v) = (cos θ/2, sin(θ/2) k) of R: the twist quaternion
    is ∝ (w, (v·t̂) t̂), so with s = v·t̂, φ = 2 atan2(s, w), i.e.
    cos φ = (w² − s²)/(w² + s²) and sin φ = 2ws/(w² + s²).  Needs θ < π
    (true within the joint limits).
    """
    theta = np.linalg.norm(aa, axis=-1)
    w = np.cos(theta / 2)
    v = aa * (0.5 * np.sinc(theta / (2 * np.pi)))[:, None]      # sin(θ/2)/θ · aa
    t = bones / np.linalg.norm(bones, axis=-1, keepdims=True)
    s = (v * t).sum(-1)
    r2 = w * w + s * s
    return np.stack([(w * w - s * s) / r2, 2 * w * s / r2], axis=-1)


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


@dataclass(frozen=True)
class Scene:
    """The geometry of one item (float64 numpy, camera frame, metres)."""
    rotmats: np.ndarray        # (24, 3, 3) local rotations, root in the camera frame
    betas: np.ndarray          # (10,)
    twist: np.ndarray          # (23, 2)
    root_cam: np.ndarray       # (3,) the root joint's position
    joints_cam: np.ndarray     # (29, 3)
    vertices_cam: np.ndarray   # (V, 3)


# --------------------------------------------------------------------------
# drawing


def _fill_shape(rng: np.random.Generator, image: np.ndarray, centre, area: float, color) -> None:
    """A rotated rectangle, stick or ellipse of about ``area`` px² at ``centre``."""
    kind = rng.integers(3)
    aspect = rng.uniform(4.0, 10.0) if kind == 1 else rng.uniform(0.3, 3.0)
    angle = rng.uniform(0, 180)
    if kind == 2:
        axes = np.sqrt(area * np.array([aspect, 1 / aspect]) / math.pi)
        box = ((float(centre[0]), float(centre[1])), (2 * float(axes[0]), 2 * float(axes[1])), angle)
        cv2.ellipse(image, box, color, -1, cv2.LINE_AA)
    else:
        w, h = math.sqrt(area * aspect), math.sqrt(area / aspect)
        pts = cv2.boxPoints(((float(centre[0]), float(centre[1])), (w, h), angle))
        cv2.fillConvexPoly(image, np.rint(pts * 16).astype(np.int32), color, cv2.LINE_AA, 4)


def _random_color(rng: np.random.Generator) -> tuple:
    return tuple(float(c) for c in rng.uniform(0, 255, 3))


def background(rng: np.random.Generator, size: int, shapes: bool = True) -> np.ndarray:
    """A random background (S, S, 3) uint8: gradient, noise and (if ``shapes``) shapes."""
    c0, c1 = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = np.linspace(-0.5, 0.5, size, dtype=np.float32)
    t = math.cos(angle) * ramp[None, :] + math.sin(angle) * ramp[:, None] + 0.5   # (S, S)
    image = c0 + np.clip(t, 0, 1)[..., None] * (c1 - c0)                         # (S, S, 3)
    if rng.random() < 0.7:
        cells = int(rng.integers(2, 17))
        low = rng.standard_normal((cells, cells, 3), dtype=np.float32)
        image += rng.uniform(10, 80) * cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
    image = np.clip(image, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, BACKGROUND_SHAPES + 1)) if shapes else 0):
        centre = rng.uniform(0, size, 2)
        area = rng.uniform(0.002, 0.1) * size * size
        _fill_shape(rng, image, centre, area, _random_color(rng))
    return image


def _finish(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Sensor noise and blur, in place where possible."""
    if rng.random() < BLUR_PROB:
        image = cv2.GaussianBlur(image, (3, 3), rng.uniform(0.5, 1.0))
    if rng.random() < NOISE_PROB:
        noise = rng.standard_normal(image.shape, dtype=np.float32) * rng.uniform(*NOISE_SIGMA)
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
    return image


# --------------------------------------------------------------------------
# the dataset


class SyntheticHumans(torch.utils.data.Dataset):
    """Rendered synthetic people: the embedded default dataset (no downloads).

    split: "train" | "val" (different items for the same seed); length: the
    number of items; image_size: S, a positive multiple of 32; seed: a
    non-negative int; occluders: draw occluders (OCCLUDER_PROB of items);
    clutter: draw random shapes in the background (off: gradient and noise
    only, an easier task for short CPU runs); max_yaw: the body turns about
    the vertical by up to this many degrees either way from facing the camera
    (180: the full circle);
    cache_dir: a folder for cached items, or None.

    ``ds[i]`` is the sample dict of :mod:`hybrik_fast.data.common`:
    image (3, S, S), joints_uvd and joints_xyz (29, 3), betas (10,),
    rotmats (24, 3, 3), twist (23, 2), bbox (4,), camera (3,), weights of 1,
    index ().  :meth:`scene` gives the geometry and :meth:`arrays` the
    uint8 image with float32 labels.
    """

    def __init__(self, split: str = "train", length: int = 10000, image_size: int = 256,
                 seed: int = 0, occluders: bool = True, clutter: bool = True, max_yaw: float = 180.0,
                 cache_dir=None):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
        for name, value, ok, want in (
                ("length", length, lambda x: x >= 1, "an int >= 1"),
                ("image_size", image_size, lambda x: x >= 32 and x % 32 == 0,
                 "a positive multiple of 32 (32, 64, ..., 128, 256, ...)"),
                ("seed", seed, lambda x: x >= 0, "an int >= 0")):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not ok(value):
                raise ValueError(f"{name} must be {want}, got {value!r}")
        self.split, self.length, self.image_size = split, int(length), int(image_size)
        self.seed, self.occluders, self.clutter = int(seed), bool(occluders), bool(clutter)
        if not 0 <= max_yaw <= 180:
            raise ValueError(f"max_yaw must be in [0, 180] degrees, got {max_yaw!r}")
        self.max_yaw = float(max_yaw)
        self.body = BodyModel.synthetic(dtype=torch.float64)
        # a copy, not a view: pickling the body for a worker moves its buffers
        self.faces = self.body.faces.numpy().copy()                   # (F, 3)
        self.face_colors = face_colors(self.body)                     # (F, 3) RGB
        self._bone_child = np.asarray(IK_CHILD[1:NUM_SMPL_JOINTS])    # (23,)
        self.cache_dir = None
        if cache_dir is not None:
            self.cache_dir = os.path.join(
                os.fspath(cache_dir),
                f"synthetic-v{FORMAT_VERSION}-{split}-seed{seed}-S{image_size}"
                f"-occ{int(self.occluders)}-clutter{int(self.clutter)}-yaw{self.max_yaw:g}")
            os.makedirs(self.cache_dir, exist_ok=True)

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        return (f"SyntheticHumans(split={self.split!r}, length={self.length}, "
                f"image_size={self.image_size}, seed={self.seed}, occluders={self.occluders}, "
                f"cache_dir={self.cache_dir!r})")

    # ---------------------------------------------------------------- items
    def _index(self, index) -> int:
        i = operator.index(index)
        if not 0 <= i < self.length:
            raise IndexError(f"index {i} out of range for a dataset of length {self.length}")
        return i

    def _rng(self, index: int, stream: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, SPLITS[self.split], index, _STREAMS[stream]])

    def scene(self, index) -> Scene:
        """The geometry and pose labels of item ``index`` (no image)."""
        index = self._index(index)
        rng = self._rng(index, "pose")
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        betas = np.clip(rng.standard_normal(NUM_BETAS), -BETA_CLIP, BETA_CLIP)
        view = _rot_z(rng.uniform(-VIEW_ROLL, VIEW_ROLL)) @ _rot_x(rng.uniform(-VIEW_PITCH, VIEW_PITCH))
        betas_t = torch.from_numpy(betas)[None]                                  # (1, 10)
        for attempt in range(MAX_POSE_TRIES + 1):
            aa = sample_axis_angles(1, gen, torch.float64, POSE_SCALE)           # (1, 24, 3)
            aa[0, 0, 1] *= self.max_yaw / 180.0        # the yaw, uniform in ±max_yaw degrees
            if attempt == MAX_POSE_TRIES:      # the rest pose facing the camera always fits
                aa.zero_()
            rotmats = axis_angle_to_matrix(aa)                                   # (1, 24, 3, 3)
            rotmats[0, 0] = torch.from_numpy(view @ _FLIP) @ rotmats[0, 0]
            with torch.no_grad():
                vertices, joints = self.body(rotmats, betas_t)                   # (1, V, 3), (1, 29, 3)
            joints = joints[0].numpy()
            if np.abs(joints[:, 2] - joints[0, 2]).max() < DEPTH_MARGIN * camera.DEPTH_RANGE:
                break
        rel_vertices = vertices[0].numpy() - joints[0]                           # (V, 3)
        rel_joints = joints - joints[0]                                          # (29, 3)

        # depth: the mesh's larger projected side spans `fill` crop widths
        fill = rng.uniform(*FILL)
        extent = (rel_vertices[:, :2].max(0) - rel_vertices[:, :2].min(0)).max()
        z = camera.FOCAL_NORM * extent / fill
        uv = camera.FOCAL_NORM * rel_vertices[:, :2] / (z + rel_vertices[:, 2:])
        z *= (uv.max(0) - uv.min(0)).max() / fill                               # perspective correction
        # sideways: u = FOCAL_NORM (x + tx) / z_v is in [-0.5 + EDGE, 0.5 - EDGE] for
        # every vertex iff tx is in [max(lo z_v / FOCAL_NORM - x), min(hi z_v / FOCAL_NORM - x)]
        z_v = (z + rel_vertices[:, 2:]) / camera.FOCAL_NORM                      # (V, 1)
        lo = ((-0.5 + EDGE) * z_v - rel_vertices[:, :2]).max(0)                  # (2,)
        hi = ((0.5 - EDGE) * z_v - rel_vertices[:, :2]).min(0)
        shift = np.where(lo <= hi, lo + rng.random(2) * (hi - lo), (lo + hi) / 2)
        root = np.array([shift[0], shift[1], z])
        joints_cam = rel_joints + root

        rest = self.body.rest_joints(betas_t)[0].numpy()                         # (29, 3)
        bones = rest[self._bone_child] - rest[1:NUM_SMPL_JOINTS]                 # (23, 3)
        twist = twist_from_axis_angle(aa[0, 1:].numpy(), bones)
        return Scene(rotmats=rotmats[0].numpy(), betas=betas, twist=twist, root_cam=root,
                     joints_cam=joints_cam, vertices_cam=rel_vertices + root)

    def render(self, index, scene: Scene | None = None) -> np.ndarray:
        """The image (S, S, 3) uint8 RGB of item ``index``."""
        index = self._index(index)
        scene = self.scene(index) if scene is None else scene
        S = self.image_size
        rng = self._rng(index, "background")
        image = background(rng, S, shapes=self.clutter)
        light = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), -rng.uniform(0.3, 1.5)])
        tint = 1 + TINT * rng.uniform(-1, 1, 3)
        render_mesh(image, scene.vertices_cam, self.faces, self.face_colors * tint, light=light,
                    ambient=rng.uniform(*AMBIENT), diffuse=rng.uniform(*DIFFUSE))
        if self.occluders:
            occ = self._rng(index, "occluders")
            if occ.random() < OCCLUDER_PROB:
                px = to_pixels(scene.vertices_cam, S)
                x0, y0 = np.clip(px.min(0), 0, S)
                x1, y1 = np.clip(px.max(0), 0, S)
                count = int(occ.integers(1, 4))
                for _ in range(count):
                    area = occ.uniform(0.2, 1.0) * OCCLUDER_COVER / count * (x1 - x0) * (y1 - y0)
                    centre = (occ.uniform(x0, x1), occ.uniform(y0, y1))
                    _fill_shape(occ, image, centre, area, _random_color(occ))
        return _finish(rng, image)

    def arrays(self, index) -> dict:
        """Item ``index`` as numpy: image (S, S, 3) uint8 RGB and float32 labels.

        Keys: image, joints_uvd, joints_xyz, betas, rotmats, twist, bbox,
        camera (the cached form).
        """
        index = self._index(index)
        scene = self.scene(index)
        root = torch.from_numpy(scene.root_cam)[None]                            # (1, 3)
        uvd = camera.project(torch.from_numpy(scene.joints_cam)[None])[0]         # (29, 3)
        S = float(self.image_size)
        labels = {
            "joints_uvd": uvd.numpy(),
            "joints_xyz": scene.joints_cam - scene.root_cam,
            "betas": scene.betas, "rotmats": scene.rotmats, "twist": scene.twist,
            "bbox": np.array([0.0, 0.0, S, S]),
            "camera": camera.camera_from_root(root)[0].numpy(),
        }
        out = {"image": self.render(index, scene)}
        out.update({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in labels.items()})
        return out

    def __getitem__(self, index) -> dict:
        index = self._index(index)
        arrays = self._cached(index) if self.cache_dir is not None else self.arrays(index)
        ones = {"joints_uvd_weight": (NUM_JOINTS, 3), "joints_xyz_weight": (NUM_JOINTS, 3),
                "twist_weight": (NUM_TWIST, 2), "smpl_weight": (1,)}
        sample = {"image": normalize_image(arrays["image"]),
                  "index": torch.tensor(index, dtype=torch.int64)}
        sample.update({k: torch.from_numpy(arrays[k]) for k in _LABEL_SHAPES})
        sample.update({k: torch.ones(shape) for k, shape in ones.items()})
        return {k: sample[k] for k in SAMPLE_KEYS}

    # ---------------------------------------------------------------- cache
    def cache_path(self, index) -> str:
        """The cache file of item ``index`` (needs ``cache_dir``)."""
        if self.cache_dir is None:
            raise ValueError("this dataset has no cache_dir")
        return os.path.join(self.cache_dir, f"{self._index(index):08d}.npz")

    def _load(self, path: str) -> dict:
        S = self.image_size
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in ("image", *_LABEL_SHAPES)}
        if arrays["image"].dtype != np.uint8 or arrays["image"].shape != (S, S, 3):
            raise ValueError(f"image is {arrays['image'].dtype} {arrays['image'].shape}")
        for k, shape in _LABEL_SHAPES.items():
            if arrays[k].dtype != np.float32 or arrays[k].shape != shape:
                raise ValueError(f"{k} is {arrays[k].dtype} {arrays[k].shape}, expected float32 {shape}")
        return arrays

    def _cached(self, index: int) -> dict:
        path = self.cache_path(index)
        if os.path.exists(path):
            try:
                return self._load(path)
            except Exception as e:  # any damage to a cache file: regenerate it
                warnings.warn(f"unreadable cache file {path} ({type(e).__name__}: {e}); "
                              "regenerating it", RuntimeWarning, stacklevel=3)
        arrays = self.arrays(index)
        atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))
        return arrays
