"""Why the cpu-quick HybrIK's PA-MPJPE stays near the mean pose's: what the held-out
labels allow, with no training (issue 19, point 2).

    python bench/pa_floor.py [--n 200] [--json PATH] [--checkpoint CKPT]

On the cpu-quick held-out split (SyntheticHumans val, 64 px) it reports, in mm
(24 joints, the protocol of hybrik_fast.train.evaluate):

* ``decode_gt``: the labels (uvd, twist, β, camera) through the model's own
  path (back-projection, IK, body model, joints regressed from the mesh):
  the pipeline's floor;
* ``mean_pose``: the training set's mean pose and shape (the baseline);
  per joint too;
* ``noise_<σ>``: the labelled joints with isotropic Gaussian noise of σ mm per
  coordinate, through the IK path: the joint accuracy a network needs to
  match the mean pose after Procrustes alignment;
* ``depth_noise_<σ>``: noise on the depth coordinate only (exact 2D);
* ``pixel_mm``: the size of one input pixel at the person (median), so the
  accuracies above can be read in pixels of the 64 px crop.

With ``--checkpoint CKPT`` (a ``hybrik-fast train`` checkpoint of the heatmap
head) it also splits that model's held-out error (``checkpoint``), in mm
unless named otherwise:

* ``pa``: its PA-MPJPE (the IK path, joints from the mesh);
* ``pa_label_depth`` / ``pa_label_2d``: the same with its relative depth
  (d) / its 2D (u, v) replaced by the labels': which of the two carries the
  error;
* ``uv_px``, ``d_mm``: mean 2D error (crop pixels) and depth error per joint;
* ``slope_uv``, ``slope_d`` (and ``corr_*``): the least-squares slope and the
  correlation of the predicted root-relative coordinates on the labels' (24
  joints): a slope near 0 means the prediction stays at the mean;
* ``heatmap_d_mm``: the spread (standard deviation) of the depth marginals
  of the heatmaps, to compare with ``d_mm``: a spread far below the error is
  a collapsed, confidently wrong depth whose soft-argmax gradient vanishes
  (``heatmap_d_mm_per_joint``: the median over images, per joint);
* ``trunk_grad``: the norm of each weighted loss term's gradient on the
  backbone (training mode, 4 batches of the training split): the share of
  the pose term in what the trunk learns.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from hybrik_fast import metrics
from hybrik_fast.camera import DEPTH_RANGE, FOCAL_NORM
from hybrik_fast.models.common import BodyHeadModel
from hybrik_fast.models.heatmap import heatmap_logits
from hybrik_fast.skeleton import JOINT_NAMES, NUM_SMPL_JOINTS
from hybrik_fast.train import config
from hybrik_fast.train.data import build_dataset, collate, materialise
from hybrik_fast.train.evaluate import MeanPoseModel
from hybrik_fast.train.loop import build_body

NOISE_MM = (25, 50, 75, 100, 150)


def pa(joints: torch.Tensor, gt: torch.Tensor) -> float:
    return float(metrics.pa_mpjpe(joints[:, :NUM_SMPL_JOINTS], gt[:, :NUM_SMPL_JOINTS]))


def _slope(pred: torch.Tensor, label: torch.Tensor) -> tuple[float, float]:
    """Least-squares slope and correlation of pred on label (pooled entries, centred per entry)."""
    p, g = pred - pred.mean(0), label - label.mean(0)
    pg, gg, pp = float((p * g).sum()), float((g * g).sum()), float((p * p).sum())
    return pg / gg, pg / (gg * pp) ** 0.5


@torch.no_grad()
def _depth_spread(model, images: torch.Tensor) -> torch.Tensor:
    """(N, K) standard deviation, mm, of each heatmap's depth marginal (ResNet heatmap head)."""
    logits = heatmap_logits(model.heatmap_features(images)[0], model.final_layer, model.heatmap_size)       # (N, K, D, H, W)
    N, K, D = logits.shape[:3]
    pd = logits.reshape(N, K, -1).softmax(-1).reshape(logits.shape).sum((3, 4))  # (N, K, D)
    x = torch.arange(D, dtype=pd.dtype) / D
    var = (pd * x * x).sum(-1) - (pd * x).sum(-1) ** 2
    return var.clamp_min(0).sqrt() * DEPTH_RANGE * 1000


