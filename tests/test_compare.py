"""hybrik_fast.train.compare: Tables 3 and 4 on given predictions.

Oracle: predictions equal to the labels (joints by FK of a known pose, its
twist and shape) have zero joint and vertex error through every path; with
the twist turned, the vertices move.
"""
import pytest
import torch

import hybrik_fast as hf
from hybrik_fast import poses
from hybrik_fast.train import compare


@pytest.fixture(scope="module")
def labelled():
    body = hf.BodyModel.synthetic(dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    rot = poses.sample_rotmats(3, g)
    betas = 0.5 * torch.randn(3, 10, generator=g, dtype=torch.float64)
    rest = body.rest_joints(betas)
    p = {"joints": hf.forward_kinematics(rot, rest), "twist": hf.twist_angles(rot, rest), "betas": betas,
         "rotmats": rot, "gt_joints": hf.forward_kinematics(rot, rest), "gt_rotmats": rot, "gt_betas": betas}
    return body, p


def test_table3_exact_labels(labelled):
    body, p = labelled
    t3 = compare.table3(p, body)
    for mode in ("adaptive", "naive"):
        assert t3[mode]["mpjpe"] < 1e-6 and t3[mode]["pve"] < 1e-6
    turned = dict(p, twist=torch.tensor([0.0, 1.0], dtype=torch.float64).expand(3, 23, 2))  # 90°
    t3 = compare.table3(turned, body)
    assert t3["adaptive"]["pve"] > 5.0 and t3["naive"]["pve"] > 5.0


def test_table4_exact_labels(labelled):
    body, p = labelled
    t4 = compare.table4(p, body)
    assert t4["predicted"] == 0.0 and t4["ik"] < 1e-6
    assert t4["fit_from_ik"] < 5.0                     # the fit starts at the answer and stays near it
    assert set(t4) >= {"predicted", "ik", "fit_from_mean", "fit_from_ik", "ik_us", "fit_us"}
    assert t4["ik_us"] > 0 and t4["fit_us"] > 0 and t4["samples"] == 3
