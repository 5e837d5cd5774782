"""ONNX export of the whole model (issue 18): the SVD-free pelvis and IK
decomposition against the reference, onnxruntime against eager PyTorch (fused
ops), the graph's structure, the CLI, the engine, and bad input.

Each architecture is exported once per session (module-scoped fixture); adding
an architecture is one line in ARCHS.  Its random weights are made to predict
well-conditioned human skeletons (:func:`_human_skeletons`).
"""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

import hybrik_fast
from hybrik_fast import export_ops, reference
from hybrik_fast.benchmark import ik_sample
from hybrik_fast.cli import main as cli_main
from hybrik_fast.body import BodyModel
from hybrik_fast.data.synthetic import SyntheticHumans
from hybrik_fast.models import build_model
from hybrik_fast.models.public import HybrIKHRNetCam
from hybrik_fast.onnx_export import OUTPUTS, check_writable, export_onnx, image_size, output_fields
from hybrik_fast.camera import DEPTH_RANGE
from hybrik_fast.skeleton import IK_CHILD, NUM_BETAS, NUM_JOINTS, NUM_SMPL_JOINTS, PARENTS_29

onnx = pytest.importorskip("onnx", reason="the onnx extra (pip install '.[onnx]') is part of .[test]")
from hybrik_fast.onnx_engine import OnnxModel  # noqa: E402

#: the issue's tolerances, per output
TOL = {"uvd": 1e-4, "joints": 1e-4, "betas": 1e-4, "twist": 1e-4,
       "rotmats": 1e-3, "vertices": 1e-3, "transl": 1e-3, "cam_root": 1e-3}

#: architecture -> how to build it (random weights); "own" ones go through a
#: training checkpoint and ``hybrik-fast export``, "public" ones are the
#: published networks' layouts (models/public.py), the others build_model's
ARCHS = {
    "cpu-quick": dict(own=True, gain=0.25),
    "resnet34": dict(backbone="resnet34", image_size=256, heatmap_size=(64, 64, 64)),
    "hrnet48": dict(public=HybrIKHRNetCam, backbone="hrnet48", gain=0.03, steady_camera=True),
}
#: gain of the heatmap layer's random weights (ARCHS' ``gain`` overrides): N(0, (gain / sqrt(C))²)
HEATMAP_GAIN = 0.5
#: the test pose's bones are this fraction of the mean shape's (its 2.3 m from fingertips to toes fit the 2.2 m depth range)
POSE_SCALE = 0.75
#: the width (depth planes) of the Gaussian along depth in the heatmap layer's bias
DEPTH_SIGMA = 1.5
#: the published HRNet's deccam weights are scaled by this (_steady_camera)
CAMERA_GAIN = 0.01
#: the shortest bone any test skeleton may have (metres): shorter ones make the IK ill-posed
MIN_BONE = 0.01
#: degrees: a swing (the angle between a rest bone and its target) wider than this
#: is near enough a half-turn to be ill-conditioned (a human's stay under it; _swings)
HUMAN_SWING = 150.0


# ------------------------------------------------------------- decompositions

def _pelvis_cases():
    g = torch.Generator().manual_seed(0)
    P = torch.randn(64, 29, 3, generator=g, dtype=torch.float64)
    T = torch.randn(64, 29, 3, generator=g, dtype=torch.float64)
    P[1] = T[1] @ torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))  # a reflection: det fix
    P[2, :4] = P[2, :1] + torch.linspace(0, 1, 4, dtype=torch.float64)[:, None] * P.new_tensor([1.0, 2, 3])
    T[3, [0, 1, 2, 3]] = 0.0                                      # S = 0 -> identity
    P[4, 1, 0] = float("nan")                                     # NaN -> NaN in sample 4 only
    return P, T


def test_horn_pelvis_matches_kabsch():
    P, T = _pelvis_cases()
    want = reference.pelvis_rotation(P, T)
    got = export_ops.pelvis_rotation_horn(P, T)
    ok = torch.ones(64, dtype=torch.bool)
    ok[[2, 4]] = False               # 2: collinear children, the minimiser is not unique
    assert (got[ok] - want[ok]).abs().max() < 1e-10
    assert torch.equal(got[3], torch.eye(3, dtype=torch.float64))
    assert got[4].isnan().all() and torch.isfinite(got[ok]).all()
    # sample 2: not unique, but R0 must still be a rotation that fits as well as Kabsch's
    ch = [3, 1, 2]
    t, p = T[2, ch] - T[2, :1], P[2, ch] - P[2, :1]
    R = got[2]
    assert torch.allclose(R @ R.T, torch.eye(3, dtype=torch.float64), atol=1e-12)
    assert abs(torch.linalg.det(R) - 1) < 1e-12
    res = lambda M: ((t @ M.T - p) ** 2).sum()                   # noqa: E731
    assert res(R) <= res(want[2]) + 1e-10