def trained(path: str, n: int, n_grad_batches: int = 4) -> dict:
    """The split of a checkpoint's error on the first ``n`` images of its own held-out
    split (its image size and seed; see the module docstring)."""
    from hybrik_fast.losses import HybrIKLoss
    from hybrik_fast.train.checkpoint import load, model_state
    from hybrik_fast.train.loop import build_model

    ckpt = load(path)
    cfg = config.from_dict(ckpt["config"])
    body = build_body(cfg)
    model = build_model(cfg, torch.device("cpu"), body)
    model.load_state_dict(model_state(ckpt))
    model.eval()
    J, S = NUM_SMPL_JOINTS, cfg.image_size
    val = build_dataset("synthetic", cfg, "val", body)
    batch = collate([val[i] for i in range(min(n, len(val)))])
    gt = batch["joints_xyz"].double()
    with torch.no_grad():
        raw = model.predict(batch["image"])
        pred, label = raw["uvd"], batch["joints_uvd"].to(raw["uvd"].dtype)

        def pa_of(uvd):
            return pa(model.decode(uvd, raw["twist"], raw["betas"], raw["camera"]).joints_from_mesh.double(), gt)

        out = {"pa": pa_of(pred),
               "pa_label_depth": pa_of(torch.cat([pred[..., :2], label[..., 2:]], -1)),
               "pa_label_2d": pa_of(torch.cat([label[..., :2], pred[..., 2:]], -1))}
        err = pred - label
        out["uv_px"] = float(err[:, :J, :2].norm(dim=-1).mean()) * S
        out["d_mm"] = float(err[:, :J, 2].abs().mean()) * DEPTH_RANGE * 1000
        rel_p, rel_g = (pred - pred[:, :1])[:, 1:J], (label - label[:, :1])[:, 1:J]
        out["slope_uv"], out["corr_uv"] = _slope(rel_p[..., :2], rel_g[..., :2])
        out["slope_d"], out["corr_d"] = _slope(rel_p[..., 2], rel_g[..., 2])
        if hasattr(model, "deconv_layers"):
            spread = _depth_spread(model, batch["image"])                    # (N, K) mm
            out["heatmap_d_mm"] = float(spread[:, 1:J].mean())
            out["heatmap_d_mm_per_joint"] = {JOINT_NAMES[j]: float(spread[:, j].median()) for j in range(J)}
    per = (err[:, :J, 2].abs().mean(0) * DEPTH_RANGE * 1000).tolist()
    out["d_mm_per_joint"] = {JOINT_NAMES[j]: per[j] for j in range(J)}
    # each weighted loss term's gradient on the trunk (training mode, as a step sees it)
    loss_fn = HybrIKLoss(**cfg.loss)
    train = build_dataset("synthetic", cfg, "train", body)
    trunk = list(model.preact.parameters())
    model.train()
    torch.manual_seed(0)
    norms: dict[str, float] = {}
    for b in range(n_grad_batches):
        tb = collate([train[i] for i in range(b * cfg.batch_size, (b + 1) * cfg.batch_size)])
        _, terms = loss_fn(model(tb["image"]), tb)
        for k, v in terms.items():
            w = loss_fn.weights[k]
            if w == 0 or not v.requires_grad:
                continue
            grads = torch.autograd.grad(w * v, trunk, retain_graph=True, allow_unused=True)
            n = float(sum((g.double() ** 2).sum() for g in grads if g is not None)) ** 0.5
            norms[k] = norms.get(k, 0.0) + n / n_grad_batches
    out["trunk_grad"] = norms
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=200, help="held-out images")
    p.add_argument("--train-n", type=int, default=2000, help="training images for the mean pose")
    p.add_argument("--json", default=None)
    p.add_argument("--checkpoint", default=None,
                   help="also split this trained heatmap model's error (2D vs depth, slopes, gradients)")
    args = p.parse_args(argv)
    cfg = config.make_config("cpu-quick", overrides={"val_length": args.n, "train_length": args.train_n})
    body = build_body(cfg).double()
    val = materialise(build_dataset("synthetic", cfg, "val", body), "held-out set", workers=cfg.num_workers)
    batch = collate([val[i] for i in range(len(val))])
    gt = batch["joints_xyz"].double()                                  # (N, 29, 3)
    head = BodyHeadModel(cfg.backbone, cfg.image_size, body, "auto").double()

    def through_ik(uvd: torch.Tensor) -> torch.Tensor:
        return head.decode(uvd, batch["twist"].double(), batch["betas"].double(),
                           batch["camera"].double()).joints_from_mesh

    uvd = batch["joints_uvd"].double()
    out = {"samples": len(val), "decode_gt": pa(through_ik(uvd), gt)}
    train = build_dataset("synthetic", cfg, "train", body)
    mean = MeanPoseModel.fit(train, body, max_samples=args.train_n)
    mp = mean(batch["image"])["joints_from_mesh"].double()
    out["mean_pose"] = pa(mp, gt)
    aligned = metrics.procrustes_align(mp[:, :NUM_SMPL_JOINTS], gt[:, :NUM_SMPL_JOINTS])
    per_joint = (aligned - gt[:, :NUM_SMPL_JOINTS]).norm(dim=-1).mean(0) * 1000
    out["mean_pose_per_joint"] = {JOINT_NAMES[j]: float(per_joint[j]) for j in range(NUM_SMPL_JOINTS)}
    z_root = FOCAL_NORM / batch["camera"][:, 0].double()              # (N,) metres
    out["pixel_mm"] = float((z_root / FOCAL_NORM / cfg.image_size).median()) * 1000
    g = torch.Generator().manual_seed(0)
    for sigma in NOISE_MM:
        noise = torch.randn(gt.shape, generator=g, dtype=torch.float64) * sigma / 1000
        # metres -> (u, v, d): u = F x / z, d = z / DEPTH_RANGE (linearised at the root depth)
        scale = torch.stack([FOCAL_NORM / z_root, FOCAL_NORM / z_root,
                             torch.full_like(z_root, 1 / 2.2)], -1)[:, None]
        out[f"noise_{sigma}"] = pa(through_ik(uvd + noise * scale), gt)
        depth_only = noise * torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
        out[f"depth_noise_{sigma}"] = pa(through_ik(uvd + depth_only * scale), gt)
    if args.checkpoint:
        out["checkpoint"] = {"path": args.checkpoint, **trained(args.checkpoint, args.n)}
    print(json.dumps(out, indent=2))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
