"""The published HybrIK networks (hybrik_fast.models.public) and load_checkpoint.

The public code cannot run here, so:
- tests/fixtures/public_layouts.json lists every key, shape and dtype of the
  two public state dicts, read off the public model definitions (Jeff-sjtu/HybrIK
  at 9b8681d: Simple3DPoseBaseSMPLCam with ResNet-34, HRNetSMPLCam with
  HRNet-W48, SMPL V = 6890); a random state dict of exactly that layout must
  load strictly;
- the formulas (box offset, back-projection, scale update, flip) are checked
  against values derived by hand;
- the fused and reference backends must agree on the whole forward.
"""
import json
import os

import numpy as np
import pytest
import torch

from hybrik_fast import BodyModel, Predictor
from hybrik_fast.data.common import normalize_image
from hybrik_fast.models import HybrIKHRNetCam, HybrIKResNetCam, load_checkpoint
from hybrik_fast.models.checkpoint import build_public
from hybrik_fast.models.public import (box_offset, camera_depth, flip_heatmap_logits, public_naive_ik,
                                       public_swing,
                                       refine_scale, unproject)
from hybrik_fast.skeleton import FLIP_PAIRS, IK_CHILD, PARENTS_29

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "public_layouts.json")
with open(FIXTURE) as f:
    LAYOUTS = json.load(f)

# joint j of the mirrored image is joint PERM[j] of the original (written from the pairs)
PERM = list(range(29))
for a, b in FLIP_PAIRS:
    PERM[a], PERM[b] = b, a


def random_public_state(layout, seed: int) -> dict:
    """A random state dict of exactly ``layout`` ([key, shape, dtype] rows), with
    SMPL buffers that form a body (normalised regressors and weights)."""
    g = torch.Generator().manual_seed(seed)
    shapes = {k: tuple(s) for k, s, _ in layout}
    V = shapes["smpl.v_template"][0]
    state = {}
    for key, shape, dtype in layout:
        if dtype == "int64":
            state[key] = torch.zeros(shape, dtype=torch.int64)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=g)
        else:
            state[key] = 0.05 * torch.randn(shape, generator=g)

    def rows(n):                                    # nonnegative rows summing to 1
        w = torch.rand(n, V, generator=g) ** 8
        return w / w.sum(1, keepdim=True)

    state["smpl.v_template"] = 0.3 * torch.randn(V, 3, generator=g)
    state["smpl.J_regressor"] = rows(24)
    state["smpl.J_regressor_h36m"] = rows(17)
    state["smpl.lbs_weights"] = rows(24).T.contiguous()
    state["smpl.faces_tensor"] = torch.randint(0, V, shapes["smpl.faces_tensor"], generator=g)
    state["smpl.parents"] = torch.tensor(PARENTS_29)
    state["smpl.children_map"] = torch.tensor(IK_CHILD)
    for key, shape, dtype in layout:
        assert tuple(state[key].shape) == tuple(shape) and str(state[key].dtype) == "torch." + dtype, key
    return state


def test_fixture_has_the_published_entry_counts():
    assert len(LAYOUTS["resnet34"]) == 259 and len(LAYOUTS["hrnet48"]) == 1975
    for layout in LAYOUTS.values():
        assert sum(k.startswith("smpl.") for k, _, _ in layout) == 9


@pytest.mark.parametrize("name", ["resnet34", "hrnet48"])
def test_public_layout_loads_strictly(name):
    state = random_public_state(LAYOUTS[name], seed=1)
    model = build_public(dict(state), backend="reference")
    assert isinstance(model, HybrIKResNetCam if name == "resnet34" else HybrIKHRNetCam)
    assert not model.training
    own = model.state_dict()
    network = [k for k in state if not k.startswith("smpl.")]
    assert len(network) == len([k for k in own if not k.startswith("smpl.")]) - 1   # + J_regressor_h36m
    for k in network:
        assert torch.equal(own[k], state[k]), k
    assert not any(t.is_meta for t in own.values())
    body = model.smpl
    assert torch.equal(body.v_template, state["smpl.v_template"])
    assert torch.equal(body.posedirs, state["smpl.posedirs"])          # both (207, 3V)
    assert torch.equal(body.J_regressor, state["smpl.J_regressor"])
    assert torch.equal(body.weights, state["smpl.lbs_weights"])
    assert torch.equal(body.faces, state["smpl.faces_tensor"])
    assert torch.equal(body.shapedirs, state["smpl.shapedirs"])
    assert torch.equal(model.J_regressor_h36m, state["smpl.J_regressor_h36m"])
    assert body.leaf_vertices.tolist() == [411, 2445, 5905, 3216, 6617]


