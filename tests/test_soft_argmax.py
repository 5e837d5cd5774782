"""hybrik_fast.soft_argmax3d: the fused C++ backend against the reference.

The Triton backend has its own file (test_soft_argmax_triton.py), run under
the Triton interpreter where there is no GPU.
"""
import pytest
import torch

import hybrik_fast
from hybrik_fast import soft_argmax3d
from hybrik_fast import _ext
from hybrik_fast.reference import soft_argmax3d as reference
from hybrik_fast.benchmark import heatmaps
from tests_support import (EDGE_CASES, assert_within_2x_reference, check_against_reference, fwd_bwd, make_grad,
                           reference_with_confidence as ref)

pytestmark = pytest.mark.skipif(_ext.C is None, reason="the C++ extension is not built")

# (B, K, D, H, W): odd sizes, D != H != W, B in {0, 1, 3}, a single voxel, and
# shapes that take every blocking branch of the CPU kernel (csrc: Blocking):
# a plane cut into several blocks with a short last one (H·W > 4096); one
# h-row over a block (W > 4096); forward blocks of whole planes (W < 32),
# several per row with a short last one (40×24×24) and with W = 1
SHAPES = [
    (1, 1, 1, 1, 1),
    (1, 3, 5, 6, 7),
    (3, 2, 7, 5, 3),
    (0, 4, 3, 5, 2),
    (3, 29, 8, 9, 10),
    (1, 2, 2, 130, 40),
    (1, 1, 2, 3, 5000),
    (2, 3, 40, 24, 24),
    (1, 2, 6, 50, 1),
    (1, 2, 64, 64, 64),
]

# fp32/fp64: (atol, rtol) against the reference run in float64 on the same input.
# fp16/bf16: the error against the fp64 reference must be at most 2x that of
# the reference computed in that dtype.
DTYPES = [
    (torch.float32, 1e-6, 1e-5),
    (torch.float64, 1e-12, 1e-10),
    (torch.float16, None, None),
    (torch.bfloat16, None, None),
]


def fused(x):
    return soft_argmax3d(x, return_confidence=True, backend="cpu")



@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype, atol, rtol", DTYPES, ids=lambda v: str(v).replace("torch.", ""))
def test_matches_reference(shape, dtype, atol, rtol):
    B, K = shape[:2]
    x = heatmaps(*shape, dtype=dtype)
    g = make_grad(B, K)
    if atol is not None:
        check_against_reference(x, g, "cpu", rtol=rtol, atol=atol)
        return
    c, conf, dx = fwd_bwd(fused, x, g)
    c64, conf64, dx64 = fwd_bwd(ref, x.double(), g)  # the same rounded inputs, exactly
    c_r, conf_r, dx_r = fwd_bwd(ref, x, g)
    assert c.dtype == conf.dtype == dx.dtype == dtype
    if B == 0:
        return
    assert_within_2x_reference(c, c_r, c64, dtype, "coords")
    assert_within_2x_reference(conf, conf_r, conf64, dtype, "conf")
    assert_within_2x_reference(dx, dx_r, dx64, dtype, "grad")


@pytest.mark.parametrize("shape", [(2, 3, 3, 4, 5), (1, 2, 1, 7, 2)])
def test_gradcheck_float64(shape):
    x = heatmaps(*shape, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: soft_argmax3d(t, backend="cpu"), (x,))


def test_non_contiguous():
    base = heatmaps(3, 4, 6, 10, 5, seed=3)
    for x in (base.transpose(2, 4), base[:, ::2, :, 1::3], base.permute(1, 0, 2, 3, 4)):
        assert not x.is_contiguous()
        check_against_reference(x, make_grad(*x.shape[:2]), "cpu")


