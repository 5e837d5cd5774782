"""What every model returns: :class:`ModelOutput`, a dict with attribute access.

Fields (B batch, V vertices; joints are root-relative metres in the camera
frame, x right, y down, z forward):

    uvd               (B, 29, 3)     crop-normalised (u, v, d), see hybrik_fast.camera
    joints            (B, 29, 3)     the model's 3D joints (HybrIK: back-projected uvd)
    twist             (B, 23, 2)     unit (cos φ, sin φ) per joint 1..23
    betas             (B, 10)        SMPL shape
    rotmats           (B, 24, 3, 3)  local rotations, root in the camera frame
    vertices          (B, V, 3)      mesh, relative to the posed root joint
    joints_from_mesh  (B, 29, 3)     J_regressor @ vertices (24) + the 5 leaf vertices
    camera            (B, 3)         (s, tx, ty), see hybrik_fast.camera
    sigma             (B, 29) | None per-joint uncertainty in (0, 1) (heatmap head only)

The published networks (:mod:`hybrik_fast.models.public`) also give, and the
others leave None:

    joints_h36m       (B, 17, 3)     the Human3.6M regressor on the mesh
    cam_root          (B, 3)         the root joint in the camera frame, metres
    transl            (B, 3)         the mesh's translation into the camera frame
    scores            (B, 29)        1 − sigma
"""
from __future__ import annotations

FIELDS = ("uvd", "joints", "twist", "betas", "rotmats", "vertices", "joints_from_mesh",
          "camera", "sigma", "joints_h36m", "cam_root", "transl", "scores")


class ModelOutput(dict):
    """A dict of the fields in :data:`FIELDS`, also readable as attributes
    (``out.joints is out["joints"]``).  Fields not given are None."""

    def __init__(self, **fields):
        unknown = set(fields) - set(FIELDS)
        if unknown:
            raise TypeError(f"unknown ModelOutput fields {sorted(unknown)}; valid fields: {FIELDS}")
        super().__init__({name: fields.get(name) for name in FIELDS})

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"ModelOutput has no field {name!r}; fields: {FIELDS}") from None

    def __setattr__(self, name: str, value) -> None:
        if name not in FIELDS:
            raise AttributeError(f"ModelOutput has no field {name!r}; fields: {FIELDS}")
        self[name] = value
