"""Fixture files in the public annotation layouts, for the loader, evaluation and training tests.

Each ``*_db`` writes a dataset's annotation object the way the public HybrIK
readers expect it (keys, nesting, units), for synthetic people whose labels
are known exactly; :func:`write_roots` lays out one folder per dataset with
images in which a bright dot marks the left wrist.
"""
import copy
import json
import math

import cv2
import numpy as np
import torch

from hybrik_fast.data.joint_maps import HP3D_28_NAMES
from hybrik_fast.ik import forward_kinematics, twist_angles
from hybrik_fast.poses import axis_angle_to_matrix, sample_axis_angles

W, H = 64, 48              # fixture image size
S = 64                     # crop size in the tests
FOCAL = np.array([110.0, 112.0])
DOT_JOINT = 20             # left wrist: a bright dot is drawn at its pixel


def person(body, seed):
    """A posed synthetic person 5 m in front of the camera, its pixels and labels."""
    g = torch.Generator().manual_seed(seed)
    aa = sample_axis_angles(1, g, scale=0.5)[0]                       # (24, 3)
    aa[0] = torch.tensor([math.pi, 0.0, 0.0])                         # upright: SMPL y up -> camera y down
    betas = 0.5 * torch.randn(1, 10, generator=g, dtype=torch.float64)
    rest = body.rest_joints(betas)
    R = axis_angle_to_matrix(aa)[None]
    joints = forward_kinematics(R, rest, backend="reference")[0].numpy() + [0.1, -0.1, 5.0]
    tw = twist_angles(R, rest, backend="reference")[0].numpy()        # (23, 2)
    # principal point chosen so the dot joint lands exactly on a pixel centre
    p = joints[DOT_JOINT, :2] / joints[DOT_JOINT, 2] * FOCAL
    princpt = np.round(p + [W / 2, H / 2]) - p
    uv = joints[:, :2] / joints[:, 2:] * FOCAL + princpt
    lo, hi = uv.min(0), uv.max(0)
    bbox = [lo[0] - 2, lo[1] - 2, hi[0] - lo[0] + 4, hi[1] - lo[1] + 4]
    return dict(joints=joints, uv=uv, aa=aa.numpy(), betas=betas[0].numpy(), twist=tw,
                princpt=princpt, bbox=bbox)


def dot_image(path, pixels):
    img = np.zeros((H, W, 3), np.uint8)
    img[:, :, 2] = 40                                                 # a little blue everywhere
    for x, y in pixels:
        x, y = int(round(x)), int(round(y))
        img[y - 1:y + 2, x - 1:x + 2] = 255
    assert cv2.imwrite(str(path), img)


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def h36m_db(people, n_joints=29):
    images, anns = [], []
    for k, p in enumerate(people):
        angle = np.arctan2(p["twist"][:, 1], p["twist"][:, 0])
        angle[3] = -999.0
        images.append({"file_name": f"s_01/img_{k}.png", "width": W, "height": H,
                       "cam_param": {"f": FOCAL.tolist(), "c": p["princpt"].tolist()}})
        anns.append({"bbox": p["bbox"], "smpl_joints": (p["joints"][:n_joints] * 1000).tolist(),
                     "betas": p["betas"].tolist(), "thetas": p["aa"].tolist(),
                     "root_coord": (p["joints"][0] * 1000).tolist(),
                     "angle_twist": {"angle": angle.tolist(), "cos": p["twist"][:, 0].tolist(),
                                     "sin": p["twist"][:, 1].tolist()}})
    return {"images": images, "annotations": anns}


def pw3d_db(people):
    images, anns = [], []
    for k, p in enumerate(people):
        images.append({"id": 100 + k, "sequence": "downtown_walk_00", "file_name": f"image_{k:05d}.jpg",
                       "width": W, "height": H,
                       "cam_param": {"focal": FOCAL.tolist(), "princpt": p["princpt"].tolist()}})
        img = np.concatenate([p["uv"][:24], p["joints"][:24, 2:]], 1)
        anns.append({"id": k, "image_id": 100 + k, "bbox": p["bbox"],
                     "smpl_param": {"shape": p["betas"].tolist(), "pose": p["aa"].ravel().tolist(),
                                    "trans": [0, 0, 0], "gender": "neutral"},
                     "smpl_joint_cam": p["joints"][:24].tolist(),     # metres
                     "smpl_joint_img": img.tolist(), "h36m_joints": np.zeros((17, 3)).tolist()})
    return {"images": images, "annotations": anns}