@pytest.mark.parametrize("shape", [(1, 3, 5, 6, 7), (2, 2, 3, 130, 41)], ids=["small", "odd-W-blocks"])
def test_streaming_and_plain_stores_agree(shape, monkeypatch):
    """The backward writes dx with streaming stores where its memory is
    resident and with plain stores where it is fresh (csrc: is_resident).
    Forced each way, both match the reference and give the same bits, with
    W = 41 included (blocks that start off a 16-byte boundary)."""
    x = heatmaps(*shape)
    g = make_grad(*shape[:2])
    dx = {}
    for flag in ("0", "1"):
        monkeypatch.setenv("HYBRIK_FAST_STREAMING_STORES", flag)
        dx[flag] = check_against_reference(x, g, "cpu")[2]
    assert torch.equal(dx["0"], dx["1"])


# ---------------------------------------------------------------- output cache
# The CPU backward takes a dx of 1 MiB or more from a cache of freed
# gradients (csrc/common/output_cache.h).  2×4×32³ floats = 1 MiB.
CACHED = (2, 4, 32, 32, 32)


def grad_of(x, g):
    """d(coords · g)/dx by the fused CPU backward; x (B, K, D, H, W), g (B, K, 3)."""
    x = x.detach().requires_grad_()
    return torch.autograd.grad(soft_argmax3d(x, backend="cpu"), x, g.to(x.dtype))[0]


def reference_grad(x, g):
    x = x.detach().double().requires_grad_()
    return torch.autograd.grad(reference(x), x, g.double())[0]


def assert_grad_close(dx, dx_ref):
    """fp32 rule of check_against_reference, at the scale of the whole tensor."""
    torch.testing.assert_close(dx.double(), dx_ref, rtol=1e-5, atol=1e-5 * dx_ref.abs().max().item())


@pytest.mark.parametrize("streaming", ["0", "1"])
def test_cached_gradient_is_reused_and_fully_written(streaming, monkeypatch):
    """A freed gradient's buffer comes back for the next backward of the
    same size, and that backward writes all of it: the stale values of the
    first (another upstream gradient) leave no trace."""
    monkeypatch.setenv("HYBRIK_FAST_STREAMING_STORES", streaming)
    hybrik_fast.empty_cache()
    x = heatmaps(*CACHED)
    g1, g2 = make_grad(2, 4, seed=1), make_grad(2, 4, seed=2)
    dx1 = grad_of(x, g1)
    ptr = dx1.data_ptr()
    dx1.fill_(1e30)  # what a stale read would show
    del dx1
    assert hybrik_fast.cache_info() == {"blocks": 1, "bytes": 2 ** 20}
    dx2 = grad_of(x, g2)
    assert dx2.data_ptr() == ptr and dx2.is_contiguous() and hybrik_fast.cache_info()["blocks"] == 0
    assert_grad_close(dx2, reference_grad(x, g2))


def test_cached_gradient_is_an_ordinary_tensor():
    """Contiguous, resizable (a resize allocates anew and gives the buffer
    back), saved and loaded like any other."""
    import io

    hybrik_fast.empty_cache()
    dx = grad_of(heatmaps(*CACHED), make_grad(2, 4))
    assert dx.is_contiguous() and dx.shape == CACHED and hybrik_fast.cache_info()["blocks"] == 0
    buf = io.BytesIO()
    torch.save(dx, buf)
    buf.seek(0)
    assert torch.equal(torch.load(buf), dx)
    dx.resize_(3 * 2 ** 18)  # 3 MiB of float32
    assert hybrik_fast.cache_info() == {"blocks": 1, "bytes": 2 ** 20}
    dx.fill_(2.0)
    assert dx.sum().item() == 2.0 * dx.numel()


def test_kept_gradient_is_not_reused():
    """A gradient the caller still holds (here through a view) keeps its
    buffer: the next backward gets another one, and the first is intact."""
    hybrik_fast.empty_cache()
    x = heatmaps(*CACHED)
    dx1 = grad_of(x, make_grad(2, 4, seed=1))
    view = dx1[1]
    saved = view.clone()
    del dx1
    dx2 = grad_of(x, make_grad(2, 4, seed=2))
    assert dx2.data_ptr() != view.data_ptr() and torch.equal(view, saved)


