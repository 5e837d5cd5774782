"""The reference ops against hand-computed values, at singular points and on bad input."""
import math

import pytest
import torch

import hybrik_fast
from hybrik_fast import reference as ref
from hybrik_fast.skeleton import IK_CHILD, PARENTS_29

DTYPES = [torch.float32, torch.float64]


def rot_axis_angle(axis, angle, dtype=torch.float64):
    """Rodrigues, written out independently of the code under test."""
    k = torch.tensor(axis, dtype=dtype)
    k = k / k.norm()
    K = torch.tensor([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]], dtype=dtype)
    return torch.eye(3, dtype=dtype) + math.sin(angle) * K + (1 - math.cos(angle)) * K @ K


# ---------------------------------------------------------------- soft-argmax

def test_soft_argmax_one_hot_and_uniform():
    B, K, D, H, W = 2, 3, 4, 5, 6
    x = torch.full((B, K, D, H, W), -1e4, dtype=torch.float64)
    x[0, 1, 3, 2, 5] = 0.0  # d=3, h=2, w=5
    coords, conf = hybrik_fast.soft_argmax3d(x, return_confidence=True, backend="reference")
    assert torch.allclose(coords[0, 1], torch.tensor([5 / 6 - 0.5, 2 / 5 - 0.5, 3 / 4 - 0.5], dtype=x.dtype))
    assert conf[0, 1] == 1.0
    # all other rows are uniform (all −1e4): mean index (N−1)/2, so c = −1/(2N)
    assert torch.allclose(coords[1, 0], torch.tensor([-1 / 12, -1 / 10, -1 / 8], dtype=x.dtype))
    assert torch.allclose(conf[1, 0], torch.tensor(1 / (D * H * W), dtype=x.dtype))


def test_soft_argmax_two_voxels_by_hand():
    # logits log(1) at (d,h,w) = (0,0,0) and log(3) at (1,1,1) in a 2x2x2 grid:
    # p = 1/4 and 3/4, so every axis has E[index] = 3/4 and c = 3/8 − 1/2 = −1/8
    x = torch.full((1, 1, 2, 2, 2), -math.inf, dtype=torch.float64)
    x[0, 0, 0, 0, 0] = 0.0
    x[0, 0, 1, 1, 1] = math.log(3.0)
    coords, conf = ref.soft_argmax3d(x, return_confidence=True)
    assert torch.allclose(coords, torch.full((1, 1, 3), -1 / 8, dtype=x.dtype))
    assert torch.allclose(conf, torch.tensor([[0.75]], dtype=x.dtype))


