"""The SMPL 24-joint tree and HybrIK's 29-joint extension, as data.

This module is the one source of topology for every other module (reference
ops, C++/CUDA kernels via their Python wrappers, body model, datasets).

Joints 0..23 are SMPL's; 24..28 are the leaves HybrIK adds (head top, the two
middle fingertips, the two big toes).  Every non-leaf joint i >= 1 is solved by
the IK from one designated child ``IK_CHILD[i]``; spine3 (9) is aimed at the
neck (12), so the collars follow spine3's twist.
"""
from __future__ import annotations

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee",
    "spine2", "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot",
    "neck", "left_collar", "right_collar", "jaw", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_thumb", "right_thumb",
    # leaves
    "head", "left_middle", "right_middle", "left_bigtoe", "right_bigtoe",
)

#: parent of each of the 29 joints (-1 for the root)
PARENTS_29: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19,
    20, 21, 15, 22, 23, 10, 11,
)
#: SMPL's kinematic tree (the first 24 entries of PARENTS_29)
PARENTS_24: tuple[int, ...] = PARENTS_29[:24]

#: child used by the IK to aim joint i (-1: leaf, or the pelvis, which is
#: solved from all of PELVIS_CHILDREN by Kabsch)
IK_CHILD: tuple[int, ...] = (
    3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 27, 28, 15, 16, 17, 24, 18, 19, 20, 21,
    22, 23, 25, 26, -1, -1, -1, -1, -1,
)
#: the pelvis rotation is fitted to these children, in this order
PELVIS_CHILDREN: tuple[int, ...] = (3, 1, 2)
#: the five leaves and the SMPL joint each hangs from
LEAF_JOINTS: tuple[int, ...] = (24, 25, 26, 27, 28)
LEAF_PARENTS: tuple[int, ...] = tuple(PARENTS_29[j] for j in LEAF_JOINTS)
#: rest-pose vertex ids of the leaves in the real SMPL mesh (V = 6890)
SMPL_LEAF_VERTICES: tuple[int, ...] = (411, 2445, 5905, 3216, 6617)

NUM_JOINTS = 29
NUM_SMPL_JOINTS = 24
NUM_TWIST = 23  # joints 1..23; joint i uses twist row i - 1
NUM_BETAS = 10
#: pose blend-shape features: the 9 entries of R - I for joints 1..23
NUM_POSE_FEATURES = 9 * (NUM_SMPL_JOINTS - 1)  # 207

#: left/right pairs, for flip augmentation
FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    (1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21),
    (22, 23), (25, 26), (27, 28),
)


def _depths(parents: tuple[int, ...]) -> tuple[int, ...]:
    depth = []
    for i, p in enumerate(parents):
        depth.append(0 if p < 0 else depth[p] + 1)
    return tuple(depth)


#: depth of each joint in the tree (pelvis 0)
DEPTHS_29: tuple[int, ...] = _depths(PARENTS_29)


def _check() -> None:
    assert len(JOINT_NAMES) == len(PARENTS_29) == len(IK_CHILD) == NUM_JOINTS
    for i, p in enumerate(PARENTS_29):
        assert p < i, "joints must be in tree order"
    for i in range(1, NUM_SMPL_JOINTS):
        assert PARENTS_29[IK_CHILD[i]] == i, (i, IK_CHILD[i])
    for c in PELVIS_CHILDREN:
        assert PARENTS_29[c] == 0
    for j in LEAF_JOINTS:
        assert IK_CHILD[j] == -1 and j not in PARENTS_29


_check()
