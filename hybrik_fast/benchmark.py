"""The benchmark harness: ``hybrik-fast bench``, and what bench/, train/bench.py,
the tests and the paper checks share with it.

This module is the one place for: the input builder of each op
(:func:`heatmaps`, :func:`ik_sample`, :func:`conv_soft_argmax_inputs`); the timing (:func:`pass_parts`,
:func:`timer`, :func:`measure`); the peak memory (:func:`peak_mb`); the copy
bandwidth (:func:`copy_bandwidth`); the environment header (:func:`header`).

The report is data: a list of :class:`Case` (an op, a label, an input
builder, a bytes formula), each timed for the passes "fwd", "bwd" and
"fwd+bwd" on every backend of that op that can run on the device (read from
``_backend.OPS`` at run time, so a newly wired backend gets its rows without
touching this file).  Ratios are against backend "reference" in the same run.

Timing: each pass is a (setup, timed) pair (:func:`pass_parts`): setup runs
untimed, then timed is timed (bench/ hands the same pair to pytest-benchmark).
One warm-up call, which also estimates the cost; then the median of ``n``
calls, n chosen so the cell takes about ``budget`` seconds (at least
``min_reps``, at most ``max_reps``).  On CUDA, ``torch.cuda.synchronize()``
brackets every timed region.  "fwd" runs under ``no_grad``; "bwd" times only
``torch.autograd.grad`` after an untimed forward; "fwd+bwd" times both.

Bytes (for GB/s):
    soft-argmax  fwd reads the heatmaps once, B·K·D·H·W·itemsize; bwd reads
                 them and writes their gradient (2×); fwd+bwd 3×.
    1×1 conv + soft-argmax  fwd reads the features and the weight once,
                 (B·C·H·W + K·D·C)·itemsize; bwd reads them and writes their
                 gradients (2×); fwd+bwd 3×.  It is bound by its GEMMs, so
                 its rows also give GFLOP/s: the GEMMs of the materialised
                 path, 2·B·K·D·C·H·W flops each, one in fwd, two in bwd,
                 three in fwd+bwd (the fused backward recomputes the logits:
                 its own count is one more, so the figure is the useful work
                 per second).  Besides the op's backends it has the row
                 "materialised": conv2d, then the fused soft-argmax (the
                 heatmap head with ``fused_head=False``), the path it
                 replaces; its "reference" is conv2d, then the reference
                 soft-argmax.
    IK           fwd: inputs + outputs, B·(29·3 + 23·2 + 29·3 + 24·9)·itemsize;
                 bwd: output gradient + input gradients (the same count);
                 fwd+bwd: twice that.  IK rows also give poses/s = B / time.
Copy bandwidth: the median of ``dst.copy_(src)`` over a 256 MB buffer,
counting read + write, measured at the start of each thread count and again
before and after each soft-argmax case.  A case's rows give their GB/s as a
share of the mean of its before and after figures ("copy GB/s"), since the
bandwidth a shared machine gives drifts (on the 2-core CI VM between about 31
and 58 GB/s from one minute to the next); the headline per thread count is
the median of all its copy figures.

Peak memory ("peak MB", on the fwd+bwd row): the most memory held at once by
allocations made during one fwd+bwd call, above what was live before it (the
inputs are not counted).  CUDA: ``max_memory_allocated`` after
``reset_peak_memory_stats``, minus the allocated memory before.  CPU:
``torch.profiler`` with ``profile_memory=True`` records every allocation and
free made through the CPU allocator; the peak is the maximum of the running
sum of those events in time order.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch

from . import _backend, reference
from .info import git_commit, machine, versions
from .ik import hybrik_ik
from .poses import sample_rotmats
from .skeleton import NUM_JOINTS, NUM_SMPL_JOINTS, NUM_TWIST
from .conv_soft_argmax import conv_soft_argmax3d, materialised
from .soft_argmax import soft_argmax3d

PASSES = ("fwd", "bwd", "fwd+bwd")
#: --ops names -> op names in _backend.OPS
OP_NAMES = {"soft_argmax": "soft_argmax3d", "ik": "hybrik_ik", "conv_soft_argmax": "conv_soft_argmax3d"}
DEFAULT_HEATMAP = (29, 64, 64, 64)        # K, D, H, W
DEFAULT_CHANNELS = 256                    # C of the features under the heatmap layer (the deconvolutions')
DEFAULT_SOFT_ARGMAX_BATCH = (1, 8)
DEFAULT_IK_BATCH = (1, 64, 1024)
COPY_MB = 256
#: floats per pose that the IK reads (joints, twist, rest joints) and writes (rotations)
IK_FLOATS_PER_POSE = NUM_JOINTS * 3 + NUM_TWIST * 2 + NUM_JOINTS * 3 + NUM_SMPL_JOINTS * 9


# ----------------------------------------------------------------------------- inputs
# The one builder per op, shared by the tests, bench/, train/bench.py and the
# paper checks; every draw comes from a torch.Generator seeded by ``seed``.

def heatmaps(B: int, K: int, D: int, H: int, W: int, kind: str = "blob", seed: int = 0,
             dtype=torch.float32, device="cpu") -> torch.Tensor:
    """Soft-argmax input: logits (B, K, D, H, W), drawn in float64 then cast to ``dtype``.

    kind:
      "blob"     a Gaussian bump per joint (logit −|v − centre|²/(2σ²)·4, σ = a
                 fifth of each axis) plus unit noise: peaked like a trained
                 network's heatmaps but far from one-hot;
      "normal"   i.i.d. N(0, 3²) (the benchmark's: the kernels' time does not
                 depend on the values);
      "uniform"  all zeros;
      "onehot"   zeros with 30 at one random voxel per joint.
    """
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    if kind == "normal":
        x = 3.0 * torch.randn(B, K, D, H, W, generator=g, dtype=f64)
    elif kind == "uniform":
        x = torch.zeros(B, K, D, H, W, dtype=f64)
    elif kind == "onehot":
        x = torch.zeros(B, K, D * H * W, dtype=f64)
        x.scatter_(-1, torch.randint(0, D * H * W, (B, K, 1), generator=g), 30.0)
        x = x.reshape(B, K, D, H, W)
    elif kind == "blob":
        centre = torch.rand(B, K, 3, generator=g, dtype=f64)                   # (B, K, 3) in [0, 1)

        def axis(n: int, j: int) -> torch.Tensor:                                # (B, K, n)
            t = (torch.arange(n, dtype=f64) + 0.5) / n
            return ((t - centre[..., j, None]) / 0.2) ** 2

        x = -2.0 * (axis(D, 2)[..., :, None, None] + axis(H, 1)[..., None, :, None]
                    + axis(W, 0)[..., None, None, :])
        x = x + torch.randn(B, K, D, H, W, generator=g, dtype=f64)
    else:
        raise ValueError(f"kind must be 'blob', 'normal', 'uniform' or 'onehot', got {kind!r}")
    return x.to(device=device, dtype=dtype)


#: an SMPL-like T-pose (metres, y up, x to the body's left, z forward), written
#: by hand to the proportions of an adult; joints 0..23 then the five leaves
REST_JOINTS = (
    (0.00, 0.00, 0.00), (0.06, -0.09, -0.01), (-0.06, -0.09, -0.01), (0.00, 0.11, -0.03),
    (0.10, -0.46, 0.00), (-0.10, -0.46, 0.00), (0.00, 0.24, 0.00), (0.09, -0.86, -0.04),
    (-0.09, -0.86, -0.04), (0.00, 0.30, 0.02), (0.12, -0.92, 0.08), (-0.12, -0.92, 0.08),
    (0.00, 0.51, -0.01), (0.08, 0.42, 0.00), (-0.08, 0.42, 0.00), (0.00, 0.57, 0.04),
    (0.17, 0.45, -0.02), (-0.17, 0.45, -0.02), (0.43, 0.43, -0.04), (-0.43, 0.43, -0.04),
    (0.68, 0.44, -0.04), (-0.68, 0.44, -0.04), (0.77, 0.43, -0.05), (-0.77, 0.43, -0.05),
    (0.00, 0.75, 0.00), (0.87, 0.43, -0.05), (-0.87, 0.43, -0.05), (0.12, -0.95, 0.14),
    (-0.12, -0.95, 0.14),
)


class IKSample(NamedTuple):
    """A posed skeleton and the IK inputs made from it."""
    rotmats: torch.Tensor   # (B, 24, 3, 3) the true local rotations
    joints: torch.Tensor    # (B, 29, 3) the IK's target joints
    twist: torch.Tensor     # (B, 23, 2) (cos φ, sin φ), times a scale when twist_scale > 0
    rest: torch.Tensor      # (B, 29, 3) rest joints

    def inputs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(joints, twist, rest): the arguments of ``hybrik_ik``."""
        return self.joints, self.twist, self.rest


