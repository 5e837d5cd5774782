"""hybrik_fast.predict: the Predictor's outputs against smplx and hand-derived geometry, and the CLI."""
import json
import os

import cv2
import numpy as np
import pytest
import torch

from hybrik_fast import BodyModel
from hybrik_fast.camera import FOCAL_NORM
from hybrik_fast.predict import KEYS, PredictError, Predictor
from hybrik_fast.predict.cli import main as predict_main
from hybrik_fast.predict.predictor import place, unflip
from hybrik_fast.train import checkpoint, config
from hybrik_fast.train.loop import build_model
from hybrik_fast.benchmark import ik_sample

SMALL = {"image_size": 64, "heatmap_size": [4, 16, 16], "model_kwargs": {"deconv_channels": 16}}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """An untrained tiny model saved in the trainer's checkpoint format (seeded weights)."""
    cfg = config.make_config("tiny", overrides=SMALL)
    torch.manual_seed(0)
    model = build_model(cfg, torch.device("cpu"))
    with torch.no_grad():                                 # a camera scale that puts people ~3-6 m away
        model.deccam.bias.copy_(torch.tensor([-1.2, 0.0, 0.0]))
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    checkpoint.atomic_save({"format": checkpoint.FORMAT, "model": model.state_dict(), "step": 0,
                            "epoch": 0, "config": config.to_dict(cfg)}, str(path))
    return str(path)


@pytest.fixture(scope="module")
def predictor(ckpt):
    return Predictor(ckpt, detector="none", batch_size=3)


def _image(seed=0, H=240, W=320):
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


BOXES = [[10, 10, 90, 200], [150, 30, 300, 230], [250, 100, 318, 239]]


# ---------------------------------------------------------------- point 3: the parameters are usable

def test_smplx_reproduces_vertices_and_intrinsics_project_joints(predictor, tmp_path):
    smplx = pytest.importorskip("smplx")
    r = predictor.predict(_image(), boxes=BOXES)
    assert set(r) == set(KEYS) and len(r["boxes"]) == 3
    path = tmp_path / "body.pkl"
    BodyModel.synthetic().save(path)                      # the checkpoint's body (synthetic default)
    # smplx's landmark vertex ids (its extra joints, not the mesh) are for the 6890-vertex SMPL
    # mesh; the synthetic body has fewer vertices, so point them all at vertex 0
    from smplx.vertex_ids import vertex_ids
    smpl = smplx.SMPL(model_path=str(path), vertex_ids={k: 0 for k in vertex_ids["smplh"]})
    out = smpl(global_orient=torch.from_numpy(r["global_orient"]), body_pose=torch.from_numpy(r["body_pose"]),
               betas=torch.from_numpy(r["betas"]), transl=torch.from_numpy(r["transl"]))
    err = (out.vertices.detach().numpy() - r["vertices"]).__abs__().max()
    print(f"max |smplx - ours| vertex: {err:.2e} m")
    assert err <= 1e-4
    err_j = (out.joints[:, :24].detach().numpy() - r["joints3d"][:, :24]).__abs__().max()
    assert err_j <= 1e-4                                  # SMPL's joints, in the same frame
    assert r["vertices"][..., 2].min() > 0.5              # in front of the camera
    # the pinhole projection, written here: f (x, y) / z + c
    xyz = r["joints3d"].astype(np.float64)
    proj = r["focal_length"] * xyz[..., :2] / xyz[..., 2:] + r["principal_point"]
    assert np.abs(proj - r["joints2d"]).max() <= 0.5
    assert float(r["focal_length"]) == 320 and np.allclose(r["principal_point"], [160, 120])


