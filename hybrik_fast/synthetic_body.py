"""The procedural synthetic body: an SMPL-format human built from capped tubes.

No licence or download is needed, so it is the package's embedded default
body (:meth:`hybrik_fast.BodyModel.synthetic`).  :func:`synthetic_arrays`
returns the arrays in the layouts of an SMPL model file; shapes as in
:mod:`hybrik_fast.body` (V vertices, F faces, 24 SMPL joints, 29 = 24 + 5
leaves).
"""
from __future__ import annotations

import numpy as np

from . import skeleton

# The body is built from capped elliptical tubes ("parts") around chains of
# joints: torso, head (with neck), arms (collar to fingertip), legs (hip to
# ankle) and feet (heel to big toe).  A part lists stations (s, a, b, joint):
# s is a position along its chain in joint-index units (s = k at the chain's
# k-th point, extrapolated beyond the ends), a and b the half-axes of the ring
# there.  A station with a joint id is that joint's regressor ring: its ring
# is centred on the joint, so averaging it gives the joint exactly.  Skinning
# weights follow s: segment k belongs to owners[k + 1] and the weights blend
# the two owners smoothly within BLEND of each chain point.

BLEND = 0.25

# rest offsets of each joint from its parent, left side, metres (x left, y up,
# z forward); the right side is the mirror image.  Proportions after SMPL's
# neutral template, ~1.7 m.
_OFFSETS = {
    1: (0.060, -0.090, -0.005), 3: (0.0, 0.110, -0.020), 4: (0.045, -0.370, 0.005),
    6: (0.0, 0.130, 0.010), 7: (-0.015, -0.400, -0.040), 9: (0.0, 0.055, 0.020),
    10: (0.025, -0.060, 0.120), 12: (0.0, 0.215, -0.020), 13: (0.075, 0.120, -0.020),
    15: (0.0, 0.070, 0.045), 16: (0.100, 0.025, -0.010), 18: (0.260, -0.010, -0.020),
    20: (0.250, 0.0, 0.0), 22: (0.085, -0.010, -0.010),
    24: (0.0, 0.170, -0.020), 25: (0.110, -0.005, 0.0), 27: (0.0, -0.005, 0.090),
}
_HEEL = (0.0, -0.055, -0.060)      # heel point of the foot tube, from the ankle

# part: chain (joint ids, left side), owners (chain length + 1: owners[0] for
# s < 0, owners[k + 1] for segment k, the last for s beyond the end), ring
# axis reference, ring resolution n, start/end pole s, stations (s, a, b, joint)
_PARTS = {
    "torso": dict(chain=(0, 3, 6, 9, 12), owners=(0, 0, 3, 6, 9, 9), ref=(1, 0, 0),
                  n=32, poles=(-1.3, 3.93), radii="torso", stations=(
                      (-1.15, .125, .085, None), (-0.7, .155, .100, None),
                      (-0.35, .165, .105, None), (0, .165, .110, 0), (0.5, .155, .100, None),
                      (1, .148, .098, 3), (1.5, .150, .100, None), (2, .155, .104, 6),
                      (3, .162, .108, 9), (3.25, .168, .105, None), (3.5, .175, .098, None),
                      (3.65, .170, .090, None), (3.78, .135, .075, None),
                      (3.88, .085, .060, None))),
    "head": dict(chain=(12, 15, 24), owners=(9, 12, 15, 15), ref=(1, 0, 0), n=24,
                 poles=(-1.0, 2.0), radii="head", stations=(
                     (-0.9, .050, .050, None), (0, .055, .058, 12), (0.5, .057, .062, None),
                     (1, .068, .080, 15), (1.15, .075, .092, None), (1.35, .080, .098, None),
                     (1.55, .079, .096, None), (1.75, .070, .085, None),
                     (1.9, .048, .058, None), (1.97, .022, .027, None))),
    "arm": dict(chain=(13, 16, 18, 20, 22, 25), owners=(9, 13, 16, 18, 20, 22, 22),
                ref=(0, 0, 1), n=16, poles=(-0.3, 5.0), radii="limb", stations=(
                    (-0.2, .035, .035, None), (0, .045, .050, 13), (0.5, .055, .060, None),
                    (1, .055, .058, 16), (1.3, .050, .052, None), (1.6, .046, .047, None),
                    (1.8, .042, .042, None), (2, .038, .038, 18), (2.25, .040, .039, None),
                    (2.6, .034, .032, None), (3, .030, .020, 20), (3.5, .045, .016, None),
                    (4, .045, .015, 22), (4.4, .038, .012, None), (4.8, .025, .010, None),
                    (4.95, .012, .007, None))),
    "leg": dict(chain=(1, 4, 7), owners=(0, 1, 4, 7), ref=(1, 0, 0), n=20,
                poles=(-0.3, 2.1), radii="limb", stations=(
                    (-0.2, .070, .075, None), (0, .085, .090, 1), (0.15, .072, .080, None),
                    (0.45, .062, .068, None), (0.75, .052, .056, None), (1, .046, .050, 4),
                    (1.25, .048, .055, None), (1.5, .045, .052, None), (1.8, .035, .038, None),
                    (2, .030, .035, 7))),
    "foot": dict(chain=("heel", 10, 27), owners=(7, 7, 10, 10), ref=(1, 0, 0), n=14,
                 poles=(-0.05, 2.0), radii="foot", stations=(
                     (0, .030, .028, None), (0.3, .038, .034, None), (0.7, .043, .032, None),
                     (1, .045, .028, 10), (1.4, .045, .022, None), (1.75, .038, .017, None),
                     (1.92, .022, .012, None))),
}
_SIDED = ("arm", "leg", "foot")          # built for the left side, then mirrored
_MIRROR = {a: b for a, b in skeleton.FLIP_PAIRS} | {b: a for a, b in skeleton.FLIP_PAIRS}
# the leaf vertices are the end poles of these parts, in joint order 24..28
_LEAF_PARTS = ("head", "arm_l", "arm_r", "foot_l", "foot_r")

