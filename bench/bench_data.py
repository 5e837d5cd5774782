"""SyntheticHumans generation throughput under pytest-benchmark (no timing asserts).

Single process, one torch thread (what a DataLoader worker gets): one item
per call at S = 128 and 256, and the split into pose/geometry, rendering and
the full item.  Two DataLoader workers (the 2-core budget): a pass over 64
items, batch 32.  ops/s of the per-item benchmarks is images/s; the loader
benchmark records images/s in ``extra_info``.

Measured here (torch 2.13 CPU, 2 cores shared with 4-8 other busy jobs, so
wall-clock rates are depressed; the CPU time per item gives the rate of one
free core):

    S = 128, 1 process:   6.3-7.5 ms CPU per item  ->  135-160 images/s per core
    S = 256, 1 process:   8.7-10.2 ms CPU per item ->  98-115 images/s per core
    S = 128, 2 workers:   65 images/s wall-clock at load average 8 (about
                          2 x the per-core rate on two free cores)

Per item at S = 128: scene (pose sampling, B = 1 skinning, placement,
labels) ~2.5 ms, rendering ~3 ms (of which ~1.4 ms is one
cv2.fillConvexPoly per visible face, ~1800 faces), the rest building the
sample dict.
"""
import itertools

import pytest
import torch

from hybrik_fast.data import SyntheticHumans


@pytest.fixture
def one_thread():
    """Run like a DataLoader worker: one torch thread, restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("size", [128, 256])
def test_item(benchmark, one_thread, size):
    ds = SyntheticHumans("train", length=100_000, image_size=size, seed=0)
    indices = itertools.cycle(range(len(ds)))      # a new item per call: no warm caches
    benchmark.group = f"synthetic item S={size}"
    sample = benchmark(lambda: ds[next(indices)])
    assert sample["image"].shape == (3, size, size)


@pytest.mark.parametrize("part", ["scene", "render"])
def test_item_parts(benchmark, one_thread, part):
    ds = SyntheticHumans("train", length=100_000, image_size=128, seed=0)
    indices = itertools.cycle(range(len(ds)))
    benchmark.group = "synthetic item S=128 parts"
    if part == "scene":                            # pose sampling, skinning, placement, labels
        benchmark(lambda: ds.scene(next(indices)))
    else:                                          # background, mesh, occluders, noise
        scene = ds.scene(0)
        benchmark(lambda: ds.render(next(indices), scene))


def test_loader_two_workers(benchmark):
    ds = SyntheticHumans("train", length=64, image_size=128, seed=0)
    loader = torch.utils.data.DataLoader(ds, batch_size=32, num_workers=2,
                                         persistent_workers=True)
    next(iter(loader))                             # start the workers outside the timing
    benchmark.group = "synthetic loader S=128, 2 workers"

    def epoch():
        return sum(batch["image"].shape[0] for batch in loader)

    assert benchmark.pedantic(epoch, rounds=3, iterations=1) == len(ds)
    if benchmark.stats is not None:                # None under --benchmark-disable
        benchmark.extra_info["images_per_s"] = len(ds) / benchmark.stats.stats.mean
