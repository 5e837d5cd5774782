"""COCO person keypoints (``person_keypoints_{split}2017.json``), 2D only.

Standard COCO format: ``images`` (``id``, ``file_name``) and ``annotations``
(``image_id``, ``bbox`` x, y, w, h, ``keypoints`` 17×3 as x, y, visibility
with 0 = not labelled, 1 = labelled but occluded, 2 = visible, optional
``iscrowd`` and ``num_keypoints``).  Crowd annotations and persons without a
labelled keypoint that maps into the 29 joints are skipped (after validation).

Labels: the labelled keypoints (visibility > 0) that have a counterpart in the
29-joint order (:data:`~hybrik_fast.data.joint_maps.COCO_17_TO_29`: shoulders,
elbows, wrists, hips, knees, ankles) get uv weight 1; d, xyz, SMPL and twist
weights are 0; the camera is the neutral one.
"""
from __future__ import annotations

import os

import numpy as np

from .annotations import (AnnotatedDataset, AnnotationError, Record, check_finite,
                          get_array, get_bbox, get_field)
from .joint_maps import COCO_17_TO_29, to_29


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

    ``num_skipped_persons`` counts the crowd / unlabelled persons left out.
    """

    SPLITS = ("train", "val")
    PATTERNS = ("annotations/person_keypoints_{split}2017.json",)
    IMAGE_DIR = "{split}2017"

    def _records(self, db, path: str, image_dir: str, units: str) -> list[Record]:
        if not isinstance(db, dict):
            raise AnnotationError(path, None, "images", "the file must hold a COCO object")
        for key in ("images", "annotations"):
            if not isinstance(db.get(key), list):
                raise AnnotationError(path, None, key, "missing or not a list")
        files = {}
        for j, img in enumerate(db["images"]):
            files[get_field(img, "id", path, f"images[{j}]")] = \
                get_field(img, "file_name", path, f"images[{j}]")
        records, self.num_skipped_persons = [], 0
        for i, ann in enumerate(db["annotations"]):
            image_id = get_field(ann, "image_id", path, i)
            if image_id not in files:
                raise AnnotationError(path, i, "image_id", f"no image with id {image_id!r}")
            bbox = get_bbox(ann, path, i)
            kp = check_finite(get_array(ann, "keypoints", path, i, [(17, 3)]), "keypoints", path, i)
            if np.any((kp[:, 2] < 0) | (kp[:, 2] > 2)):
                raise AnnotationError(path, i, "keypoints", "visibility must be 0, 1 or 2")
            uv, present = to_29(kp, COCO_17_TO_29)                 # (29, 3): x, y, visibility
            weight = (present & (uv[:, 2] > 0)).astype(np.float64)
            if get_field(ann, "iscrowd", path, i, default=0) or not weight.any():
                self.num_skipped_persons += 1
                continue
            records.append(Record(image_path=os.path.join(image_dir, files[image_id]), bbox=bbox,
                                  uv=uv[:, :2], uv_weight=weight))
        return records
