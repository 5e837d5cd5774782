"""The paper presets (issue 20, point 3): the public recipe, --init (own and public checkpoints),
--data-root, and smoke runs of both presets, reduced to seconds, on public-layout fixtures of all
four datasets."""
import json

import numpy as np
import pytest
import torch

from hybrik_fast import BodyModel
from hybrik_fast.camera import project, root_from_camera
from hybrik_fast.data import MixedDataset
from hybrik_fast.data.transforms import AugmentConfig
from hybrik_fast.models import HybrIKHRNetModel, HybrIKModel
from hybrik_fast.train.checkpoint import CheckpointError, init_weights, model_state
from hybrik_fast.train.config import make_config
from hybrik_fast.train.data import build_dataset
from hybrik_fast.train.loop import build_loss, build_model, clip_gradients
from hybrik_fast.train.run import eval_main, train_main

from dataset_support import h36m_db, hp3d_db, person, pw3d_db, write_json, write_roots
from test_public_models import LAYOUTS, random_public_state

# seconds instead of days: the preset's recipe on 64 px crops, a few steps
SMALL = ["image_size=64", "heatmap_size=[8,16,16]", "batch_size=2", "max_steps=3", "num_workers=0",
         "progress=false", "predictions_png=0", "eval_batches=1", "threads=1"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """h36m/, coco/, 3dhp/, pw3d/ in the public layout, with the public file names."""
    body = BodyModel.synthetic(dtype=torch.float64)
    people = [person(body, seed) for seed in (1, 2)]
    root = tmp_path_factory.mktemp("data")
    write_roots(root, people)
    ann = root / "h36m" / "annotations"
    # the public file beside another candidate: the preset's data_files picks it
    (ann / "Sample_5_train_Human36M_smpl_leaf_twist_protocol_2.json").rename(
        ann / "Sample_trainmin_train_Human36M_smpl_leaf_twist_protocol_2.json")
    write_json(ann / "Sample_5_train_Human36M_smpl_leaf_twist_protocol_2.json", h36m_db(people[:1]))
    write_json(root / "3dhp" / "annotation_mpi_inf_3dhp_train_v3.json", hp3d_db(people[:1]))
    test = pw3d_db(people)
    g = np.random.default_rng(0)
    for a in test["annotations"]:
        a["h36m_joints"] = (g.normal(size=(17, 3)) * 0.3).tolist()
    write_json(root / "pw3d" / "json" / "3DPW_test_new.json", test)
    return root


def test_presets_carry_the_public_recipe():
    hr, res = make_config("hrnet48-3dpw"), make_config("resnet34-3dpw")
    for cfg in (hr, res):
        assert (cfg.image_size, cfg.heatmap_size, cfg.epochs, cfg.lr, cfg.optimizer) == \
            (256, [64, 64, 64], 200, 1e-3, "adam")
        assert cfg.loss["laplace"] and cfg.loss["rot"] == 0.01 and cfg.loss["twist"] == 1.0
        assert cfg.augment["scale_factor"] == 0.3 and cfg.augment["rotation_factor"] == 30
        assert cfg.augment["flip_prob"] == 0.25 and cfg.augment_2d["flip_prob"] == 0.5
        assert cfg.augment["occlusion"] and cfg.joint_map == "public" and cfg.grad_clip == 5.0
        assert cfg.grad_clip_per_param
    assert (hr.backbone, hr.batch_size, hr.milestones) == ("hrnet48", 36, [0.3, 0.4])
    assert (res.backbone, res.batch_size, res.milestones) == ("resnet34", 32, [0.45, 0.6])
    assert hr.data_files["3dhp"].endswith("train_v3.json") and res.data_files["3dhp"].endswith("train_v2.json")


def test_per_parameter_gradient_clipping():
    """The public script's clip_grad_norm_(p, 5) for each p: gradients of norm 10 and 3 at
    max 5 become 5 (scaled by 1/2, up to the 1e-6 guard) and stay 3; the norm returned is
    the global one before clipping, sqrt(10² + 3²)."""
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(1, requires_grad=True)
    a.grad, b.grad = torch.tensor([6.0, 8.0]), torch.tensor([3.0])
    norm = clip_gradients([a, b], 5.0, per_param=True)
    assert torch.allclose(norm, torch.tensor(109.0).sqrt())
    assert torch.allclose(a.grad, torch.tensor([3.0, 4.0])) and torch.equal(b.grad, torch.tensor([3.0]))
    a.grad, b.grad = torch.tensor([6.0, 8.0]), torch.tensor([3.0])
    clip_gradients([a, b], 5.0)                                 # global: both scaled by 5 / sqrt(109)
    assert torch.allclose(b.grad, torch.tensor([15.0]) / torch.tensor(109.0).sqrt())


def test_public_augmentation_draws():
    cfg = AugmentConfig(**make_config("resnet34-3dpw").augment)
    draws = [cfg.sample(np.random.default_rng((7, i))) for i in range(2000)]
    scale = np.array([d.scale for d in draws])
    rot = np.array([d.rotation for d in draws])
    assert scale.min() >= 0.7 and scale.max() <= 1.3 and abs(rot).max() <= 60.0
    # clipped normal: about 68% of the scales within one sigma (0.3) of 1
    assert 0.6 < np.mean(np.abs(scale - 1) < 0.3 - 1e-9) < 0.76
    assert 0.35 < np.mean(rot == 0.0) < 0.45                   # rotation with probability 0.6
    assert 0.2 < np.mean([d.flip for d in draws]) < 0.3        # flip 0.25 on the 3D sets
    occ = np.array([d.occluder for d in draws])
    assert (occ[:, 2] * occ[:, 3] <= 0.3 + 1e-9).all() and (occ[:, :2] >= 0).all()
    assert np.all(occ[:, 0] + occ[:, 2] <= 1 + 1e-9) and np.all(occ[:, 1] + occ[:, 3] <= 1 + 1e-9)


def test_data_root_builds_the_public_mix(data_root):
    cfg = make_config("resnet34-3dpw", overrides=SMALL + [f"data_root={data_root}"])
    mixed = build_dataset(cfg.data, cfg, "train")
    assert isinstance(mixed, MixedDataset) and np.allclose(mixed.ratios, [0.3, 0.4, 0.1, 0.2])
    assert len(mixed) == 2 * 2                                 # twice the largest part
    files = {type(d).__name__: d.annotation for d in mixed.datasets}
    assert files["Human36M"].endswith("Sample_trainmin_train_Human36M_smpl_leaf_twist_protocol_2.json")
    assert files["MPIINF3DHP"].endswith("train_v2.json")
    assert all(d.padding == (1.0 if type(d).__name__ == "Human36M" else 1.25) for d in mixed.datasets)
    assert mixed.datasets[0].augment.sampling == "normal"
    assert mixed.datasets[1].augment.flip_prob == 0.5          # COCO: the 2D recipe
    val = build_dataset(cfg.val_data, cfg, "val")
    assert val.annotation.endswith("3DPW_test_new.json")


def test_resnet34_preset_trains_fine_tunes_and_evaluates(data_root, tmp_path, capsys):
    base = ["--preset", "resnet34-3dpw", *SMALL, "--data-root", str(data_root)]
    assert train_main(base + ["--out", str(tmp_path / "a")]) == 0
    summary = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert summary["steps"] == 3 and summary["bad_steps"] == 0 and np.isfinite(summary["trained"]["mpjpe"])
    # --init: a new run starts from those weights
    assert train_main(base + ["--out", str(tmp_path / "b"), "--init", str(tmp_path / "a" / "last.pt"),
                              "max_steps=1"]) == 0
    # eval by the public 3DPW protocol, with a regressor of the synthetic body's vertices
    V = BodyModel.synthetic().v_template.shape[0]
    reg = np.zeros((17, V))
    reg[np.arange(17), np.arange(17)] = 1.0
    np.save(tmp_path / "reg.npy", reg)
    capsys.readouterr()
    assert eval_main(["--checkpoint", str(tmp_path / "a" / "last.pt"), "--data",
                      f"3dpw:{data_root / 'pw3d'}:test", "--h36m-regressor", str(tmp_path / "reg.npy"),
                      "--json", str(tmp_path / "eval.json")]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header == ["model", "PA-MPJPE", "MPJPE", "PVE"] and "protocol: 3dpw" in out
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["samples"] == 2 and np.isfinite(result["mpjpe"]) and np.isfinite(result["pa_mpjpe"])


def test_init_from_a_file_that_does_not_fit(tmp_path):
    model = torch.nn.Linear(2, 2)
    torch.save({"weight": torch.zeros(3, 3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="other.pt"):
        init_weights(model, tmp_path / "other.pt")


def network_layout(name: str) -> dict:
    """The public model's entries without its SMPL buffers: {key: shape}."""
    return {k: tuple(shape) for k, shape, _ in LAYOUTS[name] if not k.startswith("smpl.")}


def test_hrnet48_preset_trains_the_public_hrnet_head(data_root, tmp_path):
    """The HRNet-W48 preset at 64 px (HRNet's heatmap is S/4 = 16; D = 8): a few steps
    of the Laplace loss on the mixed fixtures; the model has the public HRNetSMPLCam keys.
    Batch 1, so that the 3 steps stay within the first epoch: the run writes its 0.9 GB
    checkpoint (75.7 M parameters and Adam's moments) twice, at the end, not three times."""
    out = tmp_path / "hr"
    assert train_main(["--preset", "hrnet48-3dpw", *SMALL, "batch_size=1", "--data-root", str(data_root),
                       "--out", str(out)]) == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["steps"] == 3 and summary["bad_steps"] == 0 and np.isfinite(summary["trained"]["mpjpe"])
    cfg = make_config(None, str(out / "config.yaml"))
    assert cfg.backbone == "hrnet48" and build_loss(cfg).laplace
    state = model_state(torch.load(out / "last.pt", weights_only=True))
    own = {k: tuple(v.shape) for k, v in state.items() if not k.startswith("smpl.")}
    public = network_layout("hrnet48")
    assert own.keys() == public.keys() and len(own) == 1975 - 9
    # every shape the public one but the heatmap's depth: 29 x 8 channels instead of 29 x 64
    assert {k for k in own if own[k] != public[k]} == {"preact.final_layer.weight", "preact.final_layer.bias"}
    assert own["preact.final_layer.weight"] == (29 * 8, 48, 1, 1) and own["deccam.weight"] == (1, 2048)
    # the public HRNet camera: a scale 0.9 exp(deccam(feature)) only; the root on the ray of its (u, v)
    model = build_model(cfg, torch.device("cpu")).eval()
    model.load_state_dict(state)
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(images)
        scale = 0.9 * torch.exp(model.deccam(model.preact.features(images)[1]))
    assert torch.allclose(out.camera[:, :1], scale, rtol=1e-6)
    root = root_from_camera(out.camera)                                # (B, 3)
    assert torch.allclose(project(root[:, None])[:, 0, :2], out.uvd[:, 0, :2], atol=1e-6)


@pytest.mark.parametrize("name, preset, wrap", [("resnet34", "resnet34-3dpw", "state_dict"),
                                                ("hrnet48", "hrnet48-3dpw", "model")])
def test_init_from_a_public_checkpoint(name, preset, wrap, tmp_path):
    """pretrained_w_cam.pth / hybrik_hrnet.pth (random weights in the exact public layout,
    DataParallel prefixes, wrapped) into the preset's model at its real sizes."""
    state = random_public_state(LAYOUTS[name], seed=3)
    path = tmp_path / f"{name}.pth"
    torch.save({wrap: {"module." + k: v for k, v in state.items()}}, path)
    model = build_model(make_config(preset), torch.device("cpu"))
    assert type(model) is (HybrIKModel if name == "resnet34" else HybrIKHRNetModel)
    body_before = {k: v.clone() for k, v in model.smpl.state_dict().items()}
    note = init_weights(model, path)
    own = model.state_dict()
    loaded = [k for k in state if not k.startswith("smpl.")]
    assert len(loaded) == len(network_layout(name))
    for k in loaded:
        assert torch.equal(own[k], state[k]), k
    # the body is the run's (the labels' body): the file's SMPL buffers are not loaded
    V = body_before["v_template"].shape[0]
    assert all(torch.equal(model.smpl.state_dict()[k], v) for k, v in body_before.items())
    assert "V = 6890" in note and f"V = {V}" in note and V != 6890


def test_init_from_a_public_checkpoint_that_does_not_fit(tmp_path):
    """A public ResNet file into the preset's model with 29 x 8 heatmap channels names the key and
    both shapes; into the HRNet model, the missing and unexpected keys."""
    state = random_public_state(LAYOUTS["resnet34"], seed=4)
    torch.save(state, tmp_path / "pretrained_w_cam.pth")
    small = build_model(make_config("resnet34-3dpw", overrides=SMALL), torch.device("cpu"))
    with pytest.raises(CheckpointError, match=r"pretrained_w_cam.pth.*'final_layer.weight' has shape "
                                              r"\(1856, 256, 1, 1\).*expects \(232, 256, 1, 1\)"):
        init_weights(small, tmp_path / "pretrained_w_cam.pth")
    hrnet = build_model(make_config("hrnet48-3dpw", overrides=SMALL), torch.device("cpu"))
    with pytest.raises(CheckpointError, match=r"pretrained_w_cam.pth.*HybrIKHRNetModel layout: missing keys "
                                              r"\[.*'preact.conv2.weight'.*unexpected keys \['deconv_layers"):
        init_weights(hrnet, tmp_path / "pretrained_w_cam.pth")


def test_resnet34_preset_fine_tunes_a_public_checkpoint(data_root, tmp_path, capsys):
    """``--init pretrained_w_cam.pth`` through the command line: the preset at 64 px with the public
    29 x 64 heatmap channels (ResNet's heatmap is S/4 = 16 wide), one step."""
    state = random_public_state(LAYOUTS["resnet34"], seed=5)
    torch.save({"model": state}, tmp_path / "pretrained_w_cam.pth")
    out = tmp_path / "ft"
    assert train_main(["--preset", "resnet34-3dpw", *SMALL, "heatmap_size=[64,16,16]", "max_steps=1",
                       "--data-root", str(data_root), "--out", str(out),
                       "--init", str(tmp_path / "pretrained_w_cam.pth")]) == 0
    assert "--init: the network weights of" in capsys.readouterr().out
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["steps"] == 1 and summary["bad_steps"] == 0
    trained = model_state(torch.load(out / "last.pt", weights_only=True))
    # one Adam step moves every weight the loss reaches by about lr = 1e-3 from the file's
    moved = (trained["fc1.weight"] - state["fc1.weight"]).abs()
    assert 0 < moved.max() <= 1.1e-3
    assert torch.equal(trained["init_shape"], state["init_shape"])


def test_hrnet48_preset_starts_from_a_pose_hrnet_file(tmp_path):
    """pretrained=pose_hrnet_w48_256x192.pth: the public configuration's PRETRAINED_LAYERS
    (written here from its w48.yaml) come from the file, its 17-keypoint final_layer does not."""
    layers = ("conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2", "transition2",
              "stage3", "transition3", "stage4")
    public = random_public_state(LAYOUTS["hrnet48"], seed=6)
    pose = {k.removeprefix("preact."): v for k, v in public.items()
            if k.startswith("preact.") and k.split(".")[1] in layers}
    pose["final_layer.weight"], pose["final_layer.bias"] = torch.ones(17, 48, 1, 1), torch.ones(17)
    torch.save({"state_dict": {"module." + k: v for k, v in pose.items()}}, tmp_path / "pose.pth")
    model = build_model(make_config("hrnet48-3dpw", overrides=SMALL + [f"pretrained={tmp_path / 'pose.pth'}"]),
                        torch.device("cpu"))
    own = model.preact.state_dict()
    assert all(torch.equal(own[k], pose[k]) for k in pose if not k.startswith("final_layer"))
    assert own["final_layer.weight"].shape == (29 * 8, 48, 1, 1) and own["final_layer.weight"].abs().max() < 0.01
    del pose["stage4.2.fuse_layers.0.3.0.weight"]
    with pytest.raises(ValueError, match=r"missing keys: stage4.2.fuse_layers.0.3.0.weight"):
        model.load_pretrained_backbone(pose)
