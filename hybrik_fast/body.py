"""SMPL-format body model: loading, saving, a synthetic body, and skinning.

Written from the SMPL paper (Loper et al., "SMPL: A Skinned Multi-Person
Linear Model", SIGGRAPH Asia 2015, eq. 1-10), using the array names of the
published model files.  Forward kinematics is the project's one
implementation, :func:`hybrik_fast.reference.kinematics.rigid_transforms`.

Shapes: B batch, V vertices, F faces, 24 SMPL joints, 29 = 24 + 5 leaves.

    v_template   (V, 3)          rest mesh, metres, y up, x to the body's left
    shapedirs    (V, 3, 10)      shape blend shapes (the first 10 betas)
    posedirs     (207, 3V)       pose blend shapes; the file holds (V, 3, 207)
    J_regressor  (24, V)         joint regressor (dense)
    weights      (V, 24)         skinning weights, rows sum to 1
    faces        (F, 3)          triangles (long)
    parents      (24,)           SMPL kinematic tree, root -1
    leaf_vertices (5,)           vertex ids of joints 24..28 (long)

The model computes in the dtype of its inputs: buffers are cast on the fly,
which is free when they already match (``body.to(torch.float64)`` once avoids
the per-call cast for float64 inputs).
"""
from __future__ import annotations

import os
import pickle

import numpy as np
import scipy.sparse
import torch

from . import skeleton
from ._io import atomic_write
from ._validate import check_same, check_tensor
from .reference.kinematics import rigid_transforms

NUM_POSE_FEATURES = 9 * (skeleton.NUM_SMPL_JOINTS - 1)  # 207
REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights",
                 "kintree_table", "f")
SUFFIXES = (".pkl", ".npz")
# SMPL files store the root's parent in kintree_table as this unsigned sentinel
_KINTREE_ROOT = 2**32 - 1


# --------------------------------------------------------------------------
# loading SMPL pickles without chumpy


class _ChumpyStandIn:
    """Takes the place of any ``chumpy`` class while unpickling.

    A pickled chumpy ``Ch`` is rebuilt by ``copyreg._reconstructor`` (or
    ``cls.__new__``) and then given its ``__dict__`` as a state dict, whose
    key ``'x'`` holds the numpy array.  The stand-in accepts any constructor
    arguments and keeps the state; :func:`_unwrap` turns it back into the array.
    """

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        self.state = {}

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:    # (dict, slot state)
            state = {**(state[0] or {}), **(state[1] or {})}
        self.state = state if isinstance(state, dict) else {}


def _stand_in_class(name: str) -> type:
    return type(name, (_ChumpyStandIn,), {})


