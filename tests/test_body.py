"""BodyModel: file formats, the synthetic body, and LBS against smplx."""
import os
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import torch

from hybrik_fast import BodyModel, skeleton
from hybrik_fast.synthetic_body import synthetic_arrays, synthetic_joints
from hybrik_fast.reference.kinematics import rigid_transforms
from tests_support import axis_angle_to_matrix

BUFFERS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "faces",
           "parents", "leaf_vertices")


@pytest.fixture(scope="module")
def body64():
    return BodyModel.synthetic(0, dtype=torch.float64)


def random_inputs(B, dtype=torch.float64, seed=0, angle=0.5):
    """rotmats (B, 24, 3, 3) at ~angle rad about random axes, betas (B, 10) ~ N(0, 1)."""
    g = torch.Generator().manual_seed(seed)
    aa = angle * torch.randn(B, 24, 3, generator=g, dtype=torch.float64) / np.sqrt(3)
    betas = torch.randn(B, 10, generator=g, dtype=torch.float64)
    return axis_angle_to_matrix(aa).to(dtype), betas.to(dtype)


def model_from(arrays, dtype=torch.float64, **changes):
    a = {**arrays, **changes}
    return BodyModel(a["v_template"], a["shapedirs"], a["posedirs"], a["J_regressor"],
                     a["weights"], a["f"], skeleton.PARENTS_24, a["leaf_vertices"], dtype=dtype)


def assert_same_buffers(a, b):
    for name in BUFFERS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and torch.equal(x, y), name


# ---------------------------------------------------------------- synthetic body


def test_synthetic_is_deterministic():
    a = synthetic_arrays(0)
    b = synthetic_arrays(0)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    c = synthetic_arrays(1)
    assert not np.array_equal(a["v_template"], c["v_template"])
    assert np.array_equal(a["f"], c["f"])                              # same topology


def test_synthetic_format(body64):
    V = body64.num_vertices
    assert 1000 <= V <= 7000
    assert body64.v_template.shape == (V, 3)
    assert body64.shapedirs.shape == (V, 3, 10)
    assert body64.posedirs.shape == (207, 3 * V)
    assert body64.J_regressor.shape == (24, V)
    assert body64.weights.shape == (V, 24)
    assert body64.faces.dtype == torch.long and body64.faces.shape[1] == 3
    assert body64.leaf_vertices.dtype == torch.long and body64.leaf_vertices.shape == (5,)
    assert tuple(body64.parents.tolist()) == skeleton.PARENTS_24
    # regressor rows: non-negative, sum to 1; weights likewise, and they blend
    assert (body64.J_regressor >= 0).all() and (body64.weights >= 0).all()
    torch.testing.assert_close(body64.J_regressor.sum(1), torch.ones(24, dtype=torch.float64))
    torch.testing.assert_close(body64.weights.sum(1), torch.ones(V, dtype=torch.float64))
    blended = ((body64.weights > 0.05).sum(1) >= 2).sum()
    assert blended > V // 10
    assert set(body64.weights.argmax(1).tolist()) == set(range(24))   # every joint skins


def test_synthetic_regressor_recovers_the_skeleton(body64):
    intended = torch.from_numpy(synthetic_joints(0))                  # (29, 3)
    rest = body64.rest_joints(torch.zeros(1, 10, dtype=torch.float64))[0]
    torch.testing.assert_close(rest, intended, atol=1e-12, rtol=0)