_HP3D_FROM_29 = {"pelvis": 0, "left_hip": 1, "right_hip": 2, "left_knee": 4, "right_knee": 5,
                 "left_ankle": 7, "right_ankle": 8, "left_shoulder": 16, "right_shoulder": 17,
                 "left_elbow": 18, "right_elbow": 19, "left_wrist": 20, "right_wrist": 21,
                 "head_top": 24, "left_toe": 27, "right_toe": 28, "neck": 12, "head": 15}


def hp3d_db(people):
    images, anns = [], []
    for k, p in enumerate(people):
        kp = np.array([p["joints"][_HP3D_FROM_29.get(n, 3)] for n in HP3D_28_NAMES]) * 1000
        K = [[FOCAL[0], 0, p["princpt"][0]], [0, FOCAL[1], p["princpt"][1]], [0, 0, 1]]
        images.append({"id": k, "file_name": f"S1/Seq1/imageSequence/img_{k}.png",
                       "width": W, "height": H, "cam_param": {"intrinsic_param": K}})
        anns.append({"id": k, "image_id": k, "bbox": p["bbox"], "keypoints_cam": kp.tolist(),
                     "activity_id": 1})
    return {"images": images, "annotations": anns}


_COCO_FROM_29 = {5: 16, 6: 17, 7: 18, 8: 19, 9: 20, 10: 21, 11: 1, 12: 2, 13: 4, 14: 5, 15: 7, 16: 8}


def coco_db(people):
    images, anns = [], []
    for k, p in enumerate(people):
        images.append({"id": 7 + k, "file_name": f"{k:012d}.png", "width": W, "height": H})
        kp = np.zeros((17, 3))
        for c, j in _COCO_FROM_29.items():
            kp[c] = [*np.round(p["uv"][j]), 2]
        kp[13, 2] = 1                   # labelled but occluded: still a label
        kp[16] = 0                      # not labelled
        anns.append({"id": k, "image_id": 7 + k, "bbox": p["bbox"], "keypoints": kp.ravel().tolist(),
                     "num_keypoints": 11, "iscrowd": 0, "category_id": 1, "area": 100.0})
    crowd = copy.deepcopy(anns[0])
    crowd.update(id=99, iscrowd=1)
    empty = copy.deepcopy(anns[0])
    empty.update(id=98, keypoints=[0] * 51, num_keypoints=0)
    return {"images": images, "annotations": anns + [crowd, empty], "categories": [{"id": 1}]}


def write_roots(base, people):
    """One root folder per dataset under ``base``, in each format's default layout, plus images."""
    h36m, pw3d, hp3d, coco = (base / n for n in ("h36m", "pw3d", "3dhp", "coco"))
    write_json(h36m / "annotations" / "Sample_5_train_Human36M_smpl_leaf_twist_protocol_2.json",
           h36m_db(people))
    write_json(pw3d / "json" / "3DPW_train_new.json", pw3d_db(people))
    write_json(hp3d / "annotation_mpi_inf_3dhp_train_v2.json", hp3d_db(people))
    write_json(coco / "annotations" / "person_keypoints_train2017.json", coco_db(people))
    for k, p in enumerate(people):
        dot = [p["uv"][DOT_JOINT]]
        for path in (h36m / "images" / "s_01" / f"img_{k}.png",
                     pw3d / "imageFiles" / "downtown_walk_00" / f"image_{k:05d}.jpg",
                     hp3d / "mpi_inf_3dhp_train_set" / "S1" / "Seq1" / "imageSequence" / f"img_{k}.png",
                     coco / "train2017" / f"{k:012d}.png"):
            path.parent.mkdir(parents=True, exist_ok=True)
            dot_image(path, dot)
    return {"h36m": h36m, "pw3d": pw3d, "3dhp": hp3d, "coco": coco}
