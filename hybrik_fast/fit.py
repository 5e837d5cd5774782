"""SMPLify-style fitting of SMPL pose and shape to 3D joints.

The optimisation baseline of HybrIK's Table 4 (Li et al. 2021: SMPLify on
predicted joints, 114.3 mm, against the IK's 79.2): θ (24 axis-angles) and
β (10) minimise, per sample,

    E(θ, β) = Σ_k w_k ρ(|FK(θ, β)_k − p_k|²)                 robust joint term
              + λ_pose · NLL_GMM(θ_1..23)                     pose prior
              + λ_shape · |β|²                                shape prior
              + λ_limit · Σ_j |clamp(θ_j, lo_j, hi_j) − θ_j|²  joint-angle limits

with the Geman-McClure ρ(r²) = r² / (r² + σ²) (Bogo et al., ECCV 2016,
eq. 3; scaled by 1/σ² so that ρ ≈ r²/σ² for small residuals and → 1 for
outliers), FK = :func:`hybrik_fast.forward_kinematics` of the body's rest
joints (root-relative, so the data term ignores translation), the limits of
:data:`hybrik_fast.poses.JOINT_LIMITS`, and a Gaussian mixture over the
axis-angles of joints 1..23 fitted here by EM (:class:`PoseGMM`) on the
training poses (:func:`hybrik_fast.poses.sample_axis_angles`, the pose
distribution of ``SyntheticHumans``), as SMPLify's prior is a mixture
fitted on CMU poses.

The root is first turned onto the targets by the pelvis Kabsch step of the
IK when no initial pose is given (SMPLify's first stage fits the global
orientation alone).  Then all parameters are optimised by L-BFGS (strong
Wolfe line search) or Adam in two stages of graduated non-convexity (Black
& Rangarajan 1996): σ = GNC_SCALE·sigma, where ρ is nearly quadratic and
a limb far from its target still gets a gradient, then σ = sigma, where
outlying joints stop pulling.  Each stage stops when the summed energy
decreases by less than ``ftol`` (relative) over one outer iteration, or
after ``max_iters`` / 2 of them.

Shapes: B batch, K joints (24 or 29), M mixture components, D dimensions.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch

from . import poses
from ._validate import check_tensor
from .ik import forward_kinematics
from .reference.kinematics import pelvis_rotation
from .skeleton import NUM_BETAS, NUM_JOINTS, NUM_SMPL_JOINTS

POSE_DIM = 3 * (NUM_SMPL_JOINTS - 1)      # joints 1..23, axis-angle
GNC_SCALE = 10.0                          # the first stage's σ, in units of the final σ


# ----------------------------------------------------------------------------- the pose prior

class PoseGMM:
    """A Gaussian mixture over D-vectors: weights (M,), means (M, D), covariances (M, D, D).

    ``nll(x (B, D)) -> (B,)`` is −log Σ_m w_m N(x; μ_m, Σ_m).  Fitted by
    :meth:`fit` (EM); covariances are stored through their Cholesky factors.
    """

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, covariances: torch.Tensor):
        M, D = means.shape
        check_tensor("weights", weights, (M,))
        check_tensor("covariances", covariances, (M, D, D))
        self.weights, self.means, self.covariances = weights, means, covariances
        self.chol = torch.linalg.cholesky(covariances)                       # (M, D, D)
        # log w_m − ½ log|Σ_m| − ½ D log 2π
        self.log_norm = (weights.log() - self.chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
                         - 0.5 * D * math.log(2 * math.pi))                  # (M,)

    def to(self, device=None, dtype=None) -> "PoseGMM":
        return PoseGMM(*(t.to(device=device, dtype=dtype)
                         for t in (self.weights, self.means, self.covariances)))

    def component_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, D) -> log w_m N(x; μ_m, Σ_m), (B, M)."""
        diff = (x[:, None, :] - self.means).transpose(0, 1)                  # (M, B, D)
        z = torch.linalg.solve_triangular(self.chol, diff.transpose(1, 2), upper=False)  # (M, D, B)
        return (self.log_norm[:, None] - 0.5 * (z * z).sum(1)).T             # (B, M)

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, D) -> negative log-likelihood (B,)."""
        return -torch.logsumexp(self.component_log_prob(x), dim=-1)

    @classmethod
    def fit(cls, x: torch.Tensor, components: int = 8, iters: int = 100, tol: float = 1e-4,
            reg: float = 1e-4, generator: torch.Generator | None = None) -> "PoseGMM":
        """EM (Dempster et al. 1977) on samples x (N, D), float64.

        Initialised at ``components`` distinct samples drawn by k-means++
        seeding (Arthur & Vassilvitskii 2007) with the pooled covariance;
        stops when the mean log-likelihood rises by less than ``tol`` or after
        ``iters`` iterations.  ``reg`` is added to every covariance's
        diagonal (keeps it positive definite).
        """
        check_tensor("x", x, ("N", "D"))
        X = x.detach().to(torch.float64)
        N, D = X.shape
        if N < components:
            raise ValueError(f"x must have at least components = {components} rows, got {N}")
        eye = torch.eye(D, dtype=X.dtype, device=X.device)
        centres = [X[torch.randint(N, (1,), generator=generator).item()]]
        for _ in range(components - 1):
            d2 = torch.cdist(X, torch.stack(centres)).min(1).values ** 2     # (N,)
            centres.append(X[torch.multinomial(d2 / d2.sum(), 1, generator=generator).item()])
        pooled = torch.cov(X.T).reshape(D, D) + reg * eye
        gmm = cls(torch.full((components,), 1.0 / components, dtype=X.dtype, device=X.device),
                  torch.stack(centres), pooled.expand(components, D, D).clone())
        last = -math.inf
        for _ in range(iters):
            logp = gmm.component_log_prob(X)                                  # (N, M)   E step
            ll = torch.logsumexp(logp, -1)
            resp = (logp - ll[:, None]).exp()                                 # (N, M)
            nk = resp.sum(0).clamp_min(1e-12)                                 # (M,)     M step
            means = (resp.T @ X) / nk[:, None]                                # (M, D)
            diff = X[None] - means[:, None]                                   # (M, N, D)
            cov = (resp.T[:, :, None] * diff).transpose(1, 2) @ diff / nk[:, None, None] + reg * eye
            gmm = cls(nk / N, means, cov)
            mean_ll = float(ll.mean())
            if mean_ll - last < tol:
                break
            last = mean_ll
        return gmm


@functools.lru_cache(maxsize=4)
def default_pose_prior(components: int = 8, samples: int = 4000, seed: int = 0) -> PoseGMM:
    """The mixture fitted on ``samples`` training poses (joints 1..23) of
    :func:`hybrik_fast.poses.sample_axis_angles`, float64 on the CPU."""
    g = torch.Generator().manual_seed(seed)
    aa = poses.sample_axis_angles(samples, g)[:, 1:].reshape(samples, POSE_DIM)
    return PoseGMM.fit(aa, components, generator=g)


def _limit_boxes(dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi), each (23, 3): the axis-angle boxes of joints 1..23."""
    lim = torch.tensor([poses.JOINT_LIMITS[j] for j in range(1, NUM_SMPL_JOINTS)], dtype=dtype,
                       device=device)                                        # (23, 3, 2)
    return lim[..., 0], lim[..., 1]


