"""Reading and validating annotation JSON, and the dataset base class.

Every loader turns its file into a list of :class:`Record` (one person in one
image, already in the 29-joint order, metres, source pixels) while checking
every record up front: a missing field or a wrong joint count raises
:class:`AnnotationError`, a ``ValueError`` that names the file, the record
index and the field.  :class:`AnnotatedDataset` then turns a record into the
sample dict of :mod:`hybrik_fast.data.common`.

uvd and camera labels from a real camera (the public HybrIK recipe).  The
dataset's intrinsics differ from the crop's virtual camera
(:mod:`hybrik_fast.camera`), so the labels are built from the real 2D
projection instead of re-projecting:

    (u, v) = A·(x_px, y_px) / S − 0.5     A the crop's affine map, (x_px, y_px)
                                          the joint projected by the real camera
    d      = (z − z_root) / DEPTH_RANGE    metric depth, real camera frame
    s      = f / (z_root · L)             f the real focal length (mean of fx, fy)
                                          in pixels, L the crop side in source pixels
    (tx, ty) = (u_root, v_root) / s

s is the size of one metre at the root's depth in crop widths, i.e. the root
depth as the virtual camera would see it, z_virt = FOCAL_NORM / s; (tx, ty) is
the root position that the virtual camera projects onto (u_root, v_root).
:func:`hybrik_fast.camera.back_project` of these labels recovers the
root-relative joints up to two approximations: the relative depths d are real
metres while the lateral scale uses z_virt (error ≈ x·dz·|1/z_virt − 1/z_root|
for a joint at lateral offset x and relative depth dz; a full-body crop puts
z_virt near 9 m whatever the real distance, so for a person at 5 m the hands
and feet are off by up to about 3 cm), and the crop centre is treated as
the principal point (the real one is elsewhere; the sample dict has no field
for that offset).  2D-only samples (COCO) get the neutral camera (0.9, 0, 0),
the mean camera of the public model; it is a label only where
``joints_xyz_weight[0] > 0``.

Where a joint's (u, v) falls outside the crop ([−0.5, 0.5)), its uvd weight is
0 (the heatmap cannot represent it); its xyz weight is kept.
"""
from __future__ import annotations

import glob
import json
import logging
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from ..camera import DEPTH_RANGE
from ..ik import twist_angles
from ..poses import axis_angle_to_matrix
from ..skeleton import NUM_JOINTS, NUM_TWIST
from .common import empty_labels, normalize_image
from .transforms import (IDENTITY, PADDING, TWIST_FLIP_ROWS, Augment, AugmentConfig,
                         apply_affine, camera_rotation, colour_jitter, crop_matrix,
                         flip_joints, flip_rotmats, flip_twist, flip_xyz, occlude, square_box,
                         warp_image)

#: camera label of samples without a 3D root (the public model's init_cam)
NEUTRAL_CAMERA = (0.9, 0.0, 0.0)
_MISSING = object()
_log = logging.getLogger("hybrik_fast.data")


class AnnotationError(ValueError):
    """A malformed annotation: names the file, the record index and the field."""

    def __init__(self, path, index, name, problem):
        self.path, self.index, self.field = str(path), index, name
        where = f"record {index}" if index is not None else "top level"
        super().__init__(f"{path}: {where}: field {name!r}: {problem}")


# ---------------------------------------------------------------- JSON helpers

