"""Training infrastructure: config, schedules, checkpoints, NaN handling, artefacts, bad input.

Tiny runs: 64 px images, ResNet-18, a 4×16×16 heatmap with 16 deconv
channels, batch 2, a few steps on a handful of synthetic images.
"""
import json
import math
import os
import random

import numpy as np
import pytest
import torch
import yaml

from hybrik_fast.train import checkpoint, config, schedule
from hybrik_fast.train.checkpoint import CheckpointError
from hybrik_fast.train.config import ConfigError, make_config
from hybrik_fast.train.data import DataSpecError, build_dataset
from hybrik_fast.train.evaluate import mean_rotation
from hybrik_fast.train.loop import TrainingError, build_optimizer, train
from hybrik_fast.train.run import eval_main, train_main

@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: deterministic float order, and no OpenMP contention on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


TINY = dict(image_size=64, heatmap_size=[4, 16, 16], model_kwargs={"deconv_channels": 16},
            train_length=8, val_length=4, batch_size=2, max_steps=3, baselines=False,
            predictions_png=0, progress=False)


def tiny_config(out, **kw):
    return make_config("tiny", overrides={**TINY, "out": str(out), **kw})


def losses(out):
    with open(os.path.join(out, "log.csv")) as f:
        import csv
        return [(int(r["step"]), float(r["loss"]), int(r["skipped"])) for r in csv.DictReader(f)]


# ----------------------------------------------------------------------------- config

def test_config_layers_preset_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"lr": 0.005, "milestones": [0.5], "batch_size": 8}))
    cfg = make_config("cpu-quick", str(path), ["batch_size=4", "--heatmap-size=[8,16,16]"])
    assert (cfg.lr, cfg.milestones, cfg.batch_size, cfg.heatmap_size) == (0.005, [0.5], 4, [8, 16, 16])
    assert cfg.backbone == "resnet18" and cfg.image_size == 64            # from the preset
    assert make_config("gpu").backbone == "resnet34" and make_config("gpu").image_size == 256
    assert make_config("gpu").heatmap_size == [64, 64, 64] and make_config("gpu").batch_size == 32
    config.save(cfg, str(tmp_path / "saved.yaml"))
    assert make_config(None, str(tmp_path / "saved.yaml")) == cfg


