"""``hybrik-fast bench --train --preset paper``: the training step at the paper's
configuration, one fresh process per head, peak memory as the process's peak RSS.

Configurations (:data:`CONFIGS`), all ResNet-34, 256 px, 29×64³ (the
``resnet34-3dpw`` preset's model and loss, SyntheticHumans images), batch 8
(``--train-batch``):

- ``reference``: heatmap head, reference ops (conv2d, the reference soft-argmax, the reference IK);
- ``fused soft-argmax``: heatmap head, ``fused_head=False`` (conv2d, then today's fused soft-argmax);
- ``fused soft-argmax, no cache``: the same with the soft-argmax's output cache off (below);
- ``conv_soft_argmax3d``: heatmap head, ``fused_head=True`` (the logits never stored);
- ``transformer``: the HybrIK-Transformer head (fused IK).

Each runs in its own process (``python -m hybrik_fast.train.bench_memory
NAME``), so that every allocation counts and none is shared: the loop's
:func:`~.loop.train_step` once to warm up, then the output cache of the
fused kernels is emptied and the resident set read (VmRSS of
/proc/self/status): the steady state (weights, optimiser states and the
batch; train_step frees the gradients at the end of each step).  The peak
(VmHWM) is then reset (``echo 5 > /proc/self/clear_refs``) and ``steps``
steps run; the peak is the VmHWM after them.  This is done ``rounds`` times
(``--train-rounds``, default 3), every configuration once per round in a
rotated order; a configuration's step time is the median of all its timed
steps, its memory figures the medians over the rounds.  On a shared
machine one process's steps can run 10-20% slower than another's for the
same configuration: one round per configuration, run one after another,
moved the step-time ratio between 1.13 and 1.23.
``MALLOC_MMAP_THRESHOLD_`` is fixed at 64 KiB in the child, so that glibc
returns every large freed block at once and the resident set follows the
live allocations (its default threshold grows to 32 MB and would keep
freed tensors resident).

The output cache (``HYBRIK_FAST_CACHE_OUTPUTS=0`` turns it off).  By default
the fused soft-argmax backward keeps the gradient buffer it freed for the next
step (README, "API tour"), which is resident during the next forward: over
two or more steps that adds to the peak (156 MB at batch 8) and saves ~10% of
the step time.  The targets are checked against both.

On CUDA (``run(device="cuda")``: ``bench/gpu/run.sh``'s part ``train_paper``,
batch 32 and 64) the step runs under bf16 autocast and the memory figures
are the CUDA allocator's (:func:`child`).

The head's share: the same step in a fresh process with the backbone
replaced by a stub that returns a fixed C5 (B, 512, 8, 8) (a parameter):
what remains is the head, the IK, the body model and the loss.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

BATCH = 8
PRESET = "resnet34-3dpw"
#: name -> (config overrides, model options)
CONFIGS = {
    "reference": ({"backend": "reference"}, {"fused_head": False}),
    "fused soft-argmax": ({"backend": "auto"}, {"fused_head": False}),
    "fused soft-argmax, no cache": ({"backend": "auto"}, {"fused_head": False}),
    "conv_soft_argmax3d": ({"backend": "auto"}, {"fused_head": True}),
    "transformer": ({"backend": "auto", "head": "transformer"}, {}),
}
#: extra environment of a configuration's processes
ENV = {"fused soft-argmax, no cache": {"HYBRIK_FAST_CACHE_OUTPUTS": "0"}}
#: the issue's targets at batch 8 against "fused soft-argmax" (and its no-cache form)
TARGET_ABOVE_STEADY = 0.45
TARGET_STEP = 1.15


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no {field} in /proc/self/status")


class StubBackbone(nn.Module):
    """A backbone that returns a fixed C5 (B, C, S/32, S/32) parameter, for the head's share."""

    def __init__(self, backbone: nn.Module, batch: int, size: int):
        super().__init__()
        self.out_channels = backbone.out_channels
        self.c5 = nn.Parameter(torch.randn(batch, backbone.out_channels, size // 32, size // 32) * 0.1)

    def forward(self, images):
        return self.c5

    def pyramid(self, images):
        return None, None, None, self.c5


def child(name: str, batch: int, steps: int, head_only: bool, device: str = "cpu") -> dict:
    """One configuration in this process (see the module docstring).  On CUDA
    the step runs under bf16 autocast (the preset's amp "auto") and memory is
    the CUDA allocator's: steady = memory_allocated after the warm-up step,
    peak = max_memory_allocated after resetting it."""
    import hybrik_fast
    from . import config
    from .data import build_dataset, collate
    from .loop import autocast_dtype, build_loss, build_model, build_optimizer, build_scaler, to_device, train_step

    overrides, model_kwargs = CONFIGS[name]
    dev = torch.device(device)
    cfg = config.make_config(PRESET, overrides={"device": device, "batch_size": batch, "progress": False,
                                                "data": "synthetic", **overrides})
    cfg.model_kwargs = dict(model_kwargs)
    if cfg.head == "transformer":  # it predicts no sigma, so no Laplace term (as its own preset)
        cfg.loss = dict(cfg.loss, laplace=False)
    torch.manual_seed(cfg.seed)
    ds = build_dataset("synthetic:train:%d" % batch, cfg, "train")
    data = to_device(collate([ds[i] for i in range(len(ds))]), dev)
    model = build_model(cfg, dev).train()
    if head_only:
        model.preact = StubBackbone(model.preact, batch, cfg.image_size).to(dev)
    loss_fn = build_loss(cfg).to(dev)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = build_optimizer(cfg, params)
    amp = autocast_dtype(cfg, dev)
    scaler = build_scaler(dev, amp)
    cuda = dev.type == "cuda"

    def step() -> float:
        t = time.perf_counter()
        train_step(model, loss_fn, opt, scaler, data, params, cfg.grad_clip, amp,
                   clip_per_param=cfg.grad_clip_per_param)
        if cuda:
            torch.cuda.synchronize(dev)
        return time.perf_counter() - t

    step()                                                    # warm-up: optimiser states exist
    hybrik_fast.empty_cache()
    if cuda:
        steady = torch.cuda.memory_allocated(dev) / 2 ** 20
        torch.cuda.reset_peak_memory_stats(dev)
    else:
        steady = _status_mb("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                                      # reset VmHWM to the current RSS
    times = [step() for _ in range(steps)]
    peak = torch.cuda.max_memory_allocated(dev) / 2 ** 20 if cuda else _status_mb("VmHWM")
    return {"step_s": statistics.median(times), "peak_mb": peak, "steady_mb": steady,
            "above_steady_mb": peak - steady, "times": times, "amp": str(amp).replace("torch.", "")}


def _merge(rounds: list[dict]) -> dict:
    """One configuration's rounds -> its figures: step time the median of every
    timed step of every round, each memory figure the median over the rounds
    (they differ by a few MB), and the rounds themselves."""
    times = [t for r in rounds for t in r["times"]]
    return {"step_s": statistics.median(times),
            **{k: statistics.median(r[k] for r in rounds) for k in ("peak_mb", "steady_mb", "above_steady_mb")},
            "times": times, "rounds": rounds}


def run(batch: int = BATCH, steps: int = 2, threads: int | None = None, rounds: int = 1, device: str = "cpu",
        log=print) -> dict:
    """Every configuration, whole step and head only, each in a fresh process,
    ``rounds`` times over.  The rounds interleave the configurations, each
    round in a rotated order, so that a slow spell of a shared machine falls
    on all of them alike rather than on whichever ran then."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    names = list(CONFIGS)
    runs: dict[str, dict[str, list]] = {name: {"step": [], "head": []} for name in names}
    for i in range(rounds):
        for name in names[i % len(names):] + names[:i % len(names)]:
            for part in ("step", "head"):
                cmd = [sys.executable, "-m", "hybrik_fast.train.bench_memory", name, str(batch), str(steps), part,
                       device]
                out = subprocess.run(cmd, env={**env, **ENV.get(name, {})}, check=True, capture_output=True,
                                     text=True).stdout
                r = json.loads(out.strip().splitlines()[-1])
                runs[name][part].append(r)
                log(f"  round {i + 1} {name:<28} {part:<5} step {r['step_s']:.2f} s, peak {r['peak_mb']:.0f} MB, "
                    f"steady {r['steady_mb']:.0f} MB, above steady {r['above_steady_mb']:.0f} MB")
    rows = {name: {part: _merge(runs[name][part]) for part in ("step", "head")} for name in names}
    new, tr = rows["conv_soft_argmax3d"]["step"], rows["transformer"]["step"]
    ratios = {}
    for base_name, key in (("fused soft-argmax", ""), ("fused soft-argmax, no cache", "_no_cache")):
        base = rows[base_name]["step"]
        ratios["above_steady" + key] = new["above_steady_mb"] / base["above_steady_mb"]
        ratios["step_s" + key] = new["step_s"] / base["step_s"]
    return {"header": {"preset": PRESET, "batch": batch, "steps": steps, "rounds": rounds, "device": device,
                       "amp": rows["conv_soft_argmax3d"]["step"]["rounds"][0]["amp"],
                       "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None, "threads": threads or torch.get_num_threads(),
                       "torch": torch.__version__, "load": os.getloadavg(),
                       "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())},
            "rows": rows, "ratios": ratios,
            "targets": {**{k: v <= (TARGET_STEP if k.startswith("step") else TARGET_ABOVE_STEADY)
                           for k, v in ratios.items()},
                        "peak_vs_transformer": new["peak_mb"] <= tr["peak_mb"]}}


def format_report(report: dict) -> str:
    h = report["header"]
    cuda = h.get("device", "cpu").startswith("cuda")
    where = f"CUDA ({h.get('gpu')}), autocast {h.get('amp')}" if cuda else f"CPU, {h['threads']} thread(s)"
    memory = ("CUDA allocator (memory_allocated / max_memory_allocated)" if cuda
              else "resident set (VmRSS / VmHWM)")
    lines = [f"train step, {h['preset']} model (ResNet-34, 256 px, 29x64^3), batch {h['batch']}, {where}, "
             f"torch {h['torch']}, {h['date']}, load {h['load'][0]:.1f}",
             f"{h.get('rounds', 1)} round(s), each configuration a fresh process per round, in rotated order; "
             f"step = median of every round's {h['steps']} steps after 1 warm-up; memory = {memory}, "
             "median over the rounds", "",
             f"{'':<29}{'step s':>8}{'peak MB':>9}{'steady MB':>11}{'above MB':>10}"
             f"{'head s':>8}{'head peak':>10}{'head above':>11}"]
    for name, r in report["rows"].items():
        s, hd = r["step"], r["head"]
        lines.append(f"{name:<29}{s['step_s']:>8.2f}{s['peak_mb']:>9.0f}{s['steady_mb']:>11.0f}"
                     f"{s['above_steady_mb']:>10.0f}{hd['step_s']:>8.2f}{hd['peak_mb']:>10.0f}"
                     f"{hd['above_steady_mb']:>11.0f}")
    r, t = report["ratios"], report["targets"]
    ok = lambda b: "met" if b else "NOT met"  # noqa: E731
    lines.append("")
    for base, key in (("fused soft-argmax", ""), ("fused soft-argmax, no cache", "_no_cache")):
        lines.append(f"conv_soft_argmax3d / {base}: above steady {r['above_steady' + key]:.3f} (target <= "
                     f"{TARGET_ABOVE_STEADY}: {ok(t['above_steady' + key])}), step time {r['step_s' + key]:.3f} "
                     f"(target <= {TARGET_STEP}: {ok(t['step_s' + key])})")
    lines.append(f"heatmap head (conv_soft_argmax3d) peak <= transformer's: {ok(t['peak_vs_transformer'])}")
    return "\n".join(lines)


if __name__ == "__main__":
    name, batch, steps, part = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    print(json.dumps(child(name, batch, steps, part == "head", sys.argv[5] if len(sys.argv) > 5 else "cpu")))