@pytest.fixture(scope="module")
def resnet_state():
    return random_public_state(LAYOUTS["resnet34"], seed=2)


def test_checkpoint_file_wrappings(resnet_state, tmp_path):
    """A public file under 'state_dict' with DataParallel's 'module.' prefixes
    loads, and gives the same model as the bare dict."""
    path = tmp_path / "pretrained_w_cam.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in resnet_state.items()}}, path)
    model = load_checkpoint(path, backend="reference")
    for k, v in resnet_state.items():
        if not k.startswith("smpl."):
            assert torch.equal(model.state_dict()[k], v), k
    for wrap in ({"model": resnet_state}, resnet_state):
        assert build_public(wrap.get("model", wrap)) is not None


def test_wrong_shape_names_the_key_and_both_shapes(resnet_state):
    state = dict(resnet_state)
    state["decphi.weight"] = torch.zeros(40, 1024)
    with pytest.raises(ValueError, match=r"'decphi.weight' has shape \(40, 1024\).*expects \(46, 1024\)"):
        build_public(state)


def test_missing_and_unexpected_keys_are_named(resnet_state):
    state = dict(resnet_state)
    del state["fc2.bias"]
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing keys \['fc2.bias'\].*unexpected keys \['extra.weight'\]"):
        build_public(state)
    state = dict(resnet_state)
    del state["smpl.lbs_weights"]
    with pytest.raises(ValueError, match="smpl.lbs_weights"):
        build_public(state)


def test_body_with_another_vertex_count_is_refused(resnet_state):
    body = BodyModel.synthetic()
    with pytest.raises(ValueError, match=f"V = 6890 vertices.*V = {body.num_vertices}"):
        build_public(dict(resnet_state), body=body)


@pytest.mark.parametrize("content", ["truncated", "text", "list"])
def test_unreadable_or_unknown_files(resnet_state, tmp_path, content):
    path = tmp_path / "model.pth"
    if content == "truncated":
        torch.save({k: v for k, v in resnet_state.items() if k.startswith("fc")}, path)
        path.write_bytes(path.read_bytes()[:5000])
    elif content == "text":
        path.write_text("not a checkpoint")
    else:
        torch.save([1, 2, 3], path)
    before = sorted(os.listdir(tmp_path))
    match = "tried: public ResNet.*public HRNet.*training" if content == "list" else "not a readable"
    with pytest.raises(ValueError, match=f"{path}.*{match}" if content != "list" else match) as e:
        load_checkpoint(path)
    assert str(path) in str(e.value)
    assert sorted(os.listdir(tmp_path)) == before
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_checkpoint(tmp_path / "nowhere.pth")


# ---------------------------------------------------------------- hand-derived formulas

def test_box_offset_and_back_projection_by_hand():
    off = box_offset(torch.tensor([[100.0, 80.0, 300.0, 400.0]]), torch.tensor([[320.0, 240.0]]))
    assert torch.allclose(off, torch.tensor([[-0.6, 0.0]]))       # ((200 - 320) / 200, (240 - 240) / 320)
    assert torch.allclose(camera_depth(torch.tensor([0.9])), torch.tensor([1000 / 230.4]))
    uvd = torch.tensor([[[0.1, -0.2, 0.05]]], dtype=torch.float64)
    xyz = unproject(uvd, torch.tensor([5.0], dtype=torch.float64), off.double(), 2.2)
    # z = 0.05·2.2 + 5 = 5.11; x = (0.1 − 0.6)·0.256·5.11; y = −0.2·0.256·5.11
    assert torch.allclose(xyz, torch.tensor([[[-0.65408, -0.261632, 5.11]]], dtype=torch.float64))
    assert torch.allclose(unproject(uvd, torch.tensor([5.0], dtype=torch.float64), None, 2.0),
                          torch.tensor([[[0.1 * 0.256 * 5.1, -0.2 * 0.256 * 5.1, 5.1]]], dtype=torch.float64))


