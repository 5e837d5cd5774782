"""Real-dataset loaders on tiny fixture files: format, labels, augmentation, errors."""
import copy
import json
import math
import os
import warnings

import cv2
import numpy as np
import pytest
import torch

from hybrik_fast import BodyModel, camera
from hybrik_fast.data import COCO2D, MPIINF3DHP, PW3D, Human36M, MixedDataset
from hybrik_fast.data.annotations import AnnotationError
from hybrik_fast.data.common import SAMPLE_KEYS, denormalize_image
from hybrik_fast.data.joint_maps import HP3D_28_NAMES
from hybrik_fast.data.transforms import (FLIP_PERM_24, Augment, apply_affine, camera_rotation,
                                         crop_matrix, flip_rotmats, flip_twist)
from hybrik_fast.ik import forward_kinematics, twist_angles
from hybrik_fast.poses import axis_angle_to_matrix, sample_axis_angles
from hybrik_fast.skeleton import NUM_JOINTS

W, H = 64, 48              # fixture image size
S = 64                     # crop size in the tests
FOCAL = np.array([110.0, 112.0])
DOT_JOINT = 20             # left wrist: a bright dot is drawn at its pixel
SHAPES = {"image": (3, S, S), "joints_uvd": (29, 3), "joints_uvd_weight": (29, 3),
          "joints_xyz": (29, 3), "joints_xyz_weight": (29, 3), "betas": (10,),
          "rotmats": (24, 3, 3), "twist": (23, 2), "twist_weight": (23, 2),
          "smpl_weight": (1,), "bbox": (4,), "camera": (3,), "index": ()}


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def body():
    return BodyModel.synthetic(dtype=torch.float64)


def _person(body, seed):
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


def _dot_image(path, pixels):
    img = np.zeros((H, W, 3), np.uint8)
    img[:, :, 2] = 40                                                 # a little blue everywhere
    for x, y in pixels:
        x, y = int(round(x)), int(round(y))
        img[y - 1:y + 2, x - 1:x + 2] = 255
    assert cv2.imwrite(str(path), img)


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def _h36m_db(people, n_joints=29):
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


def _pw3d_db(people):
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


def _hp3d_db(people):
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


def _coco_db(people):
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


@pytest.fixture(scope="module")
def people(body):
    return [_person(body, seed) for seed in (1, 2)]


@pytest.fixture(scope="module")
def roots(tmp_path_factory, people):
    """One root folder per dataset, in each format's default layout, plus images."""
    base = tmp_path_factory.mktemp("data")
    h36m, pw3d, hp3d, coco = (base / n for n in ("h36m", "pw3d", "3dhp", "coco"))
    _write(h36m / "annotations" / "Sample_5_train_Human36M_smpl_leaf_twist_protocol_2.json",
           _h36m_db(people))
    _write(pw3d / "json" / "3DPW_train_new.json", _pw3d_db(people))
    _write(hp3d / "annotation_mpi_inf_3dhp_train_v2.json", _hp3d_db(people))
    _write(coco / "annotations" / "person_keypoints_train2017.json", _coco_db(people))
    for k, p in enumerate(people):
        dot = [p["uv"][DOT_JOINT]]
        for path in (h36m / "images" / "s_01" / f"img_{k}.png",
                     pw3d / "imageFiles" / "downtown_walk_00" / f"image_{k:05d}.jpg",
                     hp3d / "mpi_inf_3dhp_train_set" / "S1" / "Seq1" / "imageSequence" / f"img_{k}.png",
                     coco / "train2017" / f"{k:012d}.png"):
            path.parent.mkdir(parents=True, exist_ok=True)
            _dot_image(path, dot)
    return {"h36m": h36m, "pw3d": pw3d, "3dhp": hp3d, "coco": coco}


LOADERS = {"h36m": Human36M, "pw3d": PW3D, "3dhp": MPIINF3DHP, "coco": COCO2D}


def _load(roots, name, **kw):
    return LOADERS[name](roots[name], split="train", image_size=S, **kw)


def _dot_centroid(sample):
    """Crop pixel (x, y) of the bright dot: the centroid of the bright pixels."""
    rgb = denormalize_image(sample["image"]).astype(np.float64)
    bright = np.clip(rgb[..., 0] - 60.0, 0, None)
    ys, xs = np.mgrid[:S, :S]
    return np.array([(bright * xs).sum(), (bright * ys).sum()]) / bright.sum()