@pytest.mark.parametrize("mode,fallback", [("adaptive", 0.015), ("adaptive", None), ("naive", None)])
def test_export_ik_matches_reference(mode, fallback):
    s = ik_sample(32, seed=3, joint_noise=0.02, twist_scale=0.3)
    got = export_ops.hybrik_ik(*s.inputs(), mode=mode, fallback=fallback)
    want = reference.hybrik_ik(*s.inputs(), mode=mode, fallback=fallback)
    assert (got - want).abs().max() < 1e-10


# ------------------------------------------------------------- exported models

def _straight_pose(body: BodyModel) -> torch.Tensor:
    """The depth (metres, (29,)) of each joint in a pose with every bone along the
    optical axis: the mean shape's rest bones laid end to end, the legs (the hips and
    their descendants) towards −z, the spine, head and arms towards +z (a person
    standing with the arms straight up, seen from above); the root at 0."""
    rest = body.rest_joints(torch.zeros(1, NUM_BETAS))[0]                         # (29, 3)
    z = torch.zeros(NUM_JOINTS)
    legs = {1, 2}
    for i in range(1, NUM_JOINTS):
        p = PARENTS_29[i]
        if p in legs:
            legs.add(i)
        z[i] = z[p] + (-1 if i in legs else 1) * (rest[i] - rest[p]).norm()
    return z


def _calibration_images(S: int) -> torch.Tensor:
    """The batch that sets the BatchNorm statistics: 2 random and 2 synthetic images
    (B = 4, 3, S, S), none of them a test image (other seeds, the training split)."""
    data = SyntheticHumans(split="train", length=2, image_size=S, seed=13)
    synthetic = torch.stack([torch.as_tensor(data[i]["image"]) for i in range(2)])
    return torch.cat([torch.randn(2, 3, S, S, generator=torch.Generator().manual_seed(7)), synthetic])


