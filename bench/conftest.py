"""pytest-benchmark suite: ``pytest bench/ --benchmark-only``.

Files here are named ``bench_*.py`` so the test run (testpaths = tests) never
times anything; this hook collects them when ``bench/`` is asked for.  The
device comes from ``--bench-device`` (default cpu).  Inputs come from
:mod:`hybrik_fast.benchmark`, the same builders as ``hybrik-fast bench``.
"""
import pytest
import torch


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


@pytest.fixture(scope="session")
def sync(device):
    """Call after the timed work so that CUDA kernels are inside the timing."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None
