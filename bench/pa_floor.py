"""Why the cpu-quick HybrIK's PA-MPJPE stays near the mean pose's: what the held-out
labels allow, with no training (issue 19, point 2).

    python bench/pa_floor.py [--n 200] [--json PATH]

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
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from hybrik_fast import metrics
from hybrik_fast.camera import FOCAL_NORM
from hybrik_fast.models.common import BodyHeadModel
from hybrik_fast.skeleton import JOINT_NAMES, NUM_SMPL_JOINTS
from hybrik_fast.train import config
from hybrik_fast.train.data import build_dataset, collate, materialise
from hybrik_fast.train.evaluate import MeanPoseModel
from hybrik_fast.train.loop import build_body

NOISE_MM = (25, 50, 75, 100, 150)


def pa(joints: torch.Tensor, gt: torch.Tensor) -> float:
    return float(metrics.pa_mpjpe(joints[:, :NUM_SMPL_JOINTS], gt[:, :NUM_SMPL_JOINTS]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=200, help="held-out images")
    p.add_argument("--train-n", type=int, default=2000, help="training images for the mean pose")
    p.add_argument("--json", default=None)
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
    print(json.dumps(out, indent=2))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