def _unwrap(obj):
    """Replace chumpy stand-ins (recursively in dicts/lists) by their arrays."""
    if isinstance(obj, _ChumpyStandIn):
        if "x" not in obj.state:
            raise ValueError(f"cannot rebuild a chumpy {type(obj).__name__} object "
                             "(its pickled state has no array 'x')")
        return np.asarray(_unwrap(obj.state["x"]))
    if isinstance(obj, dict):
        return {k: _unwrap(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(v) for v in obj)
    return obj


class _SMPLUnpickler(pickle.Unpickler):
    """Unpickles SMPL model files: numpy, scipy.sparse and chumpy only.

    Any other class is refused, so a model file cannot run arbitrary code.
    """

    _NUMPY = {"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer"}
    _BUILTINS = {"object", "set", "frozenset", "slice", "complex", "bytearray",
                 "list", "dict", "tuple", "int", "float", "bool", "str", "bytes"}

    def find_class(self, module, name):
        root = module.split(".")[0]
        if root == "chumpy":
            return _stand_in_class(name)
        if root == "scipy" and module.startswith("scipy.sparse") and \
                name.endswith(("_matrix", "_array")):
            return getattr(scipy.sparse, name)
        allowed = (
            (module in ("copy_reg", "copyreg") and name == "_reconstructor")
            or (module == "_codecs" and name == "encode")
            or (module in ("builtins", "__builtin__") and name in self._BUILTINS)
            or (module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray",
                           "numpy.core.numeric", "numpy._core.numeric")
                and name in self._NUMPY)
            or (module == "numpy.dtypes" and name.endswith("DType"))
        )
        if not allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_arrays(path: str) -> dict:
    """The raw key -> array dict of a .pkl or .npz model file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"body model file not found: {path}")
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{path}: unknown model file suffix; expected one of {SUFFIXES}")
    try:
        if suffix == ".pkl":
            with open(path, "rb") as fh:
                data = _unwrap(_SMPLUnpickler(fh, encoding="latin1").load())
        else:
            with np.load(path, allow_pickle=False) as npz:
                data = {k: npz[k] for k in npz.files}
    except Exception as e:  # any parse failure of an untrusted file: report the path
        raise ValueError(f"{path}: not a readable SMPL model file "
                         f"({type(e).__name__}: {e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a readable SMPL model file "
                         f"(holds a {type(data).__name__}, not a dict of arrays)")
    return data


# --------------------------------------------------------------------------
# the module


class BodyModel(torch.nn.Module):
    """SMPL-format body model with linear blend skinning.

    Build it with :meth:`load` (SMPL .pkl/.npz), :meth:`synthetic` (a
    procedural body, no licence needed) or from arrays.  Call it as
    ``vertices, joints = body(rotmats, betas)``.
    """

    def __init__(self, v_template, shapedirs, posedirs, J_regressor, weights, faces,
                 parents=skeleton.PARENTS_24, leaf_vertices=None,
                 dtype: torch.dtype = torch.float32):
        """Arrays as numpy arrays or tensors, in the file layouts.

        v_template (V, 3), shapedirs (V, 3, ≥10) (the first 10 are kept),
        posedirs (V, 3, 207), J_regressor (24, V) dense, weights (V, 24),
        faces (F, 3), parents (24,), leaf_vertices (5,).  Float buffers are
        stored in ``dtype``.  Raises ValueError on inconsistent shapes.
        """
        super().__init__()
        v_template = np.asarray(v_template, dtype=np.float64)
        V = v_template.shape[0]
        shapedirs = np.asarray(shapedirs, dtype=np.float64)
        posedirs = np.asarray(posedirs, dtype=np.float64)
        J_regressor = np.asarray(J_regressor, dtype=np.float64)
        weights = np.asarray(weights, dtype=np.float64)
        faces = np.asarray(faces)
        parents = np.asarray(parents, dtype=np.int64)
        if leaf_vertices is None:
            raise ValueError("leaf_vertices (5,) are required: the vertex ids of joints 24..28")
        leaf_vertices = np.asarray(leaf_vertices, dtype=np.int64)
        J, L = skeleton.NUM_SMPL_JOINTS, len(skeleton.LEAF_JOINTS)
        expect = {
            "v_template": (v_template, (V, 3)),
            "shapedirs": (shapedirs[..., :skeleton.NUM_BETAS], (V, 3, skeleton.NUM_BETAS)),
            "posedirs": (posedirs, (V, 3, NUM_POSE_FEATURES)),
            "J_regressor": (J_regressor, (J, V)),
            "weights": (weights, (V, J)),
            "parents": (parents, (J,)),
            "leaf_vertices": (leaf_vertices, (L,)),
        }
        for name, (arr, shape) in expect.items():
            if arr.shape != shape:
                raise ValueError(f"{name} must have shape {shape} for V = {V}, got {arr.shape}")
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise ValueError(f"faces must have shape (F, 3), got {faces.shape}")
        if tuple(parents) != skeleton.PARENTS_24:
            raise ValueError(f"parents must be SMPL's tree {skeleton.PARENTS_24}, got {tuple(parents)}")
        for name, ids in (("faces", faces), ("leaf_vertices", leaf_vertices)):
            if ids.size and (ids.min() < 0 or ids.max() >= V):
                raise ValueError(f"{name} must hold vertex ids in [0, {V}), "
                                 f"got [{ids.min()}, {ids.max()}]")

        def buf(name, arr, dt=dtype):
            self.register_buffer(name, torch.as_tensor(np.ascontiguousarray(arr)).to(dt))

        buf("v_template", v_template)                                    # (V, 3)
        buf("shapedirs", shapedirs[..., :skeleton.NUM_BETAS])             # (V, 3, 10)
        # pose blend shapes as (207, 3V): row k is the offset per unit of feature k
        buf("posedirs", posedirs.reshape(3 * V, NUM_POSE_FEATURES).T)     # (207, 3V)
        buf("J_regressor", J_regressor)                                  # (24, V)
        buf("weights", weights)                                          # (V, 24)
        buf("faces", faces.astype(np.int64), torch.long)                 # (F, 3)
        buf("parents", parents, torch.long)                              # (24,)
        buf("leaf_vertices", leaf_vertices, torch.long)                  # (5,)

    # ---------------------------------------------------------------- info
    @property
    def num_vertices(self) -> int:
        return self.v_template.shape[0]

    def extra_repr(self) -> str:
        return f"V={self.num_vertices}, F={self.faces.shape[0]}, dtype={self.v_template.dtype}"

    # ---------------------------------------------------------------- I/O
    @classmethod
    def load(cls, path, dtype: torch.dtype = torch.float32) -> "BodyModel":
        """Read an SMPL-format ``.pkl`` (chumpy not needed) or ``.npz`` file.

        Keys used: v_template, shapedirs, posedirs, J_regressor (dense or
        scipy.sparse), weights, kintree_table, f, and leaf_vertices when
        present (otherwise the model must be real SMPL, V = 6890).
        Raises FileNotFoundError for a missing file and ValueError (naming
        the path) for an unreadable file or a missing/ill-shaped array.
        """
        path = os.fspath(path)
        data = _read_arrays(path)
        missing = [k for k in REQUIRED_KEYS if k not in data]
        if missing:
            raise ValueError(f"{path}: SMPL model file lacks the key(s) {missing}")
        try:
            J_regressor = data["J_regressor"]
            if scipy.sparse.issparse(J_regressor):
                J_regressor = J_regressor.toarray()
            kintree = np.asarray(data["kintree_table"]).astype(np.int64)
            parents = np.where((kintree[0] >= 0) & (kintree[0] < skeleton.NUM_SMPL_JOINTS),
                               kintree[0], -1)
            V = np.asarray(data["v_template"]).shape[0]
            if "leaf_vertices" in data:
                leaf_vertices = data["leaf_vertices"]
            elif V == 6890:
                leaf_vertices = skeleton.SMPL_LEAF_VERTICES
            else:
                raise ValueError(f"V = {V} is not real SMPL (6890) and the file has no "
                                 "'leaf_vertices' key naming the vertices of joints 24..28")
            if np.asarray(data["shapedirs"]).shape[-1] < skeleton.NUM_BETAS:
                raise ValueError(f"shapedirs must hold at least {skeleton.NUM_BETAS} shape "
                                 f"directions, got {np.asarray(data['shapedirs']).shape}")
            return cls(data["v_template"], data["shapedirs"], data["posedirs"], J_regressor,
                       data["weights"], data["f"], parents, leaf_vertices, dtype=dtype)
        except (ValueError, TypeError, IndexError) as e:
            raise ValueError(f"{path}: {e}") from e

    def arrays(self) -> dict:
        """The model as SMPL-file arrays (float64 numpy, file layouts)."""
        V = self.num_vertices

        def np64(t):
            return t.detach().cpu().to(torch.float64).numpy()

        kintree = np.stack([self.parents.cpu().numpy(), np.arange(skeleton.NUM_SMPL_JOINTS)])
        kintree[0, 0] = _KINTREE_ROOT
        return {
            "v_template": np64(self.v_template),
            "shapedirs": np64(self.shapedirs),
            "posedirs": np64(self.posedirs).T.reshape(V, 3, NUM_POSE_FEATURES),
            "J_regressor": np64(self.J_regressor),
            "weights": np64(self.weights),
            "kintree_table": kintree.astype(np.int64),
            "f": self.faces.cpu().numpy().astype(np.int64),
            "leaf_vertices": self.leaf_vertices.cpu().numpy().astype(np.int64),
        }

    def save(self, path) -> None:
        """Write the model in SMPL format, chosen by suffix; atomic.

        ``.pkl``: a plain pickled dict of numpy arrays with J_regressor as
        scipy.sparse csc (what ``smplx.SMPL`` reads); ``.npz``: the same
        arrays, J_regressor dense.  The file is written to a temporary file
        in the same directory and moved into place (:func:`atomic_write`).
        """
        path = os.fspath(path)
        suffix = os.path.splitext(path)[1].lower()
        if suffix not in SUFFIXES:
            raise ValueError(f"{path}: cannot save a body model with this suffix; "
                             f"use one of {SUFFIXES}")
        arrays = self.arrays()

        def write(fh):
            if suffix == ".pkl":
                arrays["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
                pickle.dump(arrays, fh, protocol=pickle.HIGHEST_PROTOCOL)
            else:
                np.savez(fh, **arrays)

        atomic_write(path, write)

    # ---------------------------------------------------------------- model
    @classmethod
    def synthetic(cls, seed: int = 0, dtype: torch.dtype = torch.float32) -> "BodyModel":
        """A procedural, human-shaped body in SMPL format (see :func:`synthetic_arrays`)."""
        a = synthetic_arrays(seed)
        return cls(a["v_template"], a["shapedirs"], a["posedirs"], a["J_regressor"],
                   a["weights"], a["f"], skeleton.PARENTS_24, a["leaf_vertices"], dtype=dtype)

    def _buffers_as(self, x: torch.Tensor, *names):
        if x.device != self.v_template.device:
            raise ValueError(f"input is on {x.device} but the body model is on "
                             f"{self.v_template.device}; move one of them")
        return [getattr(self, n).to(x.dtype) for n in names]

    def _shaped(self, betas: torch.Tensor):
        """v_shaped (B, V, 3) and rest joints (B, 29, 3) for betas (B, 10)."""
        v_template, shapedirs, J_regressor = self._buffers_as(
            betas, "v_template", "shapedirs", "J_regressor")
        B, V = betas.shape[0], self.num_vertices
        v_shaped = v_template + (betas @ shapedirs.reshape(3 * V, -1).T).reshape(B, V, 3)
        joints = torch.matmul(J_regressor, v_shaped)                  # (B, 24, 3)
        leaves = v_shaped[:, self.leaf_vertices]                      # (B, 5, 3)
        return v_shaped, torch.cat([joints, leaves], dim=1)

    def rest_joints(self, betas: torch.Tensor) -> torch.Tensor:
        """Rest-pose joints (B, 29, 3) for betas (B, 10).

        Joints 0..23 are ``J_regressor @ (v_template + shapedirs·β)``;
        24..28 are the leaf vertices of that shaped template.
        """
        check_tensor("betas", betas, ("B", skeleton.NUM_BETAS),
                     dtypes=(torch.float32, torch.float64))
        return self._shaped(betas)[1]

    def forward(self, rotmats: torch.Tensor, betas: torch.Tensor):
        """Skin the body: returns the tuple ``(vertices (B, V, 3), joints (B, 29, 3))``.

        rotmats (B, 24, 3, 3) local rotations, root first; betas (B, 10);
        float32 or float64, same dtype and device as the model.  Both outputs
        are in the model frame as SMPL gives them (not root-relative): the
        root joint stays at its rest location and the leaves move rigidly with
        their parents.  NaN in one sample gives NaN in that sample only.

        LBS (SMPL paper eq. 1-7):
            v_shaped = v_template + shapedirs·β
            v_posed  = v_shaped + posedirs·vec(R[1:] − I)    (row-major 3×3, joint-major)
            A_j      = [G_j | J'_j − G_j J_j]                 (G, J' from rigid_transforms)
            v        = Σ_j w_vj A_j [v_posed; 1]
        """
        sizes = check_tensor("rotmats", rotmats, ("B", skeleton.NUM_SMPL_JOINTS, 3, 3),
                             dtypes=(torch.float32, torch.float64))
        check_tensor("betas", betas, ("B", skeleton.NUM_BETAS),
                     dtypes=(torch.float32, torch.float64), sizes=sizes)
        check_same("rotmats", rotmats, "betas", betas)
        posedirs, weights = self._buffers_as(rotmats, "posedirs", "weights")
        B, V, J = rotmats.shape[0], self.num_vertices, skeleton.NUM_SMPL_JOINTS

        v_shaped, rest = self._shaped(betas)                          # (B, V, 3), (B, 29, 3)
        G, posed = rigid_transforms(rotmats, rest)                    # (B, 24, 3, 3), (B, 29, 3)
        joints = posed + rest[:, :1]                                  # model frame, (B, 29, 3)

        eye = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
        pose_feature = (rotmats[:, 1:] - eye).reshape(B, NUM_POSE_FEATURES)   # (B, 207)
        v_posed = v_shaped + (pose_feature @ posedirs).reshape(B, V, 3)       # (B, V, 3)

        t = joints[:, :J] - (G @ rest[:, :J, :, None])[..., 0]        # (B, 24, 3)
        A = torch.cat([G, t[..., None]], dim=-1)                      # (B, 24, 3, 4)
        T = (weights @ A.reshape(B, J, 12)).reshape(B, V, 3, 4)       # blended, (B, V, 3, 4)
        vertices = (T[..., :3] @ v_posed[..., None])[..., 0] + T[..., 3]
        return vertices, joints


# --------------------------------------------------------------------------
# the synthetic body
#
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
        "posedirs": np.zeros((V, 3, NUM_POSE_FEATURES)), "J_regressor": J_regressor,
        "weights": weights, "f": faces, "leaf_vertices": leaf_vertices,
    }
