"""``hybrik-fast bench --train``: training step time and peak memory, fused against reference.

The step is the training loop's own :func:`~.loop.train_step` (forward,
HybrIKLoss, scaled backward, gradient clipping, the NaN/inf check with its
host sync, optimiser step (``loop.build_optimizer``)), on one fixed batch of
SyntheticHumans images at the ``cpu-quick`` size, or at a paper preset's
(``--preset resnet34-3dpw | hrnet48-3dpw``, batch ``--train-batch``): the
preset's backbone, image size, heatmap size, batch size, model options and
loss (the report's first line names them).  Both backends build the same model from the same seed.

Step time: the median of ``steps`` timed steps after 2 warm-up steps; the
backends alternate step by step, so a change in machine load hits both
alike.  Peak memory: the most memory held at once by allocations made during
one step, above what was live before it (model, optimiser state and batch
not counted): on CPU from the allocator events of ``torch.profiler`` with
``profile_memory=True`` (hybrik_fast.benchmark.peak_mb), on CUDA from
``max_memory_allocated``.  The same two figures for the two ops alone
(soft-argmax on the step's heatmaps and the IK on its batch, fwd+bwd) show
how much of the step they are.

CPU target: fused step time ≤ 0.85 × reference, with lower peak memory.
"""
from __future__ import annotations

import argparse
import statistics

import torch

from hybrik_fast import benchmark

from . import config
from .data import build_dataset, collate
from .loop import (autocast_dtype, build_loss, build_model, build_optimizer, build_scaler,
                   train_step)

BACKENDS = ("reference", "fused")
TARGET_RATIO = 0.85


def _step_fn(model, loss_fn, optimizer, batch, cfg, device):
    """A function that runs the loop's :func:`~.loop.train_step` once and returns its seconds."""
    params = [p for p in model.parameters() if p.requires_grad]
    amp = autocast_dtype(cfg, device)
    scaler = build_scaler(device, amp)

    def step(_) -> None:
        train_step(model, loss_fn, optimizer, scaler, batch, params, cfg.grad_clip, amp,
                   clip_per_param=cfg.grad_clip_per_param)
        benchmark.sync(device)
    return benchmark.timer(lambda: None, step, device)


