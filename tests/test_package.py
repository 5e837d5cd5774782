"""Packaging: the extension is optional at import time, and kernels/ and
train/ install only inside hybrik_fast."""
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_import_without_the_extension_uses_the_reference_and_says_so():
    code = textwrap.dedent("""
        import importlib.abc, sys, warnings
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "hybrik_fast._C":
                    raise ImportError("not built")
        sys.meta_path.insert(0, Block())
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            import torch, hybrik_fast
        assert any("hybrik_fast._C could not be loaded" in str(x.message) for x in w), w
        assert hybrik_fast._backend.compiled_backends()["cpu"] is False
        x = torch.randn(2, 29, 3, 4, 5, generator=torch.Generator().manual_seed(0))
        c = hybrik_fast.soft_argmax3d(x)  # auto falls back to the reference
        assert torch.allclose(c, hybrik_fast.reference.soft_argmax3d(x))
        try:
            hybrik_fast.soft_argmax3d(x, backend="cpu")
        except RuntimeError as e:
            assert "extension is not built" in str(e)
        else:
            raise AssertionError("backend='cpu' ran without the extension")
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_kernels_and_train_install_inside_the_package(tmp_path):
    """The installed package holds kernels/ and train/ as hybrik_fast.kernels and
    hybrik_fast.train, and puts no top-level ``kernels`` or ``train`` on the path."""
    code = textwrap.dedent("""
        import importlib.util
        import hybrik_fast.kernels, hybrik_fast.train.config
        assert importlib.util.find_spec("kernels") is None, "a top-level kernels package"
        assert importlib.util.find_spec("train") is None, "a top-level train package"
        print("ok")
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
