"""1×1 conv + soft-argmax under pytest-benchmark (no timing asserts): the
reference (conv2d + reference soft-argmax), the materialised path it replaces
(conv2d + the fused soft-argmax) and the fused op of the device ("auto"),
fwd / bwd / fwd+bwd, features (B, 256, 64, 64) -> heatmaps (B, 29, 64, 64, 64),
float32, B in {1, 8}.

    pytest bench/bench_conv_soft_argmax.py --benchmark-only [--bench-device cuda]

The cases, inputs and passes are :mod:`hybrik_fast.benchmark`'s; ``hybrik-fast
bench --ops conv_soft_argmax`` adds GFLOP/s and the peak memory.
"""
import pytest

from hybrik_fast.benchmark import DEFAULT_CHANNELS, DEFAULT_HEATMAP, PASSES, conv_soft_argmax_case


@pytest.mark.parametrize("pass_", PASSES)
@pytest.mark.parametrize("backend", ["reference", "materialised", "auto"])
@pytest.mark.parametrize("B", [1, 8])
def test_conv_soft_argmax3d(bench_case, B, backend, pass_):
    bench_case(conv_soft_argmax_case(B, DEFAULT_CHANNELS, *DEFAULT_HEATMAP), backend, pass_, rounds=3)
