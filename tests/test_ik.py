"""The fused IK (backends "cpu" and "cuda") against the reference.

Three tiers: float64 gradcheck on tiny inputs; a batch x dtype x mode grid
against the reference, forward and backward; edge cases (singular bones,
zero twist, NaN, huge inputs, non-contiguous input, B = 0) and bad input.
"""
import os
import re

import pytest
import torch

import hybrik_fast
from hybrik_fast import _ext, skeleton
from hybrik_fast.reference import kinematics as ref
from hybrik_fast.benchmark import ik_sample

pytestmark = pytest.mark.skipif(_ext.C is None, reason="the C++ extension is not built")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = os.path.join(ROOT, "csrc", "ik", "topology.h")

# (mode, fallback) of the three target rules
MODES = [("naive", None), ("adaptive", None), ("adaptive", 0.015)]
MODE_IDS = ["naive", "adaptive", "adaptive+fallback"]


def ik_inputs(B, dtype=torch.float64, seed=0, noise=0.01):
    """Random plausible pose: joints FK(θ) + noise (metres), not root-relative; twist(θ) rescaled; rest joints."""
    return ik_sample(B, seed, dtype, joint_noise=noise, root_offset=1.0, twist_scale=0.5).inputs()


def fused(P, tw, T, mode, fallback, backend="cpu"):
    return hybrik_fast.hybrik_ik(P, tw, T, mode=mode, fallback=fallback, backend=backend)


def grads(fn, inputs, weight):
    x = [t.detach().clone().requires_grad_(True) for t in inputs]
    return torch.autograd.grad((fn(*x) * weight).sum(), x)


# ---------------------------------------------------------------- topology

def _header_array(name):
    text = open(HEADER).read()
    body = re.search(r"/\*" + name + r"=\*/\{([^}]*)\}", text).group(1)
    return tuple(int(v) for v in body.split(","))


def test_header_topology_matches_skeleton():
    assert _header_array("parent") == skeleton.PARENTS_29
    assert _header_array("ik_child") == skeleton.IK_CHILD
    assert _header_array("pelvis_children") == skeleton.PELVIS_CHILDREN


# ---------------------------------------------------------------- forward grid

@pytest.mark.parametrize("B", [0, 1, 7, 1000])
@pytest.mark.parametrize("mode,fallback", MODES, ids=MODE_IDS)
def test_forward_matches_reference_float64(B, mode, fallback):
    P, tw, T = ik_inputs(B, seed=B)
    out = fused(P, tw, T, mode, fallback)
    assert out.shape == (B, 24, 3, 3) and out.dtype == torch.float64
    if B:
        assert (out - ref.hybrik_ik(P, tw, T, mode, fallback)).abs().max() <= 1e-10


@pytest.mark.parametrize("B", [0, 1, 7, 1000])
@pytest.mark.parametrize("mode,fallback", MODES, ids=MODE_IDS)
def test_forward_matches_reference_float32(B, mode, fallback):
    """Kernels and reference both run the recursion in float64 and round once:
    in float32 they agree to ≤ 1e-5 (in fact to the last bits), and both are
    the float64 answer on the same inputs rounded."""
    P, tw, T = ik_inputs(B, torch.float32, seed=B)
    out = fused(P, tw, T, mode, fallback)
    assert out.shape == (B, 24, 3, 3) and out.dtype == torch.float32
    if B:
        ref32 = ref.hybrik_ik(P, tw, T, mode, fallback)
        assert ref32.dtype == torch.float32
        assert (out - ref32).abs().max() <= 1e-5
        exact = ref.hybrik_ik(P.double(), tw.double(), T.double(), mode, fallback)
        assert (out.double() - exact).abs().max() <= 1e-6