def ik_sample(B: int, seed: int = 0, dtype=torch.float64, device="cpu", *, rest: torch.Tensor | None = None,
              rest_noise: float = 0.01, joint_noise: float = 0.0, root_offset: float = 0.0,
              twist_scale: float = 0.0) -> IKSample:
    """IK input: a random plausible pose (:func:`hybrik_fast.poses.sample_rotmats`) of a skeleton.

    rest: ``rest`` (B, 29, 3) if given (a body model's, say), else
    :data:`REST_JOINTS` jittered by ``rest_noise`` metres (s.d.) per
    coordinate.  joints: the forward kinematics plus ``joint_noise`` metres of
    noise per coordinate, all moved by ``root_offset`` metres (s.d.) per sample
    (the IK re-roots them).  twist: the true (cos φ, sin φ), scaled per joint by
    a factor uniform in [1 − twist_scale, 1 + twist_scale] (the IK normalises
    it).  Computed in float64, then cast to ``dtype`` and moved to ``device``.
    """
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    rotmats = sample_rotmats(B, generator=g)                                           # (B, 24, 3, 3)
    if rest is None:
        rest = torch.tensor(REST_JOINTS, dtype=f64) + rest_noise * torch.randn(B, NUM_JOINTS, 3, generator=g,
                                                                                 dtype=f64)
    rest = rest.to(f64)
    joints = reference.forward_kinematics(rotmats, rest)
    joints = joints + joint_noise * torch.randn(joints.shape, generator=g, dtype=f64)
    joints = joints + root_offset * torch.randn(B, 1, 3, generator=g, dtype=f64)
    twist = reference.twist_angles(rotmats, rest)                                      # (B, 23, 2)
    twist = twist * (1 + twist_scale * (2 * torch.rand(B, NUM_TWIST, 1, generator=g, dtype=f64) - 1))
    return IKSample(*(t.to(device=device, dtype=dtype) for t in (rotmats, joints, twist, rest)))


