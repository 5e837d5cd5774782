"""The paper presets (issue 20, point 3): the public recipe, --init, --data-root, and a smoke run
of the ResNet-34 preset, reduced to seconds, on public-layout fixtures of all four datasets."""
import json

import numpy as np
import pytest
import torch

from hybrik_fast import BodyModel
from hybrik_fast.data import MixedDataset
from hybrik_fast.data.transforms import AugmentConfig
from hybrik_fast.train.checkpoint import CheckpointError, init_weights
from hybrik_fast.train.config import make_config
from hybrik_fast.train.data import build_dataset
from hybrik_fast.train.run import eval_main, train_main

from dataset_support import h36m_db, hp3d_db, person, pw3d_db, write_json, write_roots

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
    assert (hr.backbone, hr.batch_size, hr.milestones) == ("hrnet48", 36, [0.3, 0.4])
    assert (res.backbone, res.batch_size, res.milestones) == ("resnet34", 32, [0.45, 0.6])
    assert hr.data_files["3dhp"].endswith("train_v3.json") and res.data_files["3dhp"].endswith("train_v2.json")


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
