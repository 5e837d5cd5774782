"""The parts of bench/gpu/run.sh that run in Python, one subcommand each.

    python bench/gpu/gpu_run.py PART --stem PATH [--dry-run]

PART is one of ``versions``, ``check``, ``note``, ``soft_argmax``, ``ik``,
``train``.  Each part appends its figures to ``<stem>.txt`` and
``<stem>.json`` as soon as it finishes (the JSON rewritten whole, through a
temporary file), so that a run cut short keeps every finished part, and
copies both to the folder ``$OUT`` names when that is set.

``--dry-run``: the same parts on CPU at tiny sizes, the Triton kernels on
the interpreter (run.sh sets ``TRITON_INTERPRET=1``), with a short timing
budget, to prove the script before a GPU sees it.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

import torch

#: sizes of the GPU run and of the dry run
SIZES = {
    "gpu": {"soft_argmax_batch": (1, 8, 32, 64), "heatmap": (29, 64, 64, 64), "ik_batch": (64, 1024, 65536),
            "train_batch": (32, 64), "train_preset": "gpu", "train_steps": 10, "budget": 0.5, "copy_mb": 1024,
            "paper_batch": (32, 64), "paper_steps": 3},
    "dry": {"soft_argmax_batch": (1, 2), "heatmap": (3, 4, 5, 6), "ik_batch": (3, 17),
            "train_batch": (2,), "train_preset": "tiny", "train_steps": 1, "budget": 0.01, "copy_mb": 8,
            "paper_batch": (2,), "paper_steps": 1},
}


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_slug(dry_run: bool) -> str:
    """The device name for file names: e.g. nvidia-h200, or cpu-dryrun."""
    if dry_run or not torch.cuda.is_available():
        return "cpu-dryrun"
    name = torch.cuda.get_device_name(0).lower()
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


def _driver() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    res = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True)
    return res.stdout.strip().splitlines()[0] if res.returncode == 0 and res.stdout.strip() else None


def versions() -> dict:
    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    dev = device()
    return {"torch": torch.__version__, "cuda": torch.version.cuda, "triton": triton_version,
            "driver": _driver(), "python": sys.version.split()[0],
            "device": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu",
            "capability": ".".join(map(str, torch.cuda.get_device_capability(0))) if dev.type == "cuda" else None,
            "triton_interpret": os.environ.get("TRITON_INTERPRET")}


def check(dry_run: bool) -> dict:
    """Asserts that the fused backends are compiled and that auto chooses them on this device."""
    from hybrik_fast import _backend, _ext
    dev = device()
    assert _ext.C is not None, f"the extension did not load: {_ext.LOAD_ERROR}"
    chosen = {op: _backend.resolve(op, "auto", dev) for op in ("soft_argmax3d", "hybrik_ik")}
    want = ({"soft_argmax3d": "cpu", "hybrik_ik": "cpu"} if dev.type == "cpu"
            else {"soft_argmax3d": "triton", "hybrik_ik": "cuda"})
    if dev.type == "cuda":
        assert _ext.C.compiled_with_cuda(), "the extension was built without CUDA"
    assert chosen == want, f"auto chose {chosen}, expected {want}"
    assert _backend.unavailable_reason("triton", dev) is None, _backend.unavailable_reason("triton", dev)
    return {"compiled_with_cuda": _ext.C.compiled_with_cuda(), "auto": chosen, "triton": "available"}


def bench_ops(op: str, size: dict) -> tuple[dict, str]:
    """The soft-argmax (fp32, bf16) or IK (fp32, fp64) cases, every backend this device has."""
    from hybrik_fast import benchmark
    dev = device()
    if op == "soft_argmax":
        cases = [benchmark.soft_argmax_case(B, *size["heatmap"]) for B in size["soft_argmax_batch"]]
        dtypes = (torch.float32, torch.bfloat16)
    else:
        cases = [benchmark.ik_case(B) for B in size["ik_batch"]]
        dtypes = (torch.float32, torch.float64)
    reports = [benchmark.run(cases, dev, [torch.get_num_threads()], dtype=dtype, budget=size["budget"],
                             min_reps=1 if size is SIZES["dry"] else 3, copy_mb=size["copy_mb"], log=lambda *_: None)
               for dtype in dtypes]
    text = "\n\n".join(benchmark.format_report(r) for r in reports)
    if op == "soft_argmax":
        text += ("\n\nHBM floor: %copy is the share of the copy bandwidth (read + write) the case reaches, "
                 "i.e. (bytes read and written / copy bandwidth) / time.")
    return {"reports": reports}, text


def bench_train(size: dict) -> tuple[dict, str]:
    """The training step (fused against reference) at each batch size of the preset."""
    from hybrik_fast.train import bench as train_bench
    reports = [train_bench.run(size["train_preset"], steps=size["train_steps"], device=device().type,
                               log=lambda *_: None, overrides={"batch_size": B}) for B in size["train_batch"]]
    text = "\n\n".join(f"batch {B}:\n" + train_bench.format_report(r)
                       for B, r in zip(size["train_batch"], reports))
    return {"reports": reports}, text


def bench_train_paper(size: dict) -> tuple[dict, str]:
    """Issue 16's comparison at the paper configuration (train/bench_memory.py):
    the four heads, step time and memory above the steady state, on the GPU
    under bf16 autocast at batch 32 and 64 (the dry run: CPU, batch 2)."""
    from hybrik_fast.train import bench_memory
    reports = [bench_memory.run(batch=B, steps=size["paper_steps"], rounds=1, device=device().type,
                                log=lambda *_: None) for B in size["paper_batch"]]
    return {"reports": reports}, "\n\n".join(bench_memory.format_report(r) for r in reports)


def append(stem: str, part: str, data, text: str) -> None:
    """Adds one part to <stem>.txt and <stem>.json (atomically) and copies both to $OUT."""
    with open(stem + ".txt", "a") as f:
        f.write(f"\n== {part}\n{text}\n")
    path = stem + ".json"
    doc = {}
    if os.path.exists(path):
        with open(path) as f:
            doc = json.load(f)
    doc[part] = data
    with open(path + ".tmp", "w") as f:
        json.dump(doc, f, indent=1, default=str)
    os.replace(path + ".tmp", path)
    out = os.environ.get("OUT")
    if out:
        os.makedirs(out, exist_ok=True)
        for ext in (".txt", ".json", ".log"):
            if os.path.exists(stem + ext):
                shutil.copy(stem + ext, out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("part", choices=["slug", "versions", "check", "note", "soft_argmax", "ik", "train",
                                     "train_paper"])
    ap.add_argument("--stem", help="results path without extension")
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--text", default="", help="for note: the line to record")
    args = ap.parse_args(argv)
    if args.part == "slug":
        print(device_slug(args.dry_run))
        return 0
    size = SIZES["dry" if args.dry_run else "gpu"]
    if args.part == "versions":
        data = versions()
        text = "\n".join(f"{k}: {v}" for k, v in data.items())
    elif args.part == "check":
        data = check(args.dry_run)
        text = "\n".join(f"{k}: {v}" for k, v in data.items())
    elif args.part == "note":
        data, text = args.text, args.text
    elif args.part == "train":
        data, text = bench_train(size)
    elif args.part == "train_paper":
        data, text = bench_train_paper(size)
    else:
        data, text = bench_ops(args.part, size)
    print(text, flush=True)
    append(args.stem, args.part, data, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