# ----------------------------------------------------------------------------- the fit

class FitResult(NamedTuple):
    rotmats: torch.Tensor      # (B, 24, 3, 3)
    betas: torch.Tensor        # (B, 10)
    loss: torch.Tensor         # (B,) final energy per sample
    iterations: int            # outer iterations run


def shape_basis(body, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The rest joints as a linear map of β: (T0 (29, 3), T_β (10, 29, 3)) with
    rest_joints(β) = T0 + Σ_i β_i T_β[i] (exact: the body's rest joints are linear
    in β), read off the body model at β = 0 and at the unit vectors."""
    E = torch.cat([torch.zeros(1, NUM_BETAS), torch.eye(NUM_BETAS)]).to(body.v_template)
    rest = body.rest_joints(E).to(dtype=dtype, device=device)               # (11, 29, 3)
    return rest[0], rest[1:] - rest[:1]


def energy(aa: torch.Tensor, betas: torch.Tensor, joints: torch.Tensor, weight: torch.Tensor,
           basis: tuple, prior: PoseGMM, sigma: float, pose_weight: float, shape_weight: float,
           limit_weight: float, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Per-sample energy (B,) of axis-angles aa (B, 24, 3) and betas (B, 10) against
    root-relative target joints (B, K, 3) with weights (B, K), ``basis`` from
    :func:`shape_basis`; see the module docstring."""
    K = joints.shape[1]
    rest = basis[0] + torch.einsum("bi,ijc->bjc", betas, basis[1])          # (B, 29, 3)
    posed = forward_kinematics(poses.axis_angle_to_matrix(aa), rest)[:, :K]  # (B, K, 3)
    r2 = ((posed - joints) ** 2).sum(-1)                                     # (B, K)
    data = (weight * r2 / (r2 + sigma * sigma)).sum(-1)
    body_aa = aa[:, 1:]                                                      # (B, 23, 3)
    pose = prior.nll(body_aa.reshape(-1, POSE_DIM))
    limit = ((body_aa - body_aa.clamp(lo, hi)) ** 2).sum((1, 2))
    return data + pose_weight * pose + shape_weight * (betas ** 2).sum(-1) + limit_weight * limit


def smplify_3d(joints: torch.Tensor, body, init=None, *, weight: torch.Tensor | None = None,
               prior: PoseGMM | None = None, sigma: float = 0.1, pose_weight: float = 1e-3,
               shape_weight: float = 1e-2, limit_weight: float = 10.0, optimizer: str = "lbfgs",
               max_iters: int = 20, ftol: float = 1e-6, lr: float = 0.02) -> FitResult:
    """Fit SMPL rotations and shape to 3D joints (see the module docstring).

    joints (B, K, 3), K = 24 or 29, metres (made root-relative here);
    body: a :class:`hybrik_fast.BodyModel` of the joints' dtype and device;
    init: None (rest pose, root turned onto the targets by Kabsch, β = 0) or
    ``(rotmats (B, 24, 3, 3), betas (B, 10))``; weight (B, K) ≥ 0 per joint
    (None: all 1); prior: the pose mixture (None: :func:`default_pose_prior`);
    sigma: the Geman-McClure scale, metres; ``*_weight``: λ of each term;
    optimizer: "lbfgs" (outer steps of up to 20 line-searched iterations) or
    "adam" (outer steps of 20 updates of size ``lr``); ``max_iters`` outer
    steps in all, half per stage.
    Returns :class:`FitResult` (rotmats, betas, loss (B,), outer iterations run);
    a sample whose joints hold a NaN gets NaN, and leaves the others' fit alone.
    """
    sizes = check_tensor("joints", joints, ("B", "K", 3), dtypes=(torch.float32, torch.float64))
    if sizes["K"] not in (NUM_SMPL_JOINTS, NUM_JOINTS):
        raise ValueError(f"joints must have shape (B, 24, 3) or (B, 29, 3), got {tuple(joints.shape)}")
    if optimizer not in ("lbfgs", "adam"):
        raise ValueError(f"optimizer must be 'lbfgs' or 'adam', got {optimizer!r}")
    B, K = joints.shape[:2]
    dtype, device = joints.dtype, joints.device
    target = (joints - joints[:, :1]).detach()
    finite = torch.isfinite(target).all(-1).all(-1)                        # (B,) NaN rows: NaN out
    target = torch.where(finite[:, None, None], target, torch.zeros_like(target))
    w = torch.ones(B, K, dtype=dtype, device=device) if weight is None else \
        weight.to(dtype=dtype, device=device).expand(B, K)
    if init is None:
        betas0 = torch.zeros(B, NUM_BETAS, dtype=dtype, device=device)
        rot0 = torch.eye(3, dtype=dtype, device=device).repeat(B, NUM_SMPL_JOINTS, 1, 1)
        padded = torch.cat([target, target.new_zeros(B, NUM_JOINTS - K, 3)], 1)   # (B, 29, 3)
        rot0[:, 0] = pelvis_rotation(padded, body.rest_joints(betas0))  # uses joints 0..3 only
    else:
        rot0, betas0 = init
        check_tensor("init rotmats", rot0, (B, NUM_SMPL_JOINTS, 3, 3))
        check_tensor("init betas", betas0, (B, NUM_BETAS))
    aa = poses.matrix_to_axis_angle(rot0.detach().to(dtype)).clone().requires_grad_(True)
    betas = betas0.detach().to(dtype).clone().requires_grad_(True)
    gmm = (prior if prior is not None else default_pose_prior()).to(device, dtype)
    lo, hi = _limit_boxes(dtype, device)
    terms = dict(joints=target, weight=w, basis=shape_basis(body, dtype, device), prior=gmm, sigma=sigma,
                 pose_weight=pose_weight, shape_weight=shape_weight, limit_weight=limit_weight, lo=lo, hi=hi)

    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS([aa, betas], lr=1.0, max_iter=20, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-10, tolerance_change=1e-14)
    else:
        opt = torch.optim.Adam([aa, betas], lr=lr)

    def closure():
        opt.zero_grad(set_to_none=True)
        total = energy(aa, betas, **terms).sum()
        total.backward()
        return total

    iterations = 0
    for stage_sigma in (GNC_SCALE * sigma, sigma):
        terms["sigma"] = stage_sigma
        opt.state.clear()                                                    # a new energy
        last = math.inf
        for _ in range(max(max_iters // 2, 1)):
            iterations += 1
            if optimizer == "lbfgs":
                value = float(opt.step(closure).detach())                    # host sync
            else:
                for _ in range(20):
                    value = float(closure().detach())
                    opt.step()
            if last - value <= ftol * max(abs(last if math.isfinite(last) else value), 1.0):
                break
            last = value
    with torch.no_grad():
        loss = energy(aa, betas, **terms)
    nan = torch.full((), float("nan"), dtype=dtype, device=device)
    return FitResult(torch.where(finite[:, None, None, None], poses.axis_angle_to_matrix(aa.detach()), nan),
                     torch.where(finite[:, None], betas.detach(), nan), torch.where(finite, loss, nan),
                     iterations)