def test_public_swing_keeps_the_published_constant():
    """Rodrigues with ε = 1e-8 added to |t × p| (axis k = v / (|v| + ε), so |k| = a < 1)
    and to m = |t||p| (sin θ = |v| / (m + ε)), by hand for a quarter turn about z,
    where |v| = m: R = I + sin K + (1 − cos) K² has R₀₀ = 1 − a², R₁₀ = a·sin = a²,
    with a = m / (m + ε): a rotation for bones of metres, off by 2% for millimetre
    vectors.  Parallel vectors give the identity."""
    t = torch.tensor([[1.0, 0.0, 0.0], [1e-3, 0.0, 0.0], [0.3, 0.0, 0.0]], dtype=torch.float64)
    p = torch.tensor([[0.0, 2.0, 0.0], [0.0, 1e-3, 0.0], [0.6, 0.0, 0.0]], dtype=torch.float64)
    R = public_swing(t, p)
    for i, m in enumerate((2.0, 1e-6)):
        a = m / (m + 1e-8)
        want = torch.tensor([[1 - a * a, -a * a, 0.0], [a * a, 1 - a * a, 0.0], [0.0, 0.0, 1.0]],
                            dtype=torch.float64)
        assert torch.allclose(R[i], want, rtol=0, atol=1e-12), i
    assert abs(float(R[1, 1, 0]) - 0.980296) < 1e-6
    assert torch.equal(R[2], torch.eye(3, dtype=torch.float64))


def test_public_naive_ik_is_the_naive_ik_but_for_the_constant(monkeypatch):
    """On an FK skeleton the public naive IK recovers the rotations: with ε = 0 it is
    the reference naive IK to rounding; with the published ε = 1e-8 its root is
    off by ~1e-5 (the hips' centre off the spine line is centimetres long here)."""
    from hybrik_fast import reference
    from hybrik_fast.models import public
    from hybrik_fast.poses import axis_angle_to_matrix
    g = torch.Generator().manual_seed(3)
    B = 6
    rest = BodyModel.synthetic(dtype=torch.float64).rest_joints(torch.zeros(B, 10, dtype=torch.float64))
    rotmats = axis_angle_to_matrix(0.4 * torch.randn(B, 24, 3, generator=g, dtype=torch.float64))
    joints = reference.forward_kinematics(rotmats, rest)
    twist = reference.twist_angles(rotmats, rest) * 1.7                     # unnormalised, as predicted
    assert (public_naive_ik(joints, twist, rest) - rotmats).abs().max() < 1e-4
    monkeypatch.setattr(public, "PUBLIC_EPS", 0.0)
    got = public_naive_ik(joints, twist, rest)
    assert (got - reference.hybrik_ik(joints, twist, rest, "naive", None)).abs().max() < 1e-10
    assert (got - rotmats).abs().max() < 1e-10


def test_scale_update_by_hand():
    # two joints, Z = 0: X_i = u_i·t, so t = Σ u X / Σ u² = (0.1·0 + 0.2·0.5) / (0.01 + 0.04) = 2
    uv = torch.tensor([[[0.1, 0.0], [0.2, 0.0]]], dtype=torch.float64)
    joints = torch.tensor([[[0.0, 0.0, 0.0], [0.5, 0.0, 0.0]]], dtype=torch.float64)
    s = refine_scale(torch.tensor([0.9], dtype=torch.float64), uv, joints,
                     torch.zeros(1, 3, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64))
    assert torch.allclose(s, torch.tensor([0.5], dtype=torch.float64))


def test_scale_update_recovers_a_consistent_camera_and_keeps_unweighted_samples():
    g = torch.Generator().manual_seed(3)
    B, k = 3, 256 / 1000
    joints = 0.4 * torch.randn(B, 24, 3, generator=g, dtype=torch.float64)
    root = torch.tensor([[0.2, -0.1, 0.3], [0.0, 0.4, -0.2], [0.1, 0.1, 0.1]], dtype=torch.float64)
    t_true = torch.tensor([4.0, 2.5, 7.0], dtype=torch.float64)
    P = joints + root[:, None]
    uv = P[..., :2] / (t_true[:, None, None] + k * P[..., 2:])     # X = u (t + k Z)
    weight = torch.rand(B, 24, generator=g, dtype=torch.float64)
    weight[2] = 0                                                  # no usable joint
    s = refine_scale(torch.full((B,), 0.9, dtype=torch.float64), uv, joints, root, weight)
    assert torch.allclose(s[:2], 1 / t_true[:2], rtol=1e-12)
    assert s[2] == 0.9


