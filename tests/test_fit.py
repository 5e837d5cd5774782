"""hybrik_fast.fit: the EM-fitted Gaussian mixture and the SMPLify-style fit to 3D joints.

Oracles: a mixture with known means (GMM); forward kinematics of a known pose
(the fit must reproduce its joints); the joint limits of hybrik_fast.poses
(the priors must pull a pose outside them back); the test-side Rodrigues
formula of tests_support (matrix_to_axis_angle).
"""
import math

import pytest
import torch

import hybrik_fast as hf
from hybrik_fast import fit, poses
from tests_support import axis_angle_to_matrix as rodrigues

LEFT_KNEE = 4


@pytest.fixture(scope="module")
def body():
    return hf.BodyModel.synthetic(dtype=torch.float64)


@pytest.fixture(scope="module")
def prior():
    """A small mixture on the training pose distribution (the default one costs more to fit)."""
    g = torch.Generator().manual_seed(0)
    aa = poses.sample_axis_angles(800, g)[:, 1:].reshape(800, fit.POSE_DIM)
    return fit.PoseGMM.fit(aa, components=2, generator=g)


def test_gmm_recovers_known_means():
    g = torch.Generator().manual_seed(1)
    means = torch.tensor([[-4.0, 0.0], [4.0, 0.0], [0.0, 5.0]], dtype=torch.float64)
    x = (means.repeat_interleave(300, 0) + 0.5 * torch.randn(900, 2, generator=g, dtype=torch.float64))
    gmm = fit.PoseGMM.fit(x, components=3, generator=g)
    dist = torch.cdist(means, gmm.means)                           # (3 true, 3 fitted)
    assert dist.min(1).values.max() < 0.15
    assert sorted(dist.argmin(1).tolist()) == [0, 1, 2]            # one fitted mean per true mean
    torch.testing.assert_close(gmm.weights.sort().values, torch.full((3,), 1 / 3, dtype=torch.float64),
                               atol=0.03, rtol=0)
    # the NLL is the mixture's: at a true mean, −log(⅓ N(0; 0, 0.25 I)) up to the fit's error
    expected = -math.log(1 / 3 / (2 * math.pi * 0.25))
    assert abs(float(gmm.nll(means[:1])) - expected) < 0.15


def test_matrix_to_axis_angle_round_trip():
    g = torch.Generator().manual_seed(2)
    axis = torch.nn.functional.normalize(torch.randn(64, 3, generator=g, dtype=torch.float64), dim=-1)
    angle = torch.cat([torch.tensor([0.0, 1e-9, 1e-3, math.pi - 1e-6]),
                       torch.rand(60, generator=g, dtype=torch.float64) * math.pi])
    aa = axis * angle[:, None].double()
    back = poses.matrix_to_axis_angle(rodrigues(aa))
    torch.testing.assert_close(rodrigues(back), rodrigues(aa), atol=1e-10, rtol=0)
    torch.testing.assert_close(back[1:-1], aa[1:-1], atol=1e-9, rtol=0)   # unique below π


def test_axis_angle_to_matrix_gradient_finite_at_zero():
    aa = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    poses.axis_angle_to_matrix(aa).sum().backward()
    assert torch.isfinite(aa.grad).all()


def test_fit_recovers_pose_from_clean_joints(body, prior):
    g = torch.Generator().manual_seed(3)
    aa = poses.sample_axis_angles(2, g)
    betas = 0.5 * torch.randn(2, 10, generator=g, dtype=torch.float64)
    joints = hf.forward_kinematics(poses.axis_angle_to_matrix(aa), body.rest_joints(betas))
    r = fit.smplify_3d(joints + 1.0, body, prior=prior)            # translation is ignored
    fitted = hf.forward_kinematics(r.rotmats, body.rest_joints(r.betas))
    err_mm = (fitted - joints).norm(dim=-1).mean(1) * 1000
    assert (err_mm < 5).all(), err_mm
    assert r.rotmats.shape == (2, 24, 3, 3) and r.betas.shape == (2, 10) and r.loss.shape == (2,)
    assert torch.isfinite(r.loss).all() and 1 <= r.iterations <= 20


def test_priors_pull_an_implausible_pose_back(body, prior):
    """The left knee bent 1 rad the wrong way (its limit is x ∈ [0, 2]): its joints fitted
    from that pose stay there without priors, and move back towards the limit with them."""
    aa = torch.zeros(1, 24, 3, dtype=torch.float64)
    aa[0, LEFT_KNEE, 0] = -1.0
    rot = poses.axis_angle_to_matrix(aa)
    betas = torch.zeros(1, 10, dtype=torch.float64)
    joints = hf.forward_kinematics(rot, body.rest_joints(betas))
    free = fit.smplify_3d(joints, body, init=(rot, betas), prior=prior, pose_weight=0.0,
                          shape_weight=0.0, limit_weight=0.0, max_iters=5)
    held = fit.smplify_3d(joints, body, init=(rot, betas), prior=prior, max_iters=5)

    def knee_flexion(r):
        return float(poses.matrix_to_axis_angle(r.rotmats)[0, LEFT_KNEE, 0])
    assert knee_flexion(free) == pytest.approx(-1.0, abs=1e-3)
    assert knee_flexion(held) > -0.6


def test_fit_adam_and_24_joints(body, prior):
    g = torch.Generator().manual_seed(4)
    aa = poses.sample_axis_angles(1, g, scale=0.5)
    joints = hf.forward_kinematics(poses.axis_angle_to_matrix(aa), body.rest_joints(torch.zeros(1, 10,
                                                                                            dtype=torch.float64)))
    r = fit.smplify_3d(joints[:, :24], body, prior=prior, optimizer="adam", lr=0.05, max_iters=15)
    start = fit.smplify_3d(joints[:, :24], body, prior=prior, optimizer="adam", max_iters=1, lr=0.0)
    assert float(r.loss) < 0.5 * float(start.loss)                 # Adam descends from the initial pose


def test_fit_nan_sample_only(body, prior):
    g = torch.Generator().manual_seed(5)
    rot = poses.sample_rotmats(2, g)
    joints = hf.forward_kinematics(rot, body.rest_joints(torch.zeros(2, 10, dtype=torch.float64)))
    joints[1, 7, 0] = float("nan")
    r = fit.smplify_3d(joints, body, prior=prior, max_iters=2)
    assert torch.isfinite(r.rotmats[0]).all() and torch.isfinite(r.betas[0]).all() and torch.isfinite(r.loss[0])
    assert torch.isnan(r.rotmats[1]).all() and torch.isnan(r.betas[1]).all() and torch.isnan(r.loss[1])


def test_fit_bad_input(body):
    with pytest.raises(ValueError, match=r"\(B, 24, 3\) or \(B, 29, 3\)"):
        fit.smplify_3d(torch.zeros(1, 17, 3, dtype=torch.float64), body)
    with pytest.raises(TypeError, match="floating"):
        fit.smplify_3d(torch.zeros(1, 29, 3, dtype=torch.int64), body)
    with pytest.raises(ValueError, match="optimizer"):
        fit.smplify_3d(torch.zeros(1, 29, 3, dtype=torch.float64), body, optimizer="sgd")
