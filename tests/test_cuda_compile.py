"""Every CUDA source of the extension compiles with nvcc (no GPU needed).

bench/gpu/cuda_compile.py compiles each csrc/**/*.cu, the torch glue
included, with -c for sm_90 against the installed torch's headers (a CPU
build of torch ships them), as setup.py would, and lists each kernel's
registers, stack frame and spills.  Skipped where nvcc is not on PATH.
"""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")
def test_every_cu_file_compiles_for_sm90(tmp_path):
    out = tmp_path / "ptxas.txt"
    res = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gpu", "cuda_compile.py"),
                          "--arch", "90", "--out", str(out)], capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stderr[-4000:]
    rows = [line.split()[0] for line in out.read_text().splitlines()[3:]]
    # the IK: forward and backward, float and double, three modes each
    assert sorted(r for r in rows if r.startswith("ik_")) == sorted(
        f"ik_{p}_kernel<{t}," for p in ("forward", "backward") for t in ("float", "double") for _ in range(3))