# proportion groups: which bones each scale factor stretches
_GROUPS = ("spine", "leg", "arm", "head", "foot", "hip_w", "shoulder_w", "girth")
_BONE_GROUP = {3: "spine", 6: "spine", 9: "spine", 12: "spine", 4: "leg", 7: "leg",
               18: "arm", 20: "arm", 22: "arm", 25: "arm", 15: "head", 24: "head",
               10: "foot", 27: "foot"}


def _factors(beta: np.ndarray, jitter: dict) -> dict:
    """Scale factors of each proportion group for shape coefficients beta (10,).

    beta: 0 height, 1 girth, 2 leg length, 3 arm length, 4 torso length,
    5 shoulder width, 6 hip width, 7 head size, 8 limb girth, 9 torso depth.
    """
    s = 1 + 0.035 * beta[0]
    f = {
        "spine": s * (1 + 0.04 * beta[4]), "leg": s * (1 + 0.04 * beta[2]),
        "arm": s * (1 + 0.04 * beta[3]), "head": s * (1 + 0.05 * beta[7]), "foot": s,
        "hip_w": s * (1 + 0.06 * beta[6]), "shoulder_w": s * (1 + 0.06 * beta[5]),
        "girth": s * (1 + 0.10 * beta[1]), "limb_girth": 1 + 0.08 * beta[8],
        "depth": 1 + 0.10 * beta[9], "global": s,
    }
    return {k: v * jitter.get(k, 1.0) for k, v in f.items()}


def _skeleton_points(f: dict) -> dict:
    """Rest joints 0..28 plus the heels, {id: (3,)}, for scale factors f."""
    off = {j: np.array(o, dtype=np.float64) * f.get(_BONE_GROUP.get(j), f["global"])
           for j, o in _OFFSETS.items()}
    off[1] = np.array(_OFFSETS[1]) * (f["hip_w"], f["global"], f["global"])
    for j in (13, 16):
        off[j] = np.array(_OFFSETS[j]) * (f["shoulder_w"], f["global"], f["global"])
    pts = {0: np.zeros(3)}
    for j in range(1, skeleton.NUM_JOINTS):
        if j in off:                                  # left side and centre line
            pts[j] = pts[skeleton.PARENTS_29[j]] + off[j]
    for j in range(1, skeleton.NUM_JOINTS):
        if j not in pts:                              # right side: mirror image
            pts[j] = pts[_MIRROR[j]] * (-1.0, 1.0, 1.0)
    pts["heel"] = pts[7] + np.array(_HEEL) * f["foot"]
    return pts