def test_flip_logits_shift_copies_first():
    # W = 4: joint 1 holds [0, 1, 2, 3] -> mirrored [3, 2, 1, 0] at joint 2 -> shifted [3, 3, 2, 1]
    x = torch.zeros(1, 29, 1, 1, 4)
    x[0, 1, 0, 0] = torch.tensor([0.0, 1.0, 2.0, 3.0])
    x[0, 0, 0, 0] = torch.tensor([5.0, 6.0, 7.0, 8.0])
    y = flip_heatmap_logits(x)
    assert y[0, 2, 0, 0].tolist() == [3.0, 3.0, 2.0, 1.0]
    assert y[0, 0, 0, 0].tolist() == [8.0, 8.0, 7.0, 6.0]
    # at 64^3 (where the public in-place slice assignment corrupts whole columns
    # on CPU) every column c >= 1 is the mirrored column c - 1 and column 0 is kept
    h = torch.randn(2, 29, 64, 64, 64, generator=torch.Generator().manual_seed(4))
    mirrored = h.flip(-1)[:, PERM]
    src = torch.tensor([0] + list(range(63)))
    assert torch.equal(flip_heatmap_logits(h), mirrored.index_select(-1, src))
    assert torch.equal(h, h.clone())                                # input untouched


# ---------------------------------------------------------------- whole models

def small_model(kind: str, backend: str = "reference"):
    """A seeded random model: ResNet-18 head or HRNet-W18, synthetic body, confident sigma."""
    torch.manual_seed(5)
    body = BodyModel.synthetic()
    regressor = torch.rand(17, body.num_vertices, generator=torch.Generator().manual_seed(6))
    regressor /= regressor.sum(1, keepdim=True)
    if kind == "resnet":
        model = HybrIKResNetCam(body, regressor, backend=backend, backbone="resnet18")
        final = model.final_layer
    else:
        model = HybrIKHRNetCam(body, regressor, backend=backend, backbone="hrnet18")
        final = model.preact.final_layer
    with torch.no_grad():
        final.weight.mul_(30)                                      # peaked heatmaps
        model.decsigma.weight.mul_(0.05)
        model.decsigma.bias.fill_(-4.0)                            # sigma ~ 0.02: the scale update runs
        model.deccam.weight.mul_(0.02)
        model.decphi.bias.normal_()
    return model.eval()


def images(B: int = 1, seed: int = 7) -> torch.Tensor:
    return torch.randn(B, 3, 256, 256, generator=torch.Generator().manual_seed(seed))


def with_cached_heads(model, x: torch.Tensor, dtype=torch.float32):
    """Run the network once on x and on its mirror, then make ``model.heads``
    return those results (cast to ``dtype``): the forward's remaining steps
    (soft-argmax, flip, camera, IK, body) then run without the backbone.
    Returns (heads of x, heads of the mirror)."""
    with torch.no_grad():
        cache = [(x, model.heads(x)), (x.flip(-1), model.heads(x.flip(-1)))]
    cache = [(im.to(dtype), {k: v.to(dtype) for k, v in h.items()}) for im, h in cache]

    def heads(images):
        return next(h for im, h in cache if torch.equal(im, images))

    model.to(dtype).heads = heads
    return cache[0][1], cache[1][1]


BOX = dict(bboxes=torch.tensor([[100.0, 80.0, 300.0, 400.0]]), img_center=torch.tensor([[320.0, 240.0]]))


@pytest.mark.parametrize("kind", ["resnet", "hrnet"])
def test_flip_test_averages_probability_volumes_and_heads(kind):
    model = small_model(kind)
    x = images()
    a, m = with_cached_heads(model, x)
    with torch.no_grad():
        out = model(x, flip_test=True, **BOX)
    D, H, W = a["logits"].shape[2:]
    mirrored = m["logits"].flip(-1)[:, PERM]
    mirrored = torch.cat([mirrored[..., :1], mirrored[..., :-1]], dim=-1)
    p = sum(torch.softmax(l.flatten(2), -1) for l in (a["logits"], mirrored)).reshape(1, 29, D, H, W) / 2
    coords = [(p.sum(dims) * torch.arange(n)).sum(-1) / n - 0.5
              for dims, n in (((2, 3), W), ((2, 4), H), ((3, 4), D))]
    assert torch.allclose(out.uvd, torch.stack(coords, -1), atol=2e-6)
    assert torch.allclose(out.betas, (a["betas"] + m["betas"]) / 2)
    rows = [PERM[j] - 1 for j in range(1, 24)]
    assert torch.allclose(out.twist, (a["twist"] + m["twist"][:, rows] * torch.tensor([1.0, -1.0])) / 2)
    assert torch.allclose(out.sigma, (a["sigma"] + m["sigma"][:, PERM]) / 2)
    assert torch.allclose(out.scores, 1 - out.sigma)
    if kind == "resnet":
        assert torch.allclose(out.camera, (a["camera"] + m["camera"] * torch.tensor([1.0, -1.0, 1.0])) / 2)
    else:
        assert torch.allclose(out.camera, 2 / (1 / a["camera"] + 1 / m["camera"]))
    for v in out.values():
        assert v is None or bool(torch.isfinite(v).all())