def test_synthetic_mesh_is_closed_and_outward(body64):
    F = body64.faces.numpy()
    directed = np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]])
    # each directed edge once, and its reverse once: closed, consistently wound
    uniq, counts = np.unique(directed, axis=0, return_counts=True)
    assert (counts == 1).all()
    assert len(np.unique(np.sort(directed, axis=1), axis=0)) * 2 == len(directed)
    tri = body64.v_template.numpy()[F]                                # (F, 3, 3)
    volume = np.einsum("fi,fi->f", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
    assert 0.03 < volume < 0.15                                       # m³, an adult: ~0.07


def test_synthetic_proportions(body64):
    _, betas = random_inputs(4)
    betas = torch.cat([torch.zeros(1, 10, dtype=torch.float64), betas])
    for T in body64.rest_joints(betas):                               # (29, 3)
        head, lmid, rmid, ltoe, rtoe = T[24:]
        height = head[1] - min(ltoe[1], rtoe[1])
        assert 1.5 < height < 1.9
        assert 0.8 < abs(T[0, 1] - T[7, 1]) / height * 2 < 1.2       # legs ~ half the height
        mirror = T[[0] + [j for p in skeleton.FLIP_PAIRS for j in p[::-1]]] * torch.tensor(
            [-1.0, 1.0, 1.0], dtype=T.dtype)
        assert (mirror - T[[0] + [j for p in skeleton.FLIP_PAIRS for j in p]]).abs().max() < 1e-3
        assert head[1] == T[:, 1].max()
        assert lmid[0] > T[20, 0] + 0.1 and rmid[0] < T[21, 0] - 0.1
        assert ltoe[2] > T[7, 2] + 0.1 and rtoe[2] > T[8, 2] + 0.1
        assert T[0].norm() < 0.1                                      # pelvis near origin


def test_bone_lengths_depend_on_beta(body64):
    parents = torch.tensor(skeleton.PARENTS_29[1:])

    def bones(betas):
        T = body64.rest_joints(betas)
        return (T[:, 1:] - T[:, parents]).norm(dim=-1)                # (B, 28)

    base = bones(torch.zeros(1, 10, dtype=torch.float64))
    changed = bones(torch.eye(10, dtype=torch.float64) * 2) - base    # (10, 28)
    assert (changed.abs().amax(1) > 1e-3).sum() >= 6                  # most betas move bones
    # beta 0 is height: head top minus toe grows with it
    T = body64.rest_joints(torch.tensor([[0.0] * 10, [2.0] + [0.0] * 9], dtype=torch.float64))
    height = T[:, 24, 1] - T[:, 27, 1]
    assert height[1] - height[0] > 0.05
    # beta 1 is girth: it moves most vertices away from the body's centre
    radial = (body64.shapedirs[:, :, 1] * (body64.v_template - body64.v_template.mean(0))).sum(1)
    assert (radial > 0).float().mean() > 0.7


# ---------------------------------------------------------------- skinning


def test_rest_pose_gives_the_template(body64):
    _, betas = random_inputs(3)
    eye = torch.eye(3, dtype=torch.float64).expand(3, 24, 3, 3)
    verts, joints = body64(eye, betas)
    v_shaped = body64.v_template + torch.einsum("vcl,bl->bvc", body64.shapedirs, betas)
    torch.testing.assert_close(verts, v_shaped, atol=1e-12, rtol=0)
    torch.testing.assert_close(joints, body64.rest_joints(betas), atol=1e-12, rtol=0)


def test_joints_are_rigid_transforms_plus_root(body64):
    rot, betas = random_inputs(3, seed=2)
    _, joints = body64(rot, betas)
    rest = body64.rest_joints(betas)
    torch.testing.assert_close(joints, rigid_transforms(rot, rest)[1] + rest[:, :1])


@pytest.mark.parametrize("B", [0, 1, 5])
def test_float32_matches_float64(body64, B):
    rot, betas = random_inputs(B, seed=3)
    v64, j64 = body64(rot, betas)
    body32 = BodyModel.synthetic(0)
    v32, j32 = body32(rot.float(), betas.float())
    assert v32.dtype == torch.float32 and v32.shape == (B, body32.num_vertices, 3)
    assert j32.shape == (B, 29, 3)
    torch.testing.assert_close(v32.double(), v64, atol=1e-5, rtol=0)
    torch.testing.assert_close(j32.double(), j64, atol=1e-5, rtol=0)
    v, _ = body32(rot, betas)                              # float64 input, float32 buffers
    assert v.dtype == torch.float64
    torch.testing.assert_close(v, v64, atol=1e-5, rtol=0)


def test_against_smplx(tmp_path):
    smplx = pytest.importorskip("smplx")
    from smplx.lbs import lbs
    arrays = synthetic_arrays(0)
    rng = np.random.default_rng(0)
    arrays["posedirs"] = 0.01 * rng.standard_normal(arrays["posedirs"].shape)
    ours = model_from(arrays, dtype=torch.float32)
    path = tmp_path / "synthetic.pkl"
    ours.save(path)
    smpl = smplx.SMPL(model_path=str(path))     # smplx's own loader; never its forward
    rot, betas = random_inputs(8, dtype=torch.float32, seed=4)
    verts, joints = ours(rot, betas)
    ref_v, ref_j = lbs(betas, rot, smpl.v_template, smpl.shapedirs, smpl.posedirs,
                       smpl.J_regressor, smpl.parents, smpl.lbs_weights, pose2rot=False)
    err_v = (verts - ref_v).abs().max().item()
    err_j = (joints[:, :24] - ref_j).abs().max().item()
    print(f"max |vertex error| vs smplx: {err_v:.3g} m, joints {err_j:.3g} m")
    assert err_v <= 1e-5 and err_j <= 1e-5
    # and the pose blend shapes matter here
    no_pd = model_from(arrays, dtype=torch.float32, posedirs=np.zeros_like(arrays["posedirs"]))
    assert (no_pd(rot, betas)[0] - verts).abs().max() > 1e-3


# ---------------------------------------------------------------- files


@pytest.mark.parametrize("suffix", [".pkl", ".npz"])
def test_save_load_roundtrip(body64, tmp_path, suffix):
    path = tmp_path / f"body{suffix}"
    body64.save(path)
    assert os.listdir(tmp_path) == [path.name]                        # no temp file left
    assert_same_buffers(BodyModel.load(path, dtype=torch.float64), body64)


def test_saved_pkl_is_plain(body64, tmp_path):
    path = tmp_path / "body.pkl"
    body64.save(path)
    with open(path, "rb") as fh:
        data = pickle.load(fh)
    assert set(data) == {"v_template", "shapedirs", "posedirs", "J_regressor", "weights",
                         "kintree_table", "f", "leaf_vertices"}
    assert scipy.sparse.issparse(data["J_regressor"])
    assert data["posedirs"].shape == (body64.num_vertices, 3, 207)
    assert data["kintree_table"].shape == (2, 24)


def test_save_is_atomic(body64, tmp_path, monkeypatch):
    path = tmp_path / "body.pkl"
    body64.save(path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        args[1].write(b"half a model")
        raise KeyboardInterrupt

    monkeypatch.setattr(pickle, "dump", crash)
    with pytest.raises(KeyboardInterrupt):
        body64.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [path.name]


def test_save_rejects_other_suffixes(body64, tmp_path):
    with pytest.raises(ValueError, match=r"\.pkl.*\.npz"):
        body64.save(tmp_path / "body.json")


def _fake_chumpy():
    """A throwaway ``chumpy`` whose Ch pickles its array under 'x', as the real one."""
    ch = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = np.asarray(x)
            self._dirty_vars = set()
            self._parents = {}

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    ch.Ch = Ch
    pkg = types.ModuleType("chumpy")
    pkg.ch, pkg.Ch = ch, Ch
    return pkg, ch


@pytest.mark.parametrize("protocol", [0, 2])
def test_load_original_smpl_pickle_without_chumpy(tmp_path, protocol):
    arrays = synthetic_arrays(1)
    rng = np.random.default_rng(1)
    shapedirs = np.concatenate([arrays["shapedirs"], rng.standard_normal(
        arrays["shapedirs"].shape[:2] + (5,))], axis=-1)               # 15 betas in the file
    posedirs = rng.standard_normal(arrays["posedirs"].shape)
    kintree = np.array([[4294967295] + list(skeleton.PARENTS_24[1:]), list(range(24))])
    pkg, ch = _fake_chumpy()
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = pkg, ch
    try:
        data = {
            "v_template": ch.Ch(arrays["v_template"]), "shapedirs": ch.Ch(shapedirs),
            "posedirs": ch.Ch(posedirs),
            "J_regressor": scipy.sparse.csc_matrix(arrays["J_regressor"]),
            "weights": ch.Ch(arrays["weights"]), "kintree_table": kintree,
            "f": arrays["f"].astype(np.uint32), "leaf_vertices": arrays["leaf_vertices"],
            "bs_type": "lrotmin", "bs_style": "lbs",
        }
        path = tmp_path / "basicModel_like.pkl"
        path.write_bytes(pickle.dumps(data, protocol=protocol))
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
    assert b"chumpy" in path.read_bytes()

    body = BodyModel.load(path, dtype=torch.float64)
    assert np.array_equal(body.v_template.numpy(), arrays["v_template"])
    assert np.array_equal(body.shapedirs.numpy(), shapedirs[..., :10])
    assert np.array_equal(body.arrays()["posedirs"], posedirs)
    assert np.array_equal(body.J_regressor.numpy(), arrays["J_regressor"])
    assert np.array_equal(body.weights.numpy(), arrays["weights"])
    assert np.array_equal(body.faces.numpy(), arrays["f"])
    assert tuple(body.parents.tolist()) == skeleton.PARENTS_24
    assert np.array_equal(body.leaf_vertices.numpy(), arrays["leaf_vertices"])


def test_real_smpl_size_uses_smpl_leaf_vertices(tmp_path):
    V = 6890
    rng = np.random.default_rng(0)
    weights = np.eye(24)[rng.integers(0, 24, V)]
    data = {"v_template": rng.standard_normal((V, 3)), "shapedirs": np.zeros((V, 3, 10)),
            "posedirs": np.zeros((V, 3, 207)),
            "J_regressor": scipy.sparse.csc_matrix(weights.T / weights.sum(0)[:, None]),
            "weights": weights, "f": np.array([[0, 1, 2]]),
            "kintree_table": np.array([[-1] + list(skeleton.PARENTS_24[1:]), list(range(24))])}
    path = tmp_path / "smpl.pkl"
    path.write_bytes(pickle.dumps(data))
    body = BodyModel.load(path)
    assert tuple(body.leaf_vertices.tolist()) == skeleton.SMPL_LEAF_VERTICES
    (tmp_path / "small.pkl").write_bytes(pickle.dumps(
        {**data, "v_template": data["v_template"][:100]}))
    with pytest.raises(ValueError, match="leaf_vertices"):
        BodyModel.load(tmp_path / "small.pkl")


def test_load_refuses_unsafe_pickles(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"v_template": Evil()}))
    with pytest.raises(ValueError, match="evil.pkl.*refusing"):
        BodyModel.load(path)


