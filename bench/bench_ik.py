"""Fused IK (backend "cpu", or "cuda" with --bench-device cuda) against the reference,
under pytest-benchmark (no timing asserts): ``pytest bench/bench_ik.py --benchmark-only``.

Forward (no_grad) and forward + backward (the gradient of all three inputs),
B in {1, 64, 1024, 65536}, adaptive mode with the 15 mm fallback, float32,
on 1 thread and on all threads (CPU).  The reference at B = 65536 runs one
round.  Compare rows of one group: ``--benchmark-group-by=group``.
"""
import pytest
import torch

from hybrik_fast import hybrik_ik
from hybrik_fast.benchmark import ik_inputs

BATCHES = [1, 64, 1024, 65536]
THREADS = {"1thread": 1, "allthreads": torch.get_num_threads()}


@pytest.fixture(params=list(THREADS), ids=list(THREADS))
def threads(request, device):
    if device.type == "cuda" and request.param != "allthreads":
        pytest.skip("thread count is a CPU setting")
    n = torch.get_num_threads()
    torch.set_num_threads(THREADS[request.param])
    yield request.param
    torch.set_num_threads(n)


def _backend(impl, device):
    return "reference" if impl == "reference" else device.type


def _run(benchmark, fn, slow):
    # the reference at large B takes seconds a call: one round is enough
    if slow:
        return benchmark.pedantic(fn, rounds=1, iterations=1, warmup_rounds=0)
    return benchmark(fn)


@pytest.mark.parametrize("impl", ["reference", "fused"])
@pytest.mark.parametrize("B", BATCHES)
def test_ik_fwd(benchmark, device, sync, threads, B, impl):
    joints, twist, rest = ik_inputs(B, device=device, requires_grad=False)  # (B, 29, 3), (B, 23, 2), (B, 29, 3)
    backend = _backend(impl, device)
    benchmark.group = f"hybrik_ik fwd B={B} {threads}"

    def fwd():
        with torch.no_grad():
            out = hybrik_ik(joints, twist, rest, backend=backend)  # (B, 24, 3, 3)
        sync()
        return out

    assert _run(benchmark, fwd, impl == "reference" and B > 1024).shape == (B, 24, 3, 3)


@pytest.mark.parametrize("impl", ["reference", "fused"])
@pytest.mark.parametrize("B", BATCHES)
def test_ik_fwd_bwd(benchmark, device, sync, threads, B, impl):
    inputs = ik_inputs(B, device=device)  # joints, twist, rest_joints, requiring grad
    backend = _backend(impl, device)
    benchmark.group = f"hybrik_ik fwd+bwd B={B} {threads}"

    def fwd_bwd():
        out = hybrik_ik(*inputs, backend=backend)
        grads = torch.autograd.grad(out, inputs, torch.ones_like(out))
        sync()
        return grads

    grads = _run(benchmark, fwd_bwd, impl == "reference" and B > 1024)
    assert all(torch.isfinite(g).all() for g in grads)