def test_place_inverts_the_crop_camera():
    """Joints seen through an off-centre crop of an image camera come back exactly (hand-derived projection)."""
    sample = ik_sample(4, seed=3)
    rot, rest = sample.rotmats, sample.rest
    from hybrik_fast import forward_kinematics
    joints = forward_kinematics(rot, rest)                                         # (4, 29, 3) root-relative
    root = torch.tensor([[-1.0, 0.3, 6.0], [0.8, -0.2, 4.0], [2.0, 1.0, 9.0], [0.0, 0.0, 3.0]],
                        dtype=torch.float64)
    xyz = joints + root[:, None]
    f = torch.tensor([800.0, 800.0, 1500.0, 300.0], dtype=torch.float64)
    p = torch.tensor([[320.0, 240.0], [320.0, 240.0], [960.0, 540.0], [100.0, 90.0]], dtype=torch.float64)
    pix = f[:, None, None] * xyz[..., :2] / xyz[..., 2:] + p[:, None]             # image pixels
    centre = pix[:, 0] + torch.tensor([[12.0, -7.0]], dtype=torch.float64)        # crops not centred on the root
    side = torch.tensor([400.0, 350.0, 500.0, 260.0], dtype=torch.float64)
    uv = (pix - centre[:, None]) / side[:, None, None]                             # crop widths
    d = (xyz[..., 2:] - root[:, None, 2:]) / 2.2
    z_net = FOCAL_NORM * root[:, 2] * side / f      # the depth a network trained at FOCAL_NORM reads
    got_joints, got_root = place(torch.cat([uv, d], -1), z_net, centre, side, f, p)
    torch.testing.assert_close(got_root, root, atol=1e-9, rtol=0)
    torch.testing.assert_close(got_joints, joints, atol=1e-9, rtol=0)


def test_unflip_is_an_involution():
    g = torch.Generator().manual_seed(1)
    raw = {"uvd": torch.rand(2, 29, 3, generator=g) - 0.5, "twist": torch.randn(2, 23, 2, generator=g),
           "betas": torch.randn(2, 10, generator=g), "z": torch.rand(2, generator=g) + 3}
    back = unflip(unflip(raw, 64), 64)
    for k in raw:
        torch.testing.assert_close(back[k], raw[k])
    assert not torch.allclose(unflip(raw, 64)["uvd"], raw["uvd"])


def test_batched_crops_match_one_by_one(predictor):
    images = [_image(1), _image(2, 200, 260)]
    together = predictor.predict_batch(images, [BOXES[:2], BOXES[2:]])
    alone = [predictor.predict(images[0], BOXES[:2]), predictor.predict(images[1], BOXES[2:])]
    for a, b in zip(together, alone):
        for k in KEYS:
            np.testing.assert_allclose(a[k], b[k], atol=2e-5, rtol=1e-4)


def test_flip_test_and_nobody(ckpt):
    p = Predictor(ckpt, detector="none", flip_test=True)
    r = p.predict(_image(3), boxes=[])
    assert all(r[k].shape[0] == 0 for k in KEYS if k not in ("focal_length", "principal_point"))
    assert r["vertices"].shape[1:] == (p.body.num_vertices, 3)
    r = p.predict(_image(3))                               # detector "none": the whole image
    np.testing.assert_array_equal(r["boxes"], [[0, 0, 320, 240]])
    assert np.isfinite(r["vertices"]).all()


