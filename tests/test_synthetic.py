"""SyntheticHumans: the sample dict, determinism, labels against the image, cache, renderer."""
import os

import numpy as np
import pytest
import torch

from hybrik_fast import camera, forward_kinematics, twist_angles
from hybrik_fast.data import SyntheticHumans
from hybrik_fast.data.common import SAMPLE_KEYS
from hybrik_fast.data.render import draw_mesh, render_mesh, silhouette, to_pixels
from hybrik_fast.data.synthetic import _FLIP, twist_from_axis_angle
from hybrik_fast.poses import axis_angle_to_matrix, sample_axis_angles
from hybrik_fast.skeleton import IK_CHILD

SHAPES = {
    "image": (3, 64, 64), "joints_uvd": (29, 3), "joints_uvd_weight": (29, 3),
    "joints_xyz": (29, 3), "joints_xyz_weight": (29, 3), "betas": (10,), "rotmats": (24, 3, 3),
    "twist": (23, 2), "twist_weight": (23, 2), "smpl_weight": (1,), "bbox": (4,), "camera": (3,),
    "index": (),
}


@pytest.fixture(scope="module")
def ds():
    return SyntheticHumans("train", length=64, image_size=64, seed=0)


@pytest.fixture(scope="module")
def batch(ds):
    """24 items stacked: dict of (24, ...) tensors."""
    items = [ds[i] for i in range(24)]
    return {k: torch.stack([it[k] for it in items]) for k in SAMPLE_KEYS}


def assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


# ---------------------------------------------------------------- arguments


