"""Pose and mesh metrics: MPJPE, PA-MPJPE, PVE, PCK and AUC.

Inputs are in metres; every distance comes back in millimetres and PCK/AUC
in percent.  Computed in float64, returned as float64.

Shapes
    pred, gt  (B, J, 3)   joints (or V vertices for :func:`pve`), metres
    mask      (B, J)      optional, True (or nonzero) where a joint counts
    joints    list of joint indices the error is averaged over (default all)

Evaluation protocol (project facts note; :func:`protocol_scores` is the
public validation's, per dataset)
    * H36M and 3DPW: 17 H36M joints regressed from the mesh, root-aligned at
      the pelvis (index 0), Procrustes fitted on the 17 joints, MPJPE and
      PA-MPJPE reported over ``H36M_EVAL_14``::

          mpjpe(pred17, gt17, root=0, joints=H36M_EVAL_14)
          pa_mpjpe(pred17, gt17, joints=H36M_EVAL_14)

    * 3DPW PVE against the ground-truth mesh, root-aligned at the pelvis:
      ``pve(pred_verts, gt_verts, pred_root, gt_root)``.
    * MPI-INF-3DHP: 17 joints, PCK at 150 mm and AUC over 0..150 mm in steps
      of 5 mm (31 thresholds); pass the pelvis index of that joint order as
      ``root`` (14 in the 3DHP test order).

Reductions
    ``reduction="none"`` gives one value per sample, (B,): the mean over the
    sample's counted joints (``joints`` ∩ ``mask``), NaN if it has none.
    ``reduction="mean"`` gives a 0-d tensor: the mean of those per-sample
    values over the samples that have at least one counted joint.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ._validate import check_tensor

#: the 14 of the 17 H36M joints that MPJPE and PA-MPJPE are reported over
H36M_EVAL_14: tuple[int, ...] = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10)
#: PCK threshold of MPI-INF-3DHP, mm
PCK_THRESHOLD_MM = 150.0
#: AUC thresholds 0, 5, ..., 150 mm (31 values)
AUC_THRESHOLDS_MM: tuple[float, ...] = tuple(float(t) for t in range(0, 151, 5))

REDUCTIONS = ("mean", "none")
_MASK_DTYPES = (torch.bool, torch.uint8, torch.int32, torch.int64,
                torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check(pred, gt, mask, joints, reduction, name="J") -> torch.Tensor:
    """Validate the inputs; return the (B, J) float64 weight of each joint."""
    sizes = check_tensor("pred", pred, ("B", name, 3))
    check_tensor("gt", gt, ("B", name, 3), sizes=sizes)
    if pred.device != gt.device:
        raise ValueError(f"gt is on {gt.device} but pred is on {pred.device}; they must match")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    B, J = pred.shape[:2]
    if mask is None:
        weight = torch.ones(B, J, dtype=torch.float64, device=pred.device)
    else:
        check_tensor("mask", mask, ("B", name), dtypes=_MASK_DTYPES, sizes=dict(sizes))
        weight = (mask != 0).to(torch.float64)
    if joints is not None:
        bad = [j for j in joints if not -J <= int(j) < J]
        if bad:
            raise ValueError(f"joints must index the {J} joints of pred, got {bad}")
        keep = torch.zeros(J, dtype=torch.float64, device=pred.device)
        keep[list(joints)] = 1.0
        weight = weight * keep
    return weight


def _reduce(per_joint: torch.Tensor, weight: torch.Tensor, reduction: str) -> torch.Tensor:
    """(B, J) values and weights -> per-sample means (B,) or their mean ()."""
    count = weight.sum(-1)                                            # (B,)
    per_sample = (per_joint * weight).sum(-1) / count                 # 0/0 = NaN where count = 0
    if reduction == "none":
        return per_sample
    return per_sample[count > 0].mean() if (count > 0).any() else per_sample.new_tensor(float("nan"))


def _root_align(x: torch.Tensor, root: int | None) -> torch.Tensor:
    """(B, J, 3) -> the same with joint ``root`` moved to the origin (None: unchanged)."""
    return x if root is None else x - x[:, root:root + 1]


def joint_errors(pred: torch.Tensor, gt: torch.Tensor, root: int | None = 0) -> torch.Tensor:
    """Euclidean error of every joint, mm: (B, J, 3), (B, J, 3) -> (B, J).

    Both skeletons are first translated so that joint ``root`` sits at the
    origin; ``root=None`` compares them as given.
    """
    check_tensor("pred", pred, ("B", "J", 3))
    check_tensor("gt", gt, ("B", "J", 3), sizes={"B": pred.shape[0], "J": pred.shape[1]})
    p = _root_align(pred.detach().to(torch.float64), root)
    g = _root_align(gt.detach().to(torch.float64), root)
    return torch.linalg.vector_norm(p - g, dim=-1) * 1000.0


def mpjpe(pred: torch.Tensor, gt: torch.Tensor, root: int | None = 0,
          joints: Sequence[int] | None = None, mask: torch.Tensor | None = None,
          reduction: str = "mean") -> torch.Tensor:
    """Mean per-joint position error, mm.

    pred, gt (B, J, 3) metres.  Both are root-aligned at joint ``root``
    (default 0, the pelvis in the H36M and SMPL orders; None for no
    alignment), then the error is averaged over ``joints`` ∩ ``mask``.
    Returns (B,) with ``reduction="none"``, else a scalar.
    """
    weight = _check(pred, gt, mask, joints, reduction)
    return _reduce(joint_errors(pred, gt, root), weight, reduction)


def procrustes_align(pred: torch.Tensor, gt: torch.Tensor,
                     weight: torch.Tensor | None = None) -> torch.Tensor:
    """Similarity transform of pred that best fits gt: s·R·pred + t.

    pred, gt (B, J, 3), weight (B, J) ≥ 0 (None: all ones).  Minimises
    Σ_j w_j |s R x_j + t − y_j|² over a proper rotation R (det +1, so a
    mirror image is not fitted), a scale s and a translation t (Umeyama,
    IEEE TPAMI 1991): with centred X, Y and K = Σ_j w_j x_j y_jᵀ = U Σ Vᵀ,
    R = V D Uᵀ, D = diag(1, 1, sign det(V Uᵀ)), s = tr(D Σ) / Σ_j w_j |x_j|².
    Returns the aligned pred (B, J, 3) in float64.
    """
    X = pred.detach().to(torch.float64)
    Y = gt.detach().to(torch.float64)
    w = torch.ones(X.shape[:2], dtype=X.dtype, device=X.device) if weight is None else weight.to(X.dtype)
    w = w[..., None]                                                   # (B, J, 1)
    wsum = w.sum(1, keepdim=True).clamp_min(torch.finfo(X.dtype).tiny)  # (B, 1, 1)
    mu_x = (w * X).sum(1, keepdim=True) / wsum                         # (B, 1, 3)
    mu_y = (w * Y).sum(1, keepdim=True) / wsum
    X0, Y0 = X - mu_x, Y - mu_y                                        # (B, J, 3)
    K = (w * X0).transpose(1, 2) @ Y0                                  # Σ w x yᵀ, (B, 3, 3)
    U, S, Vh = torch.linalg.svd(K)
    V = Vh.transpose(1, 2)
    d = torch.sign(torch.linalg.det(V @ U.transpose(1, 2)))           # ±1, (B,)
    d = torch.where(d == 0, torch.ones_like(d), d)
    ones = torch.ones_like(d)
    D = torch.stack([ones, ones, d], dim=-1)                           # (B, 3)
    R = V @ torch.diag_embed(D) @ U.transpose(1, 2)                    # (B, 3, 3)
    var_x = (w * X0 * X0).sum(dim=(1, 2))                              # (B,)
    s = (D * S).sum(-1) / var_x.clamp_min(torch.finfo(X.dtype).tiny)  # (B,)
    return s[:, None, None] * X0 @ R.transpose(1, 2) + mu_y            # (B, J, 3)


def pa_mpjpe(pred: torch.Tensor, gt: torch.Tensor, joints: Sequence[int] | None = None,
             mask: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """MPJPE after similarity Procrustes alignment (rotation, scale, translation), mm.

    pred, gt (B, J, 3) metres.  The alignment is fitted on all J joints
    (those in ``mask``), as the protocol fits it on the 17 H36M joints; the
    error is then averaged over ``joints`` ∩ ``mask`` (e.g. ``H36M_EVAL_14``).
    Reflections are not fitted: a mirrored pose keeps a nonzero error.
    """
    weight = _check(pred, gt, mask, joints, reduction)
    fit = torch.ones_like(weight) if mask is None else (mask != 0).to(torch.float64)
    aligned = procrustes_align(pred, gt, fit)
    return _reduce(joint_errors(aligned, gt, root=None), weight, reduction)


def pve(pred_verts: torch.Tensor, gt_verts: torch.Tensor,
        pred_root: torch.Tensor | None = None, gt_root: torch.Tensor | None = None,
        reduction: str = "mean") -> torch.Tensor:
    """Per-vertex error, mm: mean over V of |pred_v − gt_v|.

    pred_verts, gt_verts (B, V, 3) metres; pred_root, gt_root (B, 3), e.g.
    each mesh's pelvis joint, subtracted from its vertices first (3DPW
    protocol); None leaves that mesh where it is.
    """
    weight = _check(pred_verts, gt_verts, None, None, reduction, name="V")
    B = pred_verts.shape[0]
    p = pred_verts.detach().to(torch.float64)
    g = gt_verts.detach().to(torch.float64)
    if pred_root is not None:
        check_tensor("pred_root", pred_root, (B, 3))
        p = p - pred_root.detach().to(torch.float64)[:, None]
    if gt_root is not None:
        check_tensor("gt_root", gt_root, (B, 3))
        g = g - gt_root.detach().to(torch.float64)[:, None]
    return _reduce(torch.linalg.vector_norm(p - g, dim=-1) * 1000.0, weight, reduction)


def _hits(err: torch.Tensor, threshold: torch.Tensor, strict: bool) -> torch.Tensor:
    return (err < threshold if strict else err <= threshold).to(torch.float64)


def pck(pred: torch.Tensor, gt: torch.Tensor, threshold_mm: float = PCK_THRESHOLD_MM,
        root: int | None = 0, joints: Sequence[int] | None = None,
        mask: torch.Tensor | None = None, reduction: str = "mean",
        strict: bool = False) -> torch.Tensor:
    """Percentage of correct keypoints: joints with error ≤ ``threshold_mm``
    (< with ``strict``, as the public MPI-INF-3DHP evaluation counts).

    pred, gt (B, J, 3) metres, root-aligned at ``root`` as in :func:`mpjpe`.
    Returns percent (0..100), per sample (B,) or their mean.
    """
    weight = _check(pred, gt, mask, joints, reduction)
    hit = _hits(joint_errors(pred, gt, root), torch.tensor(float(threshold_mm)), strict)  # (B, J)
    return 100.0 * _reduce(hit, weight, reduction)


def auc(pred: torch.Tensor, gt: torch.Tensor, root: int | None = 0,
        joints: Sequence[int] | None = None, mask: torch.Tensor | None = None,
        reduction: str = "mean", thresholds_mm: Sequence[float] = AUC_THRESHOLDS_MM,
        strict: bool = False) -> torch.Tensor:
    """Area under the PCK curve: the mean PCK (``strict`` as in :func:`pck`) over
    ``thresholds_mm``, percent.

    Default thresholds 0, 5, ..., 150 mm (31 values), as for MPI-INF-3DHP.
    pred, gt (B, J, 3) metres; returns (B,) or a scalar.
    """
    weight = _check(pred, gt, mask, joints, reduction)
    err = joint_errors(pred, gt, root)                                  # (B, J)
    th = torch.tensor(list(thresholds_mm), dtype=torch.float64, device=err.device)
    hit = _hits(err[..., None], th, strict).mean(-1)                   # (B, J), fraction of thresholds
    return 100.0 * _reduce(hit, weight, reduction)


# ----------------------------------------------------------------------------- the public protocols

#: dataset -> protocol name of :func:`protocol_scores`
PROTOCOLS = ("h36m", "3dpw", "3dhp")


def protocol_scores(pred17: torch.Tensor, gt17: torch.Tensor, protocol: str) -> dict:
    """The public validation's per-sample scores on the 17 H36M joints.

    pred17, gt17 (B, 17, 3) metres, H36M order (pelvis = 0); pred17 is what
    the H36M regressor takes from the predicted mesh, gt17 the dataset's
    17 joints.  Both are root-aligned at the pelvis.  Returns {name: (B,)}:

    * "h36m": MPJPE over ``H36M_EVAL_14``; PA-MPJPE with the similarity
      fitted on all 17 joints, then averaged over ``H36M_EVAL_14``.
    * "3dpw": the same 14 joints, but picked first: the similarity is
      fitted on those 14 only.
    * "3dhp": all 17 joints (the test set's, reordered to H36M): MPJPE,
      PA-MPJPE, PCK at 150 mm and AUC over 0..150 mm in 5 mm steps, both
      counting error < threshold as the public code does.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    check_tensor("pred17", pred17, ("B", 17, 3))
    check_tensor("gt17", gt17, ("B", 17, 3), sizes={"B": pred17.shape[0]})
    if protocol == "3dhp":
        return {"mpjpe": mpjpe(pred17, gt17, reduction="none"),
                "pa_mpjpe": pa_mpjpe(pred17, gt17, reduction="none"),
                "pck": pck(pred17, gt17, reduction="none", strict=True),
                "auc": auc(pred17, gt17, reduction="none", strict=True)}
    out = {"mpjpe": mpjpe(pred17, gt17, joints=H36M_EVAL_14, reduction="none")}
    if protocol == "h36m":
        out["pa_mpjpe"] = pa_mpjpe(pred17, gt17, joints=H36M_EVAL_14, reduction="none")
    else:
        sel = list(H36M_EVAL_14)
        out["pa_mpjpe"] = pa_mpjpe(pred17[:, sel], gt17[:, sel], reduction="none")
    return out
