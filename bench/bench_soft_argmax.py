"""soft-argmax under pytest-benchmark (no timing asserts): reference against the
fused backend of the device ("auto": cpu, or triton on CUDA), fwd / bwd / fwd+bwd,
heatmaps (B, 29, 64, 64, 64) float32, B in {1, 8, 32}.

    pytest bench/bench_soft_argmax.py --benchmark-only [--bench-device cuda]

The cases, inputs and passes are :mod:`hybrik_fast.benchmark`'s; ``extra_info``
has the bytes a fused kernel must move at least and the GB/s.  ``hybrik-fast
bench`` adds the copy bandwidth and the peak memory.
"""
import pytest

from hybrik_fast.benchmark import DEFAULT_HEATMAP, PASSES, soft_argmax_case


@pytest.mark.parametrize("pass_", PASSES)
@pytest.mark.parametrize("backend", ["reference", "auto"])
@pytest.mark.parametrize("B", [1, 8, 32])
def test_soft_argmax3d(bench_case, B, backend, pass_):
    bench_case(soft_argmax_case(B, *DEFAULT_HEATMAP), backend, pass_, rounds=3)
