"""``hybrik-fast compare``: the seeds' comparisons on SyntheticHumans, one command.

    hybrik-fast compare [--preset cpu-quick] [--out DIR] [--budget SECONDS] [key=value ...]

1. Trains the heatmap HybrIK (seed 004), the HybrIK-Transformer (seed 002)
   and HMR (seed 003) with the preset's backbone, data, seed and a time
   budget of ``--budget`` seconds each, on one training set generated once;
   evaluates the three and the mean-pose baseline on one held-out split.
   ``--reuse`` keeps the networks already trained in OUT (to redo the tables).
   The transformer follows its paper's recipe: AdamW with the inverse-sqrt
   schedule and a linear warm-up (TRANSFORMER_WARMUP of the run, scaled with
   the run's length), and random patch dropping (the model's ``keep_range``).
   ``step_ms`` is the median training step of the run (its log, the first
   CALIBRATION_WARMUP steps left out); ``peak_mb`` the peak memory of one
   training step (hybrik_fast.benchmark.peak_mb); ``params`` the count of
   trainable parameters.
2. Table 4 shape (seed 004) on the trained HybrIK's held-out predictions: the
   24-joint MPJPE of its predicted joints, of FK(IK rotations, predicted
   shape), and of :func:`hybrik_fast.fit.smplify_3d` from the mean pose and
   from the IK's answer; with the time per sample of the IK and of the fits.
3. Table 3 shape (seed 004) on the same predictions: the adaptive and naive
   IK's joint (FK, 24 joints) and vertex errors.

Writes OUT/comparison.json (atomically) and prints the tables; each network's
run (checkpoint, log, metrics) is in OUT/<network>.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time

import torch

from hybrik_fast import benchmark, hybrik_ik
from hybrik_fast._io import atomic_write
from hybrik_fast.fit import smplify_3d
from hybrik_fast.ik import forward_kinematics
from hybrik_fast.skeleton import NUM_SMPL_JOINTS

from . import checkpoint, config
from .bench import _step_fn
from .data import build_dataset, collate, materialise
from .evaluate import body_mesh
from .budget import CALIBRATION_WARMUP
from .loop import build_body, build_loss, build_model, build_optimizer, train
from .runlog import read_csv

#: the transformer's warm-up, as a fraction of its run (the paper: 4000 of ~60k steps)
TRANSFORMER_WARMUP = 0.07
#: per network: the config keys that differ from the preset (same backbone, data, seed, budget)
#: the transformer and HMR predict no σ: cpu-quick's loss weights without the Laplace term
_NO_SIGMA_LOSS = {**config.PUBLIC_LOSS, "laplace": False}
NETWORKS = {
    "hybrik": {"head": "heatmap"},
    # the paper's d = 512, 8 heads, 6 blocks, dropout 0.1, AdamW 5e-4 with the invsqrt schedule;
    # at the cpu-quick scale d = 256 and 3 blocks (one step then costs about what HybrIK's does)
    "transformer": {"head": "transformer", "model_kwargs": {"d_model": 256, "num_heads": 8, "num_layers": 3},
                    "optimizer": "adamw", "lr": 5e-4, "schedule": "invsqrt",
                    "warmup_steps": TRANSFORMER_WARMUP, "loss": _NO_SIGMA_LOSS},
    "hmr": {"head": "hmr", "model_kwargs": {}, "loss": _NO_SIGMA_LOSS},
}
#: Tables 3 and 4: the first TABLE_SAMPLES held-out images; smplify_3d's outer L-BFGS iterations
TABLE_SAMPLES, FIT_ITERS = 100, 10
DEFAULT_BUDGET = 230.0        # seconds per network: 3 × 230 s + data + tables ≈ 14 min on 2 cores
METRICS = ("mpjpe", "pa_mpjpe", "pve")


def _mm(pred: torch.Tensor, gt: torch.Tensor) -> float:
    """24-joint MPJPE, mm, of root-relative joints (B, K ≥ 24, 3)."""
    p, g = pred[:, :NUM_SMPL_JOINTS], gt[:, :NUM_SMPL_JOINTS]
    return float(((p - p[:, :1]) - (g - g[:, :1])).norm(dim=-1).mean()) * 1000.0


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


@torch.no_grad()
def predictions(model, dataset, batch_size: int = 64) -> dict:
    """The model's held-out outputs (eval mode) and labels, concatenated over ``dataset``."""
    model.eval()
    keys = ("joints", "twist", "betas", "rotmats")
    out = {k: [] for k in keys + ("gt_joints", "gt_rotmats", "gt_betas")}
    for i in range(0, len(dataset), batch_size):
        batch = collate([dataset[j] for j in range(i, min(i + batch_size, len(dataset)))])
        o = model(batch["image"])
        for k in keys:
            out[k].append(o[k].double())
        out["gt_joints"].append(batch["joints_xyz"].double())
        out["gt_rotmats"].append(batch["rotmats"].double())
        out["gt_betas"].append(batch["betas"].double())
    return {k: torch.cat(v) for k, v in out.items()}