def _uv_pixel(sample, j):
    return (sample["joints_uvd"][j, :2].numpy() + 0.5) * S


# ---------------------------------------------------------------- every loader

@pytest.mark.parametrize("name", list(LOADERS))
@pytest.mark.parametrize("train", [False, True])
def test_sample_dict(roots, name, train):
    ds = _load(roots, name, train=train, seed=3)
    assert len(ds) == 2
    for i in range(len(ds)):
        s = ds[i]
        assert set(s) == set(SAMPLE_KEYS)
        for k, shape in SHAPES.items():
            assert tuple(s[k].shape) == shape, k
            assert torch.isfinite(s[k].float()).all(), k
        assert s["index"].dtype == torch.int64 and int(s["index"]) == i
        assert s["image"].dtype == torch.float32
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    assert batch["joints_uvd"].shape == (2, 29, 3)


def test_label_weights_per_format(roots):
    h36m, pw3d, hp3d, coco = (_load(roots, n, train=False)[0] for n in LOADERS)
    # H36M: 29 joints, all labelled in 3D; SMPL and twist (−999 -> weight 0)
    assert h36m["joints_xyz_weight"].all() and h36m["smpl_weight"].item() == 1
    assert h36m["joints_uvd_weight"].all()
    assert h36m["twist_weight"][3].sum() == 0 and h36m["twist_weight"].sum() == 2 * 22
    # 3DPW: 24 joints -> leaves weight 0; no angle_twist and no body -> twist weight 0
    assert pw3d["joints_xyz_weight"][:24].all() and not pw3d["joints_xyz_weight"][24:].any()
    assert not pw3d["joints_uvd_weight"][24:].any() and pw3d["smpl_weight"].item() == 1
    assert pw3d["twist_weight"].sum() == 0
    # 3DHP: mapped joints only, no SMPL
    mapped = [0, 1, 2, 4, 5, 7, 8, 16, 17, 18, 19, 20, 21, 24, 27, 28]
    expect = torch.zeros(NUM_JOINTS)
    expect[mapped] = 1
    assert torch.equal(hp3d["joints_xyz_weight"][:, 0], expect)
    assert hp3d["smpl_weight"].item() == 0 and hp3d["twist_weight"].sum() == 0
    # COCO: uv from visibility, no depth, no 3D, neutral camera
    w = coco["joints_uvd_weight"]
    expect = torch.zeros(NUM_JOINTS)
    expect[[16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7]] = 1          # right ankle (8) unlabelled
    assert torch.equal(w[:, 0], expect) and torch.equal(w[:, 1], expect)
    assert w[:, 2].sum() == 0 and coco["joints_xyz_weight"].sum() == 0
    assert coco["smpl_weight"].item() == 0
    assert torch.allclose(coco["camera"], torch.tensor([0.9, 0.0, 0.0]))


def test_coco_skips_crowd_and_unlabelled(roots):
    ds = _load(roots, "coco")
    assert len(ds) == 2 and ds.num_skipped_persons == 2


@pytest.mark.parametrize("name", list(LOADERS))
def test_uv_label_lands_on_the_dot(roots, name):
    ds = _load(roots, name, train=False)
    for i in range(len(ds)):
        s = ds[i]
        assert np.abs(_dot_centroid(s) - _uv_pixel(s, DOT_JOINT)).max() < 0.35


@pytest.mark.parametrize("name", ["h36m", "pw3d", "3dhp"])
def test_3d_labels_match_the_source(roots, people, name):
    s = _load(roots, name, train=False)[0]
    w = s["joints_xyz_weight"][:, 0] > 0
    joints = people[0]["joints"]
    ref = torch.from_numpy(joints - joints[0]).float()
    if name == "3dhp":      # index 0 is the pelvis in both orders; compare the mapped ones
        ref = ref * w[:, None]
    assert torch.allclose(s["joints_xyz"][w], ref[w], atol=1e-5)
    assert torch.allclose(s["joints_uvd"][w, 2], ref[w, 2] / camera.DEPTH_RANGE, atol=1e-5)