def _human_skeletons(model: torch.nn.Module, heatmap_layer: torch.nn.Conv2d,
                     gain: float = HEATMAP_GAIN) -> None:
    """Make a randomly initialised model predict well-conditioned human skeletons,
    in place (seeded).  Weights only: the graph is the model's own.

    Step 1, as training leaves them: every BatchNorm's running statistics are set
    to those of a batch of random and synthetic images (:func:`_calibration_images`;
    as initialised, the HRNet's activations grow to ~1e8 through unit statistics,
    and from random images alone its camera head put the camera 7 cm from the
    root on synthetic ones).
    Step 2, the heatmap layer (1×1 conv, C inputs -> K·D channels, channel
    k·D + d is depth plane d of joint k): its bias makes each joint's logits a
    sharp Gaussian in depth, −(z_d − z_k)² / (2 DEPTH_SIGMA²) with z_d = d/D − 0.5,
    at z_k = POSE_SCALE · :func:`_straight_pose` / 2.2 m (root-centred); its
    weights stay random, N(0, (gain/√C)²) per joint, the same for the D planes
    of a joint.  A bias is constant over (h, w), and the random features carry
    no usable position (a least-squares readout of x from them leaves 0.27 of
    x's 0.29 RMS, measured on cpu-quick and ResNet-34; their spatial structure
    is the deconvolutions' period-8 pattern, so readouts of shifted copies fail
    too), so a 1×1 layer cannot place a peak in (h, w); here the small
    random weights tilt each joint's near-uniform (h, w) distribution instead,
    putting its (u, v) near the centre, off by millimetres to centimetres in a
    direction that depends on the image and on every weight before the layer
    (the gains per architecture, ARCHS, keep that under ~3 cm RMS).
    The skeleton: bones along depth as long as POSE_SCALE times the mean
    shape's, plus that offset across; the IK's swings are then about the rest
    pose's bends between consecutive bones, or a quarter turn (the arms
    raised): at most 120° on the test images (asserted under HUMAN_SWING).
    The depth part is sharp (the logits are separable: the depth marginal is
    the bias's softmax), the (u, v) part near-uniform with logits of order
    ``gain``, so rounding in the layer's input moves uvd by 1e-6 to 1e-5.
    Not a human seen from the side, but a human pose (standing, arms up,
    seen from above) whose IK is as well-conditioned as one.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None            # cumulative average: the one batch's statistics
        m.train()
    S = image_size(model)
    with torch.no_grad():
        model(_calibration_images(S))
        D = heatmap_layer.out_channels // NUM_JOINTS
        z = POSE_SCALE * _straight_pose(model.smpl) / DEPTH_RANGE                  # (29,)
        z = z - (z.max() + z.min()) / 2
        planes = torch.arange(D) / D - 0.5                                         # (D,)
        bias = -(planes - z[:, None]) ** 2 / (2 * (DEPTH_SIGMA / D) ** 2)          # (29, D)
        heatmap_layer.bias.copy_(bias.reshape(-1))
        g = torch.Generator().manual_seed(3)
        C = heatmap_layer.in_channels
        w = torch.randn(NUM_JOINTS, 1, C, generator=g) * gain / C ** 0.5           # (29, 1, C)
        heatmap_layer.weight.copy_(w.expand(NUM_JOINTS, D, C).reshape(heatmap_layer.weight.shape))
    for m in norms:
        m.eval()


def _steady_camera(model: HybrIKHRNetCam) -> None:
    """The published HRNet's camera, as a trained one's, in place: deccam's random
    weights scaled by CAMERA_GAIN, and the scale update run on the root alone.

    The scale is 0.9 + deccam(feature); with deccam as drawn (and the BatchNorm
    statistics of random images alone) the synthetic images gave scales up
    to 55 (the camera 7 cm from the root, joints of the 1.8 m deep test
    skeleton behind it, swings up to 157°).  The update (models/public.py, ``refine_scale``) weighs joint j by
    max(0, 1 − 10σ_j): decsigma's bias is set to −4 for the root (σ ≈ 0.02) and
    +4 for the others (σ ≈ 0.98, weight 0), its weights kept; as drawn every σ
    is ≈ 0.5 and the update is skipped.  On the root it runs and gives back
    the initial scale (the root's (u, v) is unprojected at that scale).
    """
    with torch.no_grad():
        model.deccam.weight.mul_(CAMERA_GAIN)
        model.decsigma.bias.fill_(4.0)
        model.decsigma.bias[0] = -4.0


def _heatmap_layer(model: torch.nn.Module) -> torch.nn.Conv2d:
    """The final 1×1 convolution to the K·D heatmap channels (ResNet head or HRNet trunk)."""
    layer = getattr(model, "final_layer", None)
    return layer if layer is not None else model.preact.final_layer


def _own_checkpoint(folder) -> str:
    """A cpu-quick training checkpoint with random weights and human skeletons
    (the format train/checkpoint.py reads)."""
    from hybrik_fast.train import config
    from hybrik_fast.train.checkpoint import FORMAT, atomic_save
    from hybrik_fast.train.loop import build_model as build_from_config
    cfg = config.make_config("cpu-quick")
    torch.manual_seed(1)
    model = build_from_config(cfg, torch.device("cpu")).eval()
    net = getattr(model, "net", model)
    _human_skeletons(net, _heatmap_layer(net), ARCHS["cpu-quick"].get("gain", HEATMAP_GAIN))
    path = os.path.join(folder, "cpu-quick.pt")
    atomic_save({"format": FORMAT, "model": model.state_dict(), "step": 0, "epoch": 0,
                 "config": config.to_dict(cfg)}, path)
    return path


#: architecture -> the training checkpoint its "own" export came from
_CHECKPOINTS: dict[str, str] = {}


@pytest.fixture(scope="module", params=list(ARCHS))
def exported(request, tmp_path_factory):
    """(name, eager model with fused ops, OnnxModel) for each architecture, exported once."""
    name, spec = request.param, ARCHS[request.param]
    folder = str(tmp_path_factory.mktemp(f"onnx-{name}"))
    path = os.path.join(folder, f"{name}.onnx")
    if spec.get("own"):
        from hybrik_fast.models import load_checkpoint
        ckpt = _CHECKPOINTS[name] = _own_checkpoint(folder)
        assert cli_main(["export", "--checkpoint", ckpt, "--out", path]) == 0
        model = load_checkpoint(ckpt)
    else:
        torch.manual_seed(2)
        if "public" in spec:
            model = spec["public"](BodyModel.synthetic(), backbone=spec["backbone"]).eval()
        else:
            model = build_model(**spec).eval()
        _human_skeletons(model, _heatmap_layer(model), spec.get("gain", HEATMAP_GAIN))
        if spec.get("steady_camera"):
            _steady_camera(model)
        export_onnx(model, path)
    return name, model, OnnxModel(path, threads=2, body=model.smpl)


def _images(kind: str, B: int, S: int) -> torch.Tensor:
    if kind == "random":
        return torch.randn(B, 3, S, S, generator=torch.Generator().manual_seed(B))
    data = SyntheticHumans(split="val", length=B, image_size=S, seed=5)
    return torch.stack([torch.as_tensor(data[i]["image"]) for i in range(B)])


def _bones(joints: torch.Tensor) -> torch.Tensor:
    """joints (B, 29, 3) -> bone lengths (B, 28), child minus parent."""
    return (joints[:, 1:] - joints[:, list(PARENTS_29[1:])]).norm(dim=-1)


def _swings(rotmats: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
    """rotmats (B, 24, 3, 3), rest joints (B, 29, 3) -> each joint's swing (B, 23), degrees:
    the angle between its rest bone t = T[c] − T[i] (c = IK_CHILD[i]) and R_i t.

    Near a half-turn the swing's axis is ill-defined (the rotation moves by
    ~δ/(π − α) for a target moved by δ) and the roll that gives joint i's frame
    passes down to its descendants; a human's swings stay under ~150°.
    """
    out = []
    for i in range(1, NUM_SMPL_JOINTS):
        t = rest[:, IK_CHILD[i]] - rest[:, i]                          # (B, 3)
        cos = torch.nn.functional.cosine_similarity(t, (rotmats[:, i] @ t[..., None])[..., 0], dim=-1)
        out.append(torch.rad2deg(torch.acos(cos.clamp(-1, 1))))
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("kind", ["random", "synthetic"])
@pytest.mark.parametrize("B", [1, 8])
def test_onnxruntime_matches_eager(exported, B, kind):
    """Every output of onnxruntime against eager PyTorch directly, every joint, at
    the issue's tolerances (TOL), on well-conditioned human skeletons.

    The random weights are made to predict them (:func:`_human_skeletons`), and
    that they do is asserted first: bones of at least MIN_BONE, swings under
    HUMAN_SWING at every joint.  On random skeletons neither holds, and any two
    float32 implementations differ there: onnxruntime's and PyTorch's
    convolutions differ by ~1e-6 relative, which over bones of a few mm turns
    rotations by 1e-2, and near a half-turn swing by up to ~5e-3; and near-flat
    heatmaps with logits of order 1 spread HRNet-W48's rounding to 1.2e-4 in uvd
    (joints 2.5e-4) at B = 8 (the measured figures with the previous random
    skeletons, bones of centimetres to a metre).  Measured here (2 threads):
    uvd ≤ 7.4e-6, joints ≤ 2.4e-5, betas ≤ 9.5e-6, rotmats ≤ 7.6e-4 (ResNet-34,
    B = 8, synthetic; ≤ 2.3e-4 at B = 1), vertices ≤ 1.8e-4, transl ≤ 1.2e-5."""
    name, model, engine = exported
    images = _images(kind, B, image_size(model))
    got = engine(images)
    with torch.no_grad():
        want = output_fields(model(images))
    bones = _bones(want["joints"])
    assert bones.min() >= MIN_BONE, f"{name} {kind}: collapsed skeleton, shortest bones {bones.amin(1)}"
    swings = _swings(want["rotmats"], model.smpl.rest_joints(want["betas"]))
    assert swings.max() < HUMAN_SWING, f"{name} {kind}: swings up to {swings.amax(1)} degrees"
    for field in OUTPUTS:
        assert got[field].shape == want[field].shape, field
        err = (got[field] - want[field]).abs().max().item()
        assert err <= TOL[field], f"{name} B={B} {kind}: {field} differs by {err:.2e} > {TOL[field]:.0e}"


def test_graph_structure(exported):
    """Dynamic batch; no loop, branch or SVD-like op; the outputs in order."""
    _, _, engine = exported
    graph = onnx.load(engine.path).graph
    ops = {n.op_type for n in graph.node}
    assert not ops & {"Loop", "If", "Scan", "SequenceMap"}, ops
    assert not any("svd" in op.lower() or "eig" in op.lower() for op in ops), ops
    assert [o.name for o in graph.output] == list(OUTPUTS)
    batch = graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.HasField("dim_value")


def test_fallback_is_a_per_sample_select(tmp_path):
    """The adaptive fallback exported alone: samples with and without a
    triggered fallback in one batch match the reference."""
    class IK(torch.nn.Module):
        def forward(self, joints, twist, rest):
            return hybrik_fast.hybrik_ik(joints, twist, rest, mode="adaptive", fallback=0.015)

    from hybrik_fast import _backend
    s = ik_sample(6, seed=4, dtype=torch.float32, joint_noise=0.0)
    joints = s.joints.clone()
    joints[::2] += 0.05 * torch.randn(3, 29, 3, generator=torch.Generator().manual_seed(0))  # strays
    path = str(tmp_path / "ik.onnx")
    batch = torch.export.Dim("batch", min=1)
    with _backend.exporting():
        prog = torch.onnx.export(IK().eval(), (joints, s.twist, s.rest), dynamo=True,
                                 dynamic_shapes=({0: batch}, {0: batch}, {0: batch}))
    prog.save(path)
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feeds = dict(zip([i.name for i in sess.get_inputs()], (joints.numpy(), s.twist.numpy(), s.rest.numpy())))
    got = torch.from_numpy(sess.run(None, feeds)[0])
    want = reference.hybrik_ik(joints, s.twist, s.rest, "adaptive", 0.015)
    naive = reference.hybrik_ik(joints, s.twist, s.rest, "adaptive", None)
    assert (got - want).abs().max() < 1e-5
    differs = (want - naive).flatten(1).abs().amax(1) > 1e-3      # where the fallback fired
    assert differs[::2].any() and not differs[1::2].any()


# ------------------------------------------------------------- bad input

def test_engine_rejects_wrong_image_shape(exported):
    _, model, engine = exported
    S = image_size(model)
    with pytest.raises(ValueError, match=rf"\(2, 3, {S + 32}, {S + 32}\).*\(B, 3, {S}, {S}\)"):
        engine(torch.zeros(2, 3, S + 32, S + 32))
    with pytest.raises(TypeError, match="floating"):
        engine(torch.zeros(2, 3, S, S, dtype=torch.int64))


def test_checkpoint_that_is_not_a_model(tmp_path, capsys):
    bad = tmp_path / "notes.pt"
    torch.save({"hello": torch.zeros(3)}, bad)
    assert cli_main(["export", "--checkpoint", str(bad), "--out", str(tmp_path / "m.onnx")]) == 1
    assert str(bad) in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_unwritable_path_fails_before_export(tmp_path):
    class Exploding(torch.nn.Module):
        def forward(self, images):
            raise AssertionError("the export started")

    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_onnx(Exploding(), tmp_path / "missing" / "m.onnx")
    with pytest.raises(IsADirectoryError):
        export_onnx(Exploding(), tmp_path)
    if os.geteuid() != 0:   # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(PermissionError, match="cannot write"):
            check_writable(ro / "m.onnx")


def test_missing_extra_names_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r"hybrik_fast\[onnx\]"):
        OnnxModel(tmp_path / "m.onnx")
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(ImportError, match=r"hybrik_fast\[onnx\]"):
        export_onnx(torch.nn.Identity(), tmp_path / "m.onnx")


def test_engine_output_is_a_model_output(exported):
    _, model, engine = exported
    out = engine(np.zeros((1, 3, image_size(model), image_size(model)), np.float32))
    assert out.vertices.shape == (1, model.smpl.num_vertices, 3) and out.sigma is None


def test_predictor_onnx_engine_matches_torch(exported, tmp_path):
    """Predictor(engine="onnx") on a synthetic scene gives the torch engine's parameters, mesh and
    2D joints (the network through onnxruntime, the same IK and body model after it)."""
    name, _, engine = exported
    if name not in _CHECKPOINTS:
        pytest.skip("the Predictor reads training checkpoints' crops; this architecture has none here")
    from hybrik_fast import Predictor
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(120, 160, 3), dtype=np.uint8)
    boxes = np.array([[20.0, 10.0, 90.0, 110.0], [80.0, 5.0, 150.0, 115.0]])
    torch_engine = Predictor(_CHECKPOINTS[name], detector="none")
    onnx_engine = Predictor(_CHECKPOINTS[name], detector="none", engine="onnx", onnx_path=engine.path)
    want, got = torch_engine.predict(image, boxes), onnx_engine.predict(image, boxes)
    assert set(got) == set(want)
    for key, tol in (("betas", 1e-4), ("twist", 1e-4), ("transl", 1e-3)):
        assert np.abs(got[key] - want[key]).max() < tol, key
    assert np.abs(got["joints3d"] - want["joints3d"]).max() < 1e-3
    with pytest.raises(ValueError, match="engine"):
        Predictor(_CHECKPOINTS[name], detector="none", engine="onnx")
