"""Keypoint sets of the real datasets and where they land in the 29-joint order.

Each ``*_TO_29`` table is ``((source index, 29-joint index), ...)`` and lists
only joints whose anatomical definition matches a joint of
:data:`hybrik_fast.skeleton.JOINT_NAMES` closely enough to be a label for it;
every other 29-joint gets weight 0 from that dataset.  Deliberately left out:
spine points (the datasets' spine/torso/thorax markers sit elsewhere than
SMPL's spine1..3 and neck), face points (nose, eyes, ears: SMPL has no
counterpart), the 3DHP head centre and clavicles, and the hand points.

The hip joints of marker-based sets (H36M, 3DHP) and COCO sit a few
centimetres from SMPL's hip joints; HybrIK uses them as counterparts too,
and so do we.
"""
from __future__ import annotations

import numpy as np

from ..skeleton import JOINT_NAMES, NUM_JOINTS

H36M_17_NAMES: tuple[str, ...] = (
    "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
    "left_ankle", "torso", "thorax", "nose", "head_top", "left_shoulder",
    "left_elbow", "left_wrist", "right_shoulder", "right_elbow", "right_wrist",
)

#: MPI-INF-3DHP's full 28-joint set (the training annotations)
HP3D_28_NAMES: tuple[str, ...] = (
    "spine3", "spine4", "spine2", "spine", "pelvis", "neck", "head", "head_top",
    "left_clavicle", "left_shoulder", "left_elbow", "left_wrist", "left_hand",
    "right_clavicle", "right_shoulder", "right_elbow", "right_wrist", "right_hand",
    "left_hip", "left_knee", "left_ankle", "left_foot", "left_toe",
    "right_hip", "right_knee", "right_ankle", "right_foot", "right_toe",
)

#: MPI-INF-3DHP's 17-joint test set (the order of the test annotations)
HP3D_17_NAMES: tuple[str, ...] = (
    "head_top", "neck", "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist", "right_hip", "right_knee",
    "right_ankle", "left_hip", "left_knee", "left_ankle", "pelvis", "spine", "head",
)

COCO_17_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)

# dataset joint name -> 29-joint name, for the names that have a counterpart
_COUNTERPART = {
    "pelvis": "pelvis", "left_hip": "left_hip", "right_hip": "right_hip",
    "left_knee": "left_knee", "right_knee": "right_knee",
    "left_ankle": "left_ankle", "right_ankle": "right_ankle",
    "left_shoulder": "left_shoulder", "right_shoulder": "right_shoulder",
    "left_elbow": "left_elbow", "right_elbow": "right_elbow",
    "left_wrist": "left_wrist", "right_wrist": "right_wrist",
    "head_top": "head",
    "left_toe": "left_bigtoe", "right_toe": "right_bigtoe",
}


def _table(names: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    return tuple((i, JOINT_NAMES.index(_COUNTERPART[n]))
                 for i, n in enumerate(names) if n in _COUNTERPART)


H36M_17_TO_29 = _table(H36M_17_NAMES)
HP3D_28_TO_29 = _table(HP3D_28_NAMES)
HP3D_17_TO_29 = _table(HP3D_17_NAMES)
COCO_17_TO_29 = _table(COCO_17_NAMES)


def to_29(points: np.ndarray, table: tuple[tuple[int, int], ...]):
    """Scatter dataset keypoints (J, C) into the 29 order.

    Returns ``(out (29, C), present (29,) bool)``: rows without a counterpart
    are zero and not present.
    """
    out = np.zeros((NUM_JOINTS, points.shape[1]), dtype=np.float64)
    present = np.zeros(NUM_JOINTS, dtype=bool)
    src, dst = (np.array(t, dtype=np.int64) for t in zip(*table))
    out[dst] = points[src]
    present[dst] = True
    return out, present