def soft_argmax_inputs(B: int, K: int = 29, D: int = 64, H: int = 64, W: int = 64, device="cpu",
                       dtype=torch.float32, requires_grad: bool = True) -> tuple[torch.Tensor]:
    """The benchmark's (heatmaps,): (B, K, D, H, W), :func:`heatmaps` of kind "normal"."""
    return (heatmaps(B, K, D, H, W, "normal", dtype=dtype, device=device).requires_grad_(requires_grad),)


def conv_soft_argmax_inputs(B: int, C: int, K: int, D: int, H: int, W: int, dtype=torch.float64, seed: int = 0,
                            bias: bool = True, device="cpu", requires_grad: bool = False
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The 1×1 conv + soft-argmax's (features (B, C, H, W), weight (K·D, C, 1, 1),
    bias (K·D,) or None), for the tests and the benchmark: standard normal
    features and bias, weight N(0, 4/C), so that the logits are a few units
    and the heatmaps neither uniform nor one-hot.  Drawn in float64, then cast
    to ``dtype`` and moved to ``device``."""
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(B, C, H, W, generator=g, dtype=torch.float64)
    w = torch.randn(K * D, C, 1, 1, generator=g, dtype=torch.float64) * (2.0 / C ** 0.5)
    b = torch.randn(K * D, generator=g, dtype=torch.float64) if bias else None
    return tuple(None if t is None else t.to(device=device, dtype=dtype).requires_grad_(requires_grad)
                 for t in (f, w, b))


def ik_inputs(B: int, device="cpu", dtype=torch.float32, requires_grad: bool = True
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The benchmark's (joints (B, 29, 3), twist (B, 23, 2), rest (B, 29, 3)): :func:`ik_sample`
    with 5 mm of joint noise."""
    return tuple(t.requires_grad_(requires_grad)
                 for t in ik_sample(B, dtype=dtype, device=device, joint_noise=0.005).inputs())


# ----------------------------------------------------------------------------- cases

