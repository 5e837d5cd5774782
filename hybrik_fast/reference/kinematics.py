"""Reference forward kinematics, HybrIK inverse kinematics and twist labels.

Written from the HybrIK paper (Li et al., CVPR 2021, Alg. 1 and 2, eq. 6-12)
and the conventions in the project's facts note.  Batched over B, looping over
the 23 joints in tree order; gradients come from autograd.

Shapes
    joints       P  (B, 29, 3)   root-relative target joints, metres
    twist        Φ  (B, 23, 2)   (cos φ, sin φ) per joint 1..23, any length
    rest_joints  T  (B, 29, 3)   rest pose (24 SMPL joints + 5 leaves)
    rotmats      R  (B, 24, 3, 3) local rotations, root first

Conventions (the fused kernels reproduce these exactly)
    * The IK re-roots its input: P ← P − P[:, 0]; only differences of T are
      used.  q[0] = 0.
    * Pelvis: Kabsch over PELVIS_CHILDREN (3, 1, 2).  S = Σ_c t_c p_cᵀ with
      t_c = T[c] − T[0], p_c = P[c] − P[0]; S = U Σ Vᵀ,
      R0 = V diag(1, 1, det(V Uᵀ)) Uᵀ.  An all-zero S gives the identity.
    * For i = 1..23 in tree order, with pa = parent, c = IK_CHILD[i]:
        q[i]  = q[pa] + G[pa] (T[i] − T[pa])            (reconstructed joint)
        naive    target = P[c] − P[i]
        adaptive target = P[c] − q[i]; with ``fallback`` f, per sample and
                 joint: let n = (P[c] − P[i]) |t| / |P[c] − P[i]| (0 if
                 P[c] = P[i]); if |target − n| > f the target becomes n.
        t     = T[c] − T[i],  p = G[pa]ᵀ target
        R[i]  = swing(t → p) · twist(t̂, φ_i),  G[i] = G[pa] R[i]
    * swing(t → p) is the minimal rotation taking t̂ to p̂, from the unit
      quaternion ∝ (|t||p| + t·p, t × p).  When that quaternion vanishes to
      rounding (|q| ≤ 64 ε |t||p|, i.e. t and p antiparallel) it is the
      half-turn about the unit axis t × e, with e the coordinate axis on which
      |t| is smallest (first on ties).  If t = 0 or p = 0 it is the identity.
    * twist(k, φ) = I + s [k]× + (1 − c) [k]×² with (c, s) = Φ_i / |Φ_i|; the
      identity if Φ_i = (0, 0) or t = 0.
    * NaN in a sample gives NaN in that sample only.
    * Precision: the IK runs in float64 whatever the input dtype and rounds
      its result once to that dtype (the half-turn threshold keeps the input
      dtype's ε).  In float32 the recursion's rounding compounds down the
      tree and through the pelvis SVD to ~1e-5 in distal rotations; the fused
      kernels compute in float64 for the same reason.
"""
from __future__ import annotations

import torch

from ..skeleton import IK_CHILD, NUM_SMPL_JOINTS, PARENTS_29, PELVIS_CHILDREN

# the quaternion of a swing is treated as zero (antiparallel bone and target)
# below this many machine epsilons times |t||p|: it is then all rounding error
ANTIPARALLEL_ULPS = 64.0


def _skew(v: torch.Tensor) -> torch.Tensor:
    """(…, 3) -> (…, 3, 3) cross-product matrix [v]×."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*v.shape, 3)


def _eye_like(x: torch.Tensor) -> torch.Tensor:
    """(…, 3) -> (…, 3, 3) identities matching x's batch shape."""
    return torch.eye(3, dtype=x.dtype, device=x.device).expand(*x.shape[:-1], 3, 3)


