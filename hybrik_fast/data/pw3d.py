"""3DPW in HybrIK's COCO-style annotation format (``3DPW_{split}*.json``).

File: ``images`` (``id``, ``sequence``, ``file_name``, ``cam_param{focal,
princpt}``) and ``annotations`` joined by ``image_id``.  Per annotation:

    bbox                    x, y, w, h, pixels
    smpl_param{shape, pose} betas (10) and axis-angle pose (24×3 or 72), root
                            in the camera frame
    smpl_joint_cam          24×3 (or 29×3) SMPL joints, camera frame
    smpl_joint_img          24×2 or 24×3 (or 29) pixel coordinates (a third
                            column, depth, is ignored)

Units of ``smpl_joint_cam``: the facts note does not fix them and the public
derivatives of the loader disagree (some scale by 1000 "m -> mm", some not),
so ``units="auto"`` (default) reads them as millimetres when the root depth
exceeds 100 and as metres otherwise; pass "m" or "mm" to force.

As the public reader: annotations find their image by ``image_id``; a box
(ending at x + w − 1, clipped to the image's ``width`` × ``height``) under
5 px wide or high skips the record (counted in ``skipped_records``);
``3DPW_{split}_new.json`` is read where several files match.
``h36m_joints`` (17×3, optional, same units as ``smpl_joint_cam``) is the
evaluation ground truth.

Labels: uv from ``smpl_joint_img``, xyz and d from ``smpl_joint_cam``; joints
24..28 have weight 0 unless 29 joints are given; SMPL weight 1; twist from an
optional ``angle_twist`` or the body model, else weight 0.  Images are read
from ``image_dir/sequence/file_name`` (default image_dir = root/imageFiles).
"""
from __future__ import annotations

import os

import numpy as np

from ..skeleton import NUM_BETAS, NUM_SMPL_JOINTS
from .annotations import (AnnotatedDataset, AnnotationError, Record, SkipRecord, check_finite,
                          get_array, get_bbox, get_field, get_h36m_joints,
                          smpl_joints_29, to_metres, twist_from_annotation)

#: the public reader skips boxes narrower or lower than this after clipping, pixels
MIN_BOX = 5.0


class PW3D(AnnotatedDataset):
    """3DPW loader.

    Args:
        root:       dataset folder: ``root/json/3DPW_{split}*.json`` (or
                    ``root/annotations/``) and ``root/imageFiles/<sequence>/``.
        split:      "train", "validation" or "test".
        annotation: explicit annotation file (overrides the search under root).
        image_dir:  folder holding the ``<sequence>/`` image folders
                    (default root/imageFiles, or the annotation folder's sibling).
        units:      unit of ``smpl_joint_cam``: "auto" (default), "m" or "mm".
        image_size, train, augment, padding, body, seed: see
                    :class:`~hybrik_fast.data.annotations.AnnotatedDataset`;
                    ``train`` defaults to ``split == "train"``.
    """

    PROTOCOL = "3dpw"
    SPLITS = ("train", "validation", "test")
    PATTERNS = ("json/3DPW_{split}*.json", "annotations/3DPW_{split}*.json")
    IMAGE_DIR = "imageFiles"
    IMAGES_BESIDE_ANNOTATIONS = True
    DEFAULT_UNITS = "auto"
    DEFAULT_FILES = {"train": ("3DPW_train_new.json",), "test": ("3DPW_test_new.json",)}
    JOIN = "id"

    def _parse(self, r: dict, path, i: int, image_dir, units: str) -> Record:
        sequence = get_field(r, "sequence", path, i)
        file_name = get_field(r, "file_name", path, i)
        bbox = get_bbox(r, path, i)
        if bbox[2] < MIN_BOX or bbox[3] < MIN_BOX:
            raise SkipRecord(f"box under {MIN_BOX:g} px after clipping")
        focal = check_finite(get_array(r, "cam_param.focal", path, i, [(2,), (1,)]),
                             "cam_param.focal", path, i)
        check_finite(get_array(r, "cam_param.princpt", path, i, [(2,)]), "cam_param.princpt", path, i)
        betas = check_finite(get_array(r, "smpl_param.shape", path, i, [(NUM_BETAS,)]),
                             "smpl_param.shape", path, i)
        pose = check_finite(get_array(r, "smpl_param.pose", path, i, [(NUM_SMPL_JOINTS, 3)]),
                            "smpl_param.pose", path, i)
        cam = get_array(r, "smpl_joint_cam", path, i, [(29, 3), (24, 3)])
        cam = to_metres(check_finite(cam, "smpl_joint_cam", path, i), units, "smpl_joint_cam",
                        path, i)
        img = check_finite(get_array(r, "smpl_joint_img", path, i,
                                     [(29, 3), (24, 3), (29, 2), (24, 2)]), "smpl_joint_img", path, i)
        if len(img) > len(cam):
            raise AnnotationError(path, i, "smpl_joint_img",
                                  f"{len(img)} joints but smpl_joint_cam has {len(cam)}")
        xyz, present = smpl_joints_29(cam)
        uv, uv_present = smpl_joints_29(img[:, :2])
        twist = weight = None
        if get_field(r, "angle_twist", path, i, default=None) is not None:
            twist, weight = twist_from_annotation(r, path, i)
        rec = Record(image_path=os.path.join(image_dir, str(sequence), file_name), bbox=bbox,
                     uv=uv, uv_weight=uv_present.astype(np.float64), xyz=xyz,
                     xyz_weight=present.astype(np.float64), focal=float(np.mean(focal)),
                     betas=betas, pose=pose, twist=twist,
                     joints_h36m=get_h36m_joints(r, "h36m_joints", path, i, units))
        if weight is not None:
            rec.twist_weight = weight
        return rec
