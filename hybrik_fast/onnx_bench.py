"""Latency of a whole model: onnxruntime against eager PyTorch (fused ops), on CPU.

``hybrik-fast bench --onnx MODEL[,MODEL...]`` (or :func:`run`): each model
(a name of :data:`MODELS`, built with random weights) is exported once with
:func:`hybrik_fast.export_onnx`, then for every thread count and batch size
both engines run the same random images: eager is ``model(images)`` under
``torch.no_grad`` with ``torch.set_num_threads(threads)`` and backend
"auto" (the fused CPU kernels); onnxruntime is an
:class:`~hybrik_fast.onnx_engine.OnnxModel` session with
``intra_op_num_threads = threads``.  Timing: :func:`hybrik_fast.benchmark.measure`
(one warm-up call, then the median of calls filling ``budget`` seconds,
at least ``min_reps``).  The header records the machine's load average:
on a shared machine the figures are only comparable within one run.
"""
from __future__ import annotations

import os
import tempfile

import torch

from .benchmark import header, header_lines, measure, timer, write_json

#: model name -> build_model arguments (random weights); "cpu-quick" is the training preset's
#: model; "public": the published layout of that name (models/public.py, 256 px; "hrnet48" is
#: HRNetSMPLCam's) with a random SMPL-sized body, as ``bench --model`` builds it
MODELS = {
    "cpu-quick": None,
    "resnet34": dict(backbone="resnet34", image_size=256, heatmap_size=(64, 64, 64)),
    "hrnet48": "public",
}


def build(name: str) -> torch.nn.Module:
    """The model ``name`` of :data:`MODELS`, random weights (seed 0), eval mode."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid choices: {', '.join(MODELS)}")
    torch.manual_seed(0)
    if MODELS[name] is None:
        from .train import config
        from .train.loop import build_model as from_config
        return from_config(config.make_config(name), torch.device("cpu")).eval()
    if MODELS[name] == "public":
        from .bench_model import MODELS as PUBLIC, smpl_sized_body
        body, h36m = smpl_sized_body()
        return PUBLIC[name](body, h36m, backbone=name).eval()
    from .models import build_model
    return build_model(**MODELS[name]).eval()


def run(models=("cpu-quick",), threads=(1, 2), batches=(1, 8), budget: float = 2.0,
        min_reps: int = 3, max_reps: int = 50) -> dict:
    """Median milliseconds per call, {model: {threads: {B: {"eager": ms, "onnx": ms}}}}, plus the header."""
    from .onnx_engine import OnnxModel
    from .onnx_export import export_onnx, image_size
    import onnxruntime
    report = {"header": header(torch.device("cpu"), torch.float32), "rows": []}
    report["header"]["versions"]["onnxruntime"] = onnxruntime.__version__
    before = torch.get_num_threads()
    try:
        for name in models:
            model = build(name)
            with tempfile.TemporaryDirectory() as folder:
                path = export_onnx(model, os.path.join(folder, f"{name}.onnx"))
                for n in threads:
                    torch.set_num_threads(n)
                    engine = OnnxModel(path, threads=n)
                    for B in batches:
                        g = torch.Generator().manual_seed(B)
                        S = image_size(model)
                        images = torch.randn(B, 3, S, S, generator=g)
                        row = {"model": name, "threads": n, "B": B}
                        with torch.no_grad():
                            for label, fn in (("eager", model), ("onnx", engine)):
                                once = timer(lambda: None, lambda _, fn=fn: fn(images), torch.device("cpu"))
                                seconds, reps = measure(once, budget, min_reps, max_reps)
                                row[f"{label}_ms"], row[f"{label}_reps"] = 1e3 * seconds, reps
                        row["speedup"] = row["eager_ms"] / row["onnx_ms"]
                        report["rows"].append(row)
                        print(format_row(row), flush=True)
    finally:
        torch.set_num_threads(before)
    report["header"]["load_average_end"] = os.getloadavg()[0]
    return report


def format_row(r: dict) -> str:
    return (f"{r['model']:<10} {r['threads']:>7} {r['B']:>3} {r['eager_ms']:>10.1f} {r['onnx_ms']:>10.1f} "
            f"{r['speedup']:>8.2f}")


def format_report(report: dict) -> str:
    lines = header_lines(report["header"])
    lines.append(f"load {report['header']['load_average_end']:.1f} at the end")
    lines.append("ms: median per call (images -> all outputs), eager = PyTorch with the fused ops; "
                 "x = eager / onnx")
    lines.append(f"{'model':<10} {'threads':>7} {'B':>3} {'eager ms':>10} {'onnx ms':>10} {'x':>8}")
    lines += [format_row(r) for r in report["rows"]]
    return "\n".join(lines)


def main(args) -> int:
    """``hybrik-fast bench --onnx``: args.onnx (comma list), args.threads, args.json, args.budget."""
    models = [m for m in args.onnx.split(",") if m]
    report = run(models, threads=args.threads or [1, 2], budget=args.budget or 2.0)
    text = format_report(report)
    print(text)
    if args.json:
        write_json(report, args.json)
        with open(os.path.splitext(args.json)[0] + ".txt", "w") as f:
            f.write(text + "\n")
    return 0
