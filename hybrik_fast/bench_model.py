"""``hybrik-fast bench --model hrnet48|resnet34``: the published networks'
forward, fused ops against the reference ones, and the share of the forward
that the soft-argmax, the IK and the body model take.

The model has random weights (timing does not depend on them) and a random
SMPL-sized body (V = 6890, F = 13776), so the body model costs what real
SMPL costs.  Each cell times ``model(images)`` under ``torch.no_grad`` (median,
:func:`hybrik_fast.benchmark.measure`); the shares come from separate runs in
which the model's calls of ``soft_argmax3d``, ``hybrik_ik`` (the HRNet scale
update's naive IK included) and the body model (``rest_joints`` and LBS) are
timed in place, synchronising the device around each.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from . import benchmark
from .body import BodyModel
from .models import public
from .skeleton import PARENTS_24, SMPL_LEAF_VERTICES

MODELS = {"resnet34": public.HybrIKResNetCam, "hrnet48": public.HybrIKHRNetCam}
BACKENDS = ("auto", "reference")
COMPONENTS = ("soft_argmax", "ik", "body")


def smpl_sized_body(seed: int = 0) -> tuple[BodyModel, torch.Tensor]:
    """A random body with real SMPL's sizes (V = 6890, F = 13776) and a (17, V) regressor."""
    rng = np.random.default_rng(seed)
    V = 6890

    def rows(n):
        w = rng.random((n, V)) ** 8
        return w / w.sum(1, keepdims=True)

    body = BodyModel(0.3 * rng.standard_normal((V, 3)), 0.01 * rng.standard_normal((V, 3, 10)),
                     0.001 * rng.standard_normal((V, 3, 207)), rows(24), rows(24).T,
                     rng.integers(0, V, (13776, 3)), PARENTS_24, SMPL_LEAF_VERTICES)
    return body, torch.from_numpy(rows(17)).float()


class _Timers:
    """Wraps the model's op calls so that each records its seconds (device synchronised)."""

    def __init__(self, model: torch.nn.Module, device: torch.device):
        self.seconds = dict.fromkeys(COMPONENTS, 0.0)
        self.device = device
        self.saved = [(public, "soft_argmax3d"), (public, "hybrik_ik")]
        self.originals = [getattr(mod, name) for mod, name in self.saved]
        public.soft_argmax3d = self.timed("soft_argmax", public.soft_argmax3d)
        public.hybrik_ik = self.timed("ik", public.hybrik_ik)
        self.body = model.smpl
        self.body.forward = self.timed("body", type(self.body).forward.__get__(self.body))
        self.body.rest_joints = self.timed("body", type(self.body).rest_joints.__get__(self.body))

    def timed(self, key, fn):
        def wrapper(*args, **kwargs):
            benchmark.sync(self.device)
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            benchmark.sync(self.device)
            self.seconds[key] += time.perf_counter() - t0
            return out
        return wrapper

    def restore(self) -> None:
        for (mod, name), fn in zip(self.saved, self.originals):
            setattr(mod, name, fn)
        del self.body.forward, self.body.rest_joints


def time_model(name: str, B: int, backend: str, device: torch.device, budget: float,
               min_reps: int) -> dict:
    """ms of one forward of model ``name`` at batch B, and each component's share."""
    torch.manual_seed(0)
    body, h36m = smpl_sized_body()
    model = MODELS[name](body, h36m, backend=backend, backbone=name).eval().to(device)
    images = torch.randn(B, 3, public.INPUT_SIZE, public.INPUT_SIZE, device=device)

    def once() -> float:
        benchmark.sync(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            model(images)
        benchmark.sync(device)
        return time.perf_counter() - t0

    seconds, reps = benchmark.measure(once, budget, min_reps, max_reps=100)
    timers = _Timers(model, device)
    try:
        shares = {k: [] for k in COMPONENTS}
        for _ in range(max(1, min_reps)):
            timers.seconds = dict.fromkeys(COMPONENTS, 0.0)
            total = once()
            for k in COMPONENTS:
                shares[k].append(timers.seconds[k] / total)
    finally:
        timers.restore()
    return {"model": name, "B": B, "backend": backend, "device": str(device), "ms": 1e3 * seconds,
            "reps": reps, **{f"{k}_share": statistics.median(v) for k, v in shares.items()}}


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'model':<9} {'device':<6} {'B':>2} {'backend':<9} {'ms':>9} {'x ref':>6}  "
             + "  ".join(f"{k + ' %':>13}" for k in COMPONENTS)]
    ref = {(r["model"], r["device"], r["B"]): r["ms"] for r in rows if r["backend"] == "reference"}
    for r in rows:
        speed = ref.get((r["model"], r["device"], r["B"]))
        lines.append(f"{r['model']:<9} {r['device']:<6} {r['B']:>2} {r['backend']:<9} {r['ms']:>9.1f} "
                     f"{(speed / r['ms'] if speed else float('nan')):>6.2f}  "
                     + "  ".join(f"{100 * r[k + '_share']:>13.1f}" for k in COMPONENTS))
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    if args.device:
        devices = [torch.device(args.device)]
    budget = args.budget if args.budget is not None else (0.05 if args.quick else 1.0)
    rows = []
    for device in devices:
        for B in (1, 8):
            for backend in BACKENDS:
                rows.append(time_model(args.model, B, backend, device, budget, 1 if args.quick else 3))
                print(format_rows(rows[-1:]).splitlines()[1], flush=True)
    report = {"header": benchmark.header(devices[-1], torch.float32), "rows": rows}
    print()
    print("\n".join(benchmark.header_lines(report["header"])))
    print("forward of the published network, no flip test; 'x ref': reference ms / this ms; "
          "shares of the forward's time")
    print(format_rows(rows))
    if args.json:
        benchmark.write_json(report, args.json)
    return 0
