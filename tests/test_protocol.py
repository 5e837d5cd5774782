"""The public evaluation protocols (issue 20, point 2) on fixtures whose answer is derived by hand."""
import numpy as np
import pytest
import torch

from hybrik_fast import BodyModel
from hybrik_fast.data import PW3D
from hybrik_fast.metrics import H36M_EVAL_14, protocol_scores
from hybrik_fast.train.evaluate import evaluate

from dataset_support import S, person, pw3d_db, write_json, write_roots

NOT_EVAL = (0, 7, 9)          # pelvis, torso, nose: the 3 of the 17 H36M joints outside the 14


def _skeleton(seed=0, B=3):
    """Seeded H36M-order joints (B, 17, 3), metres, 4 m in front of the camera."""
    g = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(B, 17, 3, generator=g, dtype=torch.float64) + torch.tensor([0.0, 0.0, 4.0])


@pytest.mark.parametrize("protocol", ["h36m", "3dpw"])
def test_one_eval_joint_off_by_5_cm(protocol):
    gt = _skeleton()
    pred = gt + torch.tensor([1.0, -2.0, 0.5])                 # a translation: root alignment removes it
    pred[:, 6] += torch.tensor([0.03, 0.04, 0.0])              # |(30, 40, 0)| mm = 50 mm on one of 14 joints
    out = protocol_scores(pred, gt, protocol)
    assert torch.allclose(out["mpjpe"], torch.full((3,), 50.0 / 14, dtype=torch.float64), atol=1e-9)


@pytest.mark.parametrize("protocol", ["h36m", "3dpw"])
def test_scaled_skeleton(protocol):
    gt = _skeleton(1)
    root = gt[:, :1]
    pred = 2.0 * (gt - root) + root                            # error of joint j = |g_j − g_0|
    out = protocol_scores(pred, gt, protocol)
    expect = 1000 * (gt - root)[:, list(H36M_EVAL_14)].norm(dim=-1).mean(-1)
    assert torch.allclose(out["mpjpe"], expect, atol=1e-9)
    assert out["pa_mpjpe"].abs().max() < 1e-6                  # a similarity fits exactly


def test_3dpw_fits_on_the_14_and_h36m_on_the_17():
    gt = _skeleton(2)
    pred = gt.clone()
    pred[:, 7] += torch.tensor([0.3, 0.0, 0.0])                # move torso and nose only
    pred[:, 9] += torch.tensor([0.0, -0.3, 0.1])
    pw3d, h36m = protocol_scores(pred, gt, "3dpw"), protocol_scores(pred, gt, "h36m")
    assert pw3d["mpjpe"].abs().max() < 1e-9 and h36m["mpjpe"].abs().max() < 1e-9
    assert pw3d["pa_mpjpe"].abs().max() < 1e-6                 # the 14 alone agree exactly
    assert (h36m["pa_mpjpe"] > 1.0).all()                      # the fit on 17 is pulled off


def test_3dhp_pck_and_auc_count_below_the_threshold():
    gt = _skeleton(3, B=1)
    pred = gt.clone()
    pred[:, 1:9] += torch.tensor([0.1, 0.0, 0.0])              # 8 joints 100 mm off
    pred[:, 9:] += torch.tensor([0.0, 0.2, 0.0])               # 8 joints 200 mm off; the root 0
    out = protocol_scores(pred, gt, "3dhp")
    # PCK@150 (error < 150): root + 8 of 17.  AUC over t = 0, 5, .., 150: error 0 is below 30
    # thresholds (not t = 0), 100 mm below 10 (105..150), 200 mm below none.
    assert out["pck"].item() == pytest.approx(100 * 9 / 17)
    assert out["auc"].item() == pytest.approx(100 * (30 + 8 * 10) / (17 * 31))
    assert out["mpjpe"].item() == pytest.approx((8 * 100 + 8 * 200) / 17)


def test_bad_protocol_and_shapes():
    gt = _skeleton()
    with pytest.raises(ValueError, match="protocol"):
        protocol_scores(gt, gt, "coco")
    with pytest.raises(ValueError):
        protocol_scores(gt[:, :14], gt[:, :14], "3dpw")


class _FixedMesh(torch.nn.Module):
    """Predicts the same mesh for every image: its first 17 vertices are ``joints17``."""

    def __init__(self, body, joints17):
        super().__init__()
        self.smpl = body
        verts = torch.zeros(body.v_template.shape[0], 3, dtype=torch.float64)
        verts[:17] = joints17
        self.register_buffer("verts", verts)

    def forward(self, images):
        B = images.shape[0]
        return {"vertices": self.verts.expand(B, -1, -1),
                "joints_from_mesh": torch.zeros(B, 29, 3, dtype=torch.float64)}


def test_evaluate_scores_3dpw_by_the_public_protocol(tmp_path):
    """evaluate() regresses 17 joints from the mesh and scores them against the file's h36m_joints."""
    body = BodyModel.synthetic(dtype=torch.float64)
    people = [person(body, seed) for seed in (1, 2)]
    roots = write_roots(tmp_path, people)
    gt17 = _skeleton(4, B=1)[0]
    db = pw3d_db(people)
    for ann in db["annotations"]:
        ann["h36m_joints"] = gt17.tolist()                     # metres, as in the public files
    write_json(roots["pw3d"] / "json" / "3DPW_test_new.json", db)
    ds = PW3D(roots["pw3d"], split="test", image_size=S)
    pred17 = gt17.clone()
    pred17[6] += torch.tensor([0.03, 0.04, 0.0])
    regressor = torch.zeros(17, body.v_template.shape[0], dtype=torch.float64)
    regressor[range(17), range(17)] = 1.0                      # picks vertex k as H36M joint k
    result = evaluate(_FixedMesh(body, pred17), ds, batch_size=2, h36m_regressor=regressor)
    assert result["protocol"] == "3dpw" and result["samples"] == 2
    assert result["mpjpe"] == pytest.approx(50.0 / 14)
    assert np.isfinite(result["pa_mpjpe"]) and np.isfinite(result["pve"])