@dataclass(frozen=True)
class Case:
    op: str                                        # key of _backend.OPS
    label: str
    build: Callable[..., tuple]                    # (device, dtype) -> inputs, all requiring grad
    call: Callable[[tuple, str], torch.Tensor]     # (inputs, backend) -> output
    nbytes: Callable[[str, int], int]              # (pass, itemsize) -> bytes moved
    poses: int | None = None                       # poses per call (IK), for poses/s
    flops: Callable[[str], int] | None = None      # (pass) -> useful flops, for GFLOP/s
    extra_backends: tuple[str, ...] = ()           # rows besides the op's backends (call knows them)


def soft_argmax_case(B: int, K: int, D: int, H: int, W: int) -> Case:
    n = B * K * D * H * W
    return Case(
        op="soft_argmax3d", label=f"B={B} {K}x{D}x{H}x{W}",
        build=lambda device, dtype: soft_argmax_inputs(B, K, D, H, W, device, dtype),
        call=lambda inp, backend: soft_argmax3d(inp[0], backend=backend),
        nbytes=lambda pass_, itemsize: {"fwd": 1, "bwd": 2, "fwd+bwd": 3}[pass_] * n * itemsize)


def conv_soft_argmax_case(B: int, C: int, K: int, D: int, H: int, W: int) -> Case:
    moved = B * C * H * W + K * D * C
    gemm = 2 * B * K * D * C * H * W

    def call(inp, backend):
        if backend == "materialised":
            return materialised(*inp, num_joints=K, backend="auto")
        return conv_soft_argmax3d(*inp, num_joints=K, backend=backend)

    return Case(
        op="conv_soft_argmax3d", label=f"B={B} C={C} {K}x{D}x{H}x{W}",
        build=lambda device, dtype: conv_soft_argmax_inputs(B, C, K, D, H, W, dtype, device=device,
                                                            requires_grad=True),
        call=call,
        nbytes=lambda pass_, itemsize: {"fwd": 1, "bwd": 2, "fwd+bwd": 3}[pass_] * moved * itemsize,
        flops=lambda pass_: {"fwd": 1, "bwd": 2, "fwd+bwd": 3}[pass_] * gemm,
        extra_backends=("materialised",))


def ik_case(B: int, mode: str = "adaptive") -> Case:
    return Case(
        op="hybrik_ik", label=f"B={B} {mode}",
        build=lambda device, dtype: ik_inputs(B, device, dtype),
        call=lambda inp, backend: hybrik_ik(*inp, mode=mode, backend=backend),
        nbytes=lambda pass_, itemsize: ((2 if pass_ == "fwd+bwd" else 1)
                                        * B * IK_FLOATS_PER_POSE * itemsize),
        poses=B)


def default_cases(ops=tuple(OP_NAMES.values()), heatmap=DEFAULT_HEATMAP,
                  soft_argmax_batch=DEFAULT_SOFT_ARGMAX_BATCH, ik_batch=DEFAULT_IK_BATCH,
                  channels=DEFAULT_CHANNELS) -> list[Case]:
    """The cases of ``ops``; the 1×1 conv + soft-argmax takes the soft-argmax's
    batch sizes and heatmap size, and ``channels`` features."""
    cases = []
    if "soft_argmax3d" in ops:
        cases += [soft_argmax_case(B, *heatmap) for B in soft_argmax_batch]
    if "conv_soft_argmax3d" in ops:
        cases += [conv_soft_argmax_case(B, channels, *heatmap) for B in soft_argmax_batch]
    if "hybrik_ik" in ops:
        cases += [ik_case(B) for B in ik_batch]
    return cases


def available(op: str, device: torch.device) -> list[str]:
    """Backends of ``op`` that can run on ``device`` now."""
    return [b for b in _backend.OPS[op]["backends"] if _backend.unavailable_reason(b, device) is None]


# ----------------------------------------------------------------------------- timing

def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pass_parts(case: Case, inputs: tuple, backend: str, pass_: str,
               device: torch.device) -> tuple[Callable[[], object], Callable[[object], None]]:
    """(setup, timed) of one ``pass_``: ``setup()`` runs the untimed part and
    returns a state (the output of the untimed forward of "bwd"), ``timed(state)``
    the timed part, synchronised on CUDA.  pytest-benchmark (bench/) times the
    same two parts."""
    def setup():
        return case.call(inputs, backend) if pass_ == "bwd" else None

    def timed(out) -> None:
        if pass_ == "fwd":
            with torch.no_grad():
                case.call(inputs, backend)
        else:
            out = case.call(inputs, backend) if out is None else out
            torch.autograd.grad(out, inputs, torch.ones_like(out))
        sync(device)

    return setup, timed


