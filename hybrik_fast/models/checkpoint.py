"""``load_checkpoint``: a ready model from a published HybrIK checkpoint or
one of this project's training checkpoints.

Published layouts (state dicts of the public code, bare or under ``model`` /
``state_dict``, with or without ``module.`` prefixes):

- ``Simple3DPoseBaseSMPLCam`` (ResNet-34: ``pretrained_res34.pth``,
  ``pretrained_w_cam.pth``): ``deconv_layers.*``, ``fc1.*``, a 3-value
  ``init_cam``; built as :class:`~hybrik_fast.models.public.HybrIKResNetCam`.
- ``HRNetSMPLCam`` (HRNet-W48: ``hybrik_hrnet.pth``; W32 and W18 by their
  widths): ``preact.stage4.*``, a 1-value ``init_cam``; built as
  :class:`~hybrik_fast.models.public.HybrIKHRNetCam`.

Both carry the SMPL model as ``smpl.*`` buffers (:data:`SMPL_BUFFERS`), from
which the body is built, so no SMPL file is needed; joints 24..28 are real
SMPL's leaf vertices (:data:`hybrik_fast.skeleton.SMPL_LEAF_VERTICES`).
"""
from __future__ import annotations

import os

import torch

from ..body import BodyModel
from ..skeleton import NUM_SMPL_JOINTS, PARENTS_24, SMPL_LEAF_VERTICES
from .public import DEPTH_FACTOR, NUM_H36M, HybrIKHRNetCam, HybrIKResNetCam

#: the public SMPL_layer's buffers, saved as ``smpl.<name>``
SMPL_BUFFERS = ("faces_tensor", "v_template", "shapedirs", "posedirs", "J_regressor",
                "J_regressor_h36m", "children_map", "parents", "lbs_weights")
#: the layouts tried, for the error message
LAYOUTS = ("public ResNet Simple3DPoseBaseSMPLCam (key 'deconv_layers.0.weight')",
           "public HRNet HRNetSMPLCam (key 'preact.stage4.0.fuse_layers.0.1.0.weight')",
           "hybrik_fast training checkpoint (format 'hybrik_fast.train/1')")
_RESNET_DEPTHS = {(3, 4, 6, 3): "34", (2, 2, 2, 2): "18"}


def _read(path: str, map_location):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, bad pickle, not a torch file, unsafe globals
        first = str(e).splitlines()[0] if str(e) else ""
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__}: {first})") from e