def test_load_chumpy_object_without_array(tmp_path):
    pkg, ch = _fake_chumpy()
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = pkg, ch
    try:
        obj = ch.Ch(np.zeros(3))
        del obj.x
        path = tmp_path / "derived.pkl"
        path.write_bytes(pickle.dumps({"v_template": obj}))
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
    with pytest.raises(ValueError, match="derived.pkl.*chumpy"):
        BodyModel.load(path)


# ---------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    path = tmp_path / "nope.pkl"
    with pytest.raises(FileNotFoundError, match="nope.pkl"):
        BodyModel.load(path)


@pytest.mark.parametrize("suffix", [".pkl", ".npz"])
@pytest.mark.parametrize("seed", range(4))
def test_corrupt_file(tmp_path, suffix, seed):
    path = tmp_path / f"corrupt{suffix}"
    path.write_bytes(np.random.default_rng(seed).bytes(4096))
    with pytest.raises(ValueError, match=f"corrupt{suffix}"):
        BodyModel.load(path)


@pytest.mark.parametrize("suffix", [".pkl", ".npz"])
def test_truncated_file(body64, tmp_path, suffix):
    path = tmp_path / f"body{suffix}"
    body64.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=f"body{suffix}"):
        BodyModel.load(path)


@pytest.mark.parametrize("key", ["v_template", "J_regressor", "kintree_table", "f"])
def test_missing_key(body64, tmp_path, key):
    data = body64.arrays()
    del data[key]
    path = tmp_path / "partial.npz"
    np.savez(path, **data)
    with pytest.raises(ValueError, match=f"partial.npz.*{key}"):
        BodyModel.load(path)


