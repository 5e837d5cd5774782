"""The CPU IK's lane groups (csrc/ik/ik_simd.h): samples run 4 or 2 to a
SIMD vector (AVX-512 and AVX2, baseline x86-64) or one at a time (scalar, the
arithmetic of the CUDA kernel), picked by HYBRIK_FAST_IK_SIMD.

Special cases (antiparallel and zero-length bones, a degenerate pelvis, the
fallback switching, NaN) sit in the same lane group as ordinary samples, in
batches that are not multiples of the lane count; every variant must give
the reference's answer, forward and backward, and each sample's answer must
not depend on its neighbours.
"""
import pytest
import torch

from hybrik_fast import _ext
from hybrik_fast.reference import kinematics as ref
from test_ik import MODES, MODE_IDS, _rest_targets, fused, grads, ik_inputs

pytestmark = pytest.mark.skipif(_ext.C is None, reason="the C++ extension is not built")

VARIANTS = ["avx512", "avx2", "baseline", "scalar"]
NAN_SAMPLE = 8
JACOBI_SAMPLE = 6


@pytest.fixture(params=VARIANTS)
def variant(request, monkeypatch):
    """Sets HYBRIK_FAST_IK_SIMD; skips a variant this CPU cannot run."""
    monkeypatch.setenv("HYBRIK_FAST_IK_SIMD", request.param)
    P, tw, T = ik_inputs(1)
    try:
        fused(P, tw, T, "naive", None)
    except RuntimeError as e:
        if "does not support" in str(e):
            pytest.skip(f"this CPU has no {request.param}")
        raise
    return request.param


def mixed_batch(B=13):
    """B samples, special ones at 1..9: lane groups of 4 or 2 hold special and ordinary samples together."""
    assert B >= 10
    P, tw, T = ik_inputs(B, seed=40, noise=0.02)
    g = torch.Generator().manual_seed(41)
    Pr, twr, Tr = _rest_targets(2)
    # 1: the rest pose with the left forearm and hand reversed: antiparallel bones (half turns)
    P[1], tw[1], T[1] = Pr[0], twr[0], Tr[0]
    for i, c in ((18, 20), (20, 22), (22, 25)):
        P[1, c] = P[1, i] - (T[1, c] - T[1, i])
    # 2: 10 cm of noise: the fallback takes the naive target on many joints
    P[2] += 0.1 * torch.randn(29, 3, generator=g, dtype=P.dtype)
    P[3, 20] = P[3, 18]               # zero-length target bone
    T[4, 7] = T[4, 4]                 # zero-length rest bone
    P[5, [1, 2, 3]] = P[5, 0].clone() # pelvis S = 0: the identity root
    P[6] = P[6] - P[6, :1]            # hips nearly on the spine's line: Newton declines, Jacobi
    P[6, 1] = P[6, 3] + 1e-6 * torch.randn(3, generator=g, dtype=P.dtype)
    P[6, 2] = -P[6, 3] + 1e-6 * torch.randn(3, generator=g, dtype=P.dtype)
    tw[7] = 0.0                       # zero twist vectors
    P[NAN_SAMPLE, 7, 0] = float("nan")
    P[9, 3] = P[9, 0].clone()         # a pelvis child on the pelvis: S has rank 2
    return P, tw, T


def _tol(k):
    # the nearly degenerate pelvis amplifies rounding by about its eigenvalue gap (~1e-5)
    return 1e-7 if k == JACOBI_SAMPLE else 1e-10


@pytest.mark.parametrize("B", [10, 13, 17])
@pytest.mark.parametrize("mode,fallback", MODES, ids=MODE_IDS)
def test_mixed_lane_group_forward(variant, B, mode, fallback):
    P, tw, T = mixed_batch(B)
    out = fused(P, tw, T, mode, fallback)
    want = ref.hybrik_ik(P, tw, T, mode, fallback)
    for k in range(B):
        if k == NAN_SAMPLE:
            assert torch.isnan(out[k]).any()
            continue
        assert torch.isfinite(out[k]).all(), k
        assert (out[k] - want[k]).abs().max() <= _tol(k), k
        # a sample's answer does not depend on the lane group it ran in
        assert torch.equal(out[k], fused(P[k:k + 1], tw[k:k + 1], T[k:k + 1], mode, fallback)[0]), k
    if mode == "adaptive" and fallback is not None:   # the fallback did switch in sample 2
        assert not torch.equal(out[2], fused(P[2:3], tw[2:3], T[2:3], "adaptive", None)[0])


@pytest.mark.parametrize("mode,fallback", MODES, ids=MODE_IDS)
def test_mixed_lane_group_backward(variant, mode, fallback):
    B = 13
    P, tw, T = mixed_batch(B)
    w = torch.randn(B, 24, 3, 3, generator=torch.Generator().manual_seed(42), dtype=P.dtype)
    got = grads(lambda *x: fused(*x, mode, fallback), (P, tw, T), w)
    keep = [k for k in range(B) if k not in (NAN_SAMPLE, JACOBI_SAMPLE)]
    want = grads(lambda *x: ref.hybrik_ik(*x, mode, fallback), (P[keep], tw[keep], T[keep]), w[keep])
    for g, e in zip(got, want):
        assert torch.isfinite(g[keep]).all()
        assert (g[keep] - e).abs().max() <= 1e-8 * max(e.abs().max(), 1.0)
        assert torch.isfinite(g[JACOBI_SAMPLE]).all()
    # the NaN sample's gradient is NaN; the others do not see it (compared above)
    assert torch.isnan(got[0][NAN_SAMPLE]).any()


def _run_all(P, tw, T, w, mode, fallback):
    out = fused(P, tw, T, mode, fallback)
    return (out, *grads(lambda *x: fused(*x, mode, fallback), (P, tw, T), w))


@pytest.mark.parametrize("mode,fallback", MODES, ids=MODE_IDS)
def test_variants_agree(monkeypatch, mode, fallback):
    """Every variant the CPU runs gives the scalar variant's forward and gradients (to FMA rounding)."""
    B = 21
    P, tw, T = mixed_batch(B)
    w = torch.randn(B, 24, 3, 3, generator=torch.Generator().manual_seed(43), dtype=P.dtype)
    monkeypatch.setenv("HYBRIK_FAST_IK_SIMD", "scalar")
    base = _run_all(P, tw, T, w, mode, fallback)
    ran = 0
    for v in VARIANTS[:-1]:
        monkeypatch.setenv("HYBRIK_FAST_IK_SIMD", v)
        try:
            got = _run_all(P, tw, T, w, mode, fallback)
        except RuntimeError as e:
            if "does not support" in str(e):
                continue
            raise
        ran += 1
        for a, b in zip(got, base):
            assert torch.equal(torch.isnan(a), torch.isnan(b)), v
            for k in range(B):
                fin = torch.isfinite(b[k])
                # relative to the sample's largest value; the nearly degenerate pelvis's
                # gradients (~1e6) carry its ill-conditioning
                rel = 1e-6 if k == JACOBI_SAMPLE else 1e-11
                assert (a[k] - b[k])[fin].abs().max() <= rel * max(b[k][fin].abs().max(), 1.0), (v, k)
    assert ran >= 1  # the baseline variant runs on every x86-64


def test_bad_variant_name(monkeypatch):
    monkeypatch.setenv("HYBRIK_FAST_IK_SIMD", "avx9000")
    P, tw, T = ik_inputs(2)
    with pytest.raises(RuntimeError, match="HYBRIK_FAST_IK_SIMD"):
        fused(P, tw, T, "adaptive", 0.015)