def _along(points: np.ndarray, s) -> np.ndarray:
    """Points at chain positions s (K,) on the polyline points (n+1, 3), extrapolated."""
    s = np.asarray(s, dtype=np.float64)
    i = np.clip(np.floor(s).astype(int), 0, len(points) - 2)
    return points[i] + (s - i)[:, None] * (points[i + 1] - points[i])


def _tube(points: np.ndarray, part: dict, radius: np.ndarray) -> np.ndarray:
    """Vertices (2 + K n, 3) of one part: start pole, K rings of n, end pole.

    radius (K, 2) are the ring half-axes (a along e1, b along e2); e1 is the
    part's reference axis made perpendicular to the chain, e2 = d × e1.
    """
    s = np.array([st[0] for st in part["stations"]])
    centres = _along(points, s)                                       # (K, 3)
    d = _along(points, s + 0.5) - _along(points, s - 0.5)             # smooth tangents
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    ref = np.array(part["ref"], dtype=np.float64)
    e1 = ref - (d @ ref)[:, None] * d
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = np.cross(d, e1)
    theta = 2 * np.pi * np.arange(part["n"]) / part["n"]
    rings = (centres[:, None]
             + radius[:, None, 0:1] * np.cos(theta)[None, :, None] * e1[:, None]
             + radius[:, None, 1:2] * np.sin(theta)[None, :, None] * e2[:, None])  # (K, n, 3)
    poles = _along(points, part["poles"])                             # (2, 3)
    return np.concatenate([poles[:1], rings.reshape(-1, 3), poles[1:]])


def _tube_faces(K: int, n: int) -> np.ndarray:
    """Faces (2n + 2(K-1)n, 3) of a capped tube, outward (counter-clockwise) winding."""
    ring = 1 + np.arange(K)[:, None] * n + np.arange(n)[None]         # (K, n) vertex ids
    nxt = np.roll(ring, -1, axis=1)
    lo, lo1, hi, hi1 = ring[:-1], nxt[:-1], ring[1:], nxt[1:]
    quads = np.concatenate([np.stack([lo, lo1, hi1], -1).reshape(-1, 3),
                            np.stack([lo, hi1, hi], -1).reshape(-1, 3)])
    start = np.stack([np.zeros(n, int), nxt[0], ring[0]], -1)
    end = np.full(n, 1 + K * n)
    end = np.stack([end, ring[-1], nxt[-1]], -1)
    return np.concatenate([start, quads, end])


def _part_list():
    """[(name, part, side)] in mesh order; side is +1 (left/centre) or -1 (right)."""
    out = []
    for name, part in _PARTS.items():
        if name in _SIDED:
            out += [(name + "_l", part, 1), (name + "_r", part, -1)]
        else:
            out.append((name, part, 1))
    return out


def _side_joint(j: int, side: int) -> int:
    """Joint j (given for the left side) on the given side."""
    return _MIRROR.get(j, j) if side < 0 else j


def _radii(part: dict, f: dict) -> np.ndarray:
    """Ring half-axes (K, 2) of a part, scaled by the proportion factors."""
    ab = np.array([st[1:3] for st in part["stations"]], dtype=np.float64)
    kind = part["radii"]
    if kind == "torso":
        s = np.array([st[0] for st in part["stations"]])
        width = np.where(s <= 0, f["hip_w"] / f["global"], 1.0)
        width = np.where(s >= 3.25, f["shoulder_w"] / f["global"], width)
        return ab * f["girth"] * np.stack([width, np.full_like(s, f["depth"])], -1)
    if kind == "head":
        return ab * f["head"] * (f["girth"] / f["global"]) ** 0.3
    if kind == "limb":
        return ab * f["girth"] * f["limb_girth"]
    return ab * f["foot"] * (f["girth"] / f["global"]) ** 0.3


def _vertices(f: dict) -> np.ndarray:
    """Synthetic template vertices (V, 3) for proportion factors f."""
    pts = _skeleton_points(f)
    out = []
    for _, part, side in _part_list():
        # sided parts are built on the left and mirrored, so the body is symmetric
        chain = np.stack([pts[j] for j in part["chain"]])
        out.append(_tube(chain, part, _radii(part, f)) * (side, 1.0, 1.0))
    return np.concatenate(out)


