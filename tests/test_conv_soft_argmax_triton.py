"""hybrik_fast.conv_soft_argmax3d, backend "triton" (kernels/conv_soft_argmax.py:
the fused flash-style kernels and the chunked fallback), against the
materialised path.

Without a GPU it runs on CPU tensors under the Triton interpreter
(TRITON_INTERPRET=1, set before the kernels are first imported), at tiny
sizes; with one, compiled on CUDA tensors, and TestCUDA adds a full-size head.
"""
import importlib
import os
import sys

import torch

ON_GPU = torch.cuda.is_available()
if ON_GPU and os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
    raise RuntimeError("TRITON_INTERPRET is set in the environment on a machine with a GPU: the Triton "
                       "tests would run on the interpreter, not the GPU; unset it")
if not ON_GPU:
    os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402

pytest.importorskip("triton")

from hybrik_fast import conv_soft_argmax3d  # noqa: E402
from tests_support import (assert_within_2x_reference, conv_fwd_bwd as fwd_bwd, conv_inputs,  # noqa: E402
                           conv_materialised as materialised, make_grad)

for _name in ("hybrik_fast.kernels.soft_argmax", "hybrik_fast.kernels.conv_soft_argmax"):
    if not ON_GPU and _name in sys.modules:
        # imported earlier in this process without the interpreter: decorate again
        importlib.reload(sys.modules[_name])
kc = importlib.import_module("hybrik_fast.kernels.conv_soft_argmax")

DEVICE = "cuda" if ON_GPU else "cpu"
NAMES = ("coords", "conf", "d features", "d weight", "d bias")
# the interpreter's numpy warns on inf − inf and NaN
pytestmark = [pytest.mark.gpu, pytest.mark.filterwarnings("ignore::RuntimeWarning")]


def fused(K):
    return lambda f, w, b: conv_soft_argmax3d(f, w, b, K, return_confidence=True, backend="triton")


def inputs(shape, dtype=torch.float64, seed=1, bias=True):
    return tuple(None if t is None else t.to(DEVICE) for t in conv_inputs(*shape, dtype=dtype, seed=seed, bias=bias))


def assert_matches_materialised(shape, bias=True, seed=1):
    """float64: coords, conf and the three gradients to 1e-10."""
    B, C, K = shape[:3]
    f, w, b = inputs(shape, seed=seed, bias=bias)
    g = make_grad(B, K, device=DEVICE, seed=seed + 1)
    got = fwd_bwd(fused(K), f, w, b, g)
    want = fwd_bwd(lambda *a: materialised(*a, K), f, w, b, g)
    for name, x, y in zip(NAMES, got, want):
        if y is None:
            assert x is None, name
            continue
        assert x.shape == y.shape and x.dtype == y.dtype, name
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-10, equal_nan=True, msg=name)
    return got


@pytest.fixture
def spy(monkeypatch):
    """Counts the calls of the chunked fallback."""
    calls = {"fwd": 0, "bwd": 0}
    for which in ("fwd", "bwd"):
        real = getattr(kc, f"_chunked_{which}")

        def counted(*a, _real=real, _which=which):
            calls[_which] += 1
            return _real(*a)
        monkeypatch.setattr(kc, f"_chunked_{which}", counted)
    return calls


# (B, C, K, D, H, W): D != H != W; C = 11 (no power of two: a partial last
# channel step); K = 1; B = 0
SHAPES = [(2, 5, 3, 4, 3, 5), (2, 11, 2, 3, 4, 5), (1, 3, 1, 2, 5, 4), (0, 3, 2, 2, 3, 4)]


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("shape", SHAPES, ids=["2x5x3x4x3x5", "C11", "K1", "B0"])
def test_float64_matches_materialised(shape, bias, spy):
    assert_matches_materialised(shape, bias)
    assert spy == {"fwd": 0, "bwd": 0}  # the fused kernels ran, not the fallback


def test_many_tiles(monkeypatch):
    """Tiles of 2 rows × 4 columns × 4 channels on D = 5, H·W = 15, C = 7:
    three row blocks, four column blocks and two channel steps, each with a
    partial last one; the forward's columns in two runs (their merge) and
    d weight's (image, column block) tiles in three runs."""
    monkeypatch.setattr(kc, "FORCE_BLOCKS", kc.Blocks(rows=2, cols=4, chans=4, split=3))
    assert_matches_materialised((2, 7, 2, 5, 3, 5), seed=3)