def table4(p: dict, body) -> dict:
    """Seed 004 Table 4 shape: MPJPE (mm, 24 joints) of the predicted joints, the IK's
    FK, and smplify_3d from the mean pose and from the IK; µs per sample of the IK and fits."""
    B = p["joints"].shape[0]
    rest = body.rest_joints(p["betas"])
    rot, t_ik = _timed(lambda: hybrik_ik(p["joints"], p["twist"], rest))
    ik_joints = forward_kinematics(rot, rest)
    mean_fit, t_mean = _timed(lambda: smplify_3d(p["joints"], body, max_iters=FIT_ITERS))
    ik_fit, t_from_ik = _timed(lambda: smplify_3d(p["joints"], body, init=(rot, p["betas"]),
                                                  max_iters=FIT_ITERS))
    gt = p["gt_joints"]
    def fk(r):
        return forward_kinematics(r.rotmats, body.rest_joints(r.betas))
    return {"predicted": _mm(p["joints"], gt), "ik": _mm(ik_joints, gt),
            "fit_from_mean": _mm(fk(mean_fit), gt), "fit_from_ik": _mm(fk(ik_fit), gt),
            "ik_us": 1e6 * t_ik / B, "fit_us": 1e6 * t_mean / B, "fit_from_ik_us": 1e6 * t_from_ik / B,
            "fit_iterations": {"from_mean": mean_fit.iterations, "from_ik": ik_fit.iterations},
            "samples": B}


def table3(p: dict, body) -> dict:
    """Seed 004 Table 3 shape on network output: adaptive (with the 15 mm fallback, as
    the model runs it) and naive IK of the predicted joints and twist; MPJPE (24 joints,
    FK) and PVE (mm) against the labels."""
    rest = body.rest_joints(p["betas"])
    gt_verts = body_mesh(body, p["gt_rotmats"], p["gt_betas"])
    rows = {}
    for name, mode, fallback in (("adaptive", "adaptive", 0.015), ("naive", "naive", None)):
        rot = hybrik_ik(p["joints"], p["twist"], rest, mode=mode, fallback=fallback)
        verts = body_mesh(body, rot, p["betas"])
        rows[name] = {"mpjpe": _mm(forward_kinematics(rot, rest), p["gt_joints"]),
                      "pve": float((verts - gt_verts).norm(dim=-1).mean()) * 1000.0}
    return rows