def timer(setup: Callable[[], object], timed: Callable[[object], None], device: torch.device
          ) -> Callable[[], float]:
    """A function that runs ``setup`` untimed and returns the seconds of ``timed``."""
    def once() -> float:
        state = setup()
        sync(device)
        t0 = time.perf_counter()
        timed(state)
        return time.perf_counter() - t0
    return once


def pass_fn(case: Case, inputs: tuple, backend: str, pass_: str,
            device: torch.device) -> Callable[[], float]:
    """A function that runs one ``pass_`` and returns its seconds."""
    return timer(*pass_parts(case, inputs, backend, pass_, device), device)


def measure(once: Callable[[], float], budget: float, min_reps: int, max_reps: int) -> tuple[float, int]:
    """Median seconds of ``once`` after one warm-up call; returns (seconds, repeats)."""
    estimate = once()
    reps = max(min_reps, min(max_reps, int(budget / max(estimate, 1e-9))))
    return statistics.median(once() for _ in range(reps)), reps


def copy_bandwidth(device: torch.device, mb: int = COPY_MB, reps: int = 10) -> float:
    """GB/s of ``dst.copy_(src)`` over ``mb`` megabytes, counting read + write."""
    src = torch.ones(mb * 2 ** 20 // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)

    once = timer(lambda: None, lambda _: (dst.copy_(src), sync(device)), device)
    seconds, _ = measure(once, budget=0.0, min_reps=reps, max_reps=reps)
    return 2 * src.numel() * src.element_size() / seconds / 1e9


def peak_mb(once: Callable[[], float], device: torch.device) -> float:
    """MB held at peak by allocations made during ``once()`` (see the module docstring)."""
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        once()
        return (torch.cuda.max_memory_allocated(device) - base) / 2 ** 20
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        once()
    cpu = torch._C._autograd.DeviceType.CPU
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]" and e.device_type() == cpu)
    held = peak = 0
    for _, nbytes in events:
        held += nbytes
        peak = max(peak, held)
    return peak / 2 ** 20


# ----------------------------------------------------------------------------- report

def run(cases: list[Case], device: torch.device, threads: list[int], dtype=torch.float32,
        budget: float = 1.0, min_reps: int = 3, max_reps: int = 1000, copy_mb: int = COPY_MB,
        log=print) -> dict:
    """Time every case × backend × pass at each thread count; return all figures as a dict."""
    report = {"header": header(device, dtype), "copy": [], "results": []}
    start_threads = torch.get_num_threads()
    for n_threads in threads:
        torch.set_num_threads(n_threads)
        copies = [copy_bandwidth(device, copy_mb)]
        log(f"threads {n_threads}: copy {copies[0]:.1f} GB/s")
        for case in cases:
            inputs = case.build(device, dtype)
            itemsize = inputs[0].element_size()
            ref_ms = {}
            case_rows = []
            if case.op == "soft_argmax3d":
                copies.append(copy_bandwidth(device, copy_mb))
            for backend in available(case.op, device) + list(case.extra_backends):
                for pass_ in PASSES:
                    row = {"threads": n_threads, "op": case.op, "case": case.label, "pass": pass_,
                           "backend": backend, "ms": None, "gbps": None, "gflops": None, "copy_gbps": None,
                           "copy_frac": None,
                           "poses_per_s": None, "vs_reference": None, "peak_mb": None,
                           "repeats": 0, "error": None}
                    once = pass_fn(case, inputs, backend, pass_, device)
                    try:
                        seconds, row["repeats"] = measure(once, budget, min_reps, max_reps)
                        if pass_ == "fwd+bwd":
                            row["peak_mb"] = peak_mb(once, device)
                    except Exception as e:  # a backend being wired may still raise; report it
                        row["error"] = f"{type(e).__name__}: {e}".splitlines()[0][:120]
                        report["results"].append(row)
                        log(f"  {case.op} {case.label} {pass_} {backend}: {row['error']}")
                        continue
                    row["ms"] = seconds * 1e3
                    row["gbps"] = case.nbytes(pass_, itemsize) / seconds / 1e9
                    if case.flops is not None:
                        row["gflops"] = case.flops(pass_) / seconds / 1e9
                    case_rows.append(row)
                    if case.poses is not None:
                        row["poses_per_s"] = case.poses / seconds
                    if backend == "reference":
                        ref_ms[pass_] = row["ms"]
                    if pass_ in ref_ms:
                        row["vs_reference"] = ref_ms[pass_] / row["ms"]
                    report["results"].append(row)
                    log(f"  {case.op} {case.label} {pass_} {backend}: {row['ms']:.3f} ms "
                        f"({row['repeats']} reps)")
            del inputs  # free before the next case builds its inputs
            if case.op == "soft_argmax3d":
                copies.append(copy_bandwidth(device, copy_mb))
                case_copy = (copies[-2] + copies[-1]) / 2
                log(f"  copy {copies[-2]:.1f} GB/s before the case, {copies[-1]:.1f} after")
                for row in case_rows:
                    row["copy_gbps"] = case_copy
                    row["copy_frac"] = row["gbps"] / case_copy
        report["copy"].append({"threads": n_threads, "mb": copy_mb, "gbps": statistics.median(copies),
                               "samples": copies})
    torch.set_num_threads(start_threads)
    return report


