"""hybrik_fast.soft_argmax3d, backend "triton", against the reference.

Without a GPU the kernels run on CPU tensors under the Triton interpreter
(TRITON_INTERPRET=1, set below before the kernels are first imported; it only
matters to Triton when a kernel is decorated), at tiny sizes.  With a GPU the
same tests run compiled on CUDA tensors, and TestCUDA adds full-size shapes.
"""
import importlib
import os
import sys

import torch

ON_GPU = torch.cuda.is_available()
if ON_GPU and os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
    # an inherited TRITON_INTERPRET would run the "GPU" tests on the interpreter
    raise RuntimeError("TRITON_INTERPRET is set in the environment on a machine with a GPU: the Triton "
                       "tests would run on the interpreter, not the GPU; unset it")
if not ON_GPU:
    os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402

pytest.importorskip("triton")

from hybrik_fast import soft_argmax3d  # noqa: E402
from hybrik_fast.benchmark import heatmaps  # noqa: E402
from tests_support import (EDGE_CASES, assert_within_2x_reference, check_against_reference,  # noqa: E402
                           fwd_bwd, make_grad, reference_with_confidence as ref)

if not ON_GPU and "hybrik_fast.kernels.soft_argmax" in sys.modules:
    # imported earlier in this process without the interpreter: decorate again
    importlib.reload(sys.modules["hybrik_fast.kernels.soft_argmax"])

DEVICE = "cuda" if ON_GPU else "cpu"

# the interpreter's numpy warns on log(0) and inf − inf in the −inf and NaN cases
pytestmark = [pytest.mark.gpu, pytest.mark.filterwarnings("ignore::RuntimeWarning")]

# (B, K, D, H, W): tiny, odd, D != H != W, B in {0, 1, 3}; (1, 2, 7, 9, 33):
# two chunks of d-planes per row (the merge) and several tiles per chunk;
# (1, 1, 2, 40, 33): three tiles of 16 h-rows per plane; (1, 1, 1, 3, 1500):
# h-rows longer than a tile (two tiles per h-row)
SHAPES = [
    (1, 1, 1, 1, 1),
    (1, 3, 5, 6, 7),
    (3, 2, 7, 5, 3),
    (0, 4, 3, 5, 2),
    (1, 2, 7, 9, 33),
    (1, 1, 2, 40, 33),
    (1, 1, 1, 3, 1500),
]


def fused(x):
    return soft_argmax3d(x, return_confidence=True, backend="triton")



@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16],
                         ids=lambda d: str(d).replace("torch.", ""))
def test_matches_reference(shape, dtype):
    x = heatmaps(*shape, dtype=dtype, device=DEVICE)
    g = make_grad(*shape[:2], device=DEVICE)
    if dtype in (torch.float32, torch.float64):
        rtol, atol = (1e-5, 1e-6) if dtype == torch.float32 else (1e-10, 1e-12)
        check_against_reference(x, g, "triton", rtol=rtol, atol=atol)
        return
    c, conf, dx = fwd_bwd(fused, x, g)
    assert c.dtype == conf.dtype == dx.dtype == dtype
    if shape[0] == 0:
        return
    for out, low, exact, what in zip((c, conf, dx), fwd_bwd(ref, x, g), fwd_bwd(ref, x.double(), g),
                                     ("coords", "conf", "grad")):
        assert_within_2x_reference(out, low, exact, dtype, what)


def test_gradcheck_float64():
    x = heatmaps(1, 2, 2, 3, 4, dtype=torch.float64, device=DEVICE).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: soft_argmax3d(t, backend="triton"), (x,))


@pytest.mark.parametrize("case", EDGE_CASES)
def test_edge_case_matches_reference(case):
    check_against_reference(EDGE_CASES[case]().to(DEVICE), make_grad(2, 3, device=DEVICE), "triton")


def test_non_contiguous():
    x = heatmaps(2, 3, 6, 4, 5, seed=3, device=DEVICE).transpose(2, 4)
    check_against_reference(x, make_grad(2, 3, device=DEVICE), "triton")


def test_opcheck():
    x = heatmaps(1, 2, 3, 4, 5, device=DEVICE).requires_grad_()
    torch.library.opcheck(torch.ops.hybrik_fast.soft_argmax3d.default, (x, "triton"))


@pytest.mark.skipif(not ON_GPU, reason="needs a CUDA GPU")
class TestCUDA:
    """Full-size shapes, compiled kernels, split rows at B = 1."""

    @pytest.mark.parametrize("B", [1, 8])
    def test_full_size_fp32(self, B):
        x = heatmaps(B, 29, 64, 64, 64, device="cuda")
        check_against_reference(x, make_grad(B, 29, device="cuda"), "triton")

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
    def test_full_size_low_precision(self, dtype):
        x = heatmaps(2, 29, 64, 64, 64, dtype=dtype, device="cuda")
        g = make_grad(2, 29, device="cuda")
        for out, low, exact, what in zip(fwd_bwd(fused, x, g), fwd_bwd(ref, x, g),
                                         fwd_bwd(ref, x.double(), g), ("coords", "conf", "grad")):
            assert_within_2x_reference(out, low, exact, dtype, what)

    def test_auto_picks_triton(self):
        x = heatmaps(1, 2, 3, 4, 5, device="cuda").requires_grad_()
        assert "hybrik_fast_soft_argmax3d" in type(soft_argmax3d(x).grad_fn).__name__

    def test_compile_fullgraph(self):
        g = make_grad(2, 29, dtype=torch.float32, device="cuda")

        def loss(x):
            return (soft_argmax3d(x) * g).sum()

        x = heatmaps(2, 29, 16, 20, 24, device="cuda")
        x_e, x_c = x.clone().requires_grad_(), x.clone().requires_grad_()
        loss(x_e).backward()
        torch.compile(loss, fullgraph=True)(x_c).backward()
        torch.testing.assert_close(x_c.grad, x_e.grad)