def step_cost(cfg: config.Config, train_set, device: torch.device) -> tuple[float, int]:
    """(peak MB of one training step, trainable parameters) of a fresh model of ``cfg``."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    batch = {k: v.to(device) for k, v in collate([train_set[i] for i in range(cfg.batch_size)]).items()}
    once = _step_fn(model, build_loss(cfg).to(device), build_optimizer(cfg, params), batch, cfg, device)
    once()                                                   # first touch
    return benchmark.peak_mb(once, device), sum(p.numel() for p in params)


def median_step_ms(run_dir: str, batch_size: int) -> float:
    """Median training step of a run, ms, from its log (images/s per step)."""
    rows = read_csv(os.path.join(run_dir, "log.csv"))[CALIBRATION_WARMUP:]
    return 1e3 * statistics.median(batch_size / float(r["images_per_s"]) for r in rows) if rows else float("nan")


def compare(base: config.Config, out: str, budget: float = DEFAULT_BUDGET, reuse: bool = False,
            log=print) -> dict:
    """Run the comparison (see the module docstring); returns what comparison.json holds.
    ``reuse``: a network whose OUT/<network>/metrics.json exists is not trained again."""
    t_start = time.time()
    if base.threads:
        torch.set_num_threads(base.threads)
    body = build_body(base)
    train_set = materialise(build_dataset(base.data, base, "train", body), "training set",
                            progress=base.progress, workers=base.num_workers)
    val_set = materialise(build_dataset(base.val_data or base.data, base, "val", body), "held-out set",
                          progress=base.progress, workers=base.num_workers)
    device = torch.device("cuda" if base.device == "cuda" or (base.device == "auto"
                                                             and torch.cuda.is_available()) else "cpu")
    networks, summaries = {}, {}
    for name, keys in NETWORKS.items():
        cfg = dataclasses.replace(base, **keys, out=os.path.join(out, name), time_budget=budget,
                                  baselines=name == "hybrik", predictions_png=0)
        config.validate(cfg)
        log(f"--- {name}: {cfg.head} head, {cfg.backbone}, {budget:.0f} s")
        done = os.path.join(cfg.out, "metrics.json")
        if reuse and os.path.exists(done):
            log(f"reusing the finished run in {cfg.out}")
            with open(done) as f:
                summaries[name] = s = json.load(f)
        else:
            summaries[name] = s = train(cfg, train_set=train_set, val_set=val_set)
        peak, n_params = step_cost(cfg, train_set, device)
        networks[name] = {**{k: s["trained"][k] for k in METRICS}, "step_ms": median_step_ms(cfg.out, cfg.batch_size),
                          "peak_mb": peak, "params": n_params, "steps": s["steps"], "seconds": s["seconds"]}
    networks["mean_pose"] = {k: summaries["hybrik"]["mean_pose"][k] for k in METRICS}

    hybrik_cfg = dataclasses.replace(base, **NETWORKS["hybrik"])
    model = build_model(hybrik_cfg, torch.device("cpu"), body)
    model.load_state_dict(checkpoint.model_state(checkpoint.load(os.path.join(out, "hybrik", "last.pt"))))
    body64 = build_body(base).double()
    p = predictions(model, torch.utils.data.Subset(val_set, range(min(TABLE_SAMPLES, len(val_set)))))
    result = {"networks": networks, "table4": table4(p, body64), "table3": table3(p, body64),
              "header": {**benchmark.header(device, torch.float32), "preset_config": config.to_dict(base),
                         "budget_s": budget, "threads": torch.get_num_threads(),
                         "loadavg_at_end": list(os.getloadavg()), "seconds": time.time() - t_start}}
    atomic_write(os.path.join(out, "comparison.json"),
                 lambda fh: fh.write(json.dumps(result, indent=2).encode()))
    log(format_report(result))
    return result


def format_report(r: dict) -> str:
    head = f"{'network':<12}{'MPJPE':>8}{'PA-MPJPE':>10}{'PVE':>8}{'step ms':>9}{'peak MB':>9}{'params':>12}"
    lines = ["held-out, mm", head, "-" * len(head)]
    for name, m in r["networks"].items():
        extra = (f"{m['step_ms']:>9.1f}{m['peak_mb']:>9.1f}{m['params']:>12,d}" if "params" in m else "")
        lines.append(f"{name:<12}{m['mpjpe']:>8.1f}{m['pa_mpjpe']:>10.1f}{m['pve']:>8.1f}{extra}")
    t4 = r["table4"]
    lines += ["", "Table 4 shape (HybrIK's held-out predictions, 24-joint MPJPE, mm)",
              f"predicted joints {t4['predicted']:.1f} | IK (FK of its rotations) {t4['ik']:.1f} | "
              f"smplify_3d from the mean pose {t4['fit_from_mean']:.1f} | from the IK {t4['fit_from_ik']:.1f}",
              f"per sample: IK {t4['ik_us']:.1f} µs, fit {t4['fit_us']:.0f} µs "
              f"(from the IK {t4['fit_from_ik_us']:.0f} µs)",
              "", "Table 3 shape (the same predictions, mm)"]
    for name, m in r["table3"].items():
        lines.append(f"{name:<10} MPJPE {m['mpjpe']:.1f}  PVE {m['pve']:.1f}")
    return "\n".join(lines)


def compare_main(argv=None) -> int:
    from .data import DataSpecError
    from .loop import TrainingError
    from .run import _overrides
    p = argparse.ArgumentParser(prog="hybrik-fast compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cpu-quick", choices=list(config.PRESETS))
    p.add_argument("--out", default="runs/compare")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET, help="training seconds per network")
    p.add_argument("--reuse", action="store_true",
                   help="keep the networks already trained in OUT (their metrics.json); redo the rest")
    args, rest = p.parse_known_args(argv)
    try:
        cfg = config.make_config(args.preset, None, _overrides(rest))
        compare(cfg, args.out, args.budget, reuse=args.reuse)
    except (config.ConfigError, DataSpecError, TrainingError, FileNotFoundError) as e:
        print(f"hybrik-fast compare: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, config.ConfigError) else 1
    return 0
