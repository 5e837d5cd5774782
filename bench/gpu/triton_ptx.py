"""Compile the Triton soft-argmax kernels ahead of time for a GPU that is not
here, and count the instructions of their per-voxel loops.

    python bench/gpu/triton_ptx.py [--arch 90] [--out PATH]

Triton compiles to PTX and, with the ptxas it ships, to a cubin without a GPU
(``triton.compile`` of an ``ASTSource`` for ``GPUTarget("cuda", arch, 32)``).
For each kernel, in float32: the PTX and SASS instructions of its innermost
loop (the one that loads the logits), divided by the voxels each thread
handles per iteration, and the integer divisions and remainders the PTX
loop holds.  Writes ``--out`` (default
``bench/results/gpu-triton-sm<arch>.txt``).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

import triton
import triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: pointer arguments that are float64 whatever the input dtype
_FP64_POINTERS = {"lse_ptr"}
#: the per-voxel kernels
KERNELS = ("_fwd_partial_kernel", "_bwd_kernel")


def _signature(fn, constexprs: dict) -> dict:
    sig = {}
    for name in fn.arg_names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name.endswith("_ptr"):
            sig[name] = "*fp64" if name in _FP64_POINTERS else "*fp32"
        else:
            sig[name] = "i32"
    return sig


def compile_kernel(fn, arch: int, constexprs: dict):
    src = ASTSource(fn=fn, signature=_signature(fn, constexprs), constexprs=constexprs)
    return triton.compile(src, target=GPUTarget("cuda", arch, 32))


def _instructions(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        s = line.split("//")[0].strip()
        if not s or s.endswith(":") or s.startswith(".") or s in ("{", "}") or s.startswith("$L__tmp"):
            continue
        out.append(s)
    return out


def innermost_loop(text: str, label_re: str, branch_re: str, load: str) -> list[str]:
    """The instructions of the shortest backward-branching loop that contains `load`."""
    lines = text.splitlines()
    labels = {}
    best = None
    for i, line in enumerate(lines):
        if (m := re.match(label_re, line.strip())):
            labels[m.group(1)] = i
        elif (m := re.search(branch_re, line)) and m.group(1) in labels:
            body = lines[labels[m.group(1)]:i + 1]
            if any(load in b for b in body) and (best is None or len(body) < len(best)):
                best = body
    return _instructions(best or [])


def _cuda_tool(tool: str, cubin: bytes, *flags: str) -> str:
    """The output of one of the CUDA tools Triton ships (nvdisasm, cuobjdump) on a cubin."""
    path = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", tool)
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        return subprocess.run([path, *flags, f.name], capture_output=True, text=True, check=True).stdout


def measure(fn, arch: int, constexprs: dict, voxels_per_iteration: int) -> dict:
    """Loop instructions per voxel of one kernel (float32)."""
    c = compile_kernel(fn, arch, constexprs)
    threads = c.metadata.num_warps * 32
    per_thread = max(1, voxels_per_iteration // threads)
    ptx = innermost_loop(c.asm["ptx"], r"^(\$L__BB\d+_\d+):", r"bra(?:\.uni)?\s+(\$L__BB\d+_\d+);", "ld.global")
    sass = innermost_loop(_cuda_tool("nvdisasm", c.asm["cubin"], "-c"), r"^(\.L_x_\d+):",
                          r"BRA\s+`?\(?(\.L_x_\d+)", "LDG")
    usage = _cuda_tool("cuobjdump", c.asm["cubin"], "-res-usage")
    regs, stack = (int(re.search(rf"{key}:(\d+)", usage).group(1)) for key in ("REG", "STACK"))
    divs = sum(1 for s in ptx if re.match(r"(@%p\d+\s+)?(div|rem)\.[su]", s))
    return {"kernel": fn.__name__, "voxels_per_thread": per_thread, "ptx": len(ptx), "sass": len(sass),
            "ptx_per_voxel": len(ptx) / per_thread, "sass_per_voxel": len(sass) / per_thread,
            "int_div_rem": divs, "registers": regs, "stack": stack}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", type=int, default=90)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    from hybrik_fast.kernels import soft_argmax as k
    tile_rows, block_w = k.tile_shape(64, 64)  # the 29×64³ heatmap's tile
    constexprs = {"ACC": tl.float32, "ROWS": tile_rows, "BLOCK_W": block_w}
    rows = [measure(getattr(k, name), args.arch, constexprs, tile_rows * block_w) for name in KERNELS]
    text = (f"# Triton soft-argmax kernels compiled ahead of time for sm_{args.arch} (no GPU), float32:\n"
            "# instructions of the per-voxel loop / voxels per thread per iteration\n"
            "# (python bench/gpu/triton_ptx.py)\n"
            f"{'kernel':<22} {'vox/thr':>7} {'PTX':>5} {'PTX/vox':>8} {'SASS':>5} {'SASS/vox':>9} "
            f"{'div/rem':>7} {'regs':>5} {'stack':>6}\n")
    for r in rows:
        text += (f"{r['kernel']:<22} {r['voxels_per_thread']:>7} {r['ptx']:>5} {r['ptx_per_voxel']:>8.1f} "
                 f"{r['sass']:>5} {r['sass_per_voxel']:>9.1f} {r['int_div_rem']:>7} {r['registers']:>5} "
                 f"{r['stack']:>6}\n")
    print(text, end="")
    out = args.out or os.path.join(ROOT, "bench", "results", f"gpu-triton-sm{args.arch}.txt")
    with open(out + ".tmp", "w") as f:
        f.write(text)
    os.replace(out + ".tmp", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
