"""Training across processes: SIGKILL and --resume, and DDP with 2 gloo processes (CPU)."""
import csv
import os
import re
import signal
import subprocess
import sys

import pytest
import torch

ARGS = ["--preset", "tiny", "image_size=64", "heatmap_size=[4,16,16]", "model_kwargs={deconv_channels: 16}",
        "train_length=8", "val_length=4", "batch_size=2", "baselines=false", "predictions_png=0",
        "progress=false", "threads=1"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}


def _train(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "hybrik_fast.train", *ARGS, *args],
                          capture_output=True, text=True, timeout=timeout, env=ENV)


def _losses(out):
    with open(os.path.join(out, "log.csv")) as f:
        return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f)]


def test_killed_and_resumed_run_logs_the_same_losses(tmp_path):
    """Point 4: a run SIGKILLed after the checkpoint of step 3, then resumed, matches an
    uninterrupted run step for step (6 steps over 2 epochs, dropout on, 1 thread)."""
    full, broken = tmp_path / "full", tmp_path / "broken"
    r = _train(f"out={full}", "max_steps=6", "ckpt_every=1")
    assert r.returncode == 0, r.stderr
    r = _train(f"out={broken}", "max_steps=6", "ckpt_every=1", "kill_after_step=3")
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert [s for s, _ in _losses(broken)] == [1, 2, 3]
    r = _train(f"out={broken}", "--resume")
    assert r.returncode == 0, r.stderr
    assert [s for s, _ in _losses(broken)] == list(range(1, 7))
    assert _losses(broken) == _losses(full)                           # bit-identical floats
    a = torch.load(full / "last.pt", weights_only=True)["model"]
    b = torch.load(broken / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_torchrun_two_gloo_processes_end_with_identical_parameters(tmp_path):
    """Point 5: DDP over 2 CPU processes (gloo); rank 0 alone writes; both ranks agree."""
    out = tmp_path / "ddp"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        "--nproc_per_node=2", "-m", "hybrik_fast.train", *ARGS, f"out={out}",
                        "max_steps=3"], capture_output=True, text=True, timeout=300, env=ENV)
    assert r.returncode == 0, r.stdout + r.stderr
    sums = dict(re.findall(r"rank (\d): parameter sha256 ([0-9a-f]{64})", r.stdout))
    assert set(sums) == {"0", "1"} and sums["0"] == sums["1"], r.stdout
    steps = [s for s, _ in _losses(out)]
    assert steps == [1, 2, 3]                                          # one writer: no duplicate rows
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["step"] == 3 and not any(k.startswith("module.") for k in ckpt["model"])
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".pt") == ["best.pt", "last.pt"]


@pytest.mark.parametrize("name", ["train", "eval"])
def test_cli_help(name):
    r = subprocess.run([sys.executable, "-m", "hybrik_fast", name, "--help"], capture_output=True,
                       text=True, timeout=120, env=ENV)
    assert r.returncode == 0 and ("--resume" in r.stdout if name == "train" else "--checkpoint" in r.stdout)