def _blend_weights(s: float, owners) -> dict:
    """{joint: weight} at chain position s; see the section comment."""
    n = len(owners) - 2
    k = int(np.clip(np.round(s), 0, n))
    if abs(s - k) < BLEND and owners[k] != owners[k + 1]:
        u = (s - (k - BLEND)) / (2 * BLEND)
        w = u * u * (3 - 2 * u)                                       # smoothstep
        return {owners[k]: 1 - w, owners[k + 1]: w}
    return {owners[int(np.clip(np.floor(s) + 1, 0, n + 1))]: 1.0}


def _topology():
    """faces (F, 3), weights (V, 24), J_regressor (24, V), leaf vertex ids (5,)."""
    faces, weights, regressor, leaves = [], [], {}, {}
    offset = 0
    for name, part, side in _part_list():
        K, n = len(part["stations"]), part["n"]
        f = _tube_faces(K, n) + offset
        faces.append(f[:, ::-1] if side < 0 else f)       # mirroring flips the winding
        owners = [_side_joint(j, side) for j in part["owners"]]
        s_all = [part["poles"][0]] + [st[0] for st in part["stations"]] + [part["poles"][1]]
        counts = [1] + [n] * K + [1]
        for s, c in zip(s_all, counts):
            w = np.zeros(skeleton.NUM_SMPL_JOINTS)
            for j, wj in _blend_weights(s, owners).items():
                w[j] += wj
            weights.append(np.repeat(w[None], c, axis=0))
        for k, st in enumerate(part["stations"]):
            if st[3] is not None:
                regressor[_side_joint(st[3], side)] = offset + 1 + k * n + np.arange(n)
        leaves[name] = offset + 1 + K * n
        offset += K * n + 2
    faces = np.concatenate(faces)
    J_regressor = np.zeros((skeleton.NUM_SMPL_JOINTS, offset))
    for j, ids in regressor.items():
        J_regressor[j, ids] = 1.0 / len(ids)
    return (faces, np.concatenate(weights), J_regressor,
            np.array([leaves[p] for p in _LEAF_PARTS]))


def _jitter(seed: int) -> dict:
    """Small seed-dependent proportion changes (~1.5 %), symmetric by construction."""
    rng = np.random.default_rng(seed)
    return {g: 1 + 0.015 * rng.standard_normal() for g in _GROUPS}


def synthetic_joints(seed: int = 0) -> np.ndarray:
    """The intended rest joints (29, 3) of the synthetic body (beta = 0)."""
    pts = _skeleton_points(_factors(np.zeros(skeleton.NUM_BETAS), _jitter(seed)))
    return np.stack([pts[j] for j in range(skeleton.NUM_JOINTS)])


def synthetic_arrays(seed: int = 0) -> dict:
    """SMPL-file arrays of a procedural human body (float64 numpy).

    Keys as in an SMPL .pkl plus ``leaf_vertices``: v_template (V, 3),
    shapedirs (V, 3, 10), posedirs (V, 3, 207) (zero), J_regressor (24, V),
    weights (V, 24), f (F, 3), leaf_vertices (5,).  A T-pose, y up, x to the
    body's left, z forward, pelvis at the origin, ~1.7 m.  The shape
    directions are central differences of the generator in its 10 proportion
    coefficients (see :func:`_factors`).  Deterministic in ``seed``.
    """
    jitter = _jitter(seed)
    zero = np.zeros(skeleton.NUM_BETAS)
    v_template = _vertices(_factors(zero, jitter))
    shapedirs = np.stack([(_vertices(_factors(e, jitter)) - _vertices(_factors(-e, jitter))) / 2
                          for e in np.eye(skeleton.NUM_BETAS)], axis=-1)     # (V, 3, 10)
    faces, weights, J_regressor, leaf_vertices = _topology()
    V = v_template.shape[0]
    return {
        "v_template": v_template, "shapedirs": shapedirs,
        "posedirs": np.zeros((V, 3, skeleton.NUM_POSE_FEATURES)), "J_regressor": J_regressor,
        "weights": weights, "f": faces, "leaf_vertices": leaf_vertices,
    }
