"""bench/gpu/run.sh --dry-run: the GPU script end to end on CPU (tiny sizes,
the Triton interpreter), so that the one command a GPU machine runs is
proven before a GPU sees it."""
import glob
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARTS = ["versions", "check", "soft_argmax", "ik", "train", "train_paper"]


def test_gpu_run_dry_run_writes_every_part(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "RESULTS_DIR": str(tmp_path / "results"),
           "OUT": str(tmp_path / "out")}
    env.pop("TRITON_INTERPRET", None)
    res = subprocess.run(["bash", os.path.join(ROOT, "bench", "gpu", "run.sh"), "--dry-run"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    stems = {os.path.splitext(p)[0] for p in glob.glob(str(tmp_path / "results" / "gpu-cpu-dryrun-*"))}
    assert len(stems) == 1
    stem = stems.pop()
    for ext in (".txt", ".json", ".log"):
        assert os.path.exists(stem + ext)
        assert os.path.exists(tmp_path / "out" / os.path.basename(stem + ext))  # copied to $OUT
    doc = json.load(open(stem + ".json"))
    assert list(doc) == PARTS
    assert doc["check"]["auto"] == {"soft_argmax3d": "cpu", "hybrik_ik": "cpu"}
    backends = {r["backend"] for rep in doc["soft_argmax"]["reports"] for r in rep["results"] if r["error"] is None}
    assert backends == {"reference", "cpu", "triton"}  # the Triton kernels ran, on the interpreter
    dtypes = [rep["header"]["dtype"] for rep in doc["ik"]["reports"]]
    assert dtypes == ["float32", "float64"]
    assert all(rep["steps"]["fused"]["step_s"] > 0 for rep in doc["train"]["reports"])
    paper = doc["train_paper"]["reports"]
    assert [rep["header"]["batch"] for rep in paper] == [2]
    for rep in paper:
        assert set(rep["rows"]) == {"reference", "fused soft-argmax", "fused soft-argmax, no cache",
                                    "conv_soft_argmax3d", "transformer"}
        assert all(r[part]["step_s"] > 0 and r[part]["peak_mb"] > 0 for r in rep["rows"].values()
                   for part in ("step", "head"))
    assert "FAILED" not in open(stem + ".txt").read()