def test_soft_argmax_nan_row_is_isolated():
    x = torch.randn(2, 3, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    x[1, 2, 0, 0, 0] = float("nan")
    c = hybrik_fast.soft_argmax3d(x, backend="reference")
    assert torch.isnan(c[1, 2]).all()
    c[1, 2] = 0
    assert torch.isfinite(c).all()


@pytest.mark.parametrize("shape", [(2, 4, 3), (2, 29, 0, 4, 4), (2, 29, 4, 4)])
def test_soft_argmax_bad_shape(shape):
    with pytest.raises(ValueError, match=r"\(B, K, D, H, W\)"):
        hybrik_fast.soft_argmax3d(torch.zeros(shape), backend="reference")


def test_soft_argmax_bad_backend():
    with pytest.raises(ValueError, match="backend"):
        hybrik_fast.soft_argmax3d(torch.zeros(1, 1, 2, 2, 2), backend="fast")


# ---------------------------------------------------------------- swing / twist / pelvis

@pytest.mark.parametrize("dtype", DTYPES)
def test_swing_by_hand(dtype):
    ex, ey = torch.tensor([1.0, 0, 0], dtype=dtype), torch.tensor([0, 2.0, 0], dtype=dtype)
    R = ref.swing_rotation(ex, ey)  # 90 degrees about +z
    assert torch.allclose(R, torch.tensor([[0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=dtype), atol=1e-7)
    # parallel: identity
    assert torch.allclose(ref.swing_rotation(ex, 3 * ex), torch.eye(3, dtype=dtype))
    # antiparallel: half turn about t × e_y = +z (y is the first smallest |t| axis)
    R = ref.swing_rotation(ex, -0.5 * ex)
    assert torch.allclose(R, torch.diag(torch.tensor([-1.0, -1.0, 1.0], dtype=dtype)))
    # zero length: identity
    assert torch.equal(ref.swing_rotation(ex, 0 * ex), torch.eye(3, dtype=dtype))
    assert torch.equal(ref.swing_rotation(0 * ex, ey), torch.eye(3, dtype=dtype))


def test_swing_generic_antiparallel_reaches_target():
    t = torch.tensor([0.1, -0.3, 0.2], dtype=torch.float64)
    for p in (-2 * t, -t):
        R = ref.swing_rotation(t, p)
        assert torch.allclose(R @ t, -t, atol=1e-15)
        assert torch.allclose(R @ R.T, torch.eye(3, dtype=t.dtype), atol=1e-15)
        assert torch.linalg.det(R) > 0


def test_swing_is_minimal():
    torch.manual_seed(0)
    t, p = torch.randn(100, 3, dtype=torch.float64), torch.randn(100, 3, dtype=torch.float64)
    R = ref.swing_rotation(t, p)
    # takes t̂ to p̂, and its axis is perpendicular to both (no twist component)
    assert torch.allclose((R @ t[..., None])[..., 0] / t.norm(dim=-1, keepdim=True),
                          p / p.norm(dim=-1, keepdim=True), atol=1e-12)
    axial = torch.stack([R[:, 2, 1] - R[:, 1, 2], R[:, 0, 2] - R[:, 2, 0], R[:, 1, 0] - R[:, 0, 1]], -1)
    assert (axial * t).sum(-1).abs().max() < 1e-12
    # angle equals the angle between t and p
    cos = (R.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2
    assert torch.allclose(cos, torch.nn.functional.cosine_similarity(t, p), atol=1e-12)


def test_twist_by_hand():
    t = torch.tensor([0, 0, 0.3], dtype=torch.float64)
    R = ref.twist_rotation(t, torch.tensor([0.0, 2.0], dtype=torch.float64))  # unnormalised: 90°
    assert torch.allclose(R, rot_axis_angle([0, 0, 1], math.pi / 2), atol=1e-15)
    assert torch.equal(ref.twist_rotation(t, torch.zeros(2, dtype=torch.float64)), torch.eye(3, dtype=torch.float64))
    R = ref.twist_rotation(torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64),
                           torch.tensor([math.cos(0.7), math.sin(0.7)], dtype=torch.float64) * 5)
    assert torch.allclose(R, rot_axis_angle([1, 1, 0], 0.7), atol=1e-15)


def _rest_pose(dtype=torch.float64):
    from hybrik_fast.benchmark import REST_JOINTS
    return torch.tensor(REST_JOINTS, dtype=dtype)


def test_pelvis_recovers_rotation_and_handles_reflection_and_zero():
    T = _rest_pose()[None]  # (1, 29, 3)
    R0 = rot_axis_angle([0.3, 1.0, -0.2], 2.5)
    P = (T - T[:, :1]) @ R0.T
    assert torch.allclose(ref.pelvis_rotation(P, T)[0], R0, atol=1e-12)
    # a mirrored target must still give a proper rotation
    Pm = P * torch.tensor([-1.0, 1.0, 1.0], dtype=P.dtype)
    Rm = ref.pelvis_rotation(Pm, T)[0]
    assert torch.allclose(Rm @ Rm.T, torch.eye(3, dtype=P.dtype), atol=1e-12)
    assert torch.linalg.det(Rm) > 0
    # all pelvis children at the root: identity
    assert torch.equal(ref.pelvis_rotation(torch.zeros_like(T), T)[0], torch.eye(3, dtype=T.dtype))


# ---------------------------------------------------------------- IK / FK

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B", [0, 1, 5])
def test_ik_fk_batch_sizes_and_dtypes(dtype, B):
    from hybrik_fast.benchmark import ik_sample
    rot, _, _, T = ik_sample(B, 1, dtype)
    P = hybrik_fast.forward_kinematics(rot, T, backend="reference")
    tw = hybrik_fast.twist_angles(rot, T, backend="reference")
    assert P.shape == (B, 29, 3) and tw.shape == (B, 23, 2) and P.dtype == dtype
    for mode in ("adaptive", "naive"):
        R = hybrik_fast.hybrik_ik(P, tw, T, mode=mode, backend="reference")
        assert R.shape == (B, 24, 3, 3) and R.dtype == dtype
        tol = 1e-10 if dtype == torch.float64 else 1e-4
        assert (R - rot).abs().amax().item() < tol if B else True


def test_fk_by_hand():
    # a two-bone chain bent 90 degrees at the left hip: the knee goes from −y to +x
    T = _rest_pose()[None]
    rot = torch.eye(3, dtype=T.dtype).repeat(1, 24, 1, 1)
    rot[0, 1] = rot_axis_angle([0, 0, 1], math.pi / 2)
    P = ref.forward_kinematics(rot, T)
    bone = T[0, 4] - T[0, 1]
    assert torch.allclose(P[0, 4] - P[0, 1], torch.stack([-bone[1], bone[0], bone[2]]), atol=1e-15)
    assert torch.allclose(P[0, 2], T[0, 2] - T[0, 0])  # the other hip is untouched


def _singular_inputs(dtype=torch.float64):
    """Rest pose as targets with one bone of each singular kind."""
    T = _rest_pose(dtype)[None].repeat(4, 1, 1)
    P = (T - T[:, :1]).clone()
    tw = torch.zeros(4, 23, 2, dtype=dtype)
    tw[..., 0] = 1.0
    # sample 0: left forearm (elbow 18 -> wrist 20) antiparallel to its rest bone
    P[0, 20] = P[0, 18] - (T[0, 20] - T[0, 18])
    P[0, 22] = P[0, 20] - (T[0, 22] - T[0, 20])
    P[0, 25] = P[0, 22] - (T[0, 25] - T[0, 22])
    # sample 1: zero-length target bone (wrist on the elbow)
    P[1, 20] = P[1, 18]
    # sample 2: zero twist everywhere, and a huge unnormalised twist on joint 18
    tw[2] = 0.0
    tw[2, 17] = torch.tensor([3e3, 4e3], dtype=dtype)
    # sample 3: exactly parallel (the rest pose itself)
    return P, tw, T


@pytest.mark.parametrize("mode,fallback", [("naive", None), ("adaptive", None), ("adaptive", 0.015)])
def test_ik_singular_configurations_finite(mode, fallback):
    P, tw, T = _singular_inputs()
    P.requires_grad_(True); tw.requires_grad_(True); T.requires_grad_(True)
    R = hybrik_fast.hybrik_ik(P, tw, T, mode=mode, fallback=fallback, backend="reference")
    assert torch.isfinite(R).all()
    assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3, dtype=R.dtype).expand_as(R), atol=1e-12)
    # the antiparallel forearm still reaches its target
    Q = ref.forward_kinematics(R.detach(), T.detach())
    assert torch.allclose(Q[0, 20], P[0, 20].detach(), atol=1e-12)
    w = torch.randn(R.shape, generator=torch.Generator().manual_seed(1), dtype=R.dtype)
    gP, gtw, gT = torch.autograd.grad((R * w).sum(), (P, tw, T))
    assert torch.isfinite(gP).all() and torch.isfinite(gtw).all() and torch.isfinite(gT).all()


def test_ik_unnormalised_twist_is_normalised():
    from hybrik_fast.benchmark import ik_sample
    rot, _, _, T = ik_sample(3, seed=2)
    P, tw = ref.forward_kinematics(rot, T), ref.twist_angles(rot, T)
    R1 = ref.hybrik_ik(P, tw, T)
    scale = 0.1 + 10 * torch.rand(3, 23, 1, generator=torch.Generator().manual_seed(2), dtype=tw.dtype)
    R2 = ref.hybrik_ik(P, tw * scale, T)
    assert torch.allclose(R1, R2, atol=1e-13)


def test_ik_nan_sample_is_isolated():
    from hybrik_fast.benchmark import ik_sample
    rot, _, _, T = ik_sample(3, seed=3)
    P, tw = ref.forward_kinematics(rot, T), ref.twist_angles(rot, T)
    P[1, 7, 0] = float("nan")
    R = hybrik_fast.hybrik_ik(P, tw, T, backend="reference")
    assert torch.isnan(R[1]).any()
    assert torch.isfinite(R[0]).all() and torch.isfinite(R[2]).all()
    P[1] = float("nan")
    R = hybrik_fast.hybrik_ik(P, tw, T, backend="reference")
    assert torch.isnan(R[1]).all() and torch.isfinite(R[[0, 2]]).all()


def test_fallback_switches_to_naive():
    """Only joints whose adaptive target strays > fallback use the naive direction."""
    from hybrik_fast.benchmark import ik_sample
    rot, _, _, T = ik_sample(1, seed=4)
    P = ref.forward_kinematics(rot, T)
    tw = ref.twist_angles(rot, T)
    P_noisy = P.clone()
    P_noisy[0, 1] += torch.tensor([0.05, 0.0, 0.0], dtype=P.dtype)  # left hip off by 5 cm
    a = ref.hybrik_ik(P_noisy, tw, T, mode="adaptive", fallback=None)
    n = ref.hybrik_ik(P_noisy, tw, T, mode="naive")
    f = ref.hybrik_ik(P_noisy, tw, T, mode="adaptive", fallback=0.015)
    # the left knee (4) targets P[7] from the displaced hip: the fallback takes the naive direction
    assert torch.allclose(f[0, 4], n[0, 4], atol=1e-12)
    assert not torch.allclose(a[0, 4], n[0, 4], atol=1e-3)
    # a huge threshold never switches
    assert torch.allclose(ref.hybrik_ik(P_noisy, tw, T, fallback=10.0), a, atol=1e-15)


def test_topology_is_consistent():
    for i in range(1, 24):
        assert PARENTS_29[IK_CHILD[i]] == i


# ---------------------------------------------------------------- bad input

def _ok(B=2):
    return torch.zeros(B, 29, 3), torch.zeros(B, 23, 2), torch.zeros(B, 29, 3)


@pytest.mark.parametrize("which,bad,pattern", [
    (0, torch.zeros(2, 24, 3), r"joints must have shape \(B, 29, 3\)"),
    (1, torch.zeros(2, 23), r"twist must have shape \(B, 23, 2\)"),
    (2, torch.zeros(2, 24, 3), r"rest_joints must have shape \(B, 29, 3\)"),
    (1, torch.zeros(3, 23, 2), r"\(B, 23, 2\) with B = 2"),
])
def test_ik_bad_shapes(which, bad, pattern):
    args = list(_ok())
    args[which] = bad
    with pytest.raises(ValueError, match=pattern):
        hybrik_fast.hybrik_ik(*args, backend="reference")


def test_ik_bad_dtype_and_mode():
    P, tw, T = _ok()
    with pytest.raises(TypeError, match=r"joints must be a floating tensor .*\(B, 29, 3\), got dtype torch.int64"):
        hybrik_fast.hybrik_ik(P.long(), tw, T, backend="reference")
    with pytest.raises(TypeError, match=r"twist \(B, 23, 2\) has dtype torch.float64"):
        hybrik_fast.hybrik_ik(P, tw.double(), T, backend="reference")
    with pytest.raises(ValueError, match="mode"):
        hybrik_fast.hybrik_ik(P, tw, T, mode="fast", backend="reference")
    with pytest.raises(ValueError, match=r"\(B, 24, 3, 3\)"):
        hybrik_fast.forward_kinematics(torch.zeros(2, 23, 3, 3), T, backend="reference")
    with pytest.raises(TypeError, match=r"\(B, 29, 3\)"):
        hybrik_fast.hybrik_ik(P.numpy(), tw, T, backend="reference")


def test_soft_argmax_empty_batch_with_confidence():
    coords, conf = hybrik_fast.soft_argmax3d(torch.zeros(0, 3, 2, 3, 4), return_confidence=True,
                                             backend="reference")
    assert coords.shape == (0, 3, 3) and conf.shape == (0, 3)
