"""pytest-benchmark suite: ``pytest bench/ --benchmark-only``.

Files here are named ``bench_*.py`` so the test run (testpaths = tests) never
times anything; this hook collects them when ``bench/`` is asked for.  The
device comes from ``--bench-device`` (default cpu).  The op benchmarks are
thin wrappers over :mod:`hybrik_fast.benchmark`: its cases, inputs and
(setup, timed) parts, timed here by pytest-benchmark instead of its own loop.
"""
import pytest
import torch

from hybrik_fast import benchmark as harness


def pytest_addoption(parser):
    parser.addoption("--bench-device", default="cpu", choices=("cpu", "cuda"),
                     help="device for the bench/ suite")


def pytest_collect_file(file_path, parent):
    # a file named on the command line is collected by pytest itself
    if file_path.suffix == ".py" and file_path.name.startswith("bench_") \
            and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


@pytest.fixture(scope="session")
def device(request):
    name = request.config.getoption("--bench-device")
    if name == "cuda" and not torch.cuda.is_available():
        pytest.skip("--bench-device cuda: no CUDA device")
    return torch.device(name)


_last_inputs: dict = {}   # the inputs of the last case: full-size heatmaps take seconds to build


@pytest.fixture
def bench_case(benchmark, device):
    """``bench_case(case, backend, pass_, rounds)``: time one pass of a
    :class:`hybrik_fast.benchmark.Case` (float32) on ``device``; "bytes" and
    "GB/s" (bytes moved / median time) go to ``extra_info``."""
    def run(case: harness.Case, backend: str, pass_: str, rounds: int = 5) -> None:
        key = (case.op, case.label, device)
        if key not in _last_inputs:
            _last_inputs.clear()
            _last_inputs[key] = case.build(device, torch.float32)
        inputs = _last_inputs[key]
        setup, timed = harness.pass_parts(case, inputs, backend, pass_, device)
        benchmark.group = f"{case.op} {case.label} {pass_} {torch.get_num_threads()} thread(s)"
        benchmark.extra_info["bytes"] = case.nbytes(pass_, inputs[0].element_size())
        benchmark.pedantic(timed, setup=lambda: ((setup(),), {}), rounds=rounds,
                           warmup_rounds=1 if rounds > 1 else 0)
        if benchmark.stats is not None:                # None under --benchmark-disable
            benchmark.extra_info["GB/s"] = benchmark.extra_info["bytes"] / benchmark.stats.stats.median / 1e9
    return run
