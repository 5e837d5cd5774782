"""The command line: ``python -m hybrik_fast info`` and ``bench --quick``."""
import json
import os
import subprocess
import sys

import pytest
import torch

from hybrik_fast import _backend
from hybrik_fast.benchmark import PASSES, available


def _run(*args, timeout=120):
    out = subprocess.run([sys.executable, "-m", "hybrik_fast", *args], capture_output=True,
                         text=True, timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_info_mentions_versions_and_backends():
    text = _run("info")
    assert f"torch {torch.__version__}" in text
    for name, ok in _backend.compiled_backends().items():
        assert f"{name} {'yes' if ok else 'no'}" in text
    for op in _backend.OPS:
        assert op in text
    assert "available on cpu" in text


def test_bench_quick_table_and_json(tmp_path):
    path = tmp_path / "bench.json"
    text = _run("bench", "--quick", "--device", "cpu", "--soft-argmax-batch", "1", "--ik-batch", "1",
                "--heatmap", "4x3x5x6", "--threads", "1", "--json", str(path))
    report = json.loads(path.read_text())
    assert set(report) == {"header", "copy", "results"}
    assert {"machine", "versions", "commit", "device"} <= set(report["header"])
    assert report["copy"][0]["threads"] == 1 and report["copy"][0]["gbps"] > 0

    cpu = torch.device("cpu")
    for op, case in [("soft_argmax3d", "B=1 4x3x5x6"), ("hybrik_ik", "B=1 adaptive")]:
        for backend in available(op, cpu):
            rows = [r for r in report["results"] if r["op"] == op and r["backend"] == backend]
            assert [r["pass"] for r in rows] == list(PASSES)
            table_rows = [line for line in text.splitlines()
                          if line.startswith(op) and case in line and f" {backend} " in line]
            assert len(table_rows) == len(PASSES), (op, backend, text)
        ref = [r for r in report["results"] if r["op"] == op and r["backend"] == "reference"]
        assert all(r["error"] is None and r["ms"] > 0 and r["vs_reference"] == 1.0 for r in ref)
        assert ref[-1]["peak_mb"] is not None
        if op == "hybrik_ik":
            assert all(r["poses_per_s"] > 0 for r in ref)
        else:
            assert all(r["copy_frac"] > 0 for r in ref)


def test_bench_quick_conv_soft_argmax_rows(tmp_path):
    """``--ops conv_soft_argmax``: every backend and the materialised path, each
    pass, with GFLOP/s from the materialised path's GEMM count (hand-derived:
    2·B·K·D·C·H·W flops per GEMM; 1, 2, 3 GEMMs in fwd, bwd, fwd+bwd)."""
    path = tmp_path / "bench.json"
    text = _run("bench", "--quick", "--device", "cpu", "--ops", "conv_soft_argmax", "--soft-argmax-batch", "2",
                "--heatmap", "3x4x5x6", "--channels", "8", "--threads", "1", "--json", str(path))
    report = json.loads(path.read_text())
    gemm = 2 * 2 * 3 * 4 * 8 * 5 * 6
    backends = available("conv_soft_argmax3d", torch.device("cpu")) + ["materialised"]
    assert "reference" in backends and "cpu" in backends
    for backend in backends:
        rows = [r for r in report["results"] if r["backend"] == backend]
        assert [r["pass"] for r in rows] == list(PASSES), backend
        for r, n in zip(rows, (1, 2, 3)):
            assert r["error"] is None and r["op"] == "conv_soft_argmax3d"
            assert r["gflops"] == pytest.approx(n * gemm / (r["ms"] / 1e3) / 1e9, rel=1e-9)
            assert r["vs_reference"] > 0
        lines = [line for line in text.splitlines()
                 if line.startswith("conv_soft_argmax3d") and "B=2 C=8 3x4x5x6" in line and f" {backend} " in line]
        assert len(lines) == len(PASSES), (backend, text)
    assert "GFLOP/s" in text


def test_paper_prints_the_three_tables():
    text = _run("paper", "--backend", "reference")
    for title in ("Round trip", "Table 1 shape", "Table 3 shape"):
        assert title in text
    assert "adaptive+fallback" in text


def test_bench_model_quick_table_and_json(tmp_path):
    """``bench --model resnet34 --quick``: both backends at B = 1 and 8, ms and the
    soft-argmax / IK / body shares of each forward (fractions of it)."""
    path = tmp_path / "model.json"
    text = _run("bench", "--model", "resnet34", "--quick", "--device", "cpu", "--json", str(path),
                timeout=600)
    rows = json.loads(path.read_text())["rows"]
    assert {(r["B"], r["backend"]) for r in rows} == {(1, "auto"), (1, "reference"), (8, "auto"), (8, "reference")}
    for r in rows:
        shares = [r[k] for k in r if k.endswith("_share")]
        assert r["ms"] > 0 and len(shares) == 3 and all(0 <= s <= 1 for s in shares) and sum(shares) < 1
        assert f"resnet34  cpu     {r['B']} {r['backend']}" in text