#: environment variables that change what the benchmark measures, recorded when set
RECORDED_ENV = ("GLIBC_TUNABLES", "LD_PRELOAD", "OMP_NUM_THREADS", "HYBRIK_FAST_BACKEND",
                "HYBRIK_FAST_STREAMING_STORES", "HYBRIK_FAST_ONEDNN_GEMM", "THP_MEM_ALLOC_ENABLE")


def header(device: torch.device, dtype) -> dict:
    return {"machine": machine(), "versions": versions(), "commit": git_commit(),
            "env": {k: os.environ[k] for k in RECORDED_ENV if k in os.environ},
            "device": str(device) if device.type != "cuda" else f"{device} ({torch.cuda.get_device_name(device)})",
            "dtype": str(dtype).replace("torch.", ""),
            "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z")}


def _fmt(x, spec: str, suffix: str = "") -> str:
    return "-" if x is None else format(x, spec) + suffix


def header_lines(h: dict) -> list[str]:
    """The machine, versions, commit, device, dtype, date and load of a :func:`header`."""
    m, v = h["machine"], h["versions"]
    return [
        f"machine: {m['cpu']}, {m['cores']} cores, torch threads {m['torch_threads']}"
        + (f", cuda {m['cuda']}" if m["cuda"] else ""),
        "versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val is not None),
        f"commit: {h['commit'] or 'unknown'}   device: {h['device']}   dtype: {h['dtype']}   {h['date']}"
        + (f"   load {h['load_average']:.1f} at start" if h.get("load_average") is not None else ""),
    ] + (["env: " + "  ".join(f"{k}={v}" for k, v in h["env"].items())] if h.get("env") else [])


def format_report(report: dict) -> str:
    lines = header_lines(report["header"]) + [
        "ms: median; GB/s: bytes moved / time, GFLOP/s: useful flops / time (module docstring); "
        "%copy: share of the copy "
        "bandwidth measured around the case (copy GB/s); x ref: reference time / this time; "
        "peak MB: fwd+bwd allocations above the inputs",
    ]
    cols = ["op", "case", "pass", "backend", "ms", "GB/s", "GFLOP/s", "copy GB/s", "%copy", "poses/s", "x ref",
            "peak MB", "reps"]
    for copy in report["copy"]:
        rows = []
        for r in report["results"]:
            if r["threads"] != copy["threads"]:
                continue
            if r["error"] is not None:
                rows.append([r["op"], r["case"], r["pass"], r["backend"], "error: " + r["error"]])
                continue
            rows.append([r["op"], r["case"], r["pass"], r["backend"], _fmt(r["ms"], ".3f"),
                         _fmt(r["gbps"], ".3g"), _fmt(r.get("gflops"), ".3g"), _fmt(r.get("copy_gbps"), ".3g"),
                         _fmt(r["copy_frac"] and 100 * r["copy_frac"], ".3g", "%"),
                         _fmt(r["poses_per_s"], ",.0f"), _fmt(r["vs_reference"], ".2f", "x"),
                         _fmt(r["peak_mb"], ".3g"), str(r["repeats"])])
        widths = [max([len(c)] + [len(row[i]) for row in rows if len(row) > i and len(row) == len(cols)])
                  for i, c in enumerate(cols)]
        right = {"ms", "GB/s", "GFLOP/s", "copy GB/s", "%copy", "poses/s", "x ref", "peak MB", "reps"}

        def line(row):
            if len(row) < len(cols):  # an error row: the message fills the numeric columns
                return "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])) + "  " + row[-1]
            return "  ".join(cell.rjust(w) if c in right else cell.ljust(w)
                             for c, cell, w in zip(cols, row, widths)).rstrip()

        samples = ", ".join(f"{g:.1f}" for g in copy.get("samples", [copy["gbps"]]))
        lines += ["", f"torch threads {copy['threads']}: copy bandwidth {copy['gbps']:.1f} GB/s, median of "
                      f"{samples} ({copy['mb']} MB dst.copy_(src), read + write)",
                  line(cols), line(["-" * w for w in widths])]
        previous = None
        for row in rows:
            if previous is not None and row[:2] != previous[:2]:
                lines.append("")
            lines.append(line(row))
            previous = row
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command line

