"""HybrIKLoss: each term against values computed by hand on small tensors."""
import math

import pytest
import torch

from hybrik_fast.camera import FOCAL_NORM, camera_from_root, project
from hybrik_fast.data.common import empty_labels
from hybrik_fast.losses import HybrIKLoss, masked_mean
from hybrik_fast.models import ModelOutput

B = 2
TERMS = ("pose", "beta", "rot", "twist", "camera", "reproj")


def make_batch(**changes) -> dict:
    """A batch of B empty-label samples (zero weights), camera at 4 m, then ``changes``."""
    one = empty_labels()
    batch = {k: v[None].repeat(B, *([1] * v.dim())) for k, v in one.items()}
    batch["camera"] = camera_from_root(torch.tensor([[0.0, 0.0, 4.0]])).repeat(B, 1)
    batch.update(changes)
    return batch


def output_matching(batch: dict) -> ModelOutput:
    """An output equal to the labels: every term is zero."""
    joints = batch["joints_xyz"].clone()
    return ModelOutput(uvd=batch["joints_uvd"].clone(), joints=joints, twist=batch["twist"].clone(),
                       betas=batch["betas"].clone(), rotmats=batch["rotmats"].clone(),
                       camera=batch["camera"].clone(), sigma=torch.full((B, 29), 0.5))