def test_forward_non_contiguous_and_half():
    P, tw, T = ik_inputs(5)
    # every other sample of a batch of 10, and a transposed layout
    P2 = torch.cat([P, P]).view(2, 5, 29, 3).transpose(0, 1).reshape(10, 29, 3)[::2]
    Pt = P.transpose(1, 2).contiguous().transpose(1, 2)
    assert not P2.is_contiguous() and not Pt.is_contiguous()
    expect = ref.hybrik_ik(P, tw, T)
    assert (fused(P2, tw, T, "adaptive", 0.015) - expect).abs().max() <= 1e-10
    assert (fused(Pt, tw[:, :, [0, 1]], T, "adaptive", 0.015) - expect).abs().max() <= 1e-10
    half = fused(P.half(), tw.half(), T.half(), "adaptive", 0.015)
    assert half.dtype == torch.float16
    assert (half.double() - ref.hybrik_ik(P.half().double(), tw.half().double(), T.half().double())).abs().max() < 2e-3


def test_thread_count_does_not_change_results():
    P, tw, T = ik_inputs(300)
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = fused(P, tw, T, "adaptive", 0.015)
        torch.set_num_threads(max(2, n))
        many = fused(P, tw, T, "adaptive", 0.015)
    finally:
        torch.set_num_threads(n)
    assert torch.equal(one, many)


# ---------------------------------------------------------------- backward

