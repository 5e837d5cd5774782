"""Held-out evaluation: MPJPE, PA-MPJPE, PVE, PCK and AUC, and the mean-pose baseline.

Protocol (facts note, "Evaluation protocol"), as applied here:

* With an H36M joint regressor (``h36m_regressor``, 17 × V, the SMPL
  release's ``J_regressor_h36m.npy``) and a dataset of the public protocols
  (its class attribute ``PROTOCOL``: Human36M, PW3D, MPIINF3DHP), the score
  is the public validation's: the regressor takes 17 H36M joints from the
  predicted mesh, the ground truth is the record's ``joints_h36m``, and
  :func:`hybrik_fast.metrics.protocol_scores` applies that dataset's joint
  subset, root alignment and Procrustes (``result["protocol"]`` names it).
  Otherwise (no regressor, synthetic data):
* Predicted joints are the HybrIK output path: the joints regressed from the
  predicted mesh (``joints_from_mesh``: J_regressor @ vertices, plus the
  five leaf vertices), root-relative.
* The ground truth is the sample's ``joints_xyz`` (29 joints, root-relative
  metres) with ``joints_xyz_weight`` as the mask, so a real dataset is scored
  on the joints it labels.  The synthetic set labels all 29; its MPJPE,
  PA-MPJPE, PCK and AUC are over SMPL's 24 joints (the leaves are not
  joints of the body).  The H36M 17-joint regressor is not part of this
  package (it belongs to the SMPL release), so without it H36M and 3DPW are
  scored on their labelled joints in the 29-joint order rather than on the
  14 ``H36M_EVAL_14`` joints of a regressed 17-joint skeleton.
* Root alignment at the pelvis (joint 0); PA fits a similarity transform on
  the counted joints; PCK at 150 mm; AUC over 0..150 mm in 5 mm steps.
* PVE: over all vertices against the ground-truth mesh, the body model
  evaluated at the label's rotmats and betas, both meshes relative to
  their posed root joint; only samples with ``smpl_weight`` > 0 count.

All numbers are the mean over samples of the per-sample value (mm, %).
"""
from __future__ import annotations

import math
import os

import numpy as np
import torch
from torch.utils.data import DataLoader

from hybrik_fast import metrics
from hybrik_fast.skeleton import NUM_BETAS, NUM_SMPL_JOINTS

from .data import collate

METRICS = ("mpjpe", "pa_mpjpe", "pve", "pck", "auc")
EVAL_JOINTS = tuple(range(NUM_SMPL_JOINTS))          # the 24 body joints of the 29


def _field(out, name):
    return out[name] if isinstance(out, dict) else getattr(out, name)


