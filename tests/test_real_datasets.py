"""Real-dataset loaders on tiny fixture files: format, labels, augmentation, errors."""
import copy
import os
import warnings

import numpy as np
import pytest
import torch

from hybrik_fast import BodyModel, camera
from hybrik_fast.data import COCO2D, MPIINF3DHP, PW3D, Human36M, MixedDataset
from hybrik_fast.data.annotations import AnnotationError
from hybrik_fast.data.common import SAMPLE_KEYS, denormalize_image
from hybrik_fast.data.transforms import (FLIP_PERM_24, Augment, apply_affine, camera_rotation,
                                         crop_matrix, flip_rotmats, flip_twist)
from hybrik_fast.ik import forward_kinematics
from hybrik_fast.poses import axis_angle_to_matrix, sample_axis_angles
from hybrik_fast.skeleton import NUM_JOINTS

from dataset_support import (DOT_JOINT, FOCAL, S, coco_db, h36m_db, hp3d_db, person, pw3d_db,
                             write_json, write_roots)

SHAPES = {"image": (3, S, S), "joints_uvd": (29, 3), "joints_uvd_weight": (29, 3),
          "joints_xyz": (29, 3), "joints_xyz_weight": (29, 3), "betas": (10,),
          "rotmats": (24, 3, 3), "twist": (23, 2), "twist_weight": (23, 2),
          "smpl_weight": (1,), "bbox": (4,), "camera": (3,), "index": ()}


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def body():
    return BodyModel.synthetic(dtype=torch.float64)


@pytest.fixture(scope="module")
def people(body):
    return [person(body, seed) for seed in (1, 2)]


@pytest.fixture(scope="module")
def roots(tmp_path_factory, people):
    return write_roots(tmp_path_factory.mktemp("data"), people)


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
    # 3DHP: the public map's joints only (no hips, head top, toes), no SMPL
    mapped = [0, 4, 5, 7, 8, 12, 16, 17, 18, 19, 20, 21]
    expect = torch.zeros(NUM_JOINTS)
    expect[mapped] = 1
    assert torch.equal(hp3d["joints_xyz_weight"][:, 0], expect)
    assert hp3d["smpl_weight"].item() == 0 and hp3d["twist_weight"].sum() == 0
    # COCO: uv from visibility, no depth, no 3D, neutral camera
    w = coco["joints_uvd_weight"]
    expect = torch.zeros(NUM_JOINTS)
    expect[[16, 17, 18, 19, 20, 21, 4, 5, 7]] = 1          # public map: no hips; right ankle unlabelled
    assert torch.equal(w[:, 0], expect) and torch.equal(w[:, 1], expect)
    assert w[:, 2].sum() == 0 and coco["joints_xyz_weight"].sum() == 0
    assert coco["smpl_weight"].item() == 0
    assert torch.allclose(coco["camera"], torch.tensor([0.9, 0.0, 0.0]))


def test_coco_skips_crowd_and_unlabelled(roots):
    ds = _load(roots, "coco")
    assert len(ds) == 2 and ds.skipped_records == {"crowd": 1, "no labelled keypoint": 1}


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
    path = write_json(tmp_path / "a.json", h36m_db(people, n_joints=24))
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
    ("h36m", h36m_db, "betas", "missing"), ("h36m", h36m_db, "cam_param.f", "missing"),
    ("h36m", h36m_db, "smpl_joints", "count"), ("h36m", h36m_db, "thetas", "count"),
    ("pw3d", pw3d_db, "smpl_param.pose", "missing"), ("pw3d", pw3d_db, "smpl_joint_cam", "count"),
    ("3dhp", hp3d_db, "cam_param.intrinsic_param", "missing"),
    ("3dhp", hp3d_db, "keypoints_cam", "count"),
    ("coco", coco_db, "bbox", "missing"), ("coco", coco_db, "keypoints", "count"),
]


@pytest.mark.parametrize("name,make,field,kind", BROKEN, ids=[f"{b[0]}-{b[2]}-{b[3]}" for b in BROKEN])
def test_malformed_annotation_names_file_record_and_field(tmp_path, people, roots, name, make, field,
                                                          kind):
    path = write_json(tmp_path / f"bad_{name}.json", _break(make(people), field, kind))
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
    db = h36m_db(people)
    db["images"][0]["file_name"] = "corrupt.png"
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "corrupt.png").write_bytes(b"not an image")
    path = write_json(tmp_path / "annotations" / "x_train_protocol_2.json", db)
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
