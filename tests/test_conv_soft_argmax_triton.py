"""hybrik_fast.conv_soft_argmax3d, backend "triton" (the chunked form,
kernels/conv_soft_argmax.py), against the materialised path.

Without a GPU it runs on CPU tensors under the Triton interpreter
(TRITON_INTERPRET=1, set before the kernels are first imported), at tiny sizes.
"""
import importlib
import os
import sys

import torch

ON_GPU = torch.cuda.is_available()
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

DEVICE = "cuda" if ON_GPU else "cpu"
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def fused(K):
    return lambda f, w, b: conv_soft_argmax3d(f, w, b, K, return_confidence=True, backend="triton")


@pytest.mark.parametrize("shape", [(2, 5, 3, 4, 3, 5), (1, 3, 1, 2, 5, 4), (0, 3, 2, 2, 3, 4)],
                         ids=["2x5x3x4x3x5", "K1", "B0"])
def test_float64_matches_materialised(shape):
    B, C, K = shape[:3]
    f, w, b = (t.to(DEVICE) for t in conv_inputs(*shape, seed=1))
    g = make_grad(B, K, device=DEVICE)
    got = fwd_bwd(fused(K), f, w, b, g)
    want = fwd_bwd(lambda *a: materialised(*a, K), f, w, b, g)
    for x, y in zip(got, want):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-10)


@pytest.mark.xfail(reason="known gap (issue 16): the chunked fallback's float32 d_bias sums in another order "
                          "and lands at 2-2.5x the materialised path's error on some draws", strict=False)
def test_float32_within_twice_the_materialised_error():
    """The chunks add no error of their own: within twice the error of the
    materialised path with the same (Triton) soft-argmax, against float64,
    over eight seeds stacked (one draw's errors are a few ulps either way: its
    GEMM sums in another order than conv2d's)."""
    runs = []
    for seed in range(8):
        f64, w64, b64 = (t.to(DEVICE) for t in conv_inputs(2, 5, 3, 4, 3, 5, seed=seed))
        f, w, b = (t.float() for t in (f64, w64, b64))
        g = make_grad(2, 3, device=DEVICE, seed=seed + 1)
        runs.append((fwd_bwd(fused(3), f, w, b, g),
                     fwd_bwd(lambda *a: materialised(*a, 3, backend="triton"), f, w, b, g),
                     fwd_bwd(lambda *a: materialised(*a, 3), f64, w64, b64, g)))
    got, low, ref64 = ([torch.stack([r[i][k] for r in runs]) for k in range(5)] for i in range(3))
    for name, x, y, z in zip(("coords", "conf", "d features", "d weight", "d bias"), got, low, ref64):
        assert_within_2x_reference(x, y, z, torch.float32, name)