def body_mesh(body, rotmats: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """rotmats (B, 24, 3, 3), betas (B, 10) -> vertices (B, V, 3) relative to the posed root joint."""
    vertices, posed = body(rotmats, betas)
    return vertices - posed[:, :1]


def _mean(values: list[torch.Tensor]) -> float:
    v = torch.cat(values) if values else torch.empty(0, dtype=torch.float64)
    v = v[~torch.isnan(v)]
    return float(v.mean()) if v.numel() else math.nan


def load_regressor(path: str) -> torch.Tensor:
    """The H36M joint regressor (17, V) from a ``.npy`` file (the SMPL release's ``J_regressor_h36m.npy``)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"H36M regressor not found: {path}")
    reg = torch.from_numpy(np.load(path)).to(torch.float64)
    if reg.ndim != 2 or reg.shape[0] != 17:
        raise ValueError(f"{path}: expected a (17, V) H36M regressor, got shape {tuple(reg.shape)}")
    return reg


def _truth17(dataset, index: torch.Tensor) -> torch.Tensor:
    """The records' evaluation joints (B, 17, 3), NaN where a record has none."""
    rows = [dataset.records[int(i)].joints_h36m for i in index]
    return torch.stack([torch.full((17, 3), math.nan, dtype=torch.float64) if r is None
                        else torch.from_numpy(r) for r in rows])


@torch.no_grad()
def evaluate(model: torch.nn.Module, dataset, batch_size: int = 32, device="cpu",
             max_batches: int = 0, amp_dtype: torch.dtype | None = None,
             joints=EVAL_JOINTS, h36m_regressor: torch.Tensor | None = None) -> dict:
    """Score ``model`` on ``dataset``: {"mpjpe", "pa_mpjpe", "pve", "pck", "auc", "samples", "protocol"}.

    ``model(images (B, 3, S, S))`` must give ``joints_from_mesh`` (B, 29, 3)
    and ``vertices`` (B, V, 3); its ``smpl`` body model gives the ground-truth
    mesh.  ``h36m_regressor`` (17, V): score by the dataset's public protocol
    (see the module docstring).  ``max_batches`` > 0 caps the number of batches.
    """
    protocol = getattr(dataset, "PROTOCOL", None) if h36m_regressor is not None else None
    device = torch.device(device)
    was_training = model.training
    model.eval()
    body = model.smpl
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    per: dict[str, list] = {k: [] for k in METRICS}
    n = 0
    for i, batch in enumerate(loader):
        if max_batches and i >= max_batches:
            break
        images = batch["image"].to(device)                             # (B, 3, S, S)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = model(images)
        if protocol is not None:
            verts = _field(out, "vertices").to(torch.float64).cpu()    # (B, V, 3)
            pred17 = torch.matmul(h36m_regressor, verts)               # (B, 17, 3)
            for k, v in metrics.protocol_scores(pred17, _truth17(dataset, batch["index"]),
                                                protocol).items():
                per[k].append(v)
        else:
            pred = _field(out, "joints_from_mesh").float().cpu()       # (B, 29, 3)
            gt = batch["joints_xyz"]                                   # (B, 29, 3)
            mask = batch["joints_xyz_weight"][..., 0] > 0              # (B, 29)
            # PA on the counted joints only: the others are zeroed, and mask excludes them
            sel = list(joints)
            p, g, m = pred[:, sel], gt[:, sel], mask[:, sel]
            per["mpjpe"].append(metrics.mpjpe(p, g, root=0, mask=m, reduction="none"))
            per["pa_mpjpe"].append(metrics.pa_mpjpe(p, g, mask=m, reduction="none"))
            per["pck"].append(metrics.pck(p, g, root=0, mask=m, reduction="none"))
            per["auc"].append(metrics.auc(p, g, root=0, mask=m, reduction="none"))
        has_mesh = batch["smpl_weight"][:, 0] > 0                      # (B,)
        if has_mesh.any():
            body_dtype = body.v_template.dtype
            gt_verts = body_mesh(body, batch["rotmats"][has_mesh].to(device, body_dtype),
                                 batch["betas"][has_mesh].to(device, body_dtype)).cpu()
            pred_verts = _field(out, "vertices")[has_mesh.to(device)].float().cpu()
            per["pve"].append(metrics.pve(pred_verts, gt_verts.float(), reduction="none"))
        n += images.shape[0]
    model.train(was_training)
    return {**{k: _mean(v) for k, v in per.items()}, "samples": n, "protocol": protocol or "labels"}


# ----------------------------------------------------------------------------- mean-pose baseline

def mean_rotation(R: torch.Tensor) -> torch.Tensor:
    """Chordal L2 mean of rotations (N, J, 3, 3) -> (J, 3, 3): the SVD projection of
    the arithmetic mean onto SO(3), U·diag(1, 1, det(U Vᵀ))·Vᵀ (Hartley et al. 2013, §5.1)."""
    M = R.to(torch.float64).mean(0)                                   # (J, 3, 3)
    U, _, Vh = torch.linalg.svd(M)
    d = torch.linalg.det(U @ Vh)                                      # (J,)
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    return U @ D @ Vh


class MeanPoseModel(torch.nn.Module):
    """Predicts the training set's mean pose and shape for every image (no image information)."""

    def __init__(self, rotmats: torch.Tensor, betas: torch.Tensor, body):
        super().__init__()
        self.smpl = body
        self.register_buffer("rotmats", rotmats.to(body.v_template.dtype))   # (24, 3, 3)
        self.register_buffer("betas", betas.to(body.v_template.dtype))       # (10,)

    @classmethod
    @torch.no_grad()
    def fit(cls, dataset, body, max_samples: int = 4096) -> "MeanPoseModel":
        """Average the labelled rotmats and betas of (up to ``max_samples``, evenly spread) training samples."""
        N = len(dataset)
        idx = range(N) if N <= max_samples else [round(i * (N - 1) / (max_samples - 1))
                                                 for i in range(max_samples)]
        rot, betas = [], []
        for i in idx:
            s = dataset[i]
            if s is not None and float(s["smpl_weight"][0]) > 0:
                rot.append(s["rotmats"])
                betas.append(s["betas"])
        if not rot:
            return cls(torch.eye(3).repeat(NUM_SMPL_JOINTS, 1, 1), torch.zeros(NUM_BETAS), body)
        return cls(mean_rotation(torch.stack(rot)), torch.stack(betas).to(torch.float64).mean(0), body)

    def forward(self, images: torch.Tensor) -> dict:
        B = images.shape[0]
        rotmats = self.rotmats.expand(B, -1, -1, -1)                   # (B, 24, 3, 3)
        betas = self.betas.expand(B, -1)                               # (B, 10)
        vertices = body_mesh(self.smpl, rotmats, betas)                # (B, V, 3)
        regressed = torch.matmul(self.smpl.J_regressor, vertices)      # (B, 24, 3)
        joints = torch.cat([regressed, vertices[:, self.smpl.leaf_vertices]], dim=1)  # (B, 29, 3)
        return {"joints_from_mesh": joints, "vertices": vertices, "rotmats": rotmats, "betas": betas}


# ----------------------------------------------------------------------------- report

#: the columns the public release reports, per protocol
PROTOCOL_COLUMNS = {"3dpw": ("pa_mpjpe", "mpjpe", "pve"), "h36m": ("pa_mpjpe", "mpjpe"),
                    "3dhp": ("pck", "auc", "mpjpe", "pa_mpjpe"),
                    "labels": ("mpjpe", "pa_mpjpe", "pve", "pck", "auc")}


def format_table(results: dict[str, dict], keys=("mpjpe", "pa_mpjpe", "pve")) -> str:
    """Rows = models, columns = metrics (mm; PCK/AUC in %)."""
    names = {"mpjpe": "MPJPE", "pa_mpjpe": "PA-MPJPE", "pve": "PVE", "pck": "PCK@150", "auc": "AUC"}
    head = f"{'model':<12}" + "".join(f"{names[k]:>10}" for k in keys)
    lines = [head, "-" * len(head)]
    for row, m in results.items():
        lines.append(f"{row:<12}" + "".join(f"{m.get(k, math.nan):>10.1f}" for k in keys))
    return "\n".join(lines)