def test_accumulated_grad_matches_reference():
    """.backward() twice: the first gradient becomes x.grad (AccumulateGrad
    keeps the cached tensor), the second is added into it and freed."""
    hybrik_fast.empty_cache()
    x = heatmaps(*CACHED).requires_grad_()
    g = make_grad(2, 4).float()
    for _ in range(2):
        soft_argmax3d(x, backend="cpu").backward(g)
    assert_grad_close(x.grad, 2 * reference_grad(x, g))
    assert hybrik_fast.cache_info()["blocks"] == 1


def test_cache_holds_two_buffers_and_skips_small_ones():
    hybrik_fast.empty_cache()
    for D in (32, 33, 34):  # three sizes of 1 MiB or more, freed in turn
        grad_of(heatmaps(2, 4, D, 32, 32), make_grad(2, 4))
    assert hybrik_fast.cache_info() == {"blocks": 2, "bytes": 4 * 2 * 4 * (33 + 34) * 32 * 32}
    hybrik_fast.empty_cache()
    grad_of(heatmaps(2, 4, 31, 32, 32), make_grad(2, 4))  # just under 1 MiB
    assert hybrik_fast.cache_info() == {"blocks": 0, "bytes": 0}


def test_cache_can_be_turned_off(monkeypatch):
    hybrik_fast.empty_cache()
    monkeypatch.setenv("HYBRIK_FAST_CACHE_OUTPUTS", "0")
    grad_of(heatmaps(*CACHED), make_grad(2, 4))
    assert hybrik_fast.cache_info()["blocks"] == 0



@pytest.mark.parametrize("name", ["HYBRIK_FAST_CACHE_OUTPUTS", "HYBRIK_FAST_STREAMING_STORES"])
def test_bad_switch_value_is_an_error(name, monkeypatch):
    monkeypatch.setenv(name, "yes")
    with pytest.raises(RuntimeError, match=f"{name} must be 0 or 1"):
        grad_of(heatmaps(*CACHED), make_grad(2, 4))