def run(preset: str = "cpu-quick", steps: int = 10, device=None, threads: int | None = None,
        log=print, overrides: dict | None = None) -> dict:
    """overrides: config values over the preset's (e.g. {"batch_size": 64})."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    overrides = dict(overrides or {})
    cfg = config.make_config(preset, overrides={**overrides, "device": device.type, "progress": False})
    threads = threads or cfg.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    ds = build_dataset("synthetic:train:%d" % cfg.batch_size, cfg, "train")
    batch = {k: v.to(device) for k, v in collate([ds[i] for i in range(len(ds))]).items()}
    log(f"train step, preset {preset}: {cfg.backbone}, {cfg.image_size} px, heatmap 29x"
        + "x".join(map(str, cfg.heatmap_size)) + f", batch {cfg.batch_size}, {device}, {threads} thread(s)")

    fns = {}
    for backend in BACKENDS:
        torch.manual_seed(cfg.seed)
        c = config.make_config(preset, overrides={**overrides, "backend": backend, "device": device.type})
        model = build_model(c, device).train()
        loss_fn = build_loss(c).to(device)
        opt = build_optimizer(c, [p for p in model.parameters() if p.requires_grad])
        fns[backend] = _step_fn(model, loss_fn, opt, batch, c, device)
    for _ in range(2):                                        # warm-up
        for backend in BACKENDS:
            fns[backend]()
    times = {b: [] for b in BACKENDS}
    for i in range(steps):
        for backend in BACKENDS:
            times[backend].append(fns[backend]())
        log(f"  step {i + 1}/{steps}: " + ", ".join(f"{b} {times[b][-1]:.3f} s" for b in BACKENDS))
    rows = {}
    for backend in BACKENDS:
        rows[backend] = {"step_s": statistics.median(times[backend]),
                         "peak_mb": benchmark.peak_mb(fns[backend], device)}

    # the two ops alone, at the step's sizes
    D, H, W = cfg.heatmap_size
    ops = {"soft_argmax3d": benchmark.soft_argmax_case(cfg.batch_size, 29, D, H, W),
           "hybrik_ik": benchmark.ik_case(cfg.batch_size)}
    op_rows = {}
    for name, case in ops.items():
        inputs = case.build(device, torch.float32)
        for backend, impl in (("reference", "reference"), ("fused", "auto")):
            once = benchmark.pass_fn(case, inputs, impl, "fwd+bwd", device)
            seconds, _ = benchmark.measure(once, budget=0.5, min_reps=3, max_reps=50)
            op_rows[f"{name} {backend}"] = {"step_s": seconds, "peak_mb": benchmark.peak_mb(once, device)}
    ref, fused = rows["reference"], rows["fused"]
    return {
        "header": {**benchmark.header(device, torch.float32), "threads": threads, "preset": preset,
                   "steps": steps, "config": config.to_dict(cfg)},
        "steps": rows, "ops": op_rows,
        "ratio": {"step_s": fused["step_s"] / ref["step_s"], "peak_mb": fused["peak_mb"] / ref["peak_mb"]},
        "target": {"step_ratio_max": TARGET_RATIO,
                   "time_met": fused["step_s"] <= TARGET_RATIO * ref["step_s"],
                   "memory_met": fused["peak_mb"] < ref["peak_mb"]},
    }


def format_report(report: dict) -> str:
    h = report["header"]
    lines = benchmark.header_lines(h) + [f"preset {h['preset']}, {h['steps']} timed steps per backend", "",
                                         f"{'':<28}{'step ms':>10}{'peak MB':>10}", "-" * 48]
    for name, r in report["steps"].items():
        lines.append(f"{'train step, ' + name:<28}{1e3 * r['step_s']:>10.1f}{r['peak_mb']:>10.1f}")
    lines.append(f"{'fused / reference':<28}{report['ratio']['step_s']:>10.3f}{report['ratio']['peak_mb']:>10.3f}")
    lines.append("")
    for name, r in report["ops"].items():
        lines.append(f"{name + ' fwd+bwd':<28}{1e3 * r['step_s']:>10.1f}{r['peak_mb']:>10.1f}")
    t = report["target"]
    lines.append("")
    lines.append(f"CPU target fused <= {t['step_ratio_max']} x reference step time: "
                 f"{'met' if t['time_met'] else 'NOT met'} ({report['ratio']['step_s']:.3f}); "
                 f"lower peak memory: {'met' if t['memory_met'] else 'NOT met'} "
                 f"({report['ratio']['peak_mb']:.3f})")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    """Entry of ``hybrik-fast bench --train`` (uses --device, --threads, --quick, --json, --train-steps,
    --preset, --train-batch, --train-rounds).  A training preset (``--preset hrnet48-3dpw --train-batch 8``) times
    that preset's model, sizes and loss on SyntheticHumans images; --quick is then ignored."""
    if getattr(args, "preset", None) == "paper":
        from . import bench_memory
        report = bench_memory.run(batch=getattr(args, "train_batch", None) or bench_memory.BATCH,
                                  steps=args.train_steps or 4, threads=args.threads[0] if args.threads else None,
                                  rounds=getattr(args, "train_rounds", None) or 3)
        print()
        print(bench_memory.format_report(report))
        if args.json:
            benchmark.write_json(report, args.json)
        return 0
    steps = args.train_steps or (2 if args.quick else 10)
    threads = args.threads[0] if args.threads else None
    preset = getattr(args, "preset", None) or ("tiny" if args.quick else "cpu-quick")
    batch = getattr(args, "train_batch", None)
    report = run(preset, steps=steps, device=args.device, threads=threads,
                 overrides={"batch_size": batch} if batch else None)
    print()
    print(format_report(report))
    if args.quick:
        print("(--quick: the tiny preset and 2 steps; a smoke test, not a measurement)")
    if args.json:
        benchmark.write_json(report, args.json)
    return 0
