"""Builds hybrik_fast and its extension hybrik_fast._C.

The CPU sources (csrc/**/*.cpp) are always built.  The CUDA sources
(csrc/**/*.cu) are built when a CUDA toolkit and a CUDA build of torch are
both present.  HYBRIK_FAST_CUDA=1 forces CUDA (and fails if it cannot),
HYBRIK_FAST_CUDA=0 skips it.  Needs torch at build time: install with
``pip install --no-build-isolation .``.
"""
import glob
import os

from setuptools import setup
from torch.utils import cpp_extension

ROOT = os.path.dirname(os.path.abspath(__file__))


def use_cuda() -> bool:
    import torch

    switch = os.environ.get("HYBRIK_FAST_CUDA", "auto").lower()
    possible = cpp_extension.CUDA_HOME is not None and torch.version.cuda is not None
    if switch in ("0", "false", "off", "no"):
        return False
    if switch in ("1", "true", "on", "yes"):
        if not possible:
            raise RuntimeError(
                "HYBRIK_FAST_CUDA=1 but CUDA cannot be built: "
                f"CUDA_HOME={cpp_extension.CUDA_HOME}, torch.version.cuda={torch.version.cuda}")
        return True
    return possible


def extension():
    rel = lambda paths: sorted(os.path.relpath(p, ROOT) for p in paths)  # noqa: E731
    cpp = rel(glob.glob(os.path.join(ROOT, "csrc", "**", "*.cpp"), recursive=True))
    cu = rel(glob.glob(os.path.join(ROOT, "csrc", "**", "*.cu"), recursive=True))
    # -fno-math-errno / -fno-trapping-math: sqrt is one instruction, and loops
    # with a guarded division (csrc/ik) vectorise; no results change (no
    # -ffast-math: NaN and inf keep their IEEE semantics)
    cxx = ["-O3", "-std=c++17", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
    if use_cuda():
        return cpp_extension.CUDAExtension(
            "hybrik_fast._C", cpp + cu,
            include_dirs=[os.path.join(ROOT, "csrc")],
            define_macros=[("WITH_CUDA", None)],
            extra_compile_args={"cxx": cxx, "nvcc": ["-O3", "-std=c++17"]})
    return cpp_extension.CppExtension(
        "hybrik_fast._C", cpp, include_dirs=[os.path.join(ROOT, "csrc")],
        extra_compile_args={"cxx": cxx})


setup(
    ext_modules=[extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)},
)