def test_config_typo_lists_the_valid_keys(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key 'lrr'.*valid keys are: .*\blr\b"):
        make_config("tiny", overrides=["lrr=0.1"])
    path = tmp_path / "c.yaml"
    path.write_text("batch_szie: 4\n")
    with pytest.raises(ConfigError, match=r"'batch_szie' in .*c\.yaml.*batch_size"):
        make_config("tiny", str(path))
    with pytest.raises(ConfigError, match="expects a int"):
        make_config("tiny", overrides=["batch_size=big"])
    with pytest.raises(ConfigError, match="optimizer.*adamw"):
        make_config("tiny", overrides=["optimizer=sgd"])
    with pytest.raises(ConfigError, match="unknown preset 'fast'.*cpu-quick"):
        make_config("fast")


def test_cli_config_typo_exits_with_the_valid_keys(capsys):
    assert train_main(["--preset", "tiny", "--batch_sise", "4"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'batch_sise'" in err and "batch_size" in err


# ----------------------------------------------------------------------------- schedules

def test_multistep_and_invsqrt_schedules():
    cfg = make_config("tiny", overrides={"schedule": "multistep", "milestones": [0.5, 0.75], "gamma": 0.1})
    f = schedule.lr_factor(cfg, 100)
    assert [f(s) for s in (0, 49, 50, 74, 75, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    cfg = make_config("tiny", overrides={"schedule": "multistep", "milestones": [90, 120]})
    f = schedule.lr_factor(cfg, 140)                                    # absolute steps
    assert (f(89), f(90), f(120)) == pytest.approx((1, 0.1, 0.01))
    cfg = make_config("tiny", overrides={"schedule": "invsqrt", "warmup_steps": 10})
    f = schedule.lr_factor(cfg, 1000)
    assert f(0) == pytest.approx(0.1) and f(4) == pytest.approx(0.5) and f(9) == pytest.approx(1.0)
    assert f(39) == pytest.approx(0.5) and f(999) == pytest.approx(0.1)   # √(10/40), √(10/1000)
    f = schedule.lr_factor(make_config("tiny", overrides={"schedule": "invsqrt", "warmup_steps": 0.1}),
                           200)                                         # a fraction: 20 steps
    assert f(9) == pytest.approx(0.5) and f(19) == pytest.approx(1.0) and f(79) == pytest.approx(0.5)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = schedule.build(opt, cfg, 1000)
    for _ in range(9):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3)


# ----------------------------------------------------------------------------- checkpoints

def _ckpt(step=1):
    return {"format": checkpoint.FORMAT, "model": {"w": torch.full((3,), float(step))},
            "step": step, "epoch": 0, "epoch_step": step, "config": {"lr": 0.1},
            "rng": checkpoint.rng_state()}


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_optimizer_is_torch_fused_and_matches_the_default_update(name):
    """build_optimizer takes torch's fused kernel on CPU; its update equals the
    default (foreach) implementation's to rounding (an independent oracle)."""
    cfg = make_config("cpu-quick", overrides={"optimizer": name, "lr": 1e-2, "weight_decay": 0.01})
    torch.manual_seed(0)
    ps = [torch.randn(7, 5, requires_grad=True), torch.randn(3, requires_grad=True)]
    qs = [p.detach().clone().requires_grad_() for p in ps]
    fused = build_optimizer(cfg, ps)
    plain = (torch.optim.AdamW if name == "adamw" else torch.optim.Adam)(qs, lr=1e-2, weight_decay=0.01)
    assert fused.defaults["fused"] is True and not plain.defaults["fused"]
    for _ in range(5):
        g = [torch.randn_like(p) for p in ps]
        for p, q, gi in zip(ps, qs, g):
            p.grad, q.grad = gi.clone(), gi.clone()
        fused.step()
        plain.step()
    for p, q in zip(ps, qs):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_checkpoint_round_trip_weights_only_and_rng(tmp_path):
    path = tmp_path / "last.pt"
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    checkpoint.atomic_save(_ckpt(), path)
    draws = (torch.rand(3), np.random.rand(3), random.random())
    raw = torch.load(path, weights_only=True)                           # plain tensors and containers
    assert raw["step"] == 1 and raw["config"] == {"lr": 0.1}
    checkpoint.set_rng_state(checkpoint.load(path)["rng"])
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(draws[0], again[0]) and np.array_equal(draws[1], again[1]) and draws[2] == again[2]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_checkpoint_gives_a_clear_error(tmp_path, damage):
    path = tmp_path / "last.pt"
    checkpoint.atomic_save(_ckpt(), path)
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00junk" * 50, "empty": b""}[damage])
    with pytest.raises(CheckpointError, match=r"last\.pt.*truncated or corrupt"):
        checkpoint.load(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "nope.pt")


def test_crash_during_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    checkpoint.atomic_save(_ckpt(1), path)

    def dying_save(obj, f):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.atomic_save(_ckpt(2), path)
    monkeypatch.undo()
    assert checkpoint.load(path)["step"] == 1                           # the old file, intact
    assert os.listdir(tmp_path) == ["last.pt"]                          # no temporary left behind


def test_mean_rotation_is_a_rotation_and_exact_for_equal_inputs():
    g = torch.Generator().manual_seed(0)
    R = torch.linalg.qr(torch.randn(5, 24, 3, 3, generator=g, dtype=torch.float64))[0]
    R = R * torch.linalg.det(R)[..., None, None]                        # proper rotations
    M = mean_rotation(R)
    assert torch.allclose(M @ M.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(24, 3, 3), atol=1e-12)
    assert torch.allclose(torch.linalg.det(M), torch.ones(24, dtype=torch.float64))
    assert torch.allclose(mean_rotation(R[:1].expand(4, -1, -1, -1)), R[0], atol=1e-12)


# ----------------------------------------------------------------------------- runs

def test_tiny_preset_writes_every_artefact(tmp_path, capsys):
    out = tmp_path / "run"
    cfg = tiny_config(out, baselines=True, predictions_png=2, max_steps=4, ckpt_every=2)
    summary = train(cfg)
    for name in ("config.yaml", "log.csv", "metrics.json", "last.pt", "best.pt",
                 "training_curve.png", "predictions.png"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"untrained", "mean_pose", "trained", "seconds"} <= set(metrics)
    for row in ("untrained", "mean_pose", "trained"):
        assert all(math.isfinite(metrics[row][k]) for k in ("mpjpe", "pa_mpjpe", "pve"))
    assert metrics["seconds"] > 0 and summary["steps"] == 4
    table = capsys.readouterr().out
    assert all(w in table for w in ("MPJPE", "PA-MPJPE", "PVE", "untrained", "mean_pose", "trained"))
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert {"model", "optimizer", "scheduler", "scaler", "rng", "step", "epoch", "config"} <= set(ckpt)
    assert ckpt["step"] == 4 and ckpt["config"]["image_size"] == 64
    assert yaml.safe_load((out / "config.yaml").read_text())["max_steps"] == 4
    assert [s for s, _, _ in losses(out)] == [1, 2, 3, 4]

    # hybrik-fast eval on the checkpoint: synthetic data, then a missing real-data path
    assert eval_main(["--checkpoint", str(out / "last.pt"), "--data", "synthetic:val:4",
                      "--batch-size", "2", "--json", str(tmp_path / "e.json")]) == 0
    result = json.loads((tmp_path / "e.json").read_text())
    assert {"mpjpe", "pa_mpjpe", "pve", "pck", "auc"} <= set(result) and result["samples"] == 4
    assert eval_main(["--checkpoint", str(out / "last.pt"), "--data", "h36m:/no/such/dir"]) == 1
    assert "'/no/such/dir'" in capsys.readouterr().err


def test_nan_steps_are_skipped_counted_and_stop_the_run(tmp_path):
    out = tmp_path / "a"
    summary = train(tiny_config(out, max_steps=4, inject_nan_steps=[2], max_bad_steps=2))
    assert summary["bad_steps"] == 1
    assert [skipped for _, _, skipped in losses(out)] == [0, 1, 0, 0]
    assert math.isnan(losses(out)[1][1])

    out = tmp_path / "b"
    with pytest.raises(TrainingError, match=r"2 consecutive steps had a non-finite loss.*max_bad_steps=2"):
        train(tiny_config(out, max_steps=6, ckpt_every=1, inject_nan_steps=[3, 4], max_bad_steps=2))
    ckpt = checkpoint.load(out / "last.pt")     # after step 3 (skipped): the model of step 2, finite
    assert ckpt["step"] == 3 and ckpt["extra"]["bad_steps"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_nan_images_do_not_damage_the_model(tmp_path):
    """A NaN input poisons the batch-norm statistics in the forward pass; the skip restores them."""
    from hybrik_fast.models import build_model
    from hybrik_fast.train.data import InMemory, materialise
    cfg = tiny_config(tmp_path / "run", batch_size=4, train_length=4, max_bad_steps=2)
    train_set = materialise(build_dataset("synthetic", cfg, "train"), progress=False)
    images = train_set.tensors["image"].clone()
    images[1] = float("nan")
    train_set = InMemory({**train_set.tensors, "image": images})
    model = build_model(head="heatmap", backbone="resnet18", image_size=64, heatmap_size=(4, 16, 16),
                        deconv_channels=16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(TrainingError, match="non-finite"):
        train(cfg, model=model, train_set=train_set)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_batch_larger_than_dataset_and_missing_data(tmp_path):
    with pytest.raises(TrainingError, match=r"batch size 8 .* larger than the training set \(4 samples\)"):
        train(tiny_config(tmp_path / "r", train_length=4, batch_size=8))
    with pytest.raises(FileNotFoundError, match="'/no/such/h36m'"):
        build_dataset("h36m:/no/such/h36m", tiny_config(tmp_path / "r"), "train")
    with pytest.raises(DataSpecError, match="unknown dataset 'imagenet'"):
        build_dataset("imagenet:/x", tiny_config(tmp_path / "r"), "train")
    assert train_main(["--preset", "tiny", "--out", str(tmp_path / "r"), "data=3dpw:/no/such/3dpw"]) == 1
    with pytest.raises(TrainingError, match="no checkpoint"):
        train(tiny_config(tmp_path / "empty"), resume=True)


def test_resume_from_a_corrupt_checkpoint_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pt").write_bytes(b"PK\x03\x04 truncated")
    assert train_main(["--preset", "tiny", "--out", str(out), "--resume"]) == 1
    assert "truncated or corrupt" in capsys.readouterr().err
    assert (out / "last.pt").read_bytes() == b"PK\x03\x04 truncated"      # left for inspection


def _needs_fused():
    from hybrik_fast import _backend
    if _backend.unavailable_reason("cpu", torch.device("cpu")) is not None:
        pytest.skip("the C++ extension is not built")


def test_fused_and_reference_backends_give_the_same_losses(tmp_path):
    """Point 7: 20 steps, same seed, losses within 1e-3 relative at every step (CPU).

    Training amplifies rounding differences (Adam moves every weight by ~lr
    whatever its gradient's size), so at lr 1e-3 the two curves drift apart
    by several per cent within 10 steps although every single step agrees to
    ~1e-7 (next test); at lr 3e-5 the curves stay within ~5e-4.
    """
    _needs_fused()
    runs = {}
    for backend in ("fused", "reference"):
        out = tmp_path / backend
        train(tiny_config(out, backend=backend, max_steps=20, train_length=16, batch_size=4, lr=3e-5))
        runs[backend] = [loss for _, loss, _ in losses(out)]
    fused, ref = np.array(runs["fused"]), np.array(runs["reference"])
    assert len(fused) == 20 and np.all(np.isfinite(fused))
    np.testing.assert_allclose(fused, ref, rtol=1e-3)


def test_fused_and_reference_give_the_same_step():
    """One training step from the same weights: loss and every gradient agree to ~1e-7."""
    _needs_fused()
    from hybrik_fast.losses import HybrIKLoss
    from hybrik_fast.train.loop import build_model
    from hybrik_fast.train.data import collate
    cfg = tiny_config("unused", batch_size=4)
    ds = build_dataset("synthetic:train:4", cfg, "train")
    batch = collate([ds[i] for i in range(4)])
    grads, values = {}, {}
    for backend in ("fused", "reference"):
        torch.manual_seed(0)
        model = build_model(make_config("tiny", overrides={**TINY, "backend": backend}), torch.device("cpu"))
        model.eval()                                                    # no dropout: same function
        loss, _ = HybrIKLoss()(model(batch["image"]), batch)
        loss.backward()
        values[backend] = float(loss.detach())
        grads[backend] = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert values["fused"] == pytest.approx(values["reference"], rel=1e-6)
    for name, g in grads["reference"].items():
        err = (grads["fused"][name] - g).norm() / g.norm().clamp_min(1e-12)
        assert err < 1e-4, (name, float(err))


def _h36m_root(tmp_path, n=4, corrupt=(1,)):
    """A Human36M folder in HybrIK's format: n people 5 m away, one image unreadable."""
    import cv2
    from hybrik_fast import BodyModel, forward_kinematics
    from hybrik_fast.poses import axis_angle_to_matrix, sample_axis_angles
    body = BodyModel.synthetic(dtype=torch.float64)
    root = tmp_path / "h36m"
    (root / "annotations").mkdir(parents=True)
    (root / "images").mkdir()
    g = torch.Generator().manual_seed(0)
    images, anns = [], []
    for k in range(n):
        aa = sample_axis_angles(1, g, scale=0.5)[0]
        aa[0] = torch.tensor([math.pi, 0.0, 0.0])
        betas = torch.zeros(1, 10, dtype=torch.float64)
        joints = forward_kinematics(axis_angle_to_matrix(aa)[None], body.rest_joints(betas))[0]
        joints = joints.numpy() + [0.0, 0.0, 5.0]
        uv = joints[:, :2] / joints[:, 2:] * 1000 + 128
        lo, hi = uv.min(0), uv.max(0)
        name = f"img_{k}.png"
        if k in corrupt:
            (root / "images" / name).write_bytes(b"not an image")
        else:
            cv2.imwrite(str(root / "images" / name), np.full((256, 256, 3), 60 + 40 * k, np.uint8))
        images.append({"file_name": name, "width": 256, "height": 256,
                       "cam_param": {"f": [1000.0, 1000.0], "c": [128.0, 128.0]}})
        anns.append({"bbox": [lo[0] - 5, lo[1] - 5, hi[0] - lo[0] + 10, hi[1] - lo[1] + 10],
                     "smpl_joints": (joints * 1000).tolist(), "betas": betas[0].tolist(),
                     "thetas": aa.numpy().tolist()})
    (root / "annotations" / "Sample_train_protocol_2.json").write_text(
        json.dumps({"images": images, "annotations": anns}))
    return root


def test_real_loader_unreadable_image_is_skipped_counted_and_named(tmp_path, capsys):
    """Training and evaluation on the Human36M loader; a corrupt image is skipped, counted, named."""
    root = _h36m_root(tmp_path)
    out = tmp_path / "run"
    with pytest.warns(RuntimeWarning, match="img_1.png"):
        summary = train(tiny_config(out, data=f"h36m:{root}", val_data=f"h36m:{root}:train",
                                    train_length=4, max_steps=2))
    assert summary["skipped_images"] >= 1
    assert json.loads((out / "metrics.json").read_text())["skipped_images"] == summary["skipped_images"]
    assert "unreadable images skipped" in capsys.readouterr().out
    with pytest.warns(RuntimeWarning, match="img_1.png"):
        assert eval_main(["--checkpoint", str(out / "last.pt"), "--data", f"h36m:{root}:train",
                          "--batch-size", "2", "--json", str(tmp_path / "e.json")]) == 0
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["samples"] == 4 and math.isfinite(result["mpjpe"]) and math.isfinite(result["pve"])


def test_synthetic_options_reach_the_dataset(tmp_path):
    cfg = tiny_config(tmp_path / "r", synthetic={"clutter": False, "occluders": False, "max_yaw": 30})
    ds = build_dataset("synthetic", cfg, "val")
    assert (ds.clutter, ds.occluders, ds.max_yaw) == (False, False, 30.0)