def rodrigues(k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """I + sin·[k]× + (1 − cos)·[k]×² for an axis k (…, 3) and cos, sin (…) -> (…, 3, 3)
    (the rotation by that angle about k when k is a unit vector and cos² + sin² = 1)."""
    K = _skew(k)
    return _eye_like(k) + sin[..., None, None] * K + (1 - cos)[..., None, None] * (K @ K)


def swing_rotation(t: torch.Tensor, p: torch.Tensor, eps: float | None = None) -> torch.Tensor:
    """Minimal rotation taking direction t to direction p.

    t, p: (…, 3), any length.  Returns (…, 3, 3).  See the module docstring
    for the antiparallel and zero-length conventions; ``eps`` is the machine
    epsilon of the half-turn threshold (default: that of t's dtype).
    """
    eps = torch.finfo(t.dtype).eps if eps is None else eps
    m = torch.linalg.vector_norm(t, dim=-1) * torch.linalg.vector_norm(p, dim=-1)  # (…)
    w = m + (t * p).sum(-1)                                                      # (…)
    v = torch.linalg.cross(t, p, dim=-1)                                         # (…, 3)
    n2 = w * w + (v * v).sum(-1)                                                 # |q|², (…)
    # NaN compares False, so NaN samples take the regular branch and stay NaN
    zero = m == 0
    half_turn = (n2 <= (ANTIPARALLEL_ULPS * eps * m) ** 2) & ~zero
    regular = ~(zero | half_turn)

    # regular: rotation matrix of the unnormalised quaternion (w, v) / |q|²
    n2_safe = torch.where(regular, n2, torch.ones_like(n2))
    eye = _eye_like(t)
    r_reg = ((w * w - (v * v).sum(-1))[..., None, None] * eye
             + 2 * v[..., :, None] * v[..., None, :]
             + 2 * w[..., None, None] * _skew(v)) / n2_safe[..., None, None]

    # half turn about a unit axis a ⟂ t:  2 a aᵀ − I
    e = torch.nn.functional.one_hot(t.abs().argmin(dim=-1), 3).to(t.dtype)
    a = torch.linalg.cross(t, e, dim=-1)
    a_norm = torch.linalg.vector_norm(a, dim=-1, keepdim=True)
    a = a / torch.where(half_turn[..., None], a_norm, torch.ones_like(a_norm))
    r_half = 2 * a[..., :, None] * a[..., None, :] - eye

    r = torch.where(half_turn[..., None, None], r_half, r_reg)
    return torch.where(zero[..., None, None], eye, r)


def twist_rotation(t: torch.Tensor, cs: torch.Tensor) -> torch.Tensor:
    """Rotation by φ about t̂, with (cos φ, sin φ) = cs / |cs|.

    t: (…, 3), cs: (…, 2).  Returns (…, 3, 3).  The identity where cs = 0 or
    t = 0.
    """
    t_norm = torch.linalg.vector_norm(t, dim=-1, keepdim=True)          # (…, 1)
    r = torch.linalg.vector_norm(cs, dim=-1, keepdim=True)              # (…, 1)
    ok = (r != 0) & (t_norm != 0)                                        # NaN -> True
    k = t / torch.where(t_norm != 0, t_norm, torch.ones_like(t_norm))   # (…, 3)
    cs_n = cs / torch.where(ok, r, torch.ones_like(r))
    c = torch.where(ok, cs_n[..., :1], torch.ones_like(r))[..., 0]      # (…)
    s = torch.where(ok, cs_n[..., 1:], torch.zeros_like(r))[..., 0]
    return rodrigues(k, c, s)


def pelvis_rotation(joints: torch.Tensor, rest_joints: torch.Tensor) -> torch.Tensor:
    """Kabsch rotation of the pelvis children, with the reflection fix.

    joints, rest_joints: (B, 29, 3).  Returns R0 (B, 3, 3) minimising
    Σ_c |R0 t_c − p_c|² over proper rotations; the identity where S = 0.
    """
    ch = list(PELVIS_CHILDREN)
    t = rest_joints[:, ch] - rest_joints[:, :1]                 # (B, 3, 3) rows t_c
    p = joints[:, ch] - joints[:, :1]                           # (B, 3, 3) rows p_c
    S = t.transpose(1, 2) @ p                                   # Σ_c t_c p_cᵀ, (B, 3, 3)
    finite = torch.isfinite(S).all(dim=(1, 2))
    zero = (S == 0).all(dim=(1, 2))
    good = finite & ~zero
    eye = torch.eye(3, dtype=S.dtype, device=S.device).expand_as(S)
    # LAPACK rejects non-finite input: solve on a sanitised copy, patch after
    U, _, Vh = torch.linalg.svd(torch.where(good[:, None, None], S, eye))
    V = Vh.transpose(1, 2)
    d = torch.linalg.det(V @ U.transpose(1, 2))                 # ±1, (B,)
    ones = torch.ones_like(d)
    R = V @ torch.diag_embed(torch.stack([ones, ones, d], -1)) @ U.transpose(1, 2)
    R = torch.where(zero[:, None, None], eye, R)
    return torch.where(finite[:, None, None], R, torch.full_like(R, float("nan")))


def rigid_transforms(rotmats: torch.Tensor, rest_joints: torch.Tensor):
    """Global rotations and root-relative posed joints of the kinematic tree.

    rotmats (B, 24, 3, 3), rest_joints (B, 29, 3) -> (G (B, 24, 3, 3),
    joints (B, 29, 3)), with G[i] = G[pa] R[i] and joint i at
    joint[pa] + G[pa] (T[i] − T[pa]); joint 0 at the origin.  The leaves
    24..28 move rigidly with their parents.  The body model's skinning uses
    these transforms.
    """
    B = rest_joints.shape[0]
    G = [rotmats[:, 0]]                                         # global rotations
    pos = [torch.zeros(B, 3, dtype=rest_joints.dtype, device=rest_joints.device)]
    for i in range(1, len(PARENTS_29)):
        pa = PARENTS_29[i]
        bone = rest_joints[:, i] - rest_joints[:, pa]           # (B, 3)
        pos.append(pos[pa] + (G[pa] @ bone[..., None])[..., 0])
        if i < NUM_SMPL_JOINTS:
            G.append(G[pa] @ rotmats[:, i])
    return torch.stack(G, dim=1), torch.stack(pos, dim=1)


def forward_kinematics(rotmats: torch.Tensor, rest_joints: torch.Tensor) -> torch.Tensor:
    """Posed joints from local rotations.

    rotmats (B, 24, 3, 3), rest_joints (B, 29, 3) -> joints (B, 29, 3),
    root-relative (joint 0 at the origin); see :func:`rigid_transforms`.
    """
    return rigid_transforms(rotmats, rest_joints)[1]


def hybrik_ik(joints: torch.Tensor, twist: torch.Tensor, rest_joints: torch.Tensor,
              mode: str = "adaptive", fallback: float | None = 0.015,
              pelvis=pelvis_rotation) -> torch.Tensor:
    """HybrIK: local rotations (B, 24, 3, 3) from joints, twist and rest pose.

    joints (B, 29, 3), twist (B, 23, 2), rest_joints (B, 29, 3).  ``mode`` is
    "adaptive" (Alg. 2) or "naive" (Alg. 1); ``fallback`` (metres, adaptive
    only, None disables) switches a joint of a sample to the naive target when
    the adaptive target strays further than that from it.  ``pelvis`` maps
    (P, T) (B, 29, 3) in float64 to R0 (B, 3, 3): :func:`pelvis_rotation`
    (Kabsch by SVD) here; the ONNX export passes an SVD-free solver
    (:func:`hybrik_fast.export_ops.pelvis_rotation_horn`).
    """
    dtype, eps = joints.dtype, torch.finfo(joints.dtype).eps
    P = (joints - joints[:, :1]).double()                       # (B, 29, 3)
    T = rest_joints.double()
    twist = twist.double()
    G = [pelvis(P, T)]                                          # global rotations
    R = [G[0]]                                                  # local rotations
    q = [torch.zeros_like(P[:, 0])]                             # reconstructed joints
    for i in range(1, NUM_SMPL_JOINTS):
        pa, c = PARENTS_29[i], IK_CHILD[i]
        q.append(q[pa] + (G[pa] @ (T[:, i] - T[:, pa])[..., None])[..., 0])
        t = T[:, c] - T[:, i]                                   # rest bone, (B, 3)
        naive = P[:, c] - P[:, i]
        if mode == "naive":
            target = naive
        else:
            target = P[:, c] - q[i]
            if fallback is not None:
                n_len = torch.linalg.vector_norm(naive, dim=-1, keepdim=True)
                t_len = torch.linalg.vector_norm(t, dim=-1, keepdim=True)
                scale = t_len / torch.where(n_len != 0, n_len, torch.ones_like(n_len))
                scaled = torch.where(n_len != 0, naive * scale, torch.zeros_like(naive))
                stray = torch.linalg.vector_norm(target - scaled, dim=-1, keepdim=True) > fallback
                target = torch.where(stray, scaled, target)
        p = (G[pa].transpose(1, 2) @ target[..., None])[..., 0]  # target in parent frame
        R.append(swing_rotation(t, p, eps) @ twist_rotation(t, twist[:, i - 1]))
        G.append(G[pa] @ R[i])
    return torch.stack(R, dim=1).to(dtype)                      # (B, 24, 3, 3)


def twist_angles(rotmats: torch.Tensor, rest_joints: torch.Tensor) -> torch.Tensor:
    """Twist (cos φ, sin φ) of each local rotation about its rest bone.

    rotmats (B, 24, 3, 3), rest_joints (B, 29, 3) -> (B, 23, 2).  For joint
    i = 1..23 with rest bone t = T[c] − T[i]: swing = swing(t → R t), the twist
    swingᵀ R is a rotation about t̂ and φ is its signed angle, read from
    tr = 1 + 2 cos φ and the axial part (Q − Qᵀ)/2 = sin φ [t̂]×.  This is the
    decomposition that :func:`hybrik_ik` inverts.  (1, 0) where t = 0.
    """
    out = []
    for i in range(1, NUM_SMPL_JOINTS):
        t = rest_joints[:, IK_CHILD[i]] - rest_joints[:, i]     # (B, 3)
        Ri = rotmats[:, i]
        Q = swing_rotation(t, (Ri @ t[..., None])[..., 0]).transpose(1, 2) @ Ri
        t_norm = torch.linalg.vector_norm(t, dim=-1, keepdim=True)
        k = t / torch.where(t_norm != 0, t_norm, torch.ones_like(t_norm))
        axial = torch.stack([Q[:, 2, 1] - Q[:, 1, 2], Q[:, 0, 2] - Q[:, 2, 0],
                             Q[:, 1, 0] - Q[:, 0, 1]], dim=-1) / 2
        s = (k * axial).sum(-1)
        c = (Q.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2
        cs = torch.stack([c, s], dim=-1)
        r = torch.linalg.vector_norm(cs, dim=-1, keepdim=True)
        ok = (r != 0) & (t_norm != 0)
        ident = torch.tensor([1.0, 0.0], dtype=cs.dtype, device=cs.device).expand_as(cs)
        out.append(torch.where(ok, cs / torch.where(ok, r, torch.ones_like(r)), ident))
    return torch.stack(out, dim=1)                              # (B, 23, 2)
