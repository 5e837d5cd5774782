"""COCO person keypoints (``person_keypoints_{split}2017.json``), 2D only.

Standard COCO format: ``images`` (``id``, ``file_name``) and ``annotations``
(``image_id``, ``bbox`` x, y, w, h, ``keypoints`` 17×3 as x, y, visibility
with 0 = not labelled, 1 = labelled but occluded, 2 = visible, optional
``iscrowd``, ``num_keypoints`` and ``area``).  As the public reader, these
persons are skipped and counted (``skipped_records``), never an error: crowd
annotations, a box empty after clipping to the image (it ends at x + w − 1)
or of zero ``area``, and persons with no labelled keypoint.

Labels: the labelled keypoints (visibility > 0) that have a counterpart in the
29-joint order (:mod:`hybrik_fast.data.joint_maps`; the public map: shoulders,
elbows, wrists, knees, ankles; ``joint_map="extended"`` adds the hips) get uv
weight 1; d, xyz, SMPL and twist weights are 0; the camera is the neutral one.
"""
from __future__ import annotations

import os

import numpy as np

from .annotations import (AnnotatedDataset, AnnotationError, Record, SkipRecord, check_finite,
                          get_array, get_bbox, get_field)
from .joint_maps import COCO_17_NAMES, table, to_29


class COCO2D(AnnotatedDataset):
    """COCO 2D keypoint loader.

    Args:
        root:       dataset folder: ``root/annotations/person_keypoints_{split}2017.json``
                    and ``root/{split}2017/``.
        split:      "train" or "val".
        annotation: explicit annotation file (overrides the search under root).
        image_dir:  folder that ``file_name`` is relative to (default
                    ``root/{split}2017``, or the annotation file's folder).
        image_size, train, augment, padding, body, seed: see
                    :class:`~hybrik_fast.data.annotations.AnnotatedDataset`;
                    ``train`` defaults to ``split == "train"``; ``units`` is
                    not used (2D only).

    ``skipped_records`` counts the persons the public reader leaves out, by reason.
    """

    SPLITS = ("train", "val")
    PATTERNS = ("annotations/person_keypoints_{split}2017.json",)
    IMAGE_DIR = "{split}2017"

    JOIN = "id"

    def _parse(self, ann: dict, path, i: int, image_dir, units: str) -> Record:
        if get_field(ann, "iscrowd", path, i, default=0):
            raise SkipRecord("crowd")
        kp = check_finite(get_array(ann, "keypoints", path, i, [(17, 3)]), "keypoints", path, i)
        if np.any((kp[:, 2] < 0) | (kp[:, 2] > 2)):
            raise AnnotationError(path, i, "keypoints", "visibility must be 0, 1 or 2")
        bbox = get_bbox(ann, path, i)
        if bbox[2] <= 0 or bbox[3] <= 0 or get_field(ann, "area", path, i, default=1.0) <= 0:
            raise SkipRecord("empty box")
        if get_field(ann, "num_keypoints", path, i, default=1) == 0 or not np.any(kp[:, 2] > 0):
            raise SkipRecord("no labelled keypoint")
        uv, present = to_29(kp, table(COCO_17_NAMES, self.joint_map))   # (29, 3): x, y, visibility
        weight = (present & (uv[:, 2] > 0)).astype(np.float64)
        return Record(image_path=os.path.join(image_dir, get_field(ann, "file_name", path, i)),
                      bbox=bbox, uv=uv[:, :2], uv_weight=weight)
