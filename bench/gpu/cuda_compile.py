"""Compile every CUDA source of the extension with nvcc, no GPU needed, and
report what ptxas says of each kernel: registers, stack frame, spills.

    python bench/gpu/cuda_compile.py [--arch 90] [--out PATH]

Each ``csrc/**/*.cu`` (the torch glue included) is compiled with ``-c`` for
``sm_<arch>`` against the installed torch's headers, with the flags
``setup.py`` gives nvcc plus torch's own (``COMMON_NVCC_FLAGS``).  A CPU-only
torch ships the CUDA headers but not the one its CMake generates,
``c10/cuda/impl/cuda_cmake_macros.h``; ``-DC10_CUDA_NO_CMAKE_CONFIGURE_FILE``
(torch's own switch for builds without it) skips it, and no shim is needed.

Prints one line per kernel and writes the table to ``--out`` (default
``bench/results/gpu-ptxas-sm<arch>.txt``).  Exits non-zero if a file fails to
compile.  tests/test_cuda_compile.py runs it.
"""
from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

from torch.utils import cpp_extension

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_ENTRY = re.compile(r"Compiling entry function '(\w+)' for '(\w+)'")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_REGS = re.compile(r"Used (\d+) registers")
_IK = re.compile(r"\d(ik_(?:forward|backward)_kernel)I([fd])LNS0_4ModeE(\d)E")
_MODES = {"0": "naive", "1": "adaptive", "2": "adaptive_fallback"}


def sources() -> list[str]:
    """Every .cu file of the extension, relative to the repository root."""
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "csrc", "**", "*.cu"),
                                                                 recursive=True))


def nvcc_command(nvcc: str, src: str, obj: str, arch: int) -> list[str]:
    includes = [os.path.join(ROOT, "csrc")] + cpp_extension.include_paths()
    return ([nvcc, "-std=c++17", "-O3", f"-arch=sm_{arch}", "-c", os.path.join(ROOT, src), "-o", obj,
             "-DWITH_CUDA", "-DC10_CUDA_NO_CMAKE_CONFIGURE_FILE", "-DTORCH_EXTENSION_NAME=_C",
             "-Xptxas", "-v"] + cpp_extension.COMMON_NVCC_FLAGS + [f"-I{p}" for p in includes])


def readable(name: str) -> str:
    """ik_backward_kernel<float, adaptive_fallback> for the IK kernels' mangled names."""
    m = _IK.search(name)
    if m is None:
        return name
    return f"{m.group(1)}<{'float' if m.group(2) == 'f' else 'double'}, {_MODES.get(m.group(3), m.group(3))}>"


def parse_ptxas(log: str) -> list[dict]:
    """One dict per kernel of an nvcc -Xptxas -v log: name, registers, stack, spill stores/loads (bytes)."""
    rows, cur = [], None
    for line in log.splitlines():
        if (m := _ENTRY.search(line)):
            cur = {"kernel": readable(m.group(1)), "arch": m.group(2)}
            rows.append(cur)
        elif cur is not None and (m := _FRAME.search(line)):
            cur.update(stack=int(m.group(1)), spill_stores=int(m.group(2)), spill_loads=int(m.group(3)))
        elif cur is not None and (m := _REGS.search(line)):
            cur["registers"] = int(m.group(1))
    return rows


def compile_all(arch: int, nvcc: str) -> tuple[list[dict], list[str]]:
    """(kernels, failures): compiles every source; failures holds the nvcc error logs."""
    kernels, failures = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for src in sources():
            obj = os.path.join(tmp, os.path.basename(src) + ".o")
            res = subprocess.run(nvcc_command(nvcc, src, obj, arch), capture_output=True, text=True)
            if res.returncode != 0:
                failures.append(f"{src}:\n{res.stderr[-4000:]}")
                continue
            for row in parse_ptxas(res.stdout + res.stderr):
                row["source"] = src
                kernels.append(row)
    return kernels, failures


def table(kernels: list[dict], arch: int) -> str:
    head = (f"# nvcc -Xptxas -v, sm_{arch}: per kernel, registers per thread and bytes of local memory per "
            "thread\n# (python bench/gpu/cuda_compile.py)\n")
    cols = f"{'kernel':<46} {'regs':>5} {'stack':>7} {'spill st':>9} {'spill ld':>9}  source\n"
    lines = [f"{k['kernel']:<46} {k.get('registers', 0):>5} {k.get('stack', 0):>7} "
             f"{k.get('spill_stores', 0):>9} {k.get('spill_loads', 0):>9}  {k['source']}" for k in kernels]
    return head + cols + "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", type=int, default=90, help="compute capability as one number (default 90)")
    ap.add_argument("--out", help="table path (default bench/results/gpu-ptxas-sm<arch>.txt)")
    args = ap.parse_args(argv)
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        print("nvcc is not on PATH", file=sys.stderr)
        return 2
    kernels, failures = compile_all(args.arch, nvcc)
    for f in failures:
        print(f, file=sys.stderr)
    text = table(kernels, args.arch)
    print(text, end="")
    out = args.out or os.path.join(ROOT, "bench", "results", f"gpu-ptxas-sm{args.arch}.txt")
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, out)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