@pytest.mark.parametrize("path", ["fused", "chunked"])
def test_float32_within_twice_the_materialised_error(path, monkeypatch):
    """Both paths add no error of their own: within twice the error of the
    materialised path with the same (Triton) soft-argmax, against float64,
    over eight seeds stacked, as root mean squares (the GEMM sums in another
    order than conv2d's, so the single largest entry is a few ulps either way:
    over 32 seeds the fused coords' max-entry ratio reached 2.15, the RMS ratio
    about 1.2)."""
    if path == "chunked":
        monkeypatch.setattr(kc, "MAX_OFFSET", 0)
    runs = []
    for seed in range(8):
        f64, w64, b64 = inputs((2, 5, 3, 4, 3, 5), seed=seed)
        f, w, b = (t.float() for t in (f64, w64, b64))
        g = make_grad(2, 3, device=DEVICE, seed=seed + 1)
        runs.append((fwd_bwd(fused(3), f, w, b, g),
                     fwd_bwd(lambda *a: materialised(*a, 3, backend="triton"), f, w, b, g),
                     fwd_bwd(lambda *a: materialised(*a, 3), f64, w64, b64, g)))
    got, low, ref64 = ([torch.stack([r[i][k] for r in runs]) for k in range(5)] for i in range(3))
    for name, x, y, z in zip(NAMES, got, low, ref64):
        assert x.dtype == torch.float32, name
        assert_within_2x_reference(x, y, z, torch.float32, name, norm="rms")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_low_precision_within_twice_the_materialised_error(dtype):
    """fp16/bf16 inputs (float32 accumulation): as the float32 test, four seeds."""
    runs = []
    for seed in range(4):
        f64, w64, b64 = inputs((2, 5, 3, 4, 3, 5), seed=seed)
        f, w, b = (t.to(dtype) for t in (f64, w64, b64))
        g = make_grad(2, 3, device=DEVICE, seed=seed + 1)
        runs.append((fwd_bwd(fused(3), f, w, b, g),
                     fwd_bwd(lambda *a: materialised(*a, 3, backend="triton"), f, w, b, g),
                     fwd_bwd(lambda *a: materialised(*a, 3), f.double(), w.double(), b.double(), g)))
    got, low, ref64 = ([torch.stack([r[i][k] for r in runs]) for k in range(5)] for i in range(3))
    for name, x, y, z in zip(NAMES, got, low, ref64):
        assert x.dtype == dtype, name
        assert_within_2x_reference(x, y, z, dtype, name, norm="rms")


def test_nan_feature_reaches_only_its_image(monkeypatch):
    """A NaN at one pixel of image 1 makes image 1's coords NaN (every joint
    reads every pixel) and leaves image 0 finite, forward and d features;
    NaN where the materialised path has NaN, nowhere else.  Several tiles, so
    that the NaN sits in one tile of several."""
    monkeypatch.setattr(kc, "FORCE_BLOCKS", kc.Blocks(rows=2, cols=8, chans=4))
    f, w, b = inputs((2, 6, 3, 4, 5, 7), seed=10)
    f[1, 2, 3, 4] = float("nan")
    g = make_grad(2, 3, device=DEVICE, seed=11)
    got = fwd_bwd(fused(3), f, w, b, g)
    want = fwd_bwd(lambda *a: materialised(*a, 3), f, w, b, g)
    assert got[0][0].isfinite().all() and got[0][1].isnan().all()
    assert got[2][0].isfinite().all()
    for name, x, y in zip(NAMES, got, want):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-10, equal_nan=True, msg=name)


@pytest.mark.parametrize("needs", [(True, False, False), (False, True, False), (False, False, True),
                                   (False, True, True)], ids=["features", "weight", "bias", "weight+bias"])
