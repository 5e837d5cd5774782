"""Metrics on hand-computed cases (all expected values worked out in comments)."""
import math

import pytest
import torch

from hybrik_fast import metrics as M

DT = torch.float64

# the 17 H36M joints in the public order (hybrik/datasets/h36m_smpl.py, joints_name_17), written by hand
H36M_17_NAMES = ("pelvis", "l_hip", "l_knee", "l_ankle", "r_hip", "r_knee", "r_ankle", "torso", "neck",
                 "nose", "head", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist")


def _rand_pose(B=2, J=17, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(B, J, 3, generator=g, dtype=DT)  # (B, J, 3) metres


def _rotation(axis, angle):
    """Rodrigues: unit axis (3,), angle rad -> (3, 3)."""
    k = torch.tensor(axis, dtype=DT)
    k = k / k.norm()
    K = torch.tensor([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]], dtype=DT)
    return torch.eye(3, dtype=DT) + math.sin(angle) * K + (1 - math.cos(angle)) * K @ K


def test_eval_joints_and_auc_thresholds_follow_the_protocols():
    """The 14 H36M evaluation joints are the 17 without pelvis, torso and nose (each once);
    the 3DHP AUC thresholds run 0, 5, ..., 150 mm."""
    names = [H36M_17_NAMES[j] for j in M.H36M_EVAL_14]
    assert len(set(names)) == len(names) == 14
    assert set(names) == set(H36M_17_NAMES) - {"pelvis", "torso", "nose"}
    assert list(M.AUC_THRESHOLDS_MM) == [5.0 * i for i in range(31)]


def test_mpjpe_constant_offset():
    gt = _rand_pose()
    pred = gt + torch.tensor([0.003, 0.004, 0.0], dtype=DT)  # every joint off by (3, 4, 0) mm
    # |(3, 4, 0)| = 5 mm for every joint
    assert M.mpjpe(pred, gt, root=None).item() == pytest.approx(5.0, abs=1e-9)
    assert torch.allclose(M.mpjpe(pred, gt, root=None, reduction="none"),
                          torch.full((2,), 5.0, dtype=DT))
    # a pure translation vanishes once both are root-aligned (default root=0)
    assert M.mpjpe(pred, gt).item() == pytest.approx(0.0, abs=1e-9)


def test_mpjpe_per_joint_subset_and_mask():
    gt = _rand_pose(B=1, J=4)
    off = torch.tensor([[0, 0, 0], [0.01, 0, 0], [0, 0.02, 0], [0, 0, 0.03]], dtype=DT)
    pred = gt + off  # joint errors 0, 10, 20, 30 mm; joint 0 unmoved, so root=0 changes nothing
    assert M.mpjpe(pred, gt).item() == pytest.approx(15.0)                  # (0+10+20+30)/4
    assert M.mpjpe(pred, gt, joints=[1, 3]).item() == pytest.approx(20.0)   # (10+30)/2
    mask = torch.tensor([[True, True, False, True]])
    assert M.mpjpe(pred, gt, mask=mask).item() == pytest.approx(40.0 / 3)   # (0+10+30)/3
    # root at joint 3: every joint is then off by off[j] - off[3]
    # errors |(0,0,-30)|=30, |(10,0,-30)|=31.623, |(0,20,-30)|=36.056, 0
    want = (30 + math.sqrt(1000) + math.sqrt(1300) + 0) / 4
    assert M.mpjpe(pred, gt, root=3).item() == pytest.approx(want)


def test_mpjpe_eval14_ignores_other_joints():
    gt = _rand_pose(J=17)
    pred = gt.clone()
    pred[:, [0, 7, 9]] += 0.5  # joints 0, 7, 9 are not among the 14
    assert M.mpjpe(pred, gt, root=None, joints=M.H36M_EVAL_14).item() == pytest.approx(0.0, abs=1e-9)
    assert M.mpjpe(pred, gt, root=None).item() > 100


def test_mask_sample_without_joints_is_nan_and_skipped():
    gt = _rand_pose(B=2, J=3)
    pred = gt + torch.tensor([0.0, 0.0, 0.012], dtype=DT)  # 12 mm everywhere
    mask = torch.tensor([[1, 1, 1], [0, 0, 0]])
    per = M.mpjpe(pred, gt, root=None, mask=mask, reduction="none")
    assert per[0].item() == pytest.approx(12.0) and torch.isnan(per[1])
    assert M.mpjpe(pred, gt, root=None, mask=mask).item() == pytest.approx(12.0)


def test_pa_mpjpe_similarity_copy_is_zero():
    gt = _rand_pose()
    R = _rotation([1.0, 2.0, 3.0], 2.0)
    pred = 1.7 * gt @ R.T + torch.tensor([0.5, -1.0, 2.0], dtype=DT)  # rotated, scaled, shifted
    assert M.pa_mpjpe(pred, gt).item() == pytest.approx(0.0, abs=1e-9)
    assert M.mpjpe(pred, gt).item() > 100.0
    per = M.pa_mpjpe(pred, gt, joints=M.H36M_EVAL_14, reduction="none")
    assert per.shape == (2,) and per.abs().max().item() < 1e-9


def test_pa_mpjpe_excludes_reflections():
    # four non-coplanar points: a chiral set, so its mirror image is no rotation of it
    gt = 0.1 * torch.tensor([[[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]], dtype=DT)
    mirror = gt * torch.tensor([1.0, 1.0, -1.0], dtype=DT)
    assert M.pa_mpjpe(mirror, gt).item() > 5.0
    # a proper rotation of the mirror image is just as far away
    R = _rotation([0.0, 1.0, 1.0], 0.7)
    assert M.pa_mpjpe(mirror @ R.T, gt).item() == pytest.approx(M.pa_mpjpe(mirror, gt).item())


def test_pa_mpjpe_bounded_by_unaligned_error():
    gt = _rand_pose(seed=1)
    pred = gt + 0.02 * _rand_pose(seed=2)
    # the identity is one of the candidate similarities, so PA can only help
    assert M.pa_mpjpe(pred, gt).item() <= M.mpjpe(pred, gt, root=None).item()


def test_pve_hand_computed():
    gt = torch.zeros(2, 3, 3, dtype=DT)
    pred = torch.zeros(2, 3, 3, dtype=DT)
    pred[0] = torch.tensor([0.003, 0.004, 0.0], dtype=DT)  # sample 0: every vertex 5 mm off
    pred[1, 1] = torch.tensor([0.012, 0, 0], dtype=DT)     # sample 1: 0, 12, 13 mm
    pred[1, 2] = torch.tensor([0, 0.005, 0.012], dtype=DT)  # |(0, 5, 12)| = 13
    per = M.pve(pred, gt, reduction="none")
    assert torch.allclose(per, torch.tensor([5.0, 25.0 / 3], dtype=DT))  # (0+12+13)/3
    assert M.pve(pred, gt).item() == pytest.approx((5.0 + 25.0 / 3) / 2)
    # root alignment: sample 0's mesh is its own root plus the offset
    roots_gt = torch.zeros(2, 3, dtype=DT)
    roots_pred = torch.stack([pred[0, 0], torch.zeros(3, dtype=DT)])
    per = M.pve(pred, gt, roots_pred, roots_gt, reduction="none")
    assert torch.allclose(per, torch.tensor([0.0, 25.0 / 3], dtype=DT))


def test_pck_and_auc_hand_computed():
    # seven joints at distances 0, 4, 5, 100, 150, 151, 200 mm from gt along x
    d_mm = [0, 4, 5, 100, 150, 151, 200]
    gt = torch.zeros(1, 7, 3, dtype=DT)
    pred = torch.zeros(1, 7, 3, dtype=DT)
    pred[0, :, 0] = torch.tensor(d_mm, dtype=DT) / 1000
    # PCK@150: 0, 4, 5, 100, 150 are within 150 mm -> 5/7
    assert M.pck(pred, gt, root=None).item() == pytest.approx(100 * 5 / 7)
    # PCK@5: 0, 4, 5 -> 3/7; PCK@0: only the exact joint -> 1/7
    assert M.pck(pred, gt, 5.0, root=None).item() == pytest.approx(100 * 3 / 7)
    assert M.pck(pred, gt, 0.0, root=None).item() == pytest.approx(100 * 1 / 7)
    # AUC: per joint, the share of the 31 thresholds 0..150 it passes
    #   0 -> 31, 4 -> 30 (all but 0), 5 -> 30, 100 -> 11 (100..150),
    #   150 -> 1, 151 -> 0, 200 -> 0;  total 103 of 7 * 31
    assert M.auc(pred, gt, root=None).item() == pytest.approx(100 * 103 / (7 * 31))
    # the same as the mean of the 31 PCK values
    mean_pck = sum(M.pck(pred, gt, t, root=None).item() for t in M.AUC_THRESHOLDS_MM) / 31
    assert M.auc(pred, gt, root=None).item() == pytest.approx(mean_pck)
    # subset: joints 3 and 6 (100 and 200 mm) -> PCK 1/2, AUC (11 + 0) / 62
    assert M.pck(pred, gt, root=None, joints=[3, 6]).item() == pytest.approx(50.0)
    assert M.auc(pred, gt, root=None, joints=[3, 6]).item() == pytest.approx(100 * 11 / 62)


def test_float32_inputs():
    gt = _rand_pose().float()
    pred = gt + torch.tensor([0.003, 0.004, 0.0])
    out = M.mpjpe(pred, gt, root=None)
    assert out.dtype == torch.float64 and out.item() == pytest.approx(5.0, abs=1e-4)


@pytest.mark.parametrize("fn", [M.mpjpe, M.pa_mpjpe, M.pck, M.auc])
def test_shape_mismatch_names_expected_shape(fn):
    with pytest.raises(ValueError, match=r"\(B, J, 3\)"):
        fn(torch.zeros(2, 17, 3), torch.zeros(2, 14, 3))
    with pytest.raises(ValueError, match=r"\(B, J, 3\)"):
        fn(torch.zeros(2, 17, 2), torch.zeros(2, 17, 2))
    with pytest.raises(ValueError, match=r"\(B, J\)"):
        fn(torch.zeros(2, 17, 3), torch.zeros(2, 17, 3), mask=torch.ones(2, 14, dtype=torch.bool))


def test_other_validation():
    x = torch.zeros(2, 17, 3)
    with pytest.raises(ValueError, match=r"\(B, V, 3\)"):
        M.pve(x, torch.zeros(3, 17, 3))
    with pytest.raises(ValueError, match="joints"):
        M.mpjpe(x, x, joints=[0, 17])
    with pytest.raises(ValueError, match="reduction"):
        M.mpjpe(x, x, reduction="sum")
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        M.pve(x, x, pred_root=torch.zeros(2, 2))
    with pytest.raises(TypeError, match=r"\(B, J, 3\)"):
        M.mpjpe(x.numpy(), x)