@pytest.mark.parametrize("mode,fallback", MODES, ids=MODE_IDS)
def test_backward_matches_reference_autograd(mode, fallback):
    P, tw, T = ik_inputs(40, seed=3, noise=0.02)
    w = torch.randn(40, 24, 3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got = grads(lambda *x: fused(*x, mode, fallback), (P, tw, T), w)
    want = grads(lambda *x: ref.hybrik_ik(*x, mode, fallback), (P, tw, T), w)
    for g, e in zip(got, want):
        assert (g - e).abs().max() <= 1e-8 * e.abs().max()


def test_backward_fallback_switches_per_joint():
    """Inputs where the fallback takes the naive target on some joints but not others."""
    P, tw, T = ik_inputs(20, seed=4, noise=0.03)
    out = fused(P, tw, T, "adaptive", 0.015)
    assert not torch.allclose(out, fused(P, tw, T, "adaptive", None))
    assert not torch.allclose(out, fused(P, tw, T, "naive", None))
    w = torch.randn(20, 24, 3, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got = grads(lambda *x: fused(*x, "adaptive", 0.015), (P, tw, T), w)
    want = grads(lambda *x: ref.hybrik_ik(*x, "adaptive", 0.015), (P, tw, T), w)
    for g, e in zip(got, want):
        assert (g - e).abs().max() <= 1e-8 * e.abs().max()


@pytest.mark.parametrize("mode,fallback", MODES, ids=MODE_IDS)
def test_gradcheck(mode, fallback):
    P, tw, T = ik_inputs(2, seed=5, noise=0.02)
    x = [t.clone().requires_grad_(True) for t in (P, tw, T)]
    assert torch.autograd.gradcheck(lambda *a: fused(*a, mode, fallback), x, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_backward_float32_and_partial_grads():
    P, tw, T = ik_inputs(8, seed=6)
    w = torch.randn(8, 24, 3, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    want = grads(lambda *x: ref.hybrik_ik(*x), (P, tw, T), w)
    got = grads(lambda *x: fused(*x, "adaptive", 0.015), [t.float() for t in (P, tw, T)], w.float())
    for g, e in zip(got, want):
        assert g.dtype == torch.float32
        assert (g.double() - e).abs().max() <= 1e-4 * e.abs().max()
    # only the twist requires grad
    t = tw.clone().requires_grad_(True)
    (g_tw,) = torch.autograd.grad((fused(P, t, T, "adaptive", 0.015) * w).sum(), t)
    assert torch.allclose(g_tw, want[1], rtol=0, atol=1e-10)


# ---------------------------------------------------------------- the paper's checks

def _clean_pose(B, seed):
    """rotmats, clean joints, true twist, rest joints (float64)."""
    return ik_sample(B, seed)


@pytest.mark.parametrize("mode", ["naive", "adaptive"])
def test_round_trip(mode):
    from hybrik_fast.paper import rotation_angle
    rot, P, tw, T = _clean_pose(256, seed=11)
    R = fused(P, tw, T, mode, 0.015)
    assert rotation_angle(R, rot).max() < 1e-4
    assert 1000 * (ref.forward_kinematics(R, T) - P).norm(dim=-1).max() < 0.01


def test_jitter_table3_shape():
    """With 10/20/30 mm jitter, adaptive MPJPE (24 joints, vs the clean pose) < 0.75 x naive."""
    rot, P, tw, T = _clean_pose(256, seed=12)
    g = torch.Generator().manual_seed(13)
    for level in (10, 20, 30):
        noise = torch.randn(P.shape, generator=g, dtype=P.dtype) * level / 1000
        noise[:, 0] = 0
        err = {}
        for mode in ("naive", "adaptive"):
            R = fused(P + noise, tw, T, mode, None)
            err[mode] = (ref.forward_kinematics(R, T) - P)[:, :24].norm(dim=-1).mean()
        assert err["adaptive"] < 0.75 * err["naive"], (level, err)


# ---------------------------------------------------------------- edge cases

def _rest_targets(B):
    """The rest pose as targets (every bone exactly parallel to its target), identity twist."""
    T = ik_sample(B, seed=20).rest
    P = (T - T[:, :1]).clone()
    tw = torch.zeros(B, 23, 2, dtype=T.dtype)
    tw[..., 0] = 1.0
    return P, tw, T


def _check_edge(P, tw, T, modes=MODES):
    """Forward equals the reference; gradients are finite and equal the reference's."""
    w = torch.randn(P.shape[0], 24, 3, 3, generator=torch.Generator().manual_seed(3), dtype=P.dtype)
    for mode, fallback in modes:
        out = fused(P, tw, T, mode, fallback)
        assert (out - ref.hybrik_ik(P, tw, T, mode, fallback)).abs().max() <= 1e-10
        assert torch.allclose(out @ out.transpose(-1, -2), torch.eye(3, dtype=out.dtype).expand_as(out), atol=1e-12)
        got = grads(lambda *x: fused(*x, mode, fallback), (P, tw, T), w)
        want = grads(lambda *x: ref.hybrik_ik(*x, mode, fallback), (P, tw, T), w)
        for g, e in zip(got, want):
            assert torch.isfinite(g).all()
            assert (g - e).abs().max() <= 1e-8 * max(e.abs().max(), 1.0)
    return out


def test_parallel_bones_give_identity():
    P, tw, T = _rest_targets(3)
    out = _check_edge(P, tw, T)
    assert torch.allclose(out, torch.eye(3, dtype=out.dtype).expand_as(out), atol=1e-14)


def test_antiparallel_bone_is_a_half_turn_reaching_the_target():
    P, tw, T = _rest_targets(2)
    # left forearm (elbow 18 -> wrist 20) and the hand chain below it reversed
    for i, c in ((18, 20), (20, 22), (22, 25)):
        P[:, c] = P[:, i] - (T[:, c] - T[:, i])
    out = _check_edge(P, tw, T)
    Q = ref.forward_kinematics(out, T)
    assert torch.allclose(Q[:, 20], P[:, 20], atol=1e-12)
    assert torch.allclose(out[:, 18].diagonal(dim1=-2, dim2=-1).sum(-1), torch.full((2,), -1.0, dtype=out.dtype))


def test_zero_length_bones():
    P, tw, T = ik_inputs(3, seed=21)
    P[0, 20] = P[0, 18]          # zero-length target bone (wrist on the elbow)
    T[1, 7] = T[1, 4]            # zero-length rest bone (ankle on the knee)
    P[2, 3] = P[2, 0]            # a pelvis child on the pelvis: S has rank 2
    _check_edge(P, tw, T)


def test_zero_twist_vector():
    P, tw, T = ik_inputs(3, seed=22)
    tw[0] = 0.0
    tw[1, 17] = 0.0
    tw[2, 5] = torch.tensor([3e3, 4e3], dtype=tw.dtype)  # huge and unnormalised
    _check_edge(P, tw, T)


def test_zero_pelvis_gives_identity_root():
    P, tw, T = ik_inputs(2, seed=23)
    P[0, [1, 2, 3]] = P[0, 0].clone()  # S = 0
    out = fused(P, tw, T, "adaptive", 0.015)
    assert torch.equal(out[0, 0], torch.eye(3, dtype=out.dtype))
    _check_edge(P, tw, T)


def test_pelvis_reflection_fix_matches_reference():
    """Mirrored pelvis targets (det S < 0): the proper rotation of the reflection-fixed Kabsch."""
    P, tw, T = ik_inputs(8, seed=26, noise=0.0)  # noise-free: det S = −det(T_c)² < 0 exactly
    P = P - P[:, :1]
    P[:, [1, 2, 3], 0] *= -1
    S = (T[:, [3, 1, 2]] - T[:, :1]).transpose(1, 2) @ P[:, [3, 1, 2]]
    assert (torch.linalg.det(S) < 0).all()
    out = _check_edge(P, tw, T)
    assert (out[:, 0] - ref.pelvis_rotation(P, T)).abs().max() <= 1e-10


def test_pelvis_near_degenerate_takes_the_jacobi_path():
    """Pelvis children nearly collinear (a gap of ~1e-5 between the top eigenvalues of Horn's
    matrix): the closed-form path declines and the Jacobi sweeps still match the SVD."""
    P, tw, T = ik_inputs(4, seed=27)
    P = P - P[:, :1]
    g = torch.Generator().manual_seed(27)
    for c, f in ((1, 1.0), (2, -1.0)):      # hips on the spine's line, slightly off it
        P[:, c] = f * P[:, 3] + 1e-6 * torch.randn(4, 3, generator=g, dtype=P.dtype)
    out = fused(P, tw, T, "adaptive", 0.015)
    assert (out[:, 0] - ref.pelvis_rotation(P, T)).abs().max() <= 1e-8
    P[:, [1, 2]] = 0.0                      # rank(S) = 1: the root is not determined
    out = fused(P, tw, T, "adaptive", 0.015)
    assert torch.allclose(out @ out.transpose(-1, -2), torch.eye(3, dtype=out.dtype).expand_as(out), atol=1e-12)
    for g in grads(lambda *x: fused(*x, "adaptive", 0.015), (P, tw, T), torch.ones_like(out)):
        assert torch.isfinite(g).all()


def _near_collinear_pelvis(B, offset, seed):
    """Hips on the spine's line but ``offset`` (relative) off it, at 100x body scale (the root
    rotation does not depend on the scale; gradients in metres shrink by 100, which puts the
    finite differences of gradcheck in range).  Returns P, tw, T and, per sample, the product
    Π_{j≠0}(λ0 − λj) of the gaps of Horn's matrix N / max|S| (csrc/ik: pelvis), from the
    singular values of S: its eigenvalues are ±σ1 ± σ2 ± dσ3 (even numbers of minus signs), so
    Π = 8 (σ2 + dσ3)(σ1 + dσ3)(σ1 + σ2)."""
    P, tw, T = ik_inputs(B, seed=seed)
    P = P - P[:, :1]
    g = torch.Generator().manual_seed(seed)
    spine = P[:, 3] / P[:, 3].norm(dim=-1, keepdim=True)
    off = offset * torch.randn(B, 2, 3, generator=g, dtype=P.dtype)
    P[:, 1] = -0.1 * spine + off[:, 0]
    P[:, 2] = -0.08 * spine + off[:, 1]
    P, T = 100 * P, 100 * T
    c = list(skeleton.PELVIS_CHILDREN)
    S = (T[:, c] - T[:, :1]).transpose(1, 2) @ (P[:, c] - P[:, :1])
    s1, s2, s3 = torch.linalg.svdvals(S / S.abs().amax(dim=(1, 2), keepdim=True)).unbind(-1)
    d = torch.sign(torch.linalg.det(S))
    return P, tw, T, 8 * (s2 + d * s3) * (s1 + d * s3) * (s1 + s2)


def test_pelvis_jacobi_path_backward_matches_reference():
    """The pelvis VJP of the Jacobi branch (the rare one) against the SVD reference's autograd,
    and by gradcheck.  The Newton path takes the top eigenvector from a row of adj(N − λ0 I),
    whose norm is at most |Π|; below kNewtonMinCofactor = 1e-3 (csrc/ik) it declines, so
    Π < 1e-3 forces the Jacobi sweeps (a probe compiled against the header confirms it here)."""
    P, tw, T, gaps = _near_collinear_pelvis(2, 1e-5, seed=27)
    assert (gaps < 1e-3).all(), gaps
    w = torch.randn(2, 24, 3, 3, generator=torch.Generator().manual_seed(5), dtype=P.dtype)
    for mode, fallback in MODES:
        got = grads(lambda *x: fused(*x, mode, fallback), (P, tw, T), w)
        want = grads(lambda *x: ref.hybrik_ik(*x, mode, fallback), (P, tw, T), w)
        for g, e in zip(got, want):
            assert (g - e).abs().max() <= 1e-8 * e.abs().max()
    # the root rotation alone: its gradient is the pelvis VJP and nothing else.  Near the
    # singularity its derivative in P reaches ~1e4, so central differences need eps = 1e-7 there
    # (at 1e-5 their truncation error is ~40); in T it is ~1, where eps = 1e-7 drowns in rounding
    root = lambda p, t: fused(p, tw, t, "adaptive", 0.015)[:, 0]  # noqa: E731
    assert torch.autograd.gradcheck(lambda p: root(p, T), P.clone().requires_grad_(True),
                                    eps=1e-7, atol=1e-5, rtol=1e-3)
    assert torch.autograd.gradcheck(lambda t: root(P, t), T.clone().requires_grad_(True),
                                    eps=1e-5, atol=1e-5, rtol=1e-3)


def test_nan_sample_is_isolated():
    P, tw, T = ik_inputs(4, seed=24)
    P[1, 7, 0] = float("nan")
    tw[2, 3, 1] = float("nan")
    w = torch.randn(4, 24, 3, 3, generator=torch.Generator().manual_seed(6), dtype=P.dtype)
    clean = [0, 3]
    for mode, fallback in MODES:
        out = fused(P, tw, T, mode, fallback)
        assert torch.isnan(out[1]).any() and torch.isnan(out[2]).any()
        assert torch.equal(out[clean], fused(P[clean], tw[clean], T[clean], mode, fallback))
        g = grads(lambda *x: fused(*x, mode, fallback), (P, tw, T), w)
        g_clean = grads(lambda *x: fused(*x, mode, fallback), (P[clean], tw[clean], T[clean]), w[clean])
        for a, b in zip(g, g_clean):
            assert torch.equal(a[clean], b)
    P[1] = float("nan")
    out = fused(P, tw, T, "adaptive", 0.015)
    assert torch.isnan(out[1]).all() and torch.isfinite(out[clean]).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_huge_inputs(dtype):
    """A body 10 km tall far from the origin matches the reference; one 2^50 m (~1e15) tall
    stays finite and gives the same rotations (the IK without fallback is scale invariant,
    and a power of two scales exactly)."""
    P, tw, T = ik_inputs(6, seed=25)
    base = fused(P, tw, T, "adaptive", None)
    Pb, Tb = (P * 1e4 + 1e5).to(dtype), (T * 1e4).to(dtype)
    out = fused(Pb, tw.to(dtype), Tb, "adaptive", None)
    exact = ref.hybrik_ik(Pb.double(), tw.to(dtype).double(), Tb.double(), "adaptive", None)
    assert (out.double() - exact).abs().max() <= (1e-6 if dtype == torch.float32 else 1e-10)
    for mode, fallback in MODES[:2]:
        out = fused((P * 2.0**50).to(dtype), tw.to(dtype), (T * 2.0**50).to(dtype), mode, fallback)
        assert torch.isfinite(out).all()
        want = fused(P.to(dtype), tw.to(dtype), T.to(dtype), mode, fallback)
        assert (out - want).abs().max() <= (1e-6 if dtype == torch.float32 else 1e-10)
    assert torch.isfinite(base).all()


# ---------------------------------------------------------------- the operator

def test_custom_op_and_cpp_autograd_agree():
    """Eager calls go through hybrik_fast_C::hybrik_ik (C++ autograd); compile and export
    through the custom op hybrik_fast::hybrik_ik: both have the same values and gradients."""
    P, tw, T = ik_inputs(6, seed=34)
    w = torch.randn(6, 24, 3, 3, generator=torch.Generator().manual_seed(7), dtype=P.dtype)
    for mode, fallback in MODES:
        a = grads(lambda *x: torch.ops.hybrik_fast.hybrik_ik(*x, mode, fallback), (P, tw, T), w)
        b = grads(lambda *x: fused(*x, mode, fallback), (P, tw, T), w)
        for x, y in zip(a, b):
            assert torch.equal(x, y)
    with torch.inference_mode():
        code = _ext.C.ik_modes()["adaptive_fallback"]
        assert torch.equal(torch.ops.hybrik_fast_C.hybrik_ik(P, tw, T, code, 0.015), fused(P, tw, T, "adaptive", 0.015))


def test_mode_codes_run_the_rule_they_name():
    """The C++ ops' mode codes are defined once (csrc/ik/mode.h) and exported as
    _C.ik_modes(): each code runs the target rule its name says, against the reference,
    on inputs where the three rules give different rotations."""
    codes = _ext.C.ik_modes()
    assert sorted(codes) == ["adaptive", "adaptive_fallback", "naive"]
    P, tw, T = ik_inputs(8, seed=40, noise=0.01)
    rules = {"naive": ("naive", None), "adaptive": ("adaptive", None), "adaptive_fallback": ("adaptive", 0.015)}
    want = {name: ref.hybrik_ik(P, tw, T, *rule) for name, rule in rules.items()}
    for a, b in [("naive", "adaptive"), ("adaptive", "adaptive_fallback"), ("naive", "adaptive_fallback")]:
        assert (want[a] - want[b]).abs().max() > 1e-3  # the rules are told apart here
    for name, (mode, fallback) in rules.items():
        out = torch.ops.hybrik_fast_C.hybrik_ik_fwd(P, tw, T, codes[name], -1.0 if fallback is None else fallback)
        assert (out - want[name]).abs().max() <= 1e-10


def test_opcheck():
    P, tw, T = ik_inputs(3, seed=30)
    for mode, fallback in MODES:
        args = (P.clone().requires_grad_(True), tw.clone().requires_grad_(True), T.clone().requires_grad_(True),
                mode, fallback)
        torch.library.opcheck(torch.ops.hybrik_fast.hybrik_ik.default, args)
    torch.library.opcheck(torch.ops.hybrik_fast_C.hybrik_ik_fwd.default, (P, tw, T, 2, 0.015))
    args = tuple(t.clone().requires_grad_(True) for t in (P, tw, T)) + (2, 0.015)
    torch.library.opcheck(torch.ops.hybrik_fast_C.hybrik_ik.default, args)
    w = torch.randn(3, 24, 3, 3, generator=torch.Generator().manual_seed(8), dtype=P.dtype)
    torch.library.opcheck(torch.ops.hybrik_fast_C.hybrik_ik_bwd.default, (w, P, tw, T, 2, 0.015))


def test_torch_compile_fullgraph_matches_eager():
    """Inductor, fullgraph: the op is one opaque node forward and backward, so values and
    gradients equal eager's bit for bit."""
    P, tw, T = ik_inputs(5, seed=31)
    w = torch.randn(5, 24, 3, 3, generator=torch.Generator().manual_seed(9), dtype=P.dtype)

    def ik(P, tw, T):
        return hybrik_fast.hybrik_ik(P, tw, T, backend="cpu")

    compiled = torch.compile(ik, fullgraph=True)
    x = [t.clone().requires_grad_(True) for t in (P, tw, T)]
    y = [t.clone().requires_grad_(True) for t in (P, tw, T)]
    oc, oe = compiled(*x), ik(*y)
    assert torch.equal(oc, oe)
    for a, b in zip(torch.autograd.grad(oc, x, w), torch.autograd.grad(oe, y, w)):
        assert torch.equal(a, b)
    with torch.no_grad():
        assert torch.equal(compiled(P, tw, T), oe)


def test_torch_export():
    class IK(torch.nn.Module):
        def forward(self, P, tw, T):
            return hybrik_fast.hybrik_ik(P, tw, T, backend="cpu")

    P, tw, T = ik_inputs(4, seed=32)
    B = torch.export.Dim("B")
    ep = torch.export.export(IK(), (P, tw, T), dynamic_shapes=({0: B}, {0: B}, {0: B}))
    assert "torch.ops.hybrik_fast.hybrik_ik.default" in str(ep.graph)
    P2, tw2, T2 = ik_inputs(9, seed=33)
    assert torch.equal(ep.module()(P2, tw2, T2), IK()(P2, tw2, T2))


# ---------------------------------------------------------------- bad input

def _ok(B=2):
    return torch.zeros(B, 29, 3), torch.zeros(B, 23, 2), torch.zeros(B, 29, 3)


# a wrong shape or device is a ValueError, a wrong dtype (or not a tensor) a TypeError
@pytest.mark.parametrize("which,bad,error,pattern", [
    (0, torch.zeros(2, 24, 3), ValueError, r"joints must have shape \(B, 29, 3\)"),
    (1, torch.zeros(2, 23), ValueError, r"twist must have shape \(B, 23, 2\)"),
    (2, torch.zeros(2, 29, 2), ValueError, r"rest_joints must have shape \(B, 29, 3\)"),
    (1, torch.zeros(3, 23, 2), ValueError, r"twist must have shape \(B, 23, 2\) with B = 2"),
    (2, torch.zeros(1, 29, 3), ValueError, r"rest_joints must have shape \(B, 29, 3\) with B = 2"),
    (2, torch.zeros(2, 29, 3, device="meta"), ValueError, r"rest_joints \(B, 29, 3\) is on meta"),
    (0, torch.zeros(2, 29, 3, dtype=torch.int64), TypeError,
     r"joints must be a floating tensor .* \(B, 29, 3\), got dtype"),
    (1, torch.zeros(2, 23, 2, dtype=torch.float64), TypeError, r"twist \(B, 23, 2\) has dtype .*joints \(B, 29, 3\)"),
    (2, torch.zeros(2, 29, 3, dtype=torch.float64), TypeError, r"rest_joints \(B, 29, 3\) has dtype"),
    (2, torch.zeros(2, 29, 3).numpy(), TypeError, r"rest_joints must be a torch.Tensor of shape \(B, 29, 3\)"),
])
@pytest.mark.parametrize("backend", ["auto", "cpu"])
def test_bad_input_raises_the_exact_error(which, bad, error, pattern, backend):
    args = list(_ok())
    args[which] = bad
    with pytest.raises(error, match=pattern):
        hybrik_fast.hybrik_ik(*args, backend=backend)


def test_bad_mode_and_fallback():
    with pytest.raises(ValueError, match="mode"):
        hybrik_fast.hybrik_ik(*_ok(), mode="fast", backend="cpu")
    with pytest.raises(ValueError, match="fallback"):
        hybrik_fast.hybrik_ik(*_ok(), fallback=-1.0, backend="cpu")
    with pytest.raises(TypeError, match="fallback"):
        hybrik_fast.hybrik_ik(*_ok(), fallback="0.01", backend="cpu")


def test_cpp_entry_checks_shapes_and_dtypes():
    """The raw operators check too: ValueError naming the shape, TypeError for a dtype."""
    P, tw, T = _ok()
    code = _ext.C.ik_modes()["adaptive"]
    with pytest.raises(ValueError, match=r"twist must have shape \(B, 23, 2\) = \[2, 23, 2\], got \[2, 22, 2\]"):
        torch.ops.hybrik_fast_C.hybrik_ik_fwd(P, torch.zeros(2, 22, 2), T, code, -1.0)
    with pytest.raises(ValueError, match=r"grad_rot must have shape .* = \[2, 24, 3, 3\]"):
        torch.ops.hybrik_fast_C.hybrik_ik_bwd(torch.zeros(2, 24, 9), P, tw, T, code, -1.0)
    with pytest.raises(TypeError, match=r"rest_joints must have the dtype of joints \(Float\), got Double"):
        torch.ops.hybrik_fast_C.hybrik_ik_fwd(P, tw, T.double(), code, -1.0)
    with pytest.raises(TypeError, match=r"joints must be float32 or float64, got Half"):
        torch.ops.hybrik_fast_C.hybrik_ik_fwd(P.half(), tw.half(), T.half(), code, -1.0)
    with pytest.raises(ValueError, match=r"mode must be"):
        torch.ops.hybrik_fast_C.hybrik_ik_fwd(P, tw, T, 7, -1.0)


# ---------------------------------------------------------------- CUDA

@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or _ext.C is None or not _ext.C.compiled_with_cuda(),
                    reason="needs a GPU and the extension built with CUDA")
class TestCuda:
    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    @pytest.mark.parametrize("mode,fallback", MODES, ids=MODE_IDS)
    def test_forward_and_backward_match_cpu(self, dtype, mode, fallback):
        P, tw, T = ik_inputs(1000, dtype, seed=40, noise=0.02)
        cpu = fused(P, tw, T, mode, fallback)
        gpu = fused(P.cuda(), tw.cuda(), T.cuda(), mode, fallback, backend="cuda")
        tol = 1e-6 if dtype == torch.float32 else 1e-12
        assert (gpu.cpu() - cpu).abs().max() <= tol
        w = torch.randn(1000, 24, 3, 3, generator=torch.Generator().manual_seed(10), dtype=dtype)
        g_cpu = grads(lambda *x: fused(*x, mode, fallback), (P, tw, T), w)
        g_gpu = grads(lambda *x: fused(*x, mode, fallback, backend="cuda"),
                      (P.cuda(), tw.cuda(), T.cuda()), w.cuda())
        for a, b in zip(g_gpu, g_cpu):
            assert (a.cpu() - b).abs().max() <= tol * max(1.0, b.abs().max().item())

    def test_empty_and_non_contiguous(self):
        P, tw, T = ik_inputs(6, seed=41)
        assert fused(P[:0].cuda(), tw[:0].cuda(), T[:0].cuda(), "adaptive", 0.015, "cuda").shape == (0, 24, 3, 3)
        out = fused(P.cuda()[::2], tw.cuda()[::2], T.cuda()[::2], "adaptive", 0.015, "cuda")
        assert (out.cpu() - fused(P[::2], tw[::2], T[::2], "adaptive", 0.015)).abs().max() <= 1e-12