def rot_z(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def test_masked_mean_by_hand():
    err = torch.tensor([2.0, 4.0, 8.0])
    assert masked_mean(err, torch.tensor([1.0, 1.0, 0.0])) == 3.0
    # Σw < 1 divides by 1, not by Σw
    assert masked_mean(err, torch.tensor([0.5, 0.0, 0.0])) == 1.0
    assert masked_mean(err, torch.zeros(3)) == 0.0


def test_all_weights_zero_gives_zero_terms():
    batch = make_batch()
    g = torch.Generator().manual_seed(0)
    out = ModelOutput(uvd=torch.randn(B, 29, 3, generator=g), joints=torch.randn(B, 29, 3, generator=g),
                      twist=torch.randn(B, 23, 2, generator=g), betas=torch.randn(B, 10, generator=g),
                      rotmats=torch.randn(B, 24, 3, 3, generator=g),
                      camera=torch.rand(B, 3, generator=g) + 0.5)
    total, terms = HybrIKLoss()(out, batch)
    assert set(terms) == set(TERMS)
    assert total == 0 and all(v == 0 for v in terms.values())


def test_matching_output_gives_zero():
    batch = make_batch(joints_uvd_weight=torch.ones(B, 29, 3), joints_xyz_weight=torch.ones(B, 29, 3),
                       twist_weight=torch.ones(B, 23, 2), smpl_weight=torch.ones(B, 1))
    # uv labels consistent with the joints at the camera
    batch["joints_xyz"] = 0.3 * torch.randn(B, 29, 3, generator=torch.Generator().manual_seed(1))
    batch["joints_xyz"] -= batch["joints_xyz"][:, :1].clone()
    batch["joints_uvd"] = project(batch["joints_xyz"] + torch.tensor([0.0, 0.0, 4.0]))
    total, terms = HybrIKLoss()(output_matching(batch), batch)
    for k, v in terms.items():
        assert abs(float(v)) < 1e-6, k


def test_pose_l1_by_hand_with_masks():
    w = torch.zeros(B, 29, 3)
    w[0, :5] = 1.0           # sample 0: five joints labelled
    w[1, :, :2] = 1.0        # sample 1: 2D-only (d unlabelled)
    batch = make_batch(joints_uvd_weight=w)
    out = output_matching(batch)
    out.uvd = out.uvd + 0.1
    out.uvd[1, :, 2] += 5.0  # unlabelled depth error must not count
    out.uvd[0, 10:] += 7.0   # unlabelled joints must not count
    _, terms = HybrIKLoss()(out, batch)
    assert torch.isclose(terms["pose"], torch.tensor(0.1))


def test_pose_xyz_uses_joints_and_xyz_weights():
    w = torch.zeros(B, 29, 3)
    w[1] = 1.0
    batch = make_batch(joints_xyz_weight=w, joints_uvd_weight=torch.ones(B, 29, 3))
    out = output_matching(batch)
    out.joints = out.joints.clone()
    out.joints[1, 3, 0] = 0.87          # one coordinate of 87 labelled ones
    out.joints[0] += 1.0                # sample 0 is unlabelled
    loss = HybrIKLoss(use_xyz=True, camera=0.0)
    _, terms = loss(out, batch)
    assert torch.isclose(terms["pose"], torch.tensor(0.87 / 87))


def test_laplace_nll_by_hand():
    batch = make_batch(joints_uvd_weight=torch.ones(B, 29, 3))
    out = output_matching(batch)
    out.uvd = out.uvd + 0.2
    _, terms = HybrIKLoss(laplace=True)(out, batch)
    b = 0.5 + 1e-6
    assert torch.isclose(terms["pose"], torch.tensor(math.log(b) + 0.2 / (math.sqrt(2) * b)))
    out.sigma = None
    with pytest.raises(ValueError, match="sigma"):
        HybrIKLoss(laplace=True)(out, batch)


def test_beta_rot_twist_by_hand():
    smpl_w = torch.tensor([[1.0], [0.0]])
    tw_w = torch.zeros(B, 23, 2)
    tw_w[0] = 1.0
    batch = make_batch(smpl_weight=smpl_w, twist_weight=tw_w)
    out = output_matching(batch)
    out.betas = torch.ones(B, 10)
    out.betas[1] = 9.0                                  # masked sample
    out.rotmats = out.rotmats.clone()
    out.rotmats[0, 0] = rot_z(math.pi / 2)              # R − I has four entries of ±1
    out.rotmats[1] = 2.0                                # masked sample
    out.twist = out.twist.clone()
    out.twist[0, 0] = torch.tensor([0.0, 1.0])          # (1, 0) -> (0, 1): squared error 2
    out.twist[1] = 0.0                                  # masked sample
    _, terms = HybrIKLoss()(out, batch)
    assert torch.isclose(terms["beta"], torch.tensor(1.0))
    assert torch.isclose(terms["rot"], torch.tensor(4.0 / (24 * 9)))
    assert torch.isclose(terms["twist"], torch.tensor(2.0 / 46))


def test_camera_term_only_where_a_camera_label_exists():
    xyz_w = torch.zeros(B, 29, 3)
    xyz_w[0] = 1.0                                      # sample 0 has 3D labels, sample 1 is 2D-only
    batch = make_batch(joints_xyz_weight=xyz_w)
    out = output_matching(batch)
    out.camera = batch["camera"] + torch.tensor([[0.3, 0.0, 0.0], [5.0, 5.0, 5.0]])
    _, terms = HybrIKLoss()(out, batch)
    assert torch.isclose(terms["camera"], torch.tensor(0.1))
    # an explicit camera_weight overrides the default
    batch["camera_weight"] = torch.tensor([[0.0], [1.0]])
    _, terms = HybrIKLoss()(out, batch)
    assert torch.isclose(terms["camera"], torch.tensor(5.0))


def test_reprojection_by_hand():
    # root 4 m ahead, one joint 0.4 m to the right at the same depth
    joints = torch.zeros(B, 29, 3)
    joints[:, 1, 0] = 0.4
    uvd_w = torch.zeros(B, 29, 3)
    uvd_w[0, :2] = 1.0                                  # joints 0 and 1 of sample 0: 4 uv labels
    batch = make_batch(joints_xyz=joints, joints_uvd_weight=uvd_w)
    batch["joints_uvd"][:, 1, 0] = FOCAL_NORM * 0.4 / 4.0
    out = output_matching(batch)
    _, terms = HybrIKLoss()(out, batch)
    assert terms["reproj"].abs() < 1e-7
    # move the camera 1 m closer (s = F/3): u of joint 1 becomes F·0.4/3
    out.camera = camera_from_root(torch.tensor([[0.0, 0.0, 3.0]])).repeat(B, 1)
    _, terms = HybrIKLoss(camera=2.0)(out, batch)
    expect = FOCAL_NORM * 0.4 * (1 / 3.0 - 1 / 4.0) / 4
    assert torch.isclose(terms["reproj"], torch.tensor(expect))


def test_total_is_the_weighted_sum():
    ones = dict(joints_uvd_weight=torch.ones(B, 29, 3), joints_xyz_weight=torch.ones(B, 29, 3),
                twist_weight=torch.ones(B, 23, 2), smpl_weight=torch.ones(B, 1))
    batch = make_batch(**ones)
    g = torch.Generator().manual_seed(2)
    out = ModelOutput(uvd=torch.randn(B, 29, 3, generator=g), joints=0.2 * torch.randn(B, 29, 3, generator=g),
                      twist=torch.randn(B, 23, 2, generator=g), betas=torch.randn(B, 10, generator=g),
                      rotmats=torch.randn(B, 24, 3, 3, generator=g),
                      camera=torch.tensor([[0.9, 0.1, 0.0], [1.0, 0.0, -0.1]]))
    weights = dict(uvd=2.0, beta=0.5, rot=0.25, twist=0.125, camera=3.0)
    total, t = HybrIKLoss(**weights)(out, batch)
    expect = (2.0 * t["pose"] + 0.5 * t["beta"] + 0.25 * t["rot"] + 0.125 * t["twist"]
              + 3.0 * (t["camera"] + t["reproj"]))
    assert torch.isclose(total, expect)
    # the paper's defaults: μ1 = 1, μ2 = μ3 = 0.01
    assert HybrIKLoss().weights == {"pose": 1.0, "beta": 1.0, "rot": 0.01, "twist": 0.01,
                                    "camera": 1.0, "reproj": 1.0}


def test_masked_samples_get_no_gradient_and_dtypes_mix():
    w = torch.zeros(B, 29, 3)
    w[0] = 1.0
    batch = make_batch(joints_uvd_weight=w, smpl_weight=torch.tensor([[1.0], [0.0]]))
    out = output_matching(batch)
    g = torch.Generator().manual_seed(2)
    uvd = torch.randn(B, 29, 3, generator=g, dtype=torch.float64, requires_grad=True)
    betas = torch.randn(B, 10, generator=g, dtype=torch.float64, requires_grad=True)
    out = ModelOutput(**{k: (v.double() if v is not None else None) for k, v in out.items()})
    out.uvd, out.betas = uvd, betas                     # float64 output, float32 batch
    total, _ = HybrIKLoss()(out, batch)
    assert total.dtype == torch.float64
    total.backward()
    assert uvd.grad[1].abs().max() == 0 and uvd.grad[0].abs().min() > 0
    assert betas.grad[1].abs().max() == 0 and betas.grad[0].abs().min() > 0


def test_missing_batch_key_is_named():
    batch = make_batch()
    del batch["twist_weight"]
    with pytest.raises(KeyError, match="twist_weight"):
        HybrIKLoss()(output_matching(make_batch()), batch)


def test_bad_shape_is_a_value_error_and_bad_dtype_a_type_error():
    batch = make_batch()
    out = output_matching(batch)
    loss = HybrIKLoss()
    # betas (B, 1) would broadcast against (B, 10) without the check
    with pytest.raises(ValueError, match=r"batch\['betas'\] must have shape \(B, 10\), got \(2, 1\)"):
        loss(out, {**batch, "betas": torch.zeros(B, 1)})
    with pytest.raises(ValueError, match=r"batch\['smpl_weight'\] must have shape \(B, 1\) with B = 2"):
        loss(out, {**batch, "smpl_weight": torch.ones(B + 1, 1)})
    with pytest.raises(ValueError, match=r"output\['twist'\] must have shape \(B, 23, 2\)"):
        loss(ModelOutput(**{**dict(out.items()), "twist": torch.zeros(B, 23)}), batch)
    with pytest.raises(TypeError, match=r"batch\['joints_uvd'\] must be a floating tensor"):
        loss(out, {**batch, "joints_uvd": batch["joints_uvd"].long()})
    # a bool mask is a weight like its float twin
    w = torch.rand(B, 29, 3, generator=torch.Generator().manual_seed(3)) > 0.5
    out.uvd = out.uvd + 0.1
    as_bool = loss(out, {**batch, "joints_uvd_weight": w})[1]["pose"]
    assert as_bool == loss(out, {**batch, "joints_uvd_weight": w.float()})[1]["pose"] > 0
