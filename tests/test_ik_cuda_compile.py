"""The CUDA kernels of the fused IK compile with nvcc (no GPU needed).

The kernel translation unit (csrc/ik/ik_cuda_kernel.cuh + the ik/*.h maths) needs
no torch headers, so it builds with plain nvcc even beside a CPU-only torch.
Skipped where nvcc is not on PATH.
"""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NVCC = shutil.which("nvcc")

INSTANTIATE = """
#include "ik/ik_cuda_kernel.cuh"
namespace hybrik_fast { namespace ik {
template void launch_ik_forward<float>(const float*, const float*, const float*, int, double, float*, int64_t,
                                       cudaStream_t);
template void launch_ik_forward<double>(const double*, const double*, const double*, int, double, double*,
                                        int64_t, cudaStream_t);
template void launch_ik_backward<float>(const float*, const float*, const float*, const float*, int, double,
                                        float*, float*, float*, int64_t, cudaStream_t);
template void launch_ik_backward<double>(const double*, const double*, const double*, const double*, int, double,
                                         double*, double*, double*, int64_t, cudaStream_t);
}}
"""


@pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH")
def test_ik_kernels_compile_with_nvcc(tmp_path):
    src = tmp_path / "ik_kernels.cu"
    src.write_text(INSTANTIATE)
    cmd = [NVCC, "-std=c++17", "-O3", "-arch=sm_90", "-Werror", "all-warnings", "-c", str(src),
           "-I", os.path.join(ROOT, "csrc"), "-o", str(tmp_path / "ik_kernels.o")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
