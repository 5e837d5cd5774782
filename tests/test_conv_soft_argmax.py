"""hybrik_fast.conv_soft_argmax3d (backend "cpu") against the materialised
path: conv2d, view (B, K, D, H, W), the reference soft-argmax."""
import pytest
import torch

from hybrik_fast import conv_soft_argmax3d
from tests_support import (assert_within_2x_reference, conv_fwd_bwd as fwd_bwd, conv_inputs,
                           conv_materialised as materialised, make_grad)


def fused(K, **kw):
    return lambda f, w, b: conv_soft_argmax3d(f, w, b, K, return_confidence=True, backend="cpu", **kw)


# (B, C, K, D, H, W): D != H != W, C = 37 (no multiple of any tile or
# vector width), K = 1, a W >= 32 row (h-row blocks) and short rows (plane blocks)
SHAPES = [(2, 37, 3, 5, 6, 7), (1, 8, 1, 4, 3, 33), (3, 5, 2, 7, 4, 2), (2, 16, 4, 6, 9, 40)]
IDS = ["x".join(map(str, s)) for s in SHAPES]


@pytest.mark.parametrize("tile_planes", [0, 1, 2], ids=["auto", "tile1", "tile2"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_float64_matches_materialised(shape, bias, tile_planes):
    """Forward (coords, conf) and all three gradients to 1e-10; tile_planes 1
    and 2 run D or ⌈D/2⌉ tiles per heatmap (the tile loop and its merge)."""
    B, C, K, D, H, W = shape
    f, w, b = conv_inputs(*shape, bias=bias)
    g = make_grad(B, K)
    got = fwd_bwd(fused(K, tile_planes=tile_planes), f, w, b, g)
    want = fwd_bwd(lambda *a: materialised(*a, K), f, w, b, g)
    for name, x, y in zip(("coords", "conf", "d features", "d weight", "d bias"), got, want):
        if y is None:
            assert x is None, name
            continue
        assert x.shape == y.shape and x.dtype == y.dtype, name
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-10, msg=name)


def test_many_tiles():
    """64 tiles per heatmap (one d-plane each) with a 2-D weight: same result as one tile."""
    shape = (2, 12, 2, 64, 5, 36)
    f, w, b = conv_inputs(*shape, seed=3)
    w = w.flatten(1)
    g = make_grad(2, 2, seed=4)
    one = fwd_bwd(fused(2, tile_planes=64), f, w, b, g)
    many = fwd_bwd(fused(2, tile_planes=1), f, w, b, g)
    want = fwd_bwd(lambda f_, w_, b_: materialised(f_, w_[:, :, None, None], b_, 2), f, w, b, g)
    for x, y, z in zip(one, many, want):
        torch.testing.assert_close(y, x, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(y, z, rtol=1e-10, atol=1e-10)


def test_whole_joint_tiles_with_a_remainder():
    """Tiles of whole joints: 80 rows hold two of D = 40 planes, so K = 5 runs as
    tiles of 2, 2 and 1 joints; the default tile (2^21 voxels) holds all five
    heatmaps of 40·50·50; 40 rows, one.  float64 to 1e-10 against the
    materialised path."""
    shape = (2, 6, 5, 40, 50, 50)
    f, w, b = conv_inputs(*shape, seed=11)
    g = make_grad(2, 5, seed=12)
    want = fwd_bwd(lambda *a: materialised(*a, 5), f, w, b, g)
    for rows in (80, 0, 40):
        got = fwd_bwd(fused(5, tile_planes=rows), f, w, b, g)
        for name, x, z in zip(("coords", "conf", "d features", "d weight", "d bias"), got, want):
            torch.testing.assert_close(x, z, rtol=1e-10, atol=1e-10, msg=f"{rows} rows: {name}")


@pytest.mark.parametrize("gemm", ["1", "0"], ids=["onednn", "blas"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_low_precision_within_twice_the_reference_error(dtype, gemm, monkeypatch):
    """coords and the three gradients: |fused − ref64| <= 2·|materialised in dtype − ref64|
    over eight seeded draws stacked, as root mean squares (the tile GEMMs sum in
    another order than conv2d's, so the single largest entry is a few ulps either
    way: its ratio ranged 0.6-2.6 over groups of draws, the RMS ratio 0.8-1.6).
    Both GEMM paths of the float tiles: ATen's oneDNN matmul and torch's BLAS."""
    monkeypatch.setenv("HYBRIK_FAST_ONEDNN_GEMM", gemm)
    runs = []
    for seed in range(8):
        f64, w64, b64 = conv_inputs(2, 37, 3, 5, 6, 7, seed=5 + seed)
        f, w, b = (t.to(dtype) for t in (f64, w64, b64))
        g = make_grad(2, 3, seed=6 + seed)
        runs.append((fwd_bwd(fused(3), f, w, b, g), fwd_bwd(lambda *a: materialised(*a, 3), f, w, b, g),
                     fwd_bwd(lambda *a: materialised(*a, 3), f64, w64, b64, g)))
    got, low, ref64 = ([torch.stack([r[i][k] for r in runs]) for k in range(5)] for i in range(3))
    for name, x, y, z in zip(("coords", "conf", "d features", "d weight", "d bias"), got, low, ref64):
        assert x.dtype == dtype, name
        assert_within_2x_reference(x, y, z, dtype, name, norm="rms")


def test_bad_gemm_switch_names_the_variable(monkeypatch):
    monkeypatch.setenv("HYBRIK_FAST_ONEDNN_GEMM", "yes")
    f, w, b = (t.float() for t in conv_inputs(1, 4, 2, 3, 4, 5, seed=1))
    with pytest.raises(RuntimeError, match="HYBRIK_FAST_ONEDNN_GEMM must be 0 or 1"):
        conv_soft_argmax3d(f, w, b, 2, backend="cpu")


def test_gradcheck():
    f, w, b = conv_inputs(2, 5, 2, 3, 4, 5, seed=7)
    leaves = tuple(t.requires_grad_() for t in (f, w, b))
    assert torch.autograd.gradcheck(lambda f_, w_, b_: conv_soft_argmax3d(f_, w_, b_, 2, backend="cpu",
                                                                          tile_planes=2), leaves)


def test_only_needed_gradients():
    """Frozen weight and bias: only d features is formed, and it is the same."""
    f, w, b = conv_inputs(2, 6, 2, 3, 4, 5, seed=8)
    g = make_grad(2, 2, seed=9)
    f1 = f.clone().requires_grad_()
    (conv_soft_argmax3d(f1, w, b, 2, backend="cpu") * g).sum().backward()
    want = fwd_bwd(lambda *a: materialised(*a, 2), f, w, b, g)[2]
    torch.testing.assert_close(f1.grad, want, rtol=1e-10, atol=1e-10)
    assert w.grad is None and b.grad is None


def test_empty_batch():
    f, w, b = conv_inputs(0, 6, 2, 3, 4, 5)
    leaves = [t.requires_grad_() for t in (f, w, b)]
    coords, conf = conv_soft_argmax3d(*leaves, 2, return_confidence=True, backend="cpu")
    assert coords.shape == (0, 2, 3) and conf.shape == (0, 2)
    coords.sum().backward()
    assert leaves[0].grad.shape == f.shape
    assert (leaves[1].grad == 0).all() and (leaves[2].grad == 0).all()


def test_nan_feature_reaches_only_its_image():
    """A NaN at one pixel of image 1 makes image 1's coords NaN (every joint
    reads every pixel) and leaves image 0 finite, forward and d features;
    NaN where the materialised path has NaN, nowhere else."""
    f, w, b = conv_inputs(2, 6, 3, 4, 5, 33, seed=10)
    f[1, 2, 3, 4] = float("nan")
    g = make_grad(2, 3, seed=11)
    got = fwd_bwd(fused(3, tile_planes=1), f, w, b, g)
    want = fwd_bwd(lambda *a: materialised(*a, 3), f, w, b, g)
    assert got[0][0].isfinite().all() and got[0][1].isnan().all()
    assert got[2][0].isfinite().all()
    for x, y in zip(got, want):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-10, equal_nan=True)


def test_bad_input():
    f, w, b = conv_inputs(1, 4, 2, 3, 4, 5, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"K·D a positive multiple of num_joints = 4"):
        conv_soft_argmax3d(f, w[:6], b[:6], 4)
    with pytest.raises(ValueError, match=r"weight must have shape"):
        conv_soft_argmax3d(f, w[:, :3], b, 2)
    with pytest.raises(TypeError, match=r"weight must have the dtype of features"):
        conv_soft_argmax3d(f, w.double(), b, 2)
    with pytest.raises(ValueError, match=r"features must have shape \(B, C, H, W\)"):
        conv_soft_argmax3d(f[0], w, b, 2)


# ---------------------------------------------------------------- torch.library

def test_opcheck():
    f, w, b = conv_inputs(2, 5, 2, 3, 4, 5, dtype=torch.float32, seed=12)
    w = w.flatten(1)
    torch.library.opcheck(torch.ops.hybrik_fast.conv_soft_argmax3d.default,
                          (f.requires_grad_(), w.requires_grad_(), b.requires_grad_(), 2, "cpu", 2))
    coords, lse, _ = torch.ops.hybrik_fast.conv_soft_argmax3d(f.detach(), w.detach(), b.detach(), 2, "cpu", 0)
    torch.library.opcheck(torch.ops.hybrik_fast.conv_soft_argmax3d_backward.default,
                          (make_grad(2, 2, dtype=torch.float32), f.detach(), w.detach(), b.detach(), coords,
                           lse, 2, "cpu", 0, [True, True, True]))


def test_compile_fullgraph_forward_backward_matches_eager():
    g = make_grad(2, 3, dtype=torch.float32)

    def loss(f, w, b):
        coords, conf = conv_soft_argmax3d(f, w, b, 3, return_confidence=True, backend="cpu")
        return (coords * g).sum() + conf.sum()

    compiled = torch.compile(loss, fullgraph=True)
    inputs = conv_inputs(2, 5, 3, 4, 5, 6, dtype=torch.float32, seed=13)
    eager = [t.clone().requires_grad_() for t in inputs]
    comp = [t.clone().requires_grad_() for t in inputs]
    torch.testing.assert_close(compiled(*comp), loss(*eager))
    loss(*eager).backward()
    compiled(*comp).backward()
    for a, e in zip(comp, eager):
        torch.testing.assert_close(a.grad, e.grad)


def test_export():
    class Head(torch.nn.Module):
        def __init__(self, w, b):
            super().__init__()
            self.w, self.b = torch.nn.Parameter(w), torch.nn.Parameter(b)

        def forward(self, f):
            return conv_soft_argmax3d(f, self.w, self.b, 3, return_confidence=True, backend="cpu")

    f, w, b = conv_inputs(2, 5, 3, 4, 5, 6, dtype=torch.float32, seed=14)
    ep = torch.export.export(Head(w, b), (f,))
    assert "hybrik_fast.conv_soft_argmax3d" in str(ep.graph)
    f2 = conv_inputs(2, 5, 3, 4, 5, 6, dtype=torch.float32, seed=15)[0]
    for x, y in zip(ep.module()(f2), materialised(f2, w, b, 3)):
        torch.testing.assert_close(x, y, atol=1e-6, rtol=1e-5)


# ---------------------------------------------------------------- in the model

def _heatmap_model(kind: str, fused: bool):
    from hybrik_fast.models import HybrIKHRNetModel, build_model
    torch.manual_seed(0)
    if kind == "resnet":
        return build_model("heatmap", "resnet18", 64, (8, 16, 16), backend="cpu", fused_head=fused)
    return HybrIKHRNetModel("hrnet18", 64, (8, 16, 16), backend="cpu", fused_head=fused)


def test_fused_head_is_the_default():
    from hybrik_fast.models import HybrIKHRNetModel, build_model
    assert build_model("heatmap", "resnet18", 64, (8, 16, 16)).fused_head
    assert HybrIKHRNetModel("hrnet18", 64, (8, 16, 16)).fused_head


@pytest.mark.parametrize("kind", ["resnet", "hrnet"])
def test_model_fused_head_matches_materialised(kind):
    """The ResNet and HRNet heatmap heads with fused_head=True (the default) and
    False: the same state dict keys, and one's weights load into the other with
    the same uvd and the same final-layer and trunk gradients (float64); the
    fused one calls conv_soft_argmax3d."""
    fused_model = _heatmap_model(kind, True).double().eval()
    plain = _heatmap_model(kind, False).double().eval()
    assert fused_model.fused_head and not plain.fused_head
    assert fused_model.state_dict().keys() == plain.state_dict().keys()
    final = lambda m: m.final_layer if kind == "resnet" else m.preact.final_layer  # noqa: E731
    with torch.no_grad():
        final(fused_model).weight.normal_(0, 0.3, generator=torch.Generator().manual_seed(3))
    plain.load_state_dict(fused_model.state_dict())
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    g = make_grad(2, 29, seed=2)
    grads, calls = [], []
    for model in (fused_model, plain):
        with _counting_calls(calls):
            uvd = model.predict(images)["uvd"]
        (uvd * g).sum().backward()
        trunk = next(p for n, p in model.named_parameters() if "final_layer" not in n and p.grad is not None)
        grads.append((uvd.detach(), final(model).weight.grad, final(model).bias.grad, trunk.grad))
    assert calls == [1, 0]                            # the fused op ran in the fused model only
    for x, y in zip(*grads):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-10)


class _counting_calls:
    """Counts calls of the fused op within the block, appending the count to ``calls``."""

    def __init__(self, calls: list):
        self.calls = calls

    def __enter__(self):
        import hybrik_fast.models.heatmap as heatmap
        self.module, self.original, self.n = heatmap, heatmap.conv_soft_argmax3d, 0

        def counted(*args, **kwargs):
            self.n += 1
            return self.original(*args, **kwargs)
        heatmap.conv_soft_argmax3d = counted

    def __exit__(self, *exc):
        self.module.conv_soft_argmax3d = self.original
        self.calls.append(self.n)
