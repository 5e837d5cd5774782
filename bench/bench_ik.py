"""IK under pytest-benchmark (no timing asserts): the reference against the fused
backend of the device ("auto": cpu, or cuda with --bench-device cuda).

    pytest bench/bench_ik.py --benchmark-only --benchmark-group-by=group

Forward (no_grad) and forward + backward (the gradient of all three inputs),
B in {1, 64, 1024, 65536}, adaptive mode, float32, on 1 thread and on all
threads (CPU).  The reference at B = 65536 runs one round.  The cases and
inputs are :mod:`hybrik_fast.benchmark`'s.
"""
import pytest
import torch

from hybrik_fast.benchmark import ik_case

THREADS = {"1thread": 1, "allthreads": torch.get_num_threads()}


@pytest.fixture(params=list(THREADS), ids=list(THREADS))
def threads(request, device):
    if device.type == "cuda" and request.param != "allthreads":
        pytest.skip("thread count is a CPU setting")
    n = torch.get_num_threads()
    torch.set_num_threads(THREADS[request.param])
    yield request.param
    torch.set_num_threads(n)


@pytest.mark.parametrize("pass_", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("backend", ["reference", "auto"])
@pytest.mark.parametrize("B", [1, 64, 1024, 65536])
def test_ik(bench_case, threads, B, backend, pass_):
    # the reference at large B takes seconds a call: one round is enough
    bench_case(ik_case(B), backend, pass_, rounds=1 if backend == "reference" and B > 1024 else 5)