def test_wrong_array_shape_in_file(body64, tmp_path):
    data = body64.arrays()
    data["weights"] = data["weights"][:, :23]
    path = tmp_path / "bad.npz"
    np.savez(path, **data)
    with pytest.raises(ValueError, match=r"bad.npz.*weights"):
        BodyModel.load(path)


def test_wrong_input_shapes(body64):
    rot, betas = random_inputs(2)
    with pytest.raises(ValueError, match=r"\(B, 24, 3, 3\)"):
        body64(rot[:, :23], betas)
    with pytest.raises(ValueError, match=r"\(B, 24, 3, 3\)"):
        body64(rot[0], betas)
    with pytest.raises(ValueError, match=r"\(B, 10\)"):
        body64(rot, betas[:, :9])
    with pytest.raises(ValueError, match=r"\(B, 10\)"):
        body64(rot, betas[:1])
    with pytest.raises(ValueError, match=r"\(B, 10\)"):
        body64.rest_joints(betas[0])
    with pytest.raises(TypeError, match="betas has dtype torch.float32 but rotmats has torch.float64"):
        body64(rot, betas.float())
    with pytest.raises(TypeError, match=r"rotmats must be a floating tensor \(float32, float64\)"):
        body64(rot.half(), betas.half())


def test_nan_stays_in_its_sample(body64):
    rot, betas = random_inputs(3, seed=5)
    rot[1, 7, 0, 0] = float("nan")
    verts, joints = body64(rot, betas)
    assert torch.isnan(verts[1]).any() and torch.isnan(joints[1]).any()
    for b in (0, 2):
        assert torch.isfinite(verts[b]).all() and torch.isfinite(joints[b]).all()
