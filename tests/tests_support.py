"""Builders and checkers shared by the tests.

The inputs themselves come from the package's one builder per op
(:func:`hybrik_fast.benchmark.heatmaps`, :func:`hybrik_fast.benchmark.ik_sample`,
:func:`hybrik_fast.benchmark.conv_soft_argmax_inputs`, here ``conv_inputs``),
the same as the benchmarks and the paper checks; this module adds what only
the tests need: an independent Rodrigues, upstream gradients, the comparisons
with the reference and the soft-argmax edge cases.
"""
from __future__ import annotations

import torch

from hybrik_fast.benchmark import conv_soft_argmax_inputs as conv_inputs, heatmaps  # noqa: F401 (conv_inputs: for the tests)


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """(…, 3) -> (…, 3, 3) by Rodrigues' formula (test-side, independent of the package)."""
    theta = aa.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    k = aa / theta
    x, y, z = k.unbind(-1)
    o = torch.zeros_like(x)
    K = torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(*aa.shape, 3)
    s, c = torch.sin(theta)[..., None], torch.cos(theta)[..., None]
    return torch.eye(3, dtype=aa.dtype) + s * K + (1 - c) * K @ K


# ------------------------------------------------ soft-argmax: comparison with the reference

def make_grad(B: int, K: int, dtype=torch.float64, seed: int = 1, device="cpu") -> torch.Tensor:
    """A random upstream gradient for coords (B, K, 3)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, K, 3, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)


def fwd_bwd(fn, x: torch.Tensor, g: torch.Tensor):
    """fn(x) -> (coords, conf); returns coords (B, K, 3), conf (B, K) and
    d x (B, K, D, H, W) for the loss Σ coords·g."""
    x = x.detach().requires_grad_()
    coords, conf = fn(x)
    (coords * g.to(coords.dtype)).sum().backward()
    return coords.detach(), conf, x.grad


def reference_with_confidence(x: torch.Tensor):
    from hybrik_fast.reference import soft_argmax3d as reference

    return reference(x, return_confidence=True)


def check_against_reference(x: torch.Tensor, g: torch.Tensor, backend: str, rtol=1e-5, atol=1e-6):
    """Run hybrik_fast.soft_argmax3d on x (B, K, D, H, W) with upstream
    gradient g (B, K, 3) and compare coords, conf and dx with the reference
    run in float64 on the same (already rounded) input.

    dx is compared at ``rtol`` of its natural scale in each row, max|g|·conf:
    |dx_v| <= p_v·Σ|g_a| and the error of the bracket (i/N − 0.5 − c) is
    absolute, so entries near zero carry no relative precision.  NaN must
    match NaN.  Returns the fused outputs.
    """
    from hybrik_fast import soft_argmax3d

    c, conf, dx = fwd_bwd(lambda t: soft_argmax3d(t, return_confidence=True, backend=backend), x, g)
    c64, conf64, dx64 = fwd_bwd(reference_with_confidence, x.double(), g)
    assert c.dtype == conf.dtype == dx.dtype == x.dtype
    assert c.shape == (*x.shape[:2], 3) and conf.shape == x.shape[:2] and dx.shape == x.shape
    torch.testing.assert_close(c.double(), c64, atol=atol, rtol=rtol, equal_nan=True)
    torch.testing.assert_close(conf.double(), conf64, atol=atol, rtol=rtol, equal_nan=True)
    scale = (g.abs().amax(-1) * conf64).nan_to_num(0.0)[..., None, None, None]  # (B, K, 1, 1, 1)
    err = (dx.double() - dx64).abs()
    bad = (err > rtol * scale + rtol * dx64.abs()) | (dx.isnan() != dx64.isnan())
    assert not bad.any(), f"dx: {int(bad.sum())} entries off, max error {err.nan_to_num(0).max():.3g}"
    return c, conf, dx


def assert_within_2x_reference(out, out_ref_low, out_ref64, dtype, what, norm: str = "max"):
    """Low-precision rule: |out − ref64| <= 2·|ref_low − ref64|, or at most the
    rounding of the output to ``dtype`` where the reference is exact.

    norm "max": the largest entry of each error; "rms": their root mean
    square, for many draws stacked (a max over GEMM results is one outlier
    entry, whose ratio between two summation orders ranges 0.5-2.6 from draw
    to draw; the RMS measures the error level)."""
    e, r = (out.double() - out_ref64).abs(), (out_ref_low.double() - out_ref64).abs()
    if norm == "max":
        err, ref_err = e.max().item(), r.max().item()
    elif norm == "rms":
        err, ref_err = e.pow(2).mean().sqrt().item(), r.pow(2).mean().sqrt().item()
    else:
        raise ValueError(f"norm must be 'max' or 'rms', got {norm!r}")
    rounding = torch.finfo(dtype).eps / 2 * out_ref64.abs().max().item()
    assert err <= max(2 * ref_err, rounding), f"{what}: {norm} error {err:.3g}, reference's own {ref_err:.3g}"


def _with(x: torch.Tensor, index, value: float) -> torch.Tensor:
    x = x.clone()
    x[index] = value
    return x


def _minus_inf_entries() -> torch.Tensor:
    x = heatmaps(2, 3, 4, 5, 6, seed=6)
    x[torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) < 0.5] = float("-inf")
    x[0, 0, :2] = float("-inf")  # whole planes of −inf before the first finite voxel
    return x


#: edge-case inputs (2, 3, 4, 5, 6), float32, by name
EDGE_CASES = {
    "uniform": lambda: heatmaps(2, 3, 4, 5, 6, kind="uniform"),
    "onehot": lambda: heatmaps(2, 3, 4, 5, 6, kind="onehot", seed=4),
    "times_1e4": lambda: heatmaps(2, 3, 4, 5, 6, kind="normal", seed=5) * 1e4,
    "plus_1e4": lambda: heatmaps(2, 3, 4, 5, 6, kind="normal", seed=5) + 1e4,
    "minus_1e4": lambda: heatmaps(2, 3, 4, 5, 6, kind="normal", seed=5) - 1e4,
    "minus_inf_entries": _minus_inf_entries,
    "row_all_minus_inf": lambda: _with(heatmaps(2, 3, 4, 5, 6, seed=7), (1, 2), float("-inf")),
    "nan_first": lambda: _with(heatmaps(2, 3, 4, 5, 6, seed=8), (1, 1, 0, 0, 0), float("nan")),
    "nan_middle": lambda: _with(heatmaps(2, 3, 4, 5, 6, seed=8), (1, 1, 2, 3, 4), float("nan")),
    "nan_last": lambda: _with(heatmaps(2, 3, 4, 5, 6, seed=8), (1, 1, 3, 4, 5), float("nan")),
}


# ------------------------------------------------ conv_soft_argmax3d: the materialised path

def conv_materialised(f, w, b, K, backend="reference"):
    """The oracle: conv2d, view (B, K, D, H, W), the soft-argmax (the
    reference unless ``backend`` says otherwise) -> (coords, conf)."""
    from hybrik_fast import soft_argmax3d

    B, _, H, W = f.shape
    heatmaps = torch.nn.functional.conv2d(f, w, b).view(B, K, w.shape[0] // K, H, W)
    return soft_argmax3d(heatmaps, return_confidence=True, backend=backend)


def conv_fwd_bwd(fn, f, w, b, g):
    """fn(f, w, b) -> (coords, conf); returns coords, conf, d f, d w, d b
    (None where the input is None) for the loss Σ coords·g."""
    leaves = [t.detach().requires_grad_() if t is not None else None for t in (f, w, b)]
    coords, conf = fn(*leaves)
    (coords * g.to(coords.dtype)).sum().backward()
    return (coords.detach(), conf) + tuple(t.grad if t is not None else None for t in leaves)
