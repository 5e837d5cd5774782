"""MPI-INF-3DHP in HybrIK's annotation format (``annotation_mpi_inf_3dhp_{split}*.json``).

File: ``images`` and ``annotations``, paired by position as the public
reader pairs them.  Per record:

    file_name                  image path relative to ``image_dir``
    bbox                       x, y, w, h, pixels
    cam_param.intrinsic_param  K as 3×3, 3×4 or 4×4 (fx = K00, fy = K11,
                               cx = K02, cy = K12), or the 4 values fx, fy, cx, cy
    keypoints_cam              28×3 (training set order) or 17×3 (test set
                               order), camera frame, millimetres (units=)
    activity_id                optional, not used

Labels: the keypoints are mapped into the 29-joint order where a counterpart
exists (:mod:`hybrik_fast.data.joint_maps`, ``joint_map=``: the public map by
default; others weight 0); uv from
projecting them with K, xyz and d root-relative at the pelvis.  No SMPL:
smpl_weight 0 and twist weight 0.  A test record's 17 keypoints, reordered
into the H36M order, are its evaluation joints (``Record.joints_h36m``).
Where several files match, ``…_train_v2.json`` / ``…_test.json`` is read
(the public ResNet-34 configuration's; the HRNet one names ``train_v3``: pass
``annotation=``).
"""
from __future__ import annotations

import os

import numpy as np

from .annotations import (AnnotatedDataset, AnnotationError, Record, check_finite,
                          get_array, get_bbox, get_field, get_h36m_joints,
                          project, require_box, to_metres)
from .joint_maps import H36M_EVAL_FROM_HP3D_17, HP3D_17_NAMES, HP3D_28_NAMES, table, to_29


def _intrinsics(r: dict, path, i: int):
    name = "cam_param.intrinsic_param"
    K = check_finite(get_array(r, name, path, i, [(3, 3), (3, 4), (4, 4), (4,)]), name, path, i)
    if K.ndim == 1:
        focal, princpt = K[:2], K[2:]
    else:
        focal, princpt = np.array([K[0, 0], K[1, 1]]), np.array([K[0, 2], K[1, 2]])
    if np.any(focal <= 0):
        raise AnnotationError(path, i, name, f"focal lengths must be > 0, got {focal.tolist()}")
    return focal, princpt


class MPIINF3DHP(AnnotatedDataset):
    """MPI-INF-3DHP loader.

    Args:
        root:       dataset folder: ``root/annotation_mpi_inf_3dhp_{split}*.json`` (or under
                    ``root/annotations/``) and ``root/mpi_inf_3dhp_{split}_set/``.
        split:      "train" (28 joints per record) or "test" (17); a file may
                    mix both counts, each record is mapped by its own count.
        annotation: explicit annotation file (overrides the search under root).
        image_dir:  folder that ``file_name`` is relative to (default
                    ``root/mpi_inf_3dhp_{split}_set``, or the annotation file's folder).
        units:      unit of ``keypoints_cam``: "mm" (the format's), "m" or "auto".
        image_size, train, augment, padding, body, seed: see
                    :class:`~hybrik_fast.data.annotations.AnnotatedDataset`;
                    ``train`` defaults to ``split == "train"``.
    """

    PROTOCOL = "3dhp"
    SPLITS = ("train", "test")
    PATTERNS = ("annotation_mpi_inf_3dhp_{split}*.json",
                "annotations/annotation_mpi_inf_3dhp_{split}*.json")
    IMAGE_DIR = "mpi_inf_3dhp_{split}_set"
    DEFAULT_UNITS = "mm"
    DEFAULT_FILES = {"train": ("annotation_mpi_inf_3dhp_train_v2.json",),
                     "test": ("annotation_mpi_inf_3dhp_test.json",)}
    JOIN = "position"

    def _parse(self, r: dict, path, i: int, image_dir, units: str) -> Record:
        file_name = get_field(r, "file_name", path, i)
        bbox = require_box(get_bbox(r, path, i), path, i)
        focal, princpt = _intrinsics(r, path, i)
        kp = check_finite(get_array(r, "keypoints_cam", path, i, [(28, 3), (17, 3)]),
                          "keypoints_cam", path, i)
        names = HP3D_28_NAMES if len(kp) == 28 else HP3D_17_NAMES
        xyz, present = to_29(kp, table(names, self.joint_map))
        xyz = to_metres(xyz, units, "keypoints_cam", path, i)       # joint 0 is the pelvis
        h36m = None                                                 # the test set's: H36M order
        if len(kp) == 17:
            h36m = get_h36m_joints(r, "keypoints_cam", path, i, units, H36M_EVAL_FROM_HP3D_17)
        uv = np.zeros((len(xyz), 2))
        uv[present] = project(xyz[present], focal, princpt)
        w = present.astype(np.float64)
        return Record(image_path=os.path.join(image_dir, file_name), bbox=bbox, uv=uv,
                      uv_weight=w, xyz=xyz, xyz_weight=w.copy(), focal=float(np.mean(focal)),
                      joints_h36m=h36m)