def test_camera_label_back_projects(roots, people):
    """back_project(uvd, camera) ≈ joints_xyz: the documented approximation (a few cm)."""
    for name in ("h36m", "pw3d"):
        s = _load(roots, name, train=False)[0]
        # s = f / (z_root · L): one metre at the root depth, in crop widths
        side = s["bbox"][2].item()
        assert s["camera"][0].item() == pytest.approx(FOCAL.mean() / (5.0 * side), rel=1e-5)
        xyz = camera.back_project(s["joints_uvd"][None], s["camera"][None])[0]
        w = s["joints_xyz_weight"][:, 0] > 0
        assert (xyz[w] - s["joints_xyz"][w]).norm(dim=-1).max() < 0.05


def test_h36m_24_joints_leaves_weight_zero(tmp_path, people, roots):
    path = _write(tmp_path / "a.json", _h36m_db(people, n_joints=24))
    s = Human36M(annotation=path, image_dir=roots["h36m"] / "images", image_size=S, train=False)[0]
    assert s["joints_xyz_weight"][:24].all() and not s["joints_xyz_weight"][24:].any()
    assert not s["joints_uvd_weight"][24:].any()


# ---------------------------------------------------------------- augmentation

def test_eval_is_deterministic_and_train_with_seed_too(roots):
    ev = _load(roots, "h36m", train=False)
    assert torch.equal(ev[0]["image"], ev[0]["image"])
    a, b = _load(roots, "h36m", train=True, seed=5), _load(roots, "h36m", train=True, seed=5)
    assert torch.equal(a[1]["joints_uvd"], b[1]["joints_uvd"])
    assert a.augmentation(0) != a.augmentation(1)


def test_fk_of_labels_matches_joints_under_any_augmentation(roots, body):
    """FK(rotmats, rest(betas)) == joints_xyz also after rotation and flip (3D labels move together)."""
    ds = _load(roots, "h36m", train=True)
    for aug in (Augment(), Augment(rotation=25.0), Augment(flip=True),
                Augment(scale=1.2, rotation=-30.0, flip=True, colour=(0.9, 1.1, 1.0))):
        for i in range(len(ds)):
            s = ds.sample(i, aug)
            rest = body.rest_joints(s["betas"].double()[None])
            fk = forward_kinematics(s["rotmats"].double()[None], rest, backend="reference")[0]
            assert torch.allclose(fk.float(), s["joints_xyz"], atol=2e-5), aug


@pytest.mark.parametrize("name", list(LOADERS))
def test_flip_swaps_joints_and_mirrors(roots, name):
    ds = _load(roots, name, train=True)
    ev, fl = ds.sample(0), ds.sample(0, Augment(flip=True))
    mirror = DOT_JOINT + 1                                           # right wrist
    # the dot (drawn at the left wrist) is now where the right wrist's label says
    assert np.abs(_dot_centroid(fl) - _uv_pixel(fl, mirror)).max() < 0.35
    assert torch.allclose(fl["joints_uvd"][mirror, 0], -ev["joints_uvd"][DOT_JOINT, 0], atol=1e-5)
    assert torch.equal(fl["joints_uvd_weight"][mirror], ev["joints_uvd_weight"][DOT_JOINT])
    if name != "coco":
        assert torch.allclose(fl["joints_xyz"][mirror],
                              ev["joints_xyz"][DOT_JOINT] * torch.tensor([-1.0, 1, 1]), atol=1e-6)
        assert torch.allclose(fl["camera"][1:], ev["camera"][1:] * torch.tensor([-1.0, 1]), atol=1e-5)


def test_flip_rotmats_negates_y_and_z_of_axis_angle():
    aa = sample_axis_angles(4, torch.Generator().manual_seed(4))            # (4, 24, 3)
    R = axis_angle_to_matrix(aa).numpy()
    for b in range(4):
        flipped = flip_rotmats(R[b])
        expect = axis_angle_to_matrix(aa[b][FLIP_PERM_24] * torch.tensor([1.0, -1.0, -1.0])).numpy()
        assert np.allclose(flipped, expect, atol=1e-12)
        assert np.allclose(flip_rotmats(flipped), R[b], atol=1e-12)


def test_unlabelled_rows_are_zero(roots):
    s = _load(roots, "pw3d", train=False)[0]
    assert not s["joints_uvd"][24:].any() and not s["joints_xyz"][24:].any()


