"""Human3.6M in HybrIK's annotation format (``*_protocol_2.json``).

File: an object with parallel lists ``images`` and ``annotations``, paired
by position as the public reader pairs them; the fields of the i-th pair are
merged.  Per record:

    file_name          image path relative to ``image_dir`` (default root/images)
    bbox               x, y, w, h, pixels (ends at x + w − 1, clipped to
                       ``width`` × ``height`` where given)
    h36m_joints        optional 17×3 H36M joints, camera frame (the
                       evaluation ground truth)
    cam_param{f, c}    focal lengths and principal point (2 each), pixels
    smpl_joints        29×3 or 24×3, camera frame, millimetres (units=)
    betas              10
    thetas             24×3 (or 72) axis-angle; the root in the camera frame
    angle_twist        optional {angle, cos, sin} (23 each); angle −999 = invalid

Labels: uv from projecting ``smpl_joints`` with the record's camera, d and xyz
from its camera-frame depths (root-relative), SMPL weight 1, twist from
``angle_twist`` (or from the body model, see
:class:`~hybrik_fast.data.annotations.AnnotatedDataset`).  With only 24 joints
the five leaves get weight 0.  ``root_coord`` is not read.

As the public reader: the crop is the box itself (padding 1.0, where the
other loaders pad by 1.25); the block-listed test sequences (:data:`BLOCK_LIST`)
are skipped and counted; with several ``*{split}*protocol_2.json`` files the
public configuration's (``Sample_trainmin_train_…``, ``Sample_20_test_…``)
is read.
"""
from __future__ import annotations

import os

import numpy as np

from ..skeleton import NUM_BETAS, NUM_SMPL_JOINTS
from .annotations import (AnnotatedDataset, Record, SkipRecord, check_finite, get_array,
                          get_bbox, get_field, get_h36m_joints, project, require_box, smpl_joints_29,
                          to_metres, twist_from_annotation)

#: subjects of each split (facts note: protocol 2)
SUBJECTS = {"train": (1, 5, 6, 7, 8), "test": (9, 11)}
#: test sequences the public reader leaves out (matched in ``file_name``)
BLOCK_LIST = ("s_09_act_05_subact_02_ca", "s_09_act_10_subact_02_ca", "s_09_act_13_subact_01_ca")


class Human36M(AnnotatedDataset):
    """Human3.6M loader.

    Args:
        root:       dataset folder: ``root/annotations/*{split}*protocol_2.json`` and
                    ``root/images/``.
        split:      "train" or "test" (which annotation file to look for).
        annotation: explicit annotation file (overrides the search under root).
        image_dir:  folder that ``file_name`` is relative to (default root/images,
                    or the annotation file's folder's sibling ``images``).
        units:      unit of ``smpl_joints``: "mm" (the format's), "m" or "auto".
        image_size, train, augment, padding, body, seed: see
                    :class:`~hybrik_fast.data.annotations.AnnotatedDataset`;
                    ``train`` defaults to ``split == "train"``.
    """

    PROTOCOL = "h36m"
    SPLITS = tuple(SUBJECTS)
    PATTERNS = ("annotations/*{split}*protocol_2.json",)
    DEFAULT_FILES = {"train": ("Sample_trainmin_train_Human36M_smpl_leaf_twist_protocol_2.json",),
                     "test": ("Sample_20_test_Human36M_smpl_protocol_2.json",)}
    IMAGE_DIR = "images"
    IMAGES_BESIDE_ANNOTATIONS = True
    DEFAULT_UNITS = "mm"
    JOIN = "position"
    PADDING = 1.0

    def _parse(self, r: dict, path, i: int, image_dir, units: str) -> Record:
        file_name = get_field(r, "file_name", path, i)
        blocked = next((b for b in BLOCK_LIST if b in str(file_name)), None)
        if blocked is not None:
            raise SkipRecord(f"block-listed sequence {blocked}")
        bbox = require_box(get_bbox(r, path, i), path, i)
        f = check_finite(get_array(r, "cam_param.f", path, i, [(2,)]), "cam_param.f", path, i)
        c = check_finite(get_array(r, "cam_param.c", path, i, [(2,)]), "cam_param.c", path, i)
        joints = get_array(r, "smpl_joints", path, i, [(29, 3), (24, 3)])
        joints = to_metres(check_finite(joints, "smpl_joints", path, i), units, "smpl_joints",
                           path, i)
        betas = get_array(r, "betas", path, i, [(NUM_BETAS,)])
        thetas = get_array(r, "thetas", path, i, [(NUM_SMPL_JOINTS, 3)])
        twist = weight = None
        if get_field(r, "angle_twist", path, i, default=None) is not None:
            twist, weight = twist_from_annotation(r, path, i)
        xyz, present = smpl_joints_29(joints)
        uv = np.zeros((len(xyz), 2))
        uv[present] = project(xyz[present], f, c)
        rec = Record(image_path=os.path.join(image_dir, file_name), bbox=bbox, uv=uv,
                     uv_weight=present.astype(np.float64), xyz=xyz,
                     xyz_weight=present.astype(np.float64), focal=float(np.mean(f)),
                     betas=check_finite(betas, "betas", path, i),
                     pose=check_finite(thetas, "thetas", path, i), twist=twist,
                     joints_h36m=get_h36m_joints(r, "h36m_joints", path, i, units))
        if weight is not None:
            rec.twist_weight = weight
        return rec
