"""Soft-argmax benchmark: reference vs fused, forward / backward / both.

Heatmaps (B, 29, 64, 64, 64) float32, B in {1, 8, 32}.  Effective bandwidth
counts the bytes a fused kernel must move at least: forward reads x, backward
reads x and writes dx, forward+backward moves 3·|x|.

    pytest bench/bench_soft_argmax.py              # pytest-benchmark table
    python bench/bench_soft_argmax.py [--device cuda] [--batches 1 8 32] [--threads N]

The script form prints one table with ms, GB/s, the bandwidth of a plain
large tensor copy measured in the same run, the fused fwd+bwd bandwidth as a
fraction of it, and the peak memory of fwd+bwd (CPU: the growth of the
process's peak resident set over the live input, via /proc/self/clear_refs,
with glibc told to mmap every block of 1 MiB or more so that freed tensors
leave the resident set at once; CUDA: torch.cuda.max_memory_allocated over
the input).  No timing is asserted.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import platform
import subprocess
import sys
import time

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from heatmap_support import make_grad, make_heatmaps  # noqa: E402

from hybrik_fast import soft_argmax3d  # noqa: E402

K, D, H, W = 29, 64, 64, 64
PASSES = ("fwd", "bwd", "fwdbwd")
BYTES_PER_PASS = {"fwd": 1, "bwd": 2, "fwdbwd": 3}  # in units of |x| bytes


def backends_for(device: str) -> tuple[str, str]:
    return ("reference", "cpu" if device == "cpu" else "triton")


def make_input(B: int, device: str) -> torch.Tensor:
    return make_heatmaps(B, K, D, H, W, dtype=torch.float32, kind="normal", device=device)


def runner(backend: str, pass_: str, x: torch.Tensor, g: torch.Tensor):
    """(setup, timed): setup() builds what the timed call needs (the graph for
    "bwd"), timed(state) runs the pass once."""
    def forward():
        return soft_argmax3d(x, backend=backend)

    if pass_ == "fwd":
        def timed(_):
            with torch.no_grad():
                forward()
        return lambda: None, timed

    def setup():
        x.grad = None
        return forward() if pass_ == "bwd" else None

    def timed(coords):
        (forward() if coords is None else coords).backward(g)
    return setup, timed


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def best_ms(setup, timed, device: str, repeat: int) -> float:
    """Best of ``repeat`` timed calls after one warm-up, in ms."""
    times = []
    for i in range(repeat + 1):
        state = setup()
        sync(device)
        t = time.perf_counter()
        timed(state)
        sync(device)
        if i:
            times.append(time.perf_counter() - t)
    return 1e3 * min(times)


# ------------------------------------------------------------------ pytest-benchmark

@pytest.fixture(scope="module", params=[1, 8, 32], ids=lambda b: f"B{b}")
def inputs(request):
    x = make_input(request.param, "cpu").requires_grad_()
    return x, make_grad(request.param, K, dtype=torch.float32)


@pytest.mark.parametrize("pass_", PASSES)
@pytest.mark.parametrize("backend", backends_for("cpu"))
def test_soft_argmax3d(benchmark, inputs, backend, pass_):
    x, g = inputs
    setup, timed = runner(backend, pass_, x, g)
    benchmark.group = f"soft_argmax3d {pass_} B={x.shape[0]}"
    benchmark.extra_info["bytes"] = BYTES_PER_PASS[pass_] * x.numel() * x.element_size()
    benchmark.pedantic(timed, setup=lambda: ((setup(),), {}), rounds=3, warmup_rounds=1)
    if benchmark.stats is not None:                # None under --benchmark-disable
        benchmark.extra_info["GB/s"] = benchmark.extra_info["bytes"] / benchmark.stats.stats.min / 1e9


# ------------------------------------------------------------------ script

def _copy_into_ready_ms(x: torch.Tensor, device: str, repeat: int) -> float:
    y = torch.empty_like(x)  # allocated and touched once, freed on return
    return best_ms(lambda: y, lambda out: out.copy_(x), device, repeat)


def copy_gbps(n: int, device: str, repeat: int = 5) -> tuple[float, float]:
    """Bandwidth of y.copy_(x) into a ready y, and of x.clone() (a fresh
    output, as every op here allocates one) for n floats: bytes read +
    written per second."""
    x = torch.rand(n, device=device)
    copy = _copy_into_ready_ms(x, device, repeat)
    clone = best_ms(lambda: None, lambda _: x.clone(), device, repeat)
    return 2 * x.numel() * 4 / copy / 1e6, 2 * x.numel() * 4 / clone / 1e6


def peak_bytes(backend: str, x: torch.Tensor, g: torch.Tensor) -> int:
    """Memory held at the peak of one fwd+bwd beyond the live input x."""
    x.grad = None
    if x.is_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        soft_argmax3d(x, backend=backend).backward(g)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base

    def status(key: str) -> int:  # kB in /proc/self/status
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key)) * 1024

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak resident set (VmHWM) to the current one
    base = status("VmRSS:")
    soft_argmax3d(x, backend=backend).backward(g)
    return status("VmHWM:") - base


def describe(device: str) -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except OSError:
        commit = "?"
    if device == "cuda":
        dev = torch.cuda.get_device_name()
    else:
        model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                      if line.startswith("model name")), platform.processor())
        dev = f"{model}, {torch.get_num_threads()} threads"
    thp = os.environ.get("THP_MEM_ALLOC_ENABLE", "0")
    return f"device: {dev}; torch {torch.__version__}; commit {commit}; THP_MEM_ALLOC_ENABLE={thp}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = args.device
    if dev == "cpu":
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD: see peak_bytes
    print(describe(dev))
    copy, clone = copy_gbps(max(args.batches) * K * D * H * W, dev)
    print(f"plain copy of the largest input: y.copy_(x) {copy:.1f} GB/s, x.clone() {clone:.1f} GB/s; "
          "f+b/copy below is against y.copy_(x)\n")
    print(f"{'B':>3} {'backend':>9} {'fwd ms':>9} {'bwd ms':>9} {'f+b ms':>9} {'fwd GB/s':>9} "
          f"{'bwd GB/s':>9} {'f+b GB/s':>9} {'f+b/copy':>9} {'peak MB':>9}")
    for B in args.batches:
        x = make_input(B, dev).requires_grad_()
        g = make_grad(B, K, dtype=torch.float32, device=dev)
        nbytes = x.numel() * x.element_size()
        ms = {}
        for backend in backends_for(dev):
            ms[backend] = {p: best_ms(*runner(backend, p, x, g), dev, args.repeat) for p in PASSES}
            gbps = {p: BYTES_PER_PASS[p] * nbytes / ms[backend][p] / 1e6 for p in PASSES}
            peak = peak_bytes(backend, x, g) / 2**20
            print(f"{B:>3} {backend:>9} {ms[backend]['fwd']:>9.2f} {ms[backend]['bwd']:>9.2f} "
                  f"{ms[backend]['fwdbwd']:>9.2f} {gbps['fwd']:>9.1f} {gbps['bwd']:>9.1f} "
                  f"{gbps['fwdbwd']:>9.1f} {gbps['fwdbwd'] / copy:>9.0%} {peak:>9.0f}")
        ref, fused = ms.values()
        print(f"{B:>3} {'speed-up':>9} " + " ".join(f"{ref[p] / fused[p]:>8.1f}x" for p in PASSES))
        del x, g


if __name__ == "__main__":
    main()