def load_json(path) -> object:
    """Parse a JSON file; a missing or unparsable file raises naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"annotation file not found: {path}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from None


def find_annotation(annotation, root, patterns: list[str], what: str,
                    defaults: tuple[str, ...] = ()) -> str:
    """The explicit ``annotation`` path, or the annotation file under ``root``.

    One file matching ``patterns``: that one.  Several: the first of
    ``defaults`` (file names, the public configurations' choice) among them,
    with a warning naming it and the others; none of the defaults among them
    is an error listing them.  The chosen file is logged.
    """
    if annotation is not None:
        return os.fspath(annotation)
    if root is None:
        raise ValueError(f"{what}: give root= or annotation=")
    found = sorted({p for pat in patterns for p in glob.glob(os.path.join(root, pat))})
    chosen = found[0] if len(found) == 1 else None
    if len(found) > 1:
        by_name = {os.path.basename(f): f for f in found}
        chosen = next((by_name[d] for d in defaults if d in by_name), None)
        if chosen is not None:
            others = [f for f in found if f != chosen]
            _log.warning("%s: several annotation files match under %s; using %s (the public "
                         "configuration's default), not %s; pass annotation= to choose",
                         what, root, chosen, ", ".join(others))
    if chosen is None:
        raise FileNotFoundError(
            f"{what}: expected one annotation file matching {patterns} under {root}, "
            f"found {found or 'none'}; pass annotation= explicitly")
    _log.info("%s: reading %s", what, chosen)
    return chosen


def get_field(record: dict, name: str, path, index, default=_MISSING):
    """``record[name]`` with dotted names for nesting ("cam_param.f")."""
    value = record
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            if default is not _MISSING:
                return default
            raise AnnotationError(path, index, name, "missing")
        value = value[part]
    return value


def get_array(record: dict, name: str, path, index, shapes, default=_MISSING) -> np.ndarray:
    """Numeric field as float64, reshaped to the first of ``shapes`` whose size matches.

    A shape may use None for "any" in its first axis.  Nested lists and flat
    lists are both accepted (the formats store e.g. thetas as 24×3 or 72).
    """
    value = get_field(record, name, path, index, default)
    if value is default and default is not _MISSING:
        return default
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise AnnotationError(path, index, name, "not a numeric array") from None
    for shape in shapes:
        if shape[0] is None:
            rest = int(np.prod(shape[1:]))
            if rest and arr.size % rest == 0 and arr.size > 0:
                return arr.reshape(-1, *shape[1:])
        elif arr.size == int(np.prod(shape)):
            return arr.reshape(shape)
    want = " or ".join("×".join("N" if d is None else str(d) for d in s) for s in shapes)
    raise AnnotationError(path, index, name, f"expected {want} values, got shape {arr.shape}")


def check_finite(arr: np.ndarray, name: str, path, index) -> np.ndarray:
    if not np.all(np.isfinite(arr)):
        raise AnnotationError(path, index, name, "contains NaN or infinity")
    return arr


def get_bbox(record: dict, path, index, name: str = "bbox") -> np.ndarray:
    """The record's box (4,) = x, y, w, h as the public readers take it.

    The file's x, y, w, h ends at x + max(w − 1, 0) (inclusive pixel
    corners); where the record has ``width`` and ``height`` both corners are
    clipped to [0, width − 1] × [0, height − 1].  The result may be empty
    (w or h 0): :func:`require_box` or the loader's skip rule decides.
    """
    x, y, w, h = check_finite(get_array(record, name, path, index, [(4,)]), name, path, index)
    x2, y2 = x + max(w - 1.0, 0.0), y + max(h - 1.0, 0.0)
    size = (get_field(record, "width", path, index, None), get_field(record, "height", path, index, None))
    if size[0] is not None and size[1] is not None:
        hi = np.array(size, dtype=np.float64) - 1.0
        x, x2 = np.clip([x, x2], 0.0, hi[0])
        y, y2 = np.clip([y, y2], 0.0, hi[1])
    return np.array([x, y, x2 - x, y2 - y])


def require_box(bbox: np.ndarray, path, index, name: str = "bbox") -> np.ndarray:
    """An error naming the record if the (clipped) box is empty."""
    if bbox[2] <= 0 or bbox[3] <= 0:
        raise AnnotationError(path, index, name, f"the box is empty after clipping to the image "
                                                 f"(x, y, w, h = {bbox.tolist()})")
    return bbox


def to_metres(xyz: np.ndarray, units: str, name: str, path, index) -> np.ndarray:
    """Camera-frame joints in ``units`` ("m", "mm", or "auto": mm when the root depth > 100)."""
    if units == "auto":
        units = "mm" if abs(xyz[0, 2]) > 100.0 else "m"
    if units not in ("m", "mm"):
        raise ValueError(f"units must be 'm', 'mm' or 'auto', got {units!r}")
    xyz = xyz / 1000.0 if units == "mm" else xyz
    if xyz[0, 2] <= 0:
        raise AnnotationError(path, index, name, f"root depth must be > 0, got {xyz[0, 2]:.4g} m")
    return xyz


def get_h36m_joints(record: dict, name: str, path, index, units: str, order=None):
    """Optional evaluation joints (17, 3) in the H36M order, camera frame, metres (None if absent).

    ``order`` (17,) picks and reorders the file's joints into the H36M order.
    """
    joints = get_array(record, name, path, index, [(17, 3)], default=None)
    if joints is None:
        return None
    joints = check_finite(joints, name, path, index)
    joints = joints if order is None else joints[list(order)]
    if units == "auto":                        # only root-relative positions matter here
        units = "mm" if np.abs(joints).max() > 100.0 else "m"
    return joints / 1000.0 if units == "mm" else joints


def project(xyz: np.ndarray, focal: np.ndarray, princpt: np.ndarray) -> np.ndarray:
    """Pinhole projection of camera-frame points (N, 3) -> pixels (N, 2)."""
    z = np.where(np.abs(xyz[:, 2:]) > 1e-9, xyz[:, 2:], 1e-9)
    return xyz[:, :2] / z * focal + princpt


def join_images(db: dict, path, by: str = "id") -> list[dict]:
    """Records of an ``{"images": [...], "annotations": [...]}`` file, image fields merged in.

    ``by="id"`` (COCO style, the public 3DPW reader): each annotation's
    ``image_id`` names the image with that ``id``; where the image entries
    carry no ``id`` the lists are paired by position.  ``by="position"`` (the
    public H36M and 3DHP readers): the i-th annotation goes with the i-th
    image.  Two images with the same id, or lists of different lengths where
    pairing is by position, are errors naming the file.  Annotation fields
    win over image fields of the same name.
    """
    if not isinstance(db, dict):
        raise AnnotationError(path, None, "images", "the file must hold an object with "
                              "'images' and 'annotations' lists")
    for key in ("images", "annotations"):
        if not isinstance(db.get(key), list):
            raise AnnotationError(path, None, key, "missing or not a list")
    images, anns = db["images"], db["annotations"]
    if by == "id" and images and all(isinstance(img, dict) and "id" in img for img in images):
        by_id: dict = {}
        for j, img in enumerate(images):
            if img["id"] in by_id:
                raise AnnotationError(path, f"images[{j}]", "id",
                                      f"id {img['id']!r} is also that of images[{by_id[img['id']][0]}]")
            by_id[img["id"]] = (j, img)
        out = []
        for i, ann in enumerate(anns):
            image_id = get_field(ann, "image_id", path, i)
            if image_id not in by_id:
                raise AnnotationError(path, i, "image_id", f"no image with id {image_id!r}")
            out.append({**by_id[image_id][1], **ann})
        return out
    if len(images) != len(anns):
        raise AnnotationError(path, None, "annotations",
                              f"{len(anns)} annotations for {len(images)} images, paired by position")
    return [{**img, **ann} for img, ann in zip(images, anns)]


class SkipRecord(Exception):
    """Raised by a loader's parser for a record the public reader leaves out; the
    argument is the reason, counted in ``dataset.skipped_records``."""


# ---------------------------------------------------------------- records

@dataclass
class Record:
    """One person in one image, in the 29-joint order.

    uv (29, 2) source pixels; xyz (29, 3) camera frame, metres (absolute),
    None for 2D-only data; pose (24, 3) axis-angle, root in the camera frame;
    twist (23, 2) (cos, sin); focal in pixels (mean of fx, fy); joints_h36m
    (17, 3) the evaluation joints in the H36M order (camera frame, metres),
    None where the file has none.
    """
    image_path: str
    bbox: np.ndarray                                  # (4,) x, y, w, h
    uv: np.ndarray                                    # (29, 2)
    uv_weight: np.ndarray                             # (29,)
    xyz: np.ndarray | None = None                     # (29, 3)
    xyz_weight: np.ndarray = field(default_factory=lambda: np.zeros(NUM_JOINTS))
    focal: float | None = None
    betas: np.ndarray | None = None                   # (10,)
    pose: np.ndarray | None = None                    # (24, 3)
    twist: np.ndarray | None = None                   # (23, 2)
    twist_weight: np.ndarray = field(default_factory=lambda: np.zeros(NUM_TWIST))
    joints_h36m: np.ndarray | None = None             # (17, 3) camera frame, metres, H36M order


def smpl_joints_29(joints: np.ndarray):
    """SMPL joints (24 or 29, C) -> ((29, C), present (29,)): missing leaves are zero."""
    out = np.zeros((NUM_JOINTS, joints.shape[1]))
    out[:len(joints)] = joints
    present = np.arange(NUM_JOINTS) < len(joints)
    return out, present


def twist_from_annotation(record: dict, path, index):
    """``angle_twist{angle, cos, sin}`` -> (twist (23, 2), weight (23,)); -999 marks invalid."""
    angle = get_array(record, "angle_twist.angle", path, index, [(NUM_TWIST,)])
    cos = get_array(record, "angle_twist.cos", path, index, [(NUM_TWIST,)])
    sin = get_array(record, "angle_twist.sin", path, index, [(NUM_TWIST,)])
    valid = ~np.isclose(angle, -999.0) & np.isfinite(cos) & np.isfinite(sin)
    twist = np.where(valid[:, None], np.stack([cos, sin], axis=-1), [1.0, 0.0])
    return twist, valid.astype(np.float64)


# ---------------------------------------------------------------- the dataset

class AnnotatedDataset(torch.utils.data.Dataset):
    """Base of the real-data loaders: an annotation file -> records -> sample dicts.

    Args (shared by every loader):
        root:       the dataset folder; the annotation file is searched under it
                    with the class's ``PATTERNS`` and the images are read from
                    ``root/IMAGE_DIR``.
        split:      one of the class's ``SPLITS``.
        image_size: S, the crop side in pixels.
        train:      augment (random crop scale, rotation, flip, colour); False
                    gives the deterministic evaluation crop.  Default
                    ``split == "train"``.
        body:       optional :class:`hybrik_fast.BodyModel`.  When given, twist
                    labels of SMPL-labelled samples are computed from the final
                    (augmented) rotations with :func:`hybrik_fast.twist_angles`
                    on ``body.rest_joints(betas)`` (consistent with this
                    package's IK); otherwise the file's ``angle_twist`` is used
                    where present, else the twist has weight 0.
        annotation: explicit annotation file (overrides the search under root).
        image_dir:  folder the records' image paths are relative to (default
                    ``root/IMAGE_DIR``; without root, ``IMAGE_DIR`` beside the
                    annotation file's folder if ``IMAGES_BESIDE_ANNOTATIONS``,
                    else the annotation file's folder).
        units:      unit of the file's camera-frame joints: "mm", "m" or "auto"
                    (default ``DEFAULT_UNITS``).
        augment:    :class:`AugmentConfig` ranges (default: the HybrIK ones).
        padding:    bbox side -> crop side factor (default ``PADDING``: the
                    public readers' 1.0 for Human3.6M, 1.25 for the others).
        joint_map:  "public" (default): keypoints land on the 29 joints as
                    the public code maps them; "extended": also the joints
                    whose anatomy matches closely enough (see
                    :mod:`hybrik_fast.data.joint_maps`).  Used by the loaders
                    of keypoint sets (MPIINF3DHP, COCO2D).
        seed:       None: fresh augmentation every call; an int: the
                    augmentation of item i is a function of (seed, i).

    A subclass sets the class attributes and parses one joined record in
    ``_parse(record, path, index, image_dir, units) -> Record`` (or the whole
    file in ``_records``).  A record that the public reader leaves out raises
    :class:`SkipRecord` there: it is skipped, never an error, and counted by
    reason in ``dataset.skipped_records`` (a Counter; the total is logged).

    ``dataset.skipped`` counts items whose image could not be read; each is
    reported by a warning naming the file and replaced by the next readable
    record (index + 1, + 2, ...), so the result stays deterministic.  The
    sample's ``index`` is that of the record actually loaded.  With DataLoader
    workers each worker counts in its own copy.
    """

    #: the splits of the format
    SPLITS: tuple[str, ...] = ("train", "test")
    #: annotation file patterns under root, ``{split}`` substituted
    PATTERNS: tuple[str, ...] = ()
    #: image folder under root, ``{split}`` substituted
    IMAGE_DIR: str = "images"
    #: without root: images in IMAGE_DIR beside the annotation file's folder (else in that folder)
    IMAGES_BESIDE_ANNOTATIONS: bool = False
    DEFAULT_UNITS: str = "mm"
    #: the file of each split the public configurations name, when several match PATTERNS
    DEFAULT_FILES: dict[str, tuple[str, ...]] = {}
    #: how annotations find their image: "id" or "position" (see :func:`join_images`)
    JOIN: str = "position"
    #: bbox side -> crop side
    PADDING: float = PADDING
    #: the evaluation protocol of :func:`hybrik_fast.metrics.protocol_scores` (None: none)
    PROTOCOL: str | None = None

    def __init__(self, root=None, split: str = "train", image_size: int = 256,
                 train: bool | None = None, body=None, *, annotation=None, image_dir=None,
                 units: str | None = None, augment: AugmentConfig | None = None,
                 padding: float | None = None, joint_map: str = "public", seed: int | None = None):
        name = type(self).__name__
        if split not in self.SPLITS:
            raise ValueError(f"{name}: split must be one of {self.SPLITS}, got {split!r}")
        if image_size <= 0:
            raise ValueError(f"image_size must be > 0, got {image_size}")
        if joint_map not in ("public", "extended"):
            raise ValueError(f"joint_map must be 'public' or 'extended', got {joint_map!r}")
        path = find_annotation(annotation, root, [p.format(split=split) for p in self.PATTERNS], name,
                               self.DEFAULT_FILES.get(split, ()))
        if image_dir is None:
            image_dir = self._default_image_dir(root, split, path)
        self.annotation, self.split, self.joint_map = path, split, joint_map
        self.skipped_records: Counter = Counter()
        self.records = self._records(load_json(path), path, os.fspath(image_dir),
                                     self.DEFAULT_UNITS if units is None else units)
        if self.skipped_records:
            _log.info("%s: %s: skipped %d records (%s)", name, path, sum(self.skipped_records.values()),
                      ", ".join(f"{k}: {v}" for k, v in self.skipped_records.items()))
        self.image_size = int(image_size)
        self.train = split == "train" if train is None else bool(train)
        self.augment = augment if augment is not None else AugmentConfig()
        self.padding = float(self.PADDING if padding is None else padding)
        self.body = body
        self.seed = seed
        self.skipped = 0

    def _default_image_dir(self, root, split: str, path: str) -> str:
        folder = self.IMAGE_DIR.format(split=split)
        if root is not None:
            return os.path.join(root, folder)
        here = os.path.dirname(os.path.abspath(path))
        return os.path.join(os.path.dirname(here), folder) if self.IMAGES_BESIDE_ANNOTATIONS else here

    def _records(self, db, path: str, image_dir: str, units: str) -> list[Record]:
        """The records of the parsed file ``db``, each parsed by ``_parse``, skips counted."""
        out = []
        for i, r in enumerate(join_images(db, path, self.JOIN)):
            try:
                out.append(self._parse(r, path, i, image_dir, units))
            except SkipRecord as skip:
                self.skipped_records[str(skip)] += 1
        return out

    def _parse(self, record: dict, path: str, index: int, image_dir: str, units: str) -> Record:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.records)

    def augmentation(self, index: int) -> Augment:
        """The augmentation of item ``index`` (the identity when not training)."""
        if not self.train:
            return IDENTITY
        rng = np.random.default_rng(None if self.seed is None else (self.seed, index))
        return self.augment.sample(rng)

    def __getitem__(self, index: int) -> dict:
        n = len(self.records)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} records")
        return self.sample(index % n, self.augmentation(index % n))

    def sample(self, index: int, augment: Augment = IDENTITY) -> dict:
        """The sample dict of record ``index`` under ``augment`` (skipping unreadable images)."""
        n = len(self.records)
        for k in range(n):
            i = (index + k) % n
            image = self.read_image(self.records[i].image_path)
            if image is not None:
                out = self.build(self.records[i], image, augment)
                out["index"] = torch.tensor(i, dtype=torch.int64)
                return out
            self.skipped += 1
            warnings.warn(f"{type(self).__name__}: skipping unreadable image "
                          f"{self.records[i].image_path} (record {i})", RuntimeWarning,
                          stacklevel=2)
        raise RuntimeError(f"{type(self).__name__}: none of the {n} images is readable")

    @staticmethod
    def read_image(path: str) -> np.ndarray | None:
        """uint8 RGB (H, W, 3), or None if the file is missing or unreadable."""
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None or bgr.size == 0:
            return None
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def build(self, rec: Record, image: np.ndarray, aug: Augment) -> dict:
        """Crop, augment and label one record; see the module docstring for the labels."""
        S = self.image_size
        center, side = square_box(rec.bbox, self.padding)
        image = occlude(image, center, side, aug)
        side *= aug.scale
        A = crop_matrix(center, side, S, aug.rotation, aug.flip)     # (2, 3)
        crop = colour_jitter(warp_image(image, A, S), aug.colour)

        out = empty_labels()
        uv = apply_affine(A, rec.uv) / S - 0.5                         # (29, 2), flipped if flip
        uv_w = rec.uv_weight.astype(np.float64)
        xyz_w = rec.xyz_weight.astype(np.float64)
        R_cam = camera_rotation(aug.rotation)                          # (3, 3)
        xyz = np.zeros((NUM_JOINTS, 3))
        camera = np.array(NEUTRAL_CAMERA)
        if rec.xyz is not None:
            xyz = (rec.xyz - rec.xyz[0]) @ R_cam.T                     # root-relative, rotated
            if rec.focal is not None and xyz_w[0] > 0 and uv_w[0] > 0:
                s = rec.focal / (rec.xyz[0, 2] * side)
                camera = np.array([s, uv[0, 0] / s, uv[0, 1] / s])   # (s, tx, ty)
        if aug.flip:                 # uv is mirrored by A already; the root (0) stays put
            uv, uv_w, xyz_w = (flip_joints(a) for a in (uv, uv_w, xyz_w))
            xyz = flip_xyz(xyz)
        uv = uv * (uv_w > 0)[:, None]                                   # unlabelled rows: 0
        xyz = xyz * (xyz_w > 0)[:, None]
        d = xyz[:, 2] / DEPTH_RANGE
        inside = np.all((uv >= -0.5) & (uv < 0.5), axis=1)
        uvd_w = np.stack([uv_w, uv_w, xyz_w], axis=1) * inside[:, None]

        out["joints_uvd"] = torch.from_numpy(np.concatenate([uv, d[:, None]], 1)).float()
        out["joints_uvd_weight"] = torch.from_numpy(uvd_w).float()
        out["joints_xyz"] = torch.from_numpy(xyz).float()
        out["joints_xyz_weight"] = torch.from_numpy(np.repeat(xyz_w[:, None], 3, 1)).float()
        if rec.pose is not None and rec.betas is not None:
            rotmats = axis_angle_to_matrix(torch.from_numpy(rec.pose)).numpy()  # (24, 3, 3)
            rotmats[0] = R_cam @ rotmats[0]
            twist, twist_w = rec.twist, rec.twist_weight
            if aug.flip:
                rotmats = flip_rotmats(rotmats)
                if twist is not None:
                    twist, twist_w = flip_twist(twist), twist_w[TWIST_FLIP_ROWS]
            out["betas"] = torch.from_numpy(rec.betas).float()
            out["rotmats"] = torch.from_numpy(rotmats).float()
            out["smpl_weight"] = torch.ones(1)
            if self.body is not None:
                twist, twist_w = self._twist_from_body(rotmats, rec.betas)
            if twist is not None:
                out["twist"] = torch.from_numpy(twist).float()
                out["twist_weight"] = torch.from_numpy(np.repeat(twist_w[:, None], 2, 1)).float()
        out["image"] = normalize_image(crop)
        out["bbox"] = torch.tensor([center[0] - side / 2, center[1] - side / 2, side, side],
                                   dtype=torch.float32)
        out["camera"] = torch.from_numpy(camera).float()
        return out

    def _twist_from_body(self, rotmats: np.ndarray, betas: np.ndarray):
        """Twist (23, 2) and weight (23,) of rotmats (24, 3, 3) on the body's rest pose."""
        dtype = self.body.v_template.dtype
        with torch.no_grad():
            rest = self.body.rest_joints(torch.from_numpy(betas).to(dtype)[None])   # (1, 29, 3)
            R = torch.from_numpy(rotmats).to(dtype)[None]                        # (1, 24, 3, 3)
            tw = twist_angles(R, rest, backend="reference")   # one sample: no kernel needed
        return tw[0].double().numpy(), np.ones(NUM_TWIST)