def test_resnet_back_projection_and_outputs():
    """cam_root follows the hand formula with and without a box; vertices and
    joints_h36m share the mesh's H36M root; transl = cam_root."""
    model = small_model("resnet")
    x = images()
    with_cached_heads(model, x)
    with torch.no_grad():
        for kw in ({}, BOX):
            out = model(x, **kw)
            s, tx = out.camera[0, 0], out.camera[0, 1]
            u0, d0 = out.uvd[0, 0, 0], out.uvd[0, 0, 2]
            z = d0 * 2.2 + 1000 / (256 * s)
            x0 = (u0 - 0.6) * 0.256 * z if kw else u0 * 0.256 * z - tx
            assert torch.allclose(out.cam_root[0], torch.stack([x0, out.cam_root[0, 1], z]), atol=1e-6)
            assert torch.equal(out.transl, out.cam_root)
            assert torch.allclose(out.joints[:, 0], torch.zeros(3))
            vertices, _ = model.smpl(out.rotmats, out.betas)
            h36m = model.J_regressor_h36m @ vertices
            assert torch.allclose(out.vertices, vertices - h36m[:, :1], atol=1e-6)
            assert torch.allclose(out.joints_h36m, h36m - h36m[:, :1], atol=1e-6)
    shapes = {"uvd": (1, 29, 3), "joints": (1, 29, 3), "twist": (1, 23, 2), "betas": (1, 10),
              "rotmats": (1, 24, 3, 3), "vertices": (1, model.smpl.num_vertices, 3), "transl": (1, 3),
              "cam_root": (1, 3), "joints_h36m": (1, 17, 3), "scores": (1, 29)}
    for k, shape in shapes.items():
        assert tuple(out[k].shape) == shape and out[k] is getattr(out, k), k


