"""Keypoint sets of the real datasets and where they land in the 29-joint order.

Each table is ``((source index, 29-joint index), ...)``; every 29-joint
without an entry gets weight 0 from that dataset.  Two maps:

``"public"`` (the default, and that of the paper presets): the public
    HybrIK code's.  MPI-INF-3DHP gives the pelvis, knees, ankles, neck,
    shoulders, elbows and wrists (29-joint indices 0, 4, 5, 7, 8, 12,
    16..21); COCO the knees, ankles, shoulders, elbows and wrists.  Neither
    gives the hips: the hip markers of 3DHP and COCO sit a few centimetres
    from SMPL's hip joints.
``"extended"``: adds the joints whose definition is close enough to be a
    label: the hips (3DHP and COCO), the 3DHP head top (29-joint "head", the
    top of the head) and big toes.  A deliberate departure from the public
    recipe; choose it with the loaders' ``joint_map="extended"``.

Never mapped: the datasets' spine/torso/thorax markers (they sit elsewhere
than SMPL's spine1..3), face points (nose, eyes, ears: SMPL has no
counterpart), the 3DHP head centre and clavicles, and the hand points.

H36M_EVAL_FROM_HP3D_17 reorders the 3DHP test set's 17 joints into the H36M
order that the evaluation protocol uses (the public reader's map).
"""
from __future__ import annotations

import numpy as np

from ..skeleton import JOINT_NAMES, NUM_JOINTS

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

#: dataset joint name -> 29-joint name, the public map
_PUBLIC = {
    "pelvis": "pelvis", "neck": "neck",
    "left_knee": "left_knee", "right_knee": "right_knee",
    "left_ankle": "left_ankle", "right_ankle": "right_ankle",
    "left_shoulder": "left_shoulder", "right_shoulder": "right_shoulder",
    "left_elbow": "left_elbow", "right_elbow": "right_elbow",
    "left_wrist": "left_wrist", "right_wrist": "right_wrist",
}
#: what the extended map adds
_EXTENDED = {**_PUBLIC, "left_hip": "left_hip", "right_hip": "right_hip", "head_top": "head",
             "left_toe": "left_bigtoe", "right_toe": "right_bigtoe"}
JOINT_MAPS = ("public", "extended")


def table(names: tuple[str, ...], joint_map: str = "public") -> tuple[tuple[int, int], ...]:
    """(source index, 29-joint index) pairs of the keypoint set ``names`` under ``joint_map``."""
    if joint_map not in JOINT_MAPS:
        raise ValueError(f"joint_map must be one of {JOINT_MAPS}, got {joint_map!r}")
    counterpart = _PUBLIC if joint_map == "public" else _EXTENDED
    return tuple((i, JOINT_NAMES.index(counterpart[n]))
                 for i, n in enumerate(names) if n in counterpart)


#: H36M-order index k of the evaluation joints is the 3DHP test set's joint H36M_EVAL_FROM_HP3D_17[k]
#: (the H36M joint names as the public code writes them)
H36M_EVAL_FROM_HP3D_17: tuple[int, ...] = tuple(
    HP3D_17_NAMES.index(n) for n in ("pelvis", "left_hip", "left_knee", "left_ankle", "right_hip",
                                     "right_knee", "right_ankle", "spine", "neck", "head",
                                     "head_top", "left_shoulder", "left_elbow", "left_wrist",
                                     "right_shoulder", "right_elbow", "right_wrist"))


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