@pytest.mark.parametrize("kwargs, match", [
    (dict(split="test"), r"split must be one of \('train', 'val'\)"),
    (dict(length=0), "length must be an int >= 1"),
    (dict(length=2.0), "length must be an int >= 1"),
    (dict(image_size=100), "image_size must be a positive multiple of 32"),
    (dict(image_size=0), "image_size must be a positive multiple of 32"),
    (dict(image_size=-64), "image_size must be a positive multiple of 32"),
    (dict(seed=-1), "seed must be an int >= 0"),
    (dict(max_yaw=200), r"max_yaw must be in \[0, 180\] degrees"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SyntheticHumans(**kwargs)


def test_index_out_of_range(ds):
    for i in (-1, len(ds)):
        with pytest.raises(IndexError, match="out of range"):
            ds[i]


# ---------------------------------------------------------------- the sample dict


def test_keys_shapes_dtypes(ds):
    sample = ds[3]
    assert tuple(sample) == SAMPLE_KEYS
    for k, shape in SHAPES.items():
        assert tuple(sample[k].shape) == shape, k
        assert sample[k].dtype == (torch.int64 if k == "index" else torch.float32), k
    assert sample["index"].item() == 3
    for k in ("joints_uvd_weight", "joints_xyz_weight", "twist_weight", "smpl_weight"):
        assert torch.all(sample[k] == 1), k
    assert sample["bbox"].tolist() == [0.0, 0.0, 64.0, 64.0]
    assert len(ds) == 64


def test_collates_in_a_dataloader(ds):
    loader = torch.utils.data.DataLoader(ds, batch_size=4)
    b = next(iter(loader))
    assert b["image"].shape == (4, 3, 64, 64) and b["index"].tolist() == [0, 1, 2, 3]


# ---------------------------------------------------------------- determinism


def test_deterministic_by_seed_split_index(ds):
    assert_same(ds[5], ds[5])
    assert_same(ds[5], SyntheticHumans("train", length=64, image_size=64, seed=0)[5])
    for other in (SyntheticHumans("train", length=64, image_size=64, seed=1),
                  SyntheticHumans("val", length=64, image_size=64, seed=0)):
        a, b = ds[5], other[5]
        assert not torch.equal(a["image"], b["image"])
        assert not torch.equal(a["rotmats"], b["rotmats"])
    assert not torch.equal(ds[5]["image"], ds[6]["image"])


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_same_items_in_worker_processes(ds, context):
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=1, sampler=[7, 2, 7],
                                         multiprocessing_context=context)
    got = list(loader)
    for i, sample in zip([7, 2, 7], got):
        assert_same(sample, ds[i])


def test_geometry_does_not_depend_on_image_size_or_occluders(ds):
    big = SyntheticHumans("train", length=64, image_size=128, seed=0, occluders=False)
    a, b = ds[9], big[9]
    for k in ("joints_uvd", "joints_xyz", "betas", "rotmats", "twist", "camera"):
        assert torch.equal(a[k], b[k]), k


# ---------------------------------------------------------------- labels


def test_projected_joints_equal_uvd_labels(batch):
    root = camera.root_from_camera(batch["camera"])                      # (B, 3)
    uvd = camera.project(batch["joints_xyz"] + root[:, None])
    assert (uvd - batch["joints_uvd"]).abs().max() <= 1e-5
    assert torch.allclose(batch["joints_xyz"][:, 0], torch.zeros(3))
    # every joint in the crop and the depth range: [-0.5, 0.5)
    assert batch["joints_uvd"].min() >= -0.5 and batch["joints_uvd"].max() < 0.5


def test_fk_and_twist_reproduce_the_labels(ds, batch):
    rotmats = batch["rotmats"].double()
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(rotmats @ rotmats.transpose(-1, -2), eye.expand_as(rotmats), atol=1e-6)
    assert torch.allclose(torch.linalg.det(rotmats), torch.ones(rotmats.shape[:2], dtype=torch.float64),
                          atol=1e-6)
    rest = ds.body.rest_joints(batch["betas"].double())                  # (B, 29, 3)
    xyz = forward_kinematics(rotmats, rest, backend="reference")
    assert (xyz - batch["joints_xyz"]).abs().max() <= 1e-5
    twist = twist_angles(rotmats, rest, backend="reference")
    assert (twist - batch["twist"]).abs().max() <= 1e-5
    # the poses vary: the labels are not all near the rest pose
    assert (batch["twist"][..., 1].abs() > 0.3).any()


def test_closed_form_twist_equals_twist_angles(ds):
    g = torch.Generator().manual_seed(3)
    aa = sample_axis_angles(256, g)                                      # (B, 24, 3)
    rest = ds.body.rest_joints(torch.randn(256, 10, generator=g, dtype=torch.float64))
    child = list(IK_CHILD[1:24])
    bones = (rest[:, child] - rest[:, 1:24]).numpy()                     # (B, 23, 3)
    mine = twist_from_axis_angle(aa[:, 1:].reshape(-1, 3).numpy(), bones.reshape(-1, 3))
    ref = twist_angles(axis_angle_to_matrix(aa), rest, backend="reference")
    assert np.abs(mine.reshape(256, 23, 2) - ref.numpy()).max() < 1e-12


def test_root_rotation_is_in_the_camera_frame(ds):
    """R_x(π) turns the model's T-pose to face the camera, upright, left on the image right."""
    rotmats = torch.eye(3, dtype=torch.float64).repeat(1, 24, 1, 1)
    rotmats[0, 0] = torch.from_numpy(_FLIP)
    xyz = forward_kinematics(rotmats, ds.body.rest_joints(torch.zeros(1, 10, dtype=torch.float64)),
                             backend="reference")[0]
    assert xyz[1, 0] > xyz[2, 0] and xyz[16, 0] > xyz[17, 0]    # left hip / shoulder: image right
    assert xyz[24, 1] < xyz[0, 1] < xyz[7, 1]                   # head up, ankles down (y down)
    assert xyz[27, 2] < xyz[7, 2]                               # toes point at the camera


def test_max_yaw_limits_the_facing_direction():
    """max_yaw=0: every body faces the camera (its forward axis, model +z, points
    along camera −z up to the small tilts); the full circle also shows backs."""
    def facing(**kw):
        d = SyntheticHumans("val", length=24, image_size=64, seed=3, **kw)
        return np.array([d.scene(i).rotmats[0] @ np.array([0.0, 0.0, 1.0]) for i in range(len(d))])
    assert (facing(max_yaw=0)[:, 2] < -0.7).all()
    assert (facing()[:, 2] > 0).any()


def test_clutter_switch_keeps_the_person():
    plain = SyntheticHumans("val", length=2, image_size=64, seed=1, clutter=False)
    busy = SyntheticHumans("val", length=2, image_size=64, seed=1)
    np.testing.assert_array_equal(plain.scene(1).joints_cam, busy.scene(1).joints_cam)
    assert not np.array_equal(plain.render(1), busy.render(1))


def test_silhouette_covers_the_projected_joints(ds):
    """The 24 SMPL joints lie inside the body, so they project inside its silhouette.

    Tolerance: 1 px (the rounded joint pixel or one of its 8 neighbours is in
    the mask), for rasterisation at pixel resolution.  The 5 leaves are
    surface vertices at the extremities and are only checked to be in the crop.
    """
    S = 128
    for i in range(16):
        scene = ds.scene(i)
        mask = silhouette(scene.vertices_cam, ds.faces, S)
        assert 0.05 < mask.mean() < 0.8
        padded = np.pad(mask, 1)
        px = np.rint(to_pixels(scene.joints_cam, S)).astype(int)       # (29, 2)
        assert (px >= 0).all() and (px < S).all()
        for j, (x, y) in enumerate(px[:24]):
            assert padded[y:y + 3, x:x + 3].any(), (i, j)


def test_person_fills_the_crop(ds):
    for i in range(8):
        px = to_pixels(ds.scene(i).vertices_cam, 1.0)                  # crop widths + 0.5
        assert px.min() >= 0 and px.max() <= 1
        assert 0.55 <= (px.max(0) - px.min(0)).max() <= 0.95


def test_occluders_cover_less_than_30_percent_of_the_person_box():
    """Occluders are the only difference between occluders=True and False."""
    S = 128
    with_occ = SyntheticHumans("train", length=30, image_size=S, seed=0)
    without = SyntheticHumans("train", length=30, image_size=S, seed=0, occluders=False)
    occluded = 0
    for i in range(30):
        changed = (with_occ.render(i) != without.render(i)).any(-1)
        if changed.any():
            occluded += 1
            px = np.clip(to_pixels(with_occ.scene(i).vertices_cam, S), 0, S)
            assert changed.sum() < 0.3 * np.prod(px.max(0) - px.min(0)), i
    assert 3 <= occluded <= 18                                      # OCCLUDER_PROB = 0.3


# ---------------------------------------------------------------- cache


def test_cache_round_trip_and_corrupt_file(tmp_path):
    fresh = SyntheticHumans("val", length=8, image_size=64, seed=2)
    cached = SyntheticHumans("val", length=8, image_size=64, seed=2, cache_dir=tmp_path)
    first = cached[4]
    path = cached.cache_path(4)
    assert os.path.isfile(path) and path.startswith(str(tmp_path))
    assert [f for f in os.listdir(os.path.dirname(path))] == ["00000004.npz"]   # no temp files left
    assert_same(first, fresh[4])
    mtime = os.stat(path).st_mtime_ns
    assert_same(cached[4], first)                                    # a hit: loaded, not rewritten
    assert os.stat(path).st_mtime_ns == mtime

    for damage in (b"not an npz file", None):
        if damage is None:                                           # a valid npz, wrong content
            np.savez_compressed(path, image=np.zeros((8, 8, 3), np.uint8))
        else:
            with open(path, "wb") as fh:
                fh.write(damage)
        with pytest.warns(RuntimeWarning, match="unreadable cache file"):
            again = cached[4]
        assert_same(again, first)
        with np.load(path) as npz:                                   # rewritten, whole
            assert npz["image"].shape == (64, 64, 3)


# ---------------------------------------------------------------- renderer


def _square(z, x0, x1):
    """Two triangles of a square facing the camera at depth z, x and y in [x0, x1]."""
    v = np.array([[x0, x0, z], [x1, x0, z], [x1, x1, z], [x0, x1, z]], dtype=np.float64)
    # counter-clockwise seen from the camera (−z): normal −z, towards the camera
    return v, np.array([[0, 2, 1], [0, 3, 2]])


def test_render_draws_exactly_the_silhouette(ds):
    scene = ds.scene(0)
    image = np.zeros((96, 96, 3), np.uint8)
    render_mesh(image, scene.vertices_cam, ds.faces, (200, 200, 200), ambient=0.5, diffuse=0.5)
    assert np.array_equal(image.max(-1) > 0, silhouette(scene.vertices_cam, ds.faces, 96))


def test_painter_order_and_back_face_culling():
    near, f_near = _square(5.0, -0.3, 0.3)
    far, f_far = _square(6.0, -0.6, 0.6)
    vertices = np.concatenate([near, far])
    red, green = [255, 0, 0], [0, 255, 0]
    for first, second in (((f_near, red), (f_far + 4, green)), ((f_far + 4, green), (f_near, red))):
        faces = np.concatenate([first[0], second[0]])
        colors = np.array([first[1]] * 2 + [second[1]] * 2, dtype=np.float64)
        image = np.zeros((64, 64, 3), np.uint8)
        render_mesh(image, vertices, faces, colors, ambient=1.0, diffuse=0.0)
        assert image[32, 32].tolist() == red                            # the near square wins
        assert image[32, 10].tolist() == green                          # the far one around it
    image = np.zeros((64, 64, 3), np.uint8)
    render_mesh(image, near, f_near[:, ::-1], (255, 255, 255))         # facing away: culled
    assert image.max() == 0


def test_draw_mesh_overlay(ds):
    scene = ds.scene(1)
    image = np.full((64, 64, 3), 30, np.uint8)
    out = draw_mesh(image, torch.from_numpy(scene.vertices_cam), ds.body.faces, alpha=0.6)
    mask = silhouette(scene.vertices_cam, ds.faces, 64)
    assert out.dtype == np.uint8 and out.shape == image.shape and image.max() == 30
    assert np.array_equal(out[~mask], image[~mask]) and (out[mask] != 30).any(-1).all()
    with pytest.raises(ValueError, match=r"image must be uint8 of shape \(S, S, 3\)"):
        draw_mesh(image.astype(np.float32), scene.vertices_cam, ds.faces)
    with pytest.raises(ValueError, match="alpha"):
        draw_mesh(image, scene.vertices_cam, ds.faces, alpha=1.5)


def test_face_colours_tell_left_from_right_and_front_from_back(ds):
    colors, faces = ds.face_colors, ds.faces
    part = ds.body.weights.numpy()[faces].sum(1).argmax(1)
    for left, right in ((16, 17), (18, 19), (1, 2), (4, 5)):
        assert not np.allclose(colors[part == left].mean(0), colors[part == right].mean(0))
    # the front (+z) and back (−z) halves of the torso differ in brightness
    z = ds.body.v_template.numpy()[faces].mean(1)[:, 2]
    torso = part == 6
    assert colors[torso & (z > 0.05)].sum(1).mean() > 1.3 * colors[torso & (z < -0.05)].sum(1).mean()
    assert np.isfinite(colors).all() and colors.min() >= 0 and colors.max() <= 255
