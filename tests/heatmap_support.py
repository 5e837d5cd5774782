"""Heatmap input builders shared by the soft-argmax tests and benchmarks."""
from __future__ import annotations

import torch


def make_heatmaps(B: int, K: int, D: int, H: int, W: int, dtype=torch.float32, seed: int = 0,
                  kind: str = "blob", device="cpu") -> torch.Tensor:
    """Logits (B, K, D, H, W).

    kind:
      "blob"     a Gaussian bump per joint (logit −|v − centre|²/(2σ²)·4, σ = a
                 fifth of each axis) plus unit noise: peaked like a trained
                 network's heatmaps but far from one-hot;
      "normal"   i.i.d. N(0, 3²);
      "uniform"  all zeros;
      "onehot"   zeros with 30 at one random voxel per joint.
    """
    g = torch.Generator().manual_seed(seed)
    if kind == "normal":
        x = 3.0 * torch.randn(B, K, D, H, W, generator=g, dtype=torch.float64)
    elif kind == "uniform":
        x = torch.zeros(B, K, D, H, W, dtype=torch.float64)
    elif kind == "onehot":
        x = torch.zeros(B, K, D * H * W, dtype=torch.float64)
        idx = torch.randint(0, D * H * W, (B, K, 1), generator=g)
        x.scatter_(-1, idx, 30.0)
        x = x.reshape(B, K, D, H, W)
    elif kind == "blob":
        centre = torch.rand(B, K, 3, generator=g, dtype=torch.float64)  # (B, K, 3) in [0, 1)

        def axis(n: int, j: int) -> torch.Tensor:  # (B, K, n) squared normalised distance
            t = (torch.arange(n, dtype=torch.float64) + 0.5) / n
            return ((t - centre[..., j, None]) / 0.2) ** 2

        x = -2.0 * (axis(D, 2)[..., :, None, None] + axis(H, 1)[..., None, :, None]
                    + axis(W, 0)[..., None, None, :])
        x = x + torch.randn(B, K, D, H, W, generator=g, dtype=torch.float64)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return x.to(device=device, dtype=dtype)


def make_grad(B: int, K: int, dtype=torch.float64, seed: int = 1, device="cpu") -> torch.Tensor:
    """A random upstream gradient for coords (B, K, 3)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, K, 3, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)


# ------------------------------------------------ comparison with the reference

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


def _with(x: torch.Tensor, index, value: float) -> torch.Tensor:
    x = x.clone()
    x[index] = value
    return x


def _minus_inf_entries() -> torch.Tensor:
    x = make_heatmaps(2, 3, 4, 5, 6, seed=6)
    x[torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) < 0.5] = float("-inf")
    x[0, 0, :2] = float("-inf")  # whole planes of −inf before the first finite voxel
    return x


#: edge-case inputs (2, 3, 4, 5, 6), float32, by name
EDGE_CASES = {
    "uniform": lambda: make_heatmaps(2, 3, 4, 5, 6, kind="uniform"),
    "onehot": lambda: make_heatmaps(2, 3, 4, 5, 6, kind="onehot", seed=4),
    "times_1e4": lambda: make_heatmaps(2, 3, 4, 5, 6, kind="normal", seed=5) * 1e4,
    "plus_1e4": lambda: make_heatmaps(2, 3, 4, 5, 6, kind="normal", seed=5) + 1e4,
    "minus_1e4": lambda: make_heatmaps(2, 3, 4, 5, 6, kind="normal", seed=5) - 1e4,
    "minus_inf_entries": _minus_inf_entries,
    "row_all_minus_inf": lambda: _with(make_heatmaps(2, 3, 4, 5, 6, seed=7), (1, 2), float("-inf")),
    "nan_first": lambda: _with(make_heatmaps(2, 3, 4, 5, 6, seed=8), (1, 1, 0, 0, 0), float("nan")),
    "nan_middle": lambda: _with(make_heatmaps(2, 3, 4, 5, 6, seed=8), (1, 1, 2, 3, 4), float("nan")),
    "nan_last": lambda: _with(make_heatmaps(2, 3, 4, 5, 6, seed=8), (1, 1, 3, 4, 5), float("nan")),
}