@pytest.mark.parametrize("kind", ["resnet", "hrnet"])
def test_fused_and_reference_backends_agree_on_the_whole_forward(kind):
    """Everything after the network, in float64 (the fused IK computes in
    float64 either way, so float32 runs differ by the reference's own float32
    rounding, up to ~1e-3 on the ill-conditioned poses of random weights)."""
    model = small_model(kind)
    x = images()
    with_cached_heads(model, x, torch.float64)
    x = x.double()
    box = {k: v.double() for k, v in BOX.items()}
    with torch.no_grad():
        for flip in (False, True):
            model.backend = "reference"
            ref = model(x, flip_test=flip, **box)
            model.backend = "auto"
            fused = model(x, flip_test=flip, **box)
            for k, v in ref.items():
                if v is not None:
                    assert torch.allclose(fused[k], v, rtol=0, atol=1e-7), (k, flip, float((fused[k] - v).abs().max()))


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("kind", ["resnet", "hrnet"])
def test_predictor_runs_a_published_model_as_its_forward(kind, flip):
    """Predictor on a published model, given a 256 px image whose box pads to exactly
    that image and the public focal (1000 px): the crop is the image, so the
    parameters are the forward's without a box (the public flip test included):
    rotmats, betas and twist; the root is cam_root (its z; the ResNet model shifts
    x, y by its (tx, ty) when given no box, the Predictor places the crop by the box)."""
    model = small_model(kind, backend="auto")
    # a human skeleton: the heatmap layer's output replaced by peaks at a held-out synthetic
    # pose (random logits give bones of millimetres, where the two float32 routes to the same
    # joints give rotations 1e-3 apart, more or less depending on the thread count)
    from hybrik_fast.data import SyntheticHumans
    uvd = SyntheticHumans(split="val", length=1, image_size=64, seed=5)[0]["joints_uvd"].float()   # (29, 3)
    uvd[:, 2] += 0.1             # the root's d is not 0: the Predictor must measure d from it
    c = torch.arange(64) / 64 - 0.5
    d2 = sum((c.reshape(shape) - uvd[:, i].reshape(29, 1, 1, 1)) ** 2
             for i, shape in ((0, (1, 1, 1, 64)), (1, (1, 1, 64, 1)), (2, (1, 64, 1, 1))))
    peaks = (-d2 / (2 * (1.5 / 64) ** 2)).reshape(1, 29 * 64, 64, 64)
    final = model.final_layer if kind == "resnet" else model.preact.final_layer
    final.register_forward_hook(lambda mod, inp, out: peaks.expand(out.shape[0], -1, -1, -1))
    if kind == "hrnet":          # σ ~ 1 keeps the initial scale: the random weights' fitted one puts
        with torch.no_grad():    # the root ~1e6 m away
            model.decsigma.bias.fill_(6.0)
    image = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    box = np.array([[25.6, 25.6, 230.4, 230.4]])          # 204.8 px, padded by 1.25: 256 px
    got = Predictor(model, detector="none", focal_length=1000.0, flip_test=flip).predict(image, box)
    x = normalize_image(np.ascontiguousarray(image[..., ::-1]))[None]
    with torch.no_grad():
        want = model(x, flip_test=flip)
    for key in ("betas", "twist"):
        assert np.abs(got[key] - want[key].numpy()).max() < 1e-6, key
    assert np.abs(got["rotmats"] - want.rotmats.numpy()).max() < 1e-4
    root = got["joints3d"][:, 0]                                # (1, 3) camera frame
    axes = slice(None) if kind == "hrnet" else slice(2, 3)
    np.testing.assert_allclose(root[:, axes], want.cam_root.numpy()[:, axes], rtol=1e-5)
    if not flip:       # an engine that only returns the forward's outputs (the ONNX engine's case)
        class ForwardOnly:
            backend = model.backend

            def __call__(self, crops):
                return model(crops)

        p = Predictor(model, detector="none", focal_length=1000.0)
        p.model = ForwardOnly()
        again = p.predict(image, box)
        for key in ("rotmats", "joints3d", "betas"):
            assert np.abs(again[key] - got[key]).max() < 1e-5, key


def test_bad_inputs_name_the_expected_shapes():
    model = small_model("resnet")
    with pytest.raises(ValueError, match=r"\(B, 3, 256, 256\).*got \(1, 3, 224, 224\)"):
        model(torch.zeros(1, 3, 224, 224))
    with pytest.raises(ValueError, match=r"\(B, 3, 256, 256\).*got \(1, 4, 256, 256\)"):
        model(torch.zeros(1, 4, 256, 256))
    with pytest.raises(TypeError, match="floating"):
        model(torch.zeros(1, 3, 256, 256, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"bboxes must have shape \(1, 4\).*got \(1, 2\)"):
        model(images(), bboxes=torch.zeros(1, 2), img_center=torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"img_center must have shape \(1, 2\)"):
        model(images(), bboxes=torch.zeros(1, 4), img_center=torch.zeros(2))
    with pytest.raises(ValueError, match="together"):
        model(images(), bboxes=torch.zeros(1, 4))


def test_training_checkpoint_loads_behind_the_same_call(tmp_path):
    from hybrik_fast.train import checkpoint, config
    from hybrik_fast.train.loop import build_model
    cfg = config.make_config("tiny", overrides={"out": str(tmp_path)})
    torch.manual_seed(8)
    net = build_model(cfg, torch.device("cpu")).eval()
    path = tmp_path / "last.pt"
    checkpoint.atomic_save({"format": checkpoint.FORMAT, "model": net.state_dict(), "step": 0,
                            "epoch": 0, "config": config.to_dict(cfg)}, str(path))
    model = load_checkpoint(path, backend="reference")
    x = torch.randn(2, 3, cfg.image_size, cfg.image_size, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        want = net(x)
        out = model(x)
    assert not model.training
    assert torch.allclose(out.joints, want.joints, atol=1e-6)
    s, tx, ty = want.camera.unbind(-1)
    assert torch.allclose(out.cam_root, torch.stack([tx, ty, 1000 / 256 / s], -1))
    assert torch.allclose(out.scores, 1 - want.sigma)