def test_only_needed_gradients(needs):
    """The backward op forms exactly the gradients asked for (an empty (0,)
    tensor for the others), each equal to the materialised path's."""
    f, w, b = inputs((2, 6, 2, 3, 4, 5), seed=8)
    w = w.flatten(1)
    g = make_grad(2, 2, device=DEVICE, seed=9)
    coords, lse, _ = torch.ops.hybrik_fast.conv_soft_argmax3d(f, w, b, 2, "triton", 0)
    got = torch.ops.hybrik_fast.conv_soft_argmax3d_backward(g, f, w, b, coords, lse, 2, "triton", 0, list(needs))
    want = fwd_bwd(lambda f_, w_, b_: materialised(f_, w_[:, :, None, None], b_, 2), f, w, b, g)[2:]
    for name, need, x, y in zip(NAMES[2:], needs, got, want):
        if need:
            torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-10, msg=name)
        else:
            assert x.shape == (0,), name
    # and through autograd: only the leaves that ask get a gradient
    leaves = [t.clone().requires_grad_(need) for t, need in zip((f, w, b), needs)]
    (conv_soft_argmax3d(*leaves, 2, backend="triton") * g).sum().backward()
    for name, need, t, y in zip(NAMES[2:], needs, leaves, want):
        assert (t.grad is not None) == need, name
        if need:
            torch.testing.assert_close(t.grad, y, rtol=1e-10, atol=1e-10, msg=name)


def test_fallback_where_the_fused_kernel_does_not_apply(monkeypatch, spy):
    """Offsets beyond int32 (here: a lowered limit) take the chunked form,
    forward and backward, with the same results."""
    shape = (2, 5, 3, 4, 3, 5)
    f, w, _ = inputs(shape)
    assert kc.fused_applies(f, w.flatten(1))
    monkeypatch.setattr(kc, "MAX_OFFSET", 5 * 3 * 5 - 1)  # C·H·W one too many
    assert not kc.fused_applies(f, w.flatten(1))
    assert_matches_materialised(shape)
    assert spy == {"fwd": 1, "bwd": 1}


def test_chunked_many_chunks(monkeypatch):
    """The fallback with one image per chunk (three chunks)."""
    monkeypatch.setattr(kc, "MAX_OFFSET", 0)
    monkeypatch.setattr(kc, "CHUNK_ELEMENTS", 1)
    assert_matches_materialised((3, 4, 2, 3, 4, 5), seed=5)


def test_gradcheck_float64(monkeypatch):
    monkeypatch.setattr(kc, "FORCE_BLOCKS", kc.Blocks(rows=2, cols=4, chans=2, split=2))
    leaves = tuple(t.requires_grad_() for t in inputs((1, 2, 2, 2, 2, 3), seed=7))
    assert torch.autograd.gradcheck(lambda f_, w_, b_: conv_soft_argmax3d(f_, w_, b_, 2, backend="triton"), leaves)


@pytest.mark.skipif(not ON_GPU, reason="needs a CUDA GPU")
class TestCUDA:
    """The fused kernels compiled, at the size of the model's head."""

    @pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
    def test_full_size_within_twice_the_materialised_error(self, dtype, spy, monkeypatch):
        monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # a float32 conv2d, not TF32
        shape = (2, 256, 29, 64, 64, 64)
        f64, w64, b64 = inputs(shape, seed=20)
        f, w, b = (t.to(dtype) for t in (f64, w64, b64))
        g = make_grad(2, 29, device=DEVICE, seed=21)
        got = fwd_bwd(fused(29), f, w, b, g)
        low = fwd_bwd(lambda *a: materialised(*a, 29, backend="triton"), f, w, b, g)
        ref64 = fwd_bwd(lambda *a: materialised(*a, 29), f.double(), w.double(), b.double(), g)
        assert spy == {"fwd": 0, "bwd": 0}
        for name, x, y, z in zip(NAMES, got, low, ref64):
            assert_within_2x_reference(x, y, z, dtype, name)

    def test_full_size_float64(self):
        assert_matches_materialised((2, 64, 29, 64, 32, 32), seed=22)


def test_opcheck():
    """The custom ops with the Triton backend: schema, fake tensors, autograd registration."""
    f, w, b = (t.to(DEVICE) for t in conv_inputs(2, 5, 2, 3, 4, 5, dtype=torch.float32, seed=12))
    w = w.flatten(1)
    torch.library.opcheck(torch.ops.hybrik_fast.conv_soft_argmax3d.default,
                          (f.requires_grad_(), w.requires_grad_(), b.requires_grad_(), 2, "triton", 0))
    coords, lse, _ = torch.ops.hybrik_fast.conv_soft_argmax3d(f.detach(), w.detach(), b.detach(), 2, "triton", 0)
    torch.library.opcheck(torch.ops.hybrik_fast.conv_soft_argmax3d_backward.default,
                          (make_grad(2, 2, dtype=torch.float32, device=DEVICE), f.detach(), w.detach(), b.detach(),
                           coords, lse, 2, "triton", 0, [True, True, True]))