def _ints(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def _heatmap(text: str) -> tuple[int, int, int, int]:
    dims = [int(s) for s in text.lower().split("x")]
    if len(dims) != 4:
        raise argparse.ArgumentTypeError(f"--heatmap wants KxDxHxW, e.g. 29x64x64x64, got {text!r}")
    return tuple(dims)


def _threads(text: str) -> list[int]:
    """'1,all' -> [1, torch's thread count at start]."""
    default = torch.get_num_threads()
    return [default if s.strip() == "all" else int(s) for s in text.split(",") if s.strip()]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ops", default="soft_argmax,ik",
                   help="comma list of " + ", ".join(OP_NAMES) + " (default: soft_argmax,ik)")
    p.add_argument("--soft-argmax-batch", type=_ints, default=list(DEFAULT_SOFT_ARGMAX_BATCH),
                   metavar="B,...", help="soft-argmax batch sizes (default 1,8)")
    p.add_argument("--heatmap", type=_heatmap, default=DEFAULT_HEATMAP, metavar="KxDxHxW",
                   help="soft-argmax heatmap size per sample (default 29x64x64x64)")
    p.add_argument("--channels", type=int, default=DEFAULT_CHANNELS, metavar="C",
                   help="conv_soft_argmax: feature channels (default 256); it takes --soft-argmax-batch "
                        "and --heatmap")
    p.add_argument("--ik-batch", type=_ints, default=list(DEFAULT_IK_BATCH), metavar="B,...",
                   help="IK batch sizes (default 1,64,1024)")
    p.add_argument("--threads", type=_threads, default=None, metavar="N,...",
                   help="torch.set_num_threads values, 'all' = the default count; e.g. 1,all "
                        "(default: the current count)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="default: cuda if available, else cpu")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds of timing per cell (default 1.0, 0.05 with --quick)")
    p.add_argument("--json", metavar="PATH", help="also write every figure to this JSON file")
    p.add_argument("--quick", action="store_true",
                   help="1 repeat per cell and a 32 MB copy: a smoke test, not a measurement")


def write_json(report: dict, path: str) -> None:
    """Write a report's figures to ``path`` as JSON (for bench/results/)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"\nwrote {path}")


def main(args: argparse.Namespace) -> int:
    ops = []
    for name in args.ops.split(","):
        name = name.strip()
        if name not in OP_NAMES and name not in OP_NAMES.values():
            raise SystemExit(f"--ops: unknown op {name!r}; choose from {', '.join(OP_NAMES)}")
        ops.append(OP_NAMES.get(name, name))
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    cases = default_cases(ops, args.heatmap, args.soft_argmax_batch, args.ik_batch, args.channels)
    budget = args.budget if args.budget is not None else (0.05 if args.quick else 1.0)
    report = run(cases, device, args.threads or [torch.get_num_threads()], budget=budget,
                 min_reps=1 if args.quick else 3, copy_mb=32 if args.quick else COPY_MB,
                 log=lambda msg: print(msg, flush=True))
    report["header"]["quick"] = args.quick
    report["header"]["budget_s"] = budget
    print()
    print(format_report(report))
    if args.json:
        write_json(report, args.json)
    return 0