def test_bad_image_types(predictor):
    with pytest.raises(TypeError, match="uint8"):
        predictor.predict(_image().astype(np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        predictor.predict(_image()[..., 0])


# ---------------------------------------------------------------- point 2 and bad input: the CLI

@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    (d / "imgs").mkdir()
    for i in range(3):
        cv2.imwrite(str(d / "imgs" / f"a{i}.png"), _image(10 + i))
    (d / "imgs" / "broken.png").write_bytes(b"not an image")
    writer = cv2.VideoWriter(str(d / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for i in range(5):
        writer.write(_image(20 + i, 120, 160))
    writer.release()
    return d


def _boxes_file(tmp_path, data):
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(path)


def test_cli_images(ckpt, inputs, tmp_path, capsys):
    boxes = _boxes_file(tmp_path, {"a0.png": BOXES, "a1.png": [], "a2.png": [[-40, -40, 100, 90]]})
    out = tmp_path / "out"
    with pytest.warns(RuntimeWarning, match="broken.png"):
        rc = predict_main([str(inputs / "imgs"), "--checkpoint", ckpt, "--out", str(out), "--boxes", boxes,
                           "--save-mesh", "--batch-size", "2", "--detector", "none"])
    assert rc == 0
    text = capsys.readouterr()
    assert "3 images, 4 people, 1 skipped" in text.out and "images/s" in text.out
    assert "a1.png: nobody found" in text.out + text.err
    a0 = np.load(out / "a0.npz")
    assert set(a0.files) == set(KEYS) and a0["vertices"].shape[0] == 3
    assert np.load(out / "a1.npz")["betas"].shape == (0, 10)
    np.testing.assert_array_equal(np.load(out / "a2.npz")["boxes"], [[0, 0, 100, 90]])   # clipped
    lines = (out / "a0_2.obj").read_text().splitlines()
    v = np.array([[float(x) for x in line.split()[1:]] for line in lines if line.startswith("v ")])
    np.testing.assert_allclose(v, a0["vertices"][2], atol=1e-6)
    picture = cv2.imread(str(out / "a0.jpg"))
    assert picture.shape == (240, 640, 3)                  # the overlay and the side view
    assert not any(n.endswith(".tmp") for n in os.listdir(out))


def test_cli_video(ckpt, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    rc = predict_main([str(inputs / "clip.avi"), "--checkpoint", ckpt, "--out", str(out), "--detector", "none",
                       "--batch-size", "2"])
    assert rc == 0
    r = np.load(out / "clip.npz")
    np.testing.assert_array_equal(r["frame"], np.arange(5))
    np.testing.assert_array_equal(r["track_id"], np.zeros(5))       # one person, one track
    assert r["vertices"].shape[0] == 5 and r["focal_length"].shape == ()
    cap = cv2.VideoCapture(str(out / "clip.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    assert "5 images, 5 people, 0 skipped" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["video", "out", "json", "entry", "checkpoint"])
def test_cli_errors_name_the_culprit(ckpt, inputs, tmp_path, capsys, case):
    out, args = tmp_path / "out", [str(inputs / "imgs" / "a0.png")]
    ck = ckpt
    if case == "video":
        (tmp_path / "bad.mp4").write_bytes(b"nope")
        args, culprit = [str(tmp_path / "bad.mp4")], "bad.mp4"
    elif case == "out":
        out.write_text("a file, not a folder")
        ck, culprit = str(tmp_path / "missing.pt"), str(out)      # fails before the checkpoint is opened
    elif case == "json":
        args += ["--boxes", _boxes_file(tmp_path, "{not json")]
        culprit = "boxes.json"
    elif case == "entry":
        args += ["--boxes", _boxes_file(tmp_path, {"a0.png": [[1, 2, 3]]})]
        culprit = "'a0.png'"
    else:
        (tmp_path / "notes.pt").write_text("not a model")
        ck, culprit = str(tmp_path / "notes.pt"), "notes.pt"
    rc = predict_main(args + ["--checkpoint", ck, "--out", str(out), "--detector", "none"])
    err = capsys.readouterr().err
    assert rc == 1 and culprit in err, err


def test_predict_video_missing_file_raises(predictor, tmp_path):
    with pytest.raises(PredictError, match="nothing.mp4"):
        next(predictor.predict_video(tmp_path / "nothing.mp4"))


def test_held_out_scenes(tmp_path):
    """The scenes the main job writes: boxes enclose the true meshes seen by the default camera."""
    from hybrik_fast.predict.scenes import SIZE, write_scenes
    paths = write_scenes(str(tmp_path), count=2)
    W, H = SIZE
    boxes = json.loads((tmp_path / "boxes.json").read_text())
    truth = np.load(tmp_path / "truth.npz")
    assert [os.path.basename(p) for p in paths] == sorted(boxes)
    for i, name in enumerate(sorted(boxes)):
        assert cv2.imread(paths[i]).shape == (H, W, 3)
        verts = truth["vertices"][truth["scene"] == i]
        assert len(verts) == len(boxes[name]) >= 1
        for v, box in zip(verts, boxes[name]):
            px = max(W, H) * v[:, :2] / v[:, 2:] + [W / 2, H / 2]
            np.testing.assert_allclose(np.r_[px.min(0), px.max(0)], box, atol=1e-6)
            assert 0 <= box[0] and box[2] <= W and box[3] - box[1] > 0.4 * H


@pytest.mark.skipif(hasattr(cv2, "HOGDescriptor"), reason="this OpenCV has the HOG detector")
def test_cli_without_hog_says_what_to_do(ckpt, inputs, tmp_path, capsys):
    rc = predict_main([str(inputs / "imgs" / "a0.png"), "--checkpoint", ckpt, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 1 and "opencv-python-headless<5" in err and "--detector none" in err


def test_cli_help_lists_the_options(capsys):
    from hybrik_fast.cli import main
    with pytest.raises(SystemExit) as e:
        main(["predict", "--help"])
    text = capsys.readouterr().out
    assert e.value.code == 0
    for option in ("--checkpoint", "--out", "--boxes", "--detector", "--flip-test", "--save-mesh", "--no-render",
                   "--batch-size", "--device", "--no-smooth"):
        assert option in text