def test_profiler_sees_a_reused_gradient():
    """Memory profiles (and the bench's peak MB) count a gradient taken from
    the cache as an allocation, and its return as a free."""
    from torch.profiler import ProfilerActivity, profile

    hybrik_fast.empty_cache()
    x = heatmaps(*CACHED)
    g = make_grad(2, 4)
    grad_of(x, g)  # freed at once: now cached
    assert hybrik_fast.cache_info()["blocks"] == 1
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        grad_of(x, g)
    assert hybrik_fast.cache_info()["blocks"] == 1
    sizes = [e.nbytes() for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    assert 2 ** 20 in sizes and -2 ** 20 in sizes, sizes


@pytest.mark.parametrize("D, H, W", [(16, 64, 64), (120, 24, 24)], ids=["h-rows", "planes"])
def test_rows_split_into_segments(D, H, W):
    """Rows of 16×64×64 (blocks of h-rows) and of 120×24×24 voxels (blocks
    of 28 planes) run as 2 segments merged as a log-sum-exp (csrc:
    forward_kernel).  One row's first segment is all −inf, one row's max
    lies 50 above the rest in its last segment, one row has a NaN in its
    second segment: that row is NaN and the others are not."""
    first = D // 2 if H == 64 else 56  # the first segment's planes
    x = heatmaps(1, 4, D, H, W, seed=9)
    x[0, 0, :first] = float("-inf")
    x[0, 1, D - 1, 3, 7] += 50.0
    x[0, 2, (3 * D) // 4, 5, 5] = float("nan")
    c, conf, dx = check_against_reference(x, make_grad(1, 4), "cpu")
    assert c[0, 2].isnan().all() and conf[0, 2].isnan() and dx[0, 2].isnan().all()
    good = [0, 1, 3]
    assert torch.isfinite(c[0, good]).all() and torch.isfinite(conf[0, good]).all()
    assert torch.isfinite(dx[0, good]).all() and (dx[0, 0, :first] == 0).all()


def test_confidence_is_not_differentiable():
    x = heatmaps(2, 3, 4, 5, 6).requires_grad_()
    coords, conf = soft_argmax3d(x, return_confidence=True, backend="cpu")
    assert coords.requires_grad and not conf.requires_grad
    assert soft_argmax3d(x.detach(), backend="cpu").grad_fn is None


# ---------------------------------------------------------------- edge cases

@pytest.mark.parametrize("case", EDGE_CASES)
def test_edge_case_matches_reference(case):
    check_against_reference(EDGE_CASES[case](), make_grad(2, 3), "cpu")


def test_uniform_logits_exact():
    x = EDGE_CASES["uniform"]()
    D, H, W = x.shape[2:]
    coords, conf = soft_argmax3d(x, return_confidence=True, backend="cpu")
    torch.testing.assert_close(coords, torch.tensor([-0.5 / W, -0.5 / H, -0.5 / D]).expand(2, 3, 3),
                               atol=1e-7, rtol=0)
    torch.testing.assert_close(conf, torch.full((2, 3), 1 / (D * H * W)))


def test_one_hot_logits_exact():
    x = EDGE_CASES["onehot"]()
    D, H, W = x.shape[2:]
    coords, conf = soft_argmax3d(x, return_confidence=True, backend="cpu")
    d, h, w = (x == 30).nonzero()[:, 2:].T  # in (B, K) row order
    want = torch.stack([w / W, h / H, d / D], -1).reshape(2, 3, 3).float() - 0.5
    torch.testing.assert_close(coords, want, atol=1e-6, rtol=0)
    torch.testing.assert_close(conf, torch.ones(2, 3), atol=1e-6, rtol=0)


def test_minus_inf_entries_get_zero_gradient():
    x = EDGE_CASES["minus_inf_entries"]()
    _, _, dx = fwd_bwd(fused, x, make_grad(2, 3))
    assert (dx[x == float("-inf")] == 0).all() and torch.isfinite(dx).all()


@pytest.mark.parametrize("case", ["nan_first", "nan_middle", "nan_last", "row_all_minus_inf"])
def test_bad_row_is_nan_and_the_others_are_not(case):
    x = EDGE_CASES[case]()
    c, conf, dx = fwd_bwd(fused, x, make_grad(2, 3))
    bad = torch.zeros(2, 3, dtype=torch.bool)
    bad[(1, 1) if case.startswith("nan") else (1, 2)] = True
    assert c[bad].isnan().all() and conf[bad].isnan().all() and dx[bad].isnan().all()
    assert torch.isfinite(c[~bad]).all() and torch.isfinite(conf[~bad]).all() and torch.isfinite(dx[~bad]).all()


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("x", [
    torch.zeros(2, 3, 4, 5),                       # not 5-D
    torch.zeros(1, 2, 3, 4, 5, 6),                 # not 5-D
    torch.zeros(1, 2, 0, 4, 5),                    # D = 0
    torch.zeros(1, 2, 3, 4, 0),                    # W = 0
], ids=["4d", "6d", "D0", "W0"])
@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_bad_shape_raises_value_error(x, backend):
    with pytest.raises(ValueError, match=r"heatmaps must have shape \(B, K, D, H, W\)"):
        soft_argmax3d(x, backend=backend)


@pytest.mark.parametrize("x", [
    torch.zeros(1, 2, 3, 4, 5, dtype=torch.int64),
    torch.zeros(1, 2, 3, 4, 5, dtype=torch.bool),
    [[1.0]],
], ids=["int64", "bool", "list"])
@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_bad_dtype_raises_type_error(x, backend):
    with pytest.raises(TypeError, match=r"heatmaps must be a .*of shape \(B, K, D, H, W\)"):
        soft_argmax3d(x, backend=backend)


# ---------------------------------------------------------------- dispatch

def test_auto_picks_cpu_and_env_overrides(monkeypatch):
    x = heatmaps(1, 2, 3, 4, 5).requires_grad_()

    def ran(**kw):  # which implementation produced the output
        name = type(soft_argmax3d(x, **kw).grad_fn).__name__
        return "fused" if "hybrik_fast_soft_argmax3d" in name else "reference"

    monkeypatch.delenv("HYBRIK_FAST_BACKEND", raising=False)
    assert ran() == "fused" and ran(backend="cpu") == "fused" and ran(backend="reference") == "reference"
    monkeypatch.setenv("HYBRIK_FAST_BACKEND", "reference")
    assert ran() == "reference" and ran(backend="cpu") == "fused"


def test_triton_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match="triton"):
        soft_argmax3d(heatmaps(1, 2, 3, 4, 5), backend="triton")


# ---------------------------------------------------------------- torch.library

def test_opcheck():
    x = heatmaps(2, 3, 4, 5, 6).requires_grad_()
    torch.library.opcheck(torch.ops.hybrik_fast.soft_argmax3d.default, (x, "cpu"))
    coords, lse, _ = torch.ops.hybrik_fast.soft_argmax3d(x.detach(), "cpu")
    torch.library.opcheck(torch.ops.hybrik_fast.soft_argmax3d_backward.default,
                          (make_grad(2, 3, dtype=torch.float32), x.detach(), coords, lse, "cpu"))


def test_cpp_entry_checks_shapes_and_dtypes():
    """The raw operators check too: ValueError naming the shape, TypeError for a dtype."""
    ops = torch.ops.hybrik_fast_C
    with pytest.raises(ValueError, match=r"x must have shape \(B, K, D, H, W\) with D, H, W > 0, got \[2, 3, 0, 4, 5\]"):
        ops.soft_argmax3d_fwd(torch.zeros(2, 3, 0, 4, 5))
    with pytest.raises(TypeError, match=r"x must be a floating tensor .*got Int"):
        ops.soft_argmax3d_fwd(torch.zeros(2, 3, 4, 4, 5, dtype=torch.int32))
    x = heatmaps(2, 3, 4, 5, 6)
    coords, lse, _ = ops.soft_argmax3d_fwd(x)
    with pytest.raises(ValueError, match=r"grad_coords must have shape \(B, K, 3\) = \[2, 3, 3\], got \[2, 3\]"):
        ops.soft_argmax3d_bwd(torch.zeros(2, 3), x, coords, lse)


def test_compile_fullgraph_forward_backward_matches_eager():
    g = make_grad(2, 3, dtype=torch.float32)

    def loss(x):
        coords, conf = soft_argmax3d(x, return_confidence=True, backend="cpu")
        return (coords * g).sum() + conf.sum()

    compiled = torch.compile(loss, fullgraph=True)
    x = heatmaps(2, 3, 4, 5, 6)
    x_e, x_c = x.clone().requires_grad_(), x.clone().requires_grad_()
    l_e, l_c = loss(x_e), compiled(x_c)
    l_e.backward()
    l_c.backward()
    torch.testing.assert_close(l_c, l_e)
    torch.testing.assert_close(x_c.grad, x_e.grad)


def test_export():
    class Head(torch.nn.Module):
        def forward(self, heatmaps):
            return soft_argmax3d(heatmaps, return_confidence=True, backend="cpu")

    x = heatmaps(2, 3, 4, 5, 6)
    ep = torch.export.export(Head(), (x,))
    assert "hybrik_fast.soft_argmax3d" in str(ep.graph)
    y = heatmaps(2, 3, 4, 5, 6, seed=9)
    for a, b in zip(ep.module()(y), reference(y, return_confidence=True)):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