def test_flip_twist_matches_twist_of_flipped_pose(roots, body):
    ds = _load(roots, "h36m", train=True, body=body)
    ev, fl = ds.sample(1), ds.sample(1, Augment(flip=True))
    assert ev["twist_weight"].all()                                  # computed from the body
    flipped = flip_twist(ev["twist"].double().numpy())
    assert np.allclose(fl["twist"].numpy(), flipped, atol=1e-5)
    # the file's twist (HybrIK's labels) agrees with ours on this fixture
    ds_file = _load(roots, "h36m", train=False)
    w = ds_file[1]["twist_weight"] > 0
    assert torch.allclose(ds_file[1]["twist"][w], ev["twist"][w], atol=1e-5)


def test_rotation_turns_uv_and_xyz_consistently(roots):
    ds = _load(roots, "h36m", train=True)
    r = 25.0
    ev, rot = ds.sample(0), ds.sample(0, Augment(rotation=r))
    R2 = camera_rotation(r)[:2, :2]
    uv = ev["joints_uvd"][:, :2].double().numpy() @ R2.T
    assert np.allclose(rot["joints_uvd"][:, :2].numpy(), uv, atol=1e-5)
    xyz = ev["joints_xyz"].double().numpy() @ camera_rotation(r).T
    assert np.allclose(rot["joints_xyz"].numpy(), xyz, atol=1e-5)
    assert np.abs(_dot_centroid(rot) - _uv_pixel(rot, DOT_JOINT)).max() < 0.5


@pytest.mark.parametrize("flip", [False, True])
def test_camera_rotation_matches_the_crop_rotation(flip):
    """Under the crop camera, uv of the rotated (and mirrored) joints = the crop map of their uv."""
    g = torch.Generator().manual_seed(0)
    xyz = torch.randn(1, 29, 3, generator=g, dtype=torch.float64) * 0.4 + torch.tensor([0.2, -0.1, 4.0])
    for r in (-30.0, 12.0, 90.0):
        A = crop_matrix(np.array([S / 2, S / 2]), S, S, rotation=r, flip=flip)
        px = (camera.project(xyz)[0, :, :2].numpy() + 0.5) * S
        expect = apply_affine(A, px) / S - 0.5
        M = np.diag([-1.0 if flip else 1.0, 1.0, 1.0]) @ camera_rotation(r)
        got = camera.project(xyz @ torch.from_numpy(M).T)[0, :, :2].numpy()
        assert np.allclose(got, expect, atol=1e-9)


def test_scale_and_colour_augmentation(roots):
    ds = _load(roots, "h36m", train=True)
    ev = ds.sample(0)
    big = ds.sample(0, Augment(scale=1.25))
    assert torch.allclose(big["joints_uvd"][:, :2], ev["joints_uvd"][:, :2] / 1.25, atol=1e-5)
    assert big["bbox"][2].item() == pytest.approx(1.25 * ev["bbox"][2].item())
    dim = ds.sample(0, Augment(colour=(0.8, 1.0, 1.2)))
    a, b = denormalize_image(ev["image"]).astype(int), denormalize_image(dim["image"]).astype(int)
    assert a[..., 0].sum() > b[..., 0].sum() and a[..., 2].sum() < b[..., 2].sum()
    assert torch.equal(dim["joints_uvd"], ev["joints_uvd"])
    for seed in range(0, 1000, 50):                                  # ranges of the random draws
        aug = ds.augmentation(seed)
        assert 0.75 <= aug.scale <= 1.25 and abs(aug.rotation) <= 30.0
        assert all(0.8 <= c <= 1.2 for c in aug.colour)


# ---------------------------------------------------------------- errors

def _break(db, name, kind):
    """Remove a field (dotted names: nested) or give a joint field a wrong count, in record 1."""
    db = copy.deepcopy(db)
    rec = db["annotations"][1]
    if name.split(".")[0] not in rec:
        rec = db["images"][1]
    *outer, last = name.split(".")
    for part in outer:
        rec = rec[part]
    if kind == "missing":
        del rec[last]
    else:
        rec[last] = np.asarray(rec[last]).reshape(-1, 3)[:-1].tolist()     # one joint short
    return db


BROKEN = [
    ("h36m", _h36m_db, "betas", "missing"), ("h36m", _h36m_db, "cam_param.f", "missing"),
    ("h36m", _h36m_db, "smpl_joints", "count"), ("h36m", _h36m_db, "thetas", "count"),
    ("pw3d", _pw3d_db, "smpl_param.pose", "missing"), ("pw3d", _pw3d_db, "smpl_joint_cam", "count"),
    ("3dhp", _hp3d_db, "cam_param.intrinsic_param", "missing"),
    ("3dhp", _hp3d_db, "keypoints_cam", "count"),
    ("coco", _coco_db, "bbox", "missing"), ("coco", _coco_db, "keypoints", "count"),
]


