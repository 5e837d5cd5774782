"""SMPL files as users hold them (fixtures written by the tests): the v1.0.0
neutral/male/female chumpy pickles (chumpy not installed), v1.1.0 with 300
shape components, J_regressor_h36m.npy and h36m_mean_beta.npy."""
import pickle
import sys

import numpy as np
import pytest
import scipy.sparse
import torch

from hybrik_fast import BodyModel, skeleton
from hybrik_fast.body import load_h36m_regressor, load_mean_betas
from hybrik_fast.synthetic_body import synthetic_arrays
from test_body import _fake_chumpy

KINTREE = np.array([[4294967295] + list(skeleton.PARENTS_24[1:]), list(range(24))])


def smpl_dict(seed: int, num_shape: int, wrap=lambda a: a) -> dict:
    """A SMPL-file dict: the synthetic body's arrays with ``num_shape`` shape
    components (the first 10 are the synthetic ones) and random pose blend shapes."""
    a = synthetic_arrays(seed)
    rng = np.random.default_rng(seed)
    extra = rng.standard_normal(a["shapedirs"].shape[:2] + (num_shape - 10,))
    return {"v_template": wrap(a["v_template"]),
            "shapedirs": wrap(np.concatenate([a["shapedirs"], extra], axis=-1)),
            "posedirs": wrap(rng.standard_normal(a["posedirs"].shape)),
            "J_regressor": scipy.sparse.csc_matrix(a["J_regressor"]), "weights": wrap(a["weights"]),
            "kintree_table": KINTREE, "f": a["f"].astype(np.uint32),
            "leaf_vertices": a["leaf_vertices"], "bs_type": "lrotmin", "bs_style": "lbs"}


@pytest.mark.parametrize("gender", ["neutral", "m", "f"])
def test_v1_0_0_chumpy_pickles(tmp_path, gender):
    seed = {"neutral": 0, "m": 1, "f": 2}[gender]
    pkg, ch = _fake_chumpy()
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = pkg, ch
    try:
        data = smpl_dict(seed, 10, wrap=ch.Ch)
        path = tmp_path / f"basicModel_{gender}_lbs_10_207_0_v1.0.0.pkl"
        path.write_bytes(pickle.dumps(data, protocol=2))
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
    assert b"chumpy" in path.read_bytes()
    body = BodyModel.load(path, dtype=torch.float64)
    want = smpl_dict(seed, 10)
    assert np.array_equal(body.v_template.numpy(), want["v_template"])
    assert np.array_equal(body.shapedirs.numpy(), want["shapedirs"])
    assert np.array_equal(body.arrays()["posedirs"], want["posedirs"])


def test_v1_1_0_with_300_shape_components_uses_the_first_10_and_says_so(tmp_path):
    data = smpl_dict(3, 300)
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps(data, protocol=4))
    with pytest.warns(UserWarning, match="300 shape components.*first 10"):
        body = BodyModel.load(path, dtype=torch.float64)
    assert np.array_equal(body.shapedirs.numpy(), data["shapedirs"][..., :10])
    betas = torch.randn(2, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    # the shaped template uses the first 10 components only
    want = torch.from_numpy(data["v_template"] + np.einsum("vck,bk->bvc", data["shapedirs"][..., :10],
                                                           betas.numpy()))
    vertices, _ = body(torch.eye(3, dtype=torch.float64).expand(2, 24, 3, 3), betas)
    assert torch.allclose(vertices, want, atol=1e-12)


def test_h36m_regressor_and_mean_betas(tmp_path):
    rng = np.random.default_rng(4)
    regressor = rng.random((17, 6890))
    np.save(tmp_path / "J_regressor_h36m.npy", regressor)
    np.save(tmp_path / "h36m_mean_beta.npy", rng.standard_normal(10).astype(np.float32))
    got = load_h36m_regressor(tmp_path / "J_regressor_h36m.npy")
    assert got.dtype == torch.float32 and torch.equal(got, torch.from_numpy(regressor).float())
    betas = load_mean_betas(tmp_path / "h36m_mean_beta.npy")
    assert torch.equal(betas, torch.from_numpy(np.load(tmp_path / "h36m_mean_beta.npy")))
    with pytest.raises(ValueError, match=r"J_regressor_h36m.npy.*shape \(17, 1812\).*\(17, 6890\)"):
        load_h36m_regressor(tmp_path / "J_regressor_h36m.npy", num_vertices=1812)
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match="bad.npy.*not a readable"):
        load_mean_betas(tmp_path / "bad.npy")
    with pytest.raises(FileNotFoundError, match="none.npy"):
        load_mean_betas(tmp_path / "none.npy")
