"""SMPL-format body model: loading, saving and skinning.

Written from the SMPL paper (Loper et al., "SMPL: A Skinned Multi-Person
Linear Model", SIGGRAPH Asia 2015, eq. 1-10), using the array names of the
published model files.  Forward kinematics is the project's one
implementation, :func:`hybrik_fast.reference.kinematics.rigid_transforms`.
The procedural body that :meth:`BodyModel.synthetic` builds lives in
:mod:`hybrik_fast.synthetic_body`.

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
import warnings

import numpy as np
import scipy.sparse
import torch

from . import skeleton
from ._io import atomic_write
from ._validate import check_same, check_tensor
from .reference.kinematics import rigid_transforms
from .synthetic_body import synthetic_arrays

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


def _read_npy(path, what: str, shape: tuple) -> torch.Tensor:
    """A float32 tensor of ``shape`` from a .npy file; ValueError naming the path otherwise."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} file not found: {path}")
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as e:  # truncated or not a .npy file
        raise ValueError(f"{path}: not a readable .npy file ({type(e).__name__}: {e})") from e
    if array.shape != shape or not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{path}: {what} must be a float array of shape {shape}, "
                         f"got {array.dtype} {array.shape}")
    return torch.from_numpy(array.astype(np.float32))


def load_h36m_regressor(path, num_vertices: int = 6890) -> torch.Tensor:
    """``J_regressor_h36m.npy`` -> the Human3.6M joint regressor (17, V) float32."""
    return _read_npy(path, "J_regressor_h36m", (17, num_vertices))


def load_mean_betas(path) -> torch.Tensor:
    """``h36m_mean_beta.npy`` -> the mean shape (10,) float32 (the public ``init_shape``)."""
    return _read_npy(path, "h36m_mean_beta", (skeleton.NUM_BETAS,))


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
            "posedirs": (posedirs, (V, 3, skeleton.NUM_POSE_FEATURES)),
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
        buf("posedirs", posedirs.reshape(3 * V, skeleton.NUM_POSE_FEATURES).T)     # (207, 3V)
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
        present (otherwise the model must be real SMPL, V = 6890).  Both
        published SMPL forms load: v1.0.0 (chumpy pickles, 10 shape
        components) and v1.1.0 (300 components): the model uses the first
        10 and warns (UserWarning) when the file has more.
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
            num_shape = np.asarray(data["shapedirs"]).shape[-1]
            if num_shape < skeleton.NUM_BETAS:
                raise ValueError(f"shapedirs must hold at least {skeleton.NUM_BETAS} shape "
                                 f"directions, got {np.asarray(data['shapedirs']).shape}")
            if num_shape > skeleton.NUM_BETAS:
                warnings.warn(f"{path}: the file has {num_shape} shape components; the body "
                              f"model uses the first {skeleton.NUM_BETAS}", stacklevel=2)
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
            "posedirs": np64(self.posedirs).T.reshape(V, 3, skeleton.NUM_POSE_FEATURES),
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
        pose_feature = (rotmats[:, 1:] - eye).reshape(B, skeleton.NUM_POSE_FEATURES)  # (B, 207)
        v_posed = v_shaped + (pose_feature @ posedirs).reshape(B, V, 3)       # (B, V, 3)

        t = joints[:, :J] - (G @ rest[:, :J, :, None])[..., 0]        # (B, 24, 3)
        A = torch.cat([G, t[..., None]], dim=-1)                      # (B, 24, 3, 4)
        T = (weights @ A.reshape(B, J, 12)).reshape(B, V, 3, 4)       # blended, (B, V, 3, 4)
        vertices = (T[..., :3] @ v_posed[..., None])[..., 0] + T[..., 3]
        return vertices, joints