@pytest.mark.parametrize("name,make,field,kind", BROKEN, ids=[f"{b[0]}-{b[2]}-{b[3]}" for b in BROKEN])
def test_malformed_annotation_names_file_record_and_field(tmp_path, people, roots, name, make, field,
                                                          kind):
    path = _write(tmp_path / f"bad_{name}.json", _break(make(people), field, kind))
    with pytest.raises(ValueError) as info:
        LOADERS[name](annotation=path, image_dir=roots[name], image_size=S)
    msg = str(info.value)
    assert str(path) in msg and "record 1" in msg and repr(field) in msg
    assert isinstance(info.value, AnnotationError) and info.value.field == field
    if kind == "count":
        assert "expected" in msg


def test_missing_annotation_file_and_bad_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="annotation="):
        Human36M(tmp_path)
    with pytest.raises(ValueError, match="split"):
        PW3D(tmp_path, split="val")


def test_unreadable_image_is_skipped_counted_and_named(tmp_path, people, roots):
    db = _h36m_db(people)
    db["images"][0]["file_name"] = "corrupt.png"
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "corrupt.png").write_bytes(b"not an image")
    path = _write(tmp_path / "annotations" / "x_train_protocol_2.json", db)
    os.symlink(roots["h36m"] / "images" / "s_01", tmp_path / "images" / "s_01")
    ds = Human36M(tmp_path, image_size=S, train=False)
    assert ds.annotation == str(path)
    with pytest.warns(RuntimeWarning, match="corrupt.png"):
        s = ds[0]
    assert ds.skipped == 1 and int(s["index"]) == 1                 # the next record, deterministic
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert int(ds[1]["index"]) == 1 and ds.skipped == 1


# ---------------------------------------------------------------- mixing

class _Fake(torch.utils.data.Dataset):
    def __init__(self, n, tag):
        self.n, self.tag = n, tag

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"tag": self.tag, "i": i}


def test_mixed_ratios_and_determinism():
    ds = MixedDataset([_Fake(5, "a"), _Fake(50, "b"), _Fake(3, "c")], ratios=[2, 0, 6], length=20000,
                      seed=11)
    src = np.array([ds.source(i) for i in range(len(ds))])
    freq = np.bincount(src[:, 0], minlength=3) / len(ds)
    assert np.allclose(freq, [0.25, 0.0, 0.75], atol=0.015)
    assert all(0 <= i < [5, 50, 3][k] for k, i in src)
    again = MixedDataset([_Fake(5, "a"), _Fake(50, "b"), _Fake(3, "c")], [2, 0, 6], 20000, seed=11)
    assert all(again[i] == ds[i] for i in range(0, 20000, 97))
    other = MixedDataset([_Fake(5, "a"), _Fake(50, "b"), _Fake(3, "c")], [2, 0, 6], 20000, seed=12)
    assert any(other.source(i) != ds.source(i) for i in range(50))
    ds.set_epoch(1)
    assert any(ds.source(i) != tuple(src[i]) for i in range(50))


def test_mixed_validates_ratios():
    a, b = _Fake(3, "a"), _Fake(3, "b")
    for bad in ([1.0], [1.0, -0.5], [0.0, 0.0], [float("nan"), 1.0]):
        with pytest.raises(ValueError, match="ratios"):
            MixedDataset([a, b], ratios=bad)
    with pytest.raises(ValueError, match="empty"):
        MixedDataset([a, _Fake(0, "e")], ratios=[1, 1])
    assert len(MixedDataset([a, b])) == 6 and np.allclose(MixedDataset([a, b]).ratios, [0.5, 0.5])


def test_mixed_default_ratios_over_the_four_loaders(roots):
    loaders = [_load(roots, n, train=True, seed=0) for n in ("pw3d", "h36m", "coco", "3dhp")]
    ds = MixedDataset(loaders, length=40, seed=0)
    assert np.allclose(ds.ratios, [0.2, 0.3, 0.4, 0.1])
    batch = torch.utils.data.default_collate([ds[i] for i in range(8)])
    assert batch["image"].shape == (8, 3, S, S)