def _state_dict(obj) -> dict | None:
    """The tensor dict of a bare state dict or one under 'model' / 'state_dict', unprefixed."""
    if not isinstance(obj, dict):
        return None
    for key in ("model", "state_dict"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        return None
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _resnet_name(state: dict) -> str:
    blocks = tuple(len({k.split(".")[2] for k in state if k.startswith(f"preact.layer{i}.")})
                   for i in range(1, 5))
    if "preact.layer1.0.conv3.weight" in state:
        return "resnet50"
    return "resnet" + _RESNET_DEPTHS.get(blocks, "34")


def _hrnet_name(state: dict) -> str:
    width = state["preact.transition1.0.0.weight"].shape[0]
    return f"hrnet{width}"


def body_from_public(state: dict, path: str = "checkpoint") -> tuple[BodyModel, torch.Tensor]:
    """The body model and the Human3.6M regressor (17, V) from the ``smpl.*``
    buffers of a public state dict.  ValueError naming a missing buffer or a
    shape that disagrees with V = v_template's vertex count."""
    missing = [f"smpl.{n}" for n in SMPL_BUFFERS if f"smpl.{n}" not in state]
    if missing:
        raise ValueError(f"{path}: the public layout's SMPL buffers {missing} are missing")
    b = {n: state[f"smpl.{n}"] for n in SMPL_BUFFERS}
    V = b["v_template"].shape[0]
    expect = {"v_template": (V, 3), "posedirs": (9 * (NUM_SMPL_JOINTS - 1), 3 * V),
              "J_regressor": (NUM_SMPL_JOINTS, V), "J_regressor_h36m": (NUM_H36M, V),
              "lbs_weights": (V, NUM_SMPL_JOINTS)}
    for name, shape in expect.items():
        if tuple(b[name].shape) != shape:
            raise ValueError(f"{path}: smpl.{name} has shape {tuple(b[name].shape)}, expected "
                             f"{shape} (V = {V} from smpl.v_template)")
    if tuple(b["shapedirs"].shape[:2]) != (V, 3) or b["shapedirs"].dim() != 3:
        raise ValueError(f"{path}: smpl.shapedirs has shape {tuple(b['shapedirs'].shape)}, "
                         f"expected ({V}, 3, 10)")
    parents = tuple(int(p) for p in b["parents"][:NUM_SMPL_JOINTS])
    if parents != PARENTS_24:
        raise ValueError(f"{path}: smpl.parents {parents} is not SMPL's tree {PARENTS_24}")
    posedirs = b["posedirs"].double().T.reshape(V, 3, -1)                 # file layout (V, 3, 207)
    try:
        body = BodyModel(b["v_template"], b["shapedirs"], posedirs, b["J_regressor"],
                         b["lbs_weights"], b["faces_tensor"], PARENTS_24, SMPL_LEAF_VERTICES)
    except ValueError as e:
        raise ValueError(f"{path}: the smpl.* buffers do not form an SMPL body: {e}") from e
    return body, b["J_regressor_h36m"].float()


def read_state_dict(path, map_location="cpu") -> dict:
    """The tensor dict of a checkpoint file (bare, or under ``model`` /
    ``state_dict``), ``module.`` prefixes removed.  FileNotFoundError, or
    ValueError naming the path for an unreadable file or one that holds no
    state dict."""
    path = os.fspath(path)
    state = _state_dict(_read(path, map_location))
    if state is None:
        raise ValueError(f"{path}: not a state dict (a mapping of names to tensors, bare or "
                         f"under 'model' / 'state_dict')")
    return state


def load_network(model: torch.nn.Module, state: dict, path: str, assign: bool = False) -> None:
    """Strictly load every non-SMPL entry of ``state`` into ``model`` (the
    ``smpl.*`` body buffers are neither loaded nor required); ValueError
    naming a missing or unexpected key, or a key and both shapes.
    ``assign``: take the tensors themselves (a model built on the meta
    device) instead of copying into the model's own."""
    own = {k: v for k, v in model.state_dict().items()
           if not k.startswith("smpl.") and k != "J_regressor_h36m"}
    given = {k: v for k, v in state.items() if not k.startswith("smpl.")}
    missing, unexpected = sorted(set(own) - set(given)), sorted(set(given) - set(own))
    if missing or unexpected:
        parts = [f"{label} keys {names[:6]}{' ...' if len(names) > 6 else ''} ({len(names)})"
                 for label, names in (("missing", missing), ("unexpected", unexpected)) if names]
        raise ValueError(f"{path}: the state dict does not match the {type(model).__name__} "
                         f"layout: " + "; ".join(parts))
    for k, v in given.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(f"{path}: {k!r} has shape {tuple(v.shape)} in the checkpoint, "
                             f"the model expects {tuple(own[k].shape)}")
    model.load_state_dict(given, strict=False, assign=assign)


def build_public(state: dict, backend: str = "auto", depth_factor: float = DEPTH_FACTOR,
                 body: BodyModel | None = None, path: str = "state dict"):
    """A public-layout state dict -> the model in eval mode, or None if the
    dict is neither public layout.  ``body``, if given, replaces the
    checkpoint's SMPL (ValueError if the vertex counts differ)."""
    if "deconv_layers.0.weight" in state:
        cls, kwargs = HybrIKResNetCam, {"backbone": _resnet_name(state)}
    elif "preact.transition1.0.0.weight" in state and "preact.final_layer.weight" in state:
        cls, kwargs = HybrIKHRNetCam, {"backbone": _hrnet_name(state)}
    else:
        return None
    own_body, h36m = body_from_public(state, path)
    if body is not None and body.num_vertices != own_body.num_vertices:
        raise ValueError(f"{path}: the checkpoint's SMPL buffers have V = {own_body.num_vertices} "
                         f"vertices but the body passed has V = {body.num_vertices}")
    with torch.device("meta"):      # no random initialisation: every weight comes from the file
        model = cls(body if body is not None else own_body, None, depth_factor, backend, **kwargs)
    model.J_regressor_h36m = h36m
    load_network(model, state, path, assign=True)
    return model.eval()


def load_checkpoint(path, map_location="cpu", backend: str = "auto",
                    depth_factor: float = DEPTH_FACTOR, body: BodyModel | None = None):
    """A ready model in eval mode from a checkpoint file.

    path: a published HybrIK checkpoint (see the module docstring) or a
    checkpoint written by ``hybrik-fast train``.  depth_factor: the 3D box
    size in metres that scales d (2.2 in every released configuration; the
    files don't record it).  body: an explicit body model (public layouts:
    replaces the checkpoint's SMPL, same V required; training checkpoints:
    replaces the configured body).  The model is called as
    ``model(images, bboxes=None, img_center=None, flip_test=False)`` and
    returns a :class:`~hybrik_fast.models.ModelOutput`.

    Raises FileNotFoundError, or ValueError naming the path for an
    unreadable file, a file of no known layout (listing the layouts tried),
    a missing/unexpected key, or a key whose shape differs (both shapes).
    """
    path = os.fspath(path)
    obj = _read(path, map_location)
    from ..train.checkpoint import FORMAT
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        from .trained import TrainedModel
        return TrainedModel.from_checkpoint(path, map_location, backend, body)
    state = _state_dict(obj)
    model = None if state is None else build_public(state, backend, depth_factor, body, path)
    if model is None:
        raise ValueError(f"{path}: not a known checkpoint layout; tried: " + "; ".join(LAYOUTS))
    return model.to(map_location) if isinstance(map_location, (str, torch.device)) else model
