"""Export a whole HybrIK model to ONNX: network, soft-argmax, IK and body model in one graph.

``export_onnx(model, path)`` traces ``model`` with ``torch.onnx.export(...,
dynamo=True)`` inside :func:`hybrik_fast._backend.exporting`, so every op
runs its export decomposition (:mod:`hybrik_fast.export_ops`: no SVD, no
host synchronisation, no loop steered by data).  The graph:

    inputs   images      (B, 3, S, S) float32, B dynamic
             bboxes      (B, 4) xyxy pixels     } only for models whose forward
             img_center  (B, 2) pixels          } takes them (the public networks)
    outputs  uvd (B, 29, 3), joints (B, 29, 3), twist (B, 23, 2), betas (B, 10),
             rotmats (B, 24, 3, 3), vertices (B, V, 3), transl (B, 3), cam_root (B, 3)

Any model works whose forward is ``model(images, [bboxes, img_center,]
[flip_test=...])`` and returns a :class:`~hybrik_fast.models.ModelOutput`.
A model that leaves ``cam_root`` None (the package's own heads, crops centred
on the optical axis) gets ``cam_root = camera.root_from_camera(camera)``;
``transl`` defaults to ``cam_root`` minus the root joint (which is at the origin:
the vertices are relative to the posed root joint), so it equals ``cam_root``.

Needs the ``onnx`` extra (``pip install "hybrik_fast[onnx]"``).
"""
from __future__ import annotations

import inspect
import os
import tempfile

import torch
from torch import nn

from . import _backend
from ._io import atomic_write
from .camera import root_from_camera

#: the graph's outputs, in order
OUTPUTS = ("uvd", "joints", "twist", "betas", "rotmats", "vertices", "transl", "cam_root")
#: the optional box inputs, in order after ``images``
BOX_INPUTS = ("bboxes", "img_center")
EXTRA_HINT = 'install the onnx extra: pip install "hybrik_fast[onnx]" (onnx, onnxscript, onnxruntime)'


def require(*modules: str) -> None:
    """ImportError naming the ``onnx`` extra unless every module in ``modules`` imports."""
    for name in modules:
        try:
            __import__(name)
        except ImportError as e:
            raise ImportError(f"hybrik_fast's ONNX support needs the package {name!r} ({e}); "
                              f"{EXTRA_HINT}") from None


def takes_boxes(model: nn.Module) -> bool:
    """Whether ``model``'s forward takes ``bboxes`` and ``img_center``."""
    return all(n in inspect.signature(model.forward).parameters for n in BOX_INPUTS)


def output_fields(out) -> dict:
    """A model's output -> the graph's :data:`OUTPUTS` as a dict (see the module docstring)."""
    fields = {name: out.get(name) for name in OUTPUTS}
    if fields["cam_root"] is None:
        fields["cam_root"] = root_from_camera(out["camera"])      # (B, 3)
    if fields["transl"] is None:  # cam_root minus the mesh frame's root, the origin (a node of its own)
        fields["transl"] = fields["cam_root"] - out["joints"][:, 0]
    missing = [n for n, v in fields.items() if v is None]
    if missing:
        raise ValueError(f"the model's output lacks {missing}; an exportable model returns {OUTPUTS}")
    return fields


class ExportGraph(nn.Module):
    """``model`` with a tuple of :data:`OUTPUTS` as output (what the exporter traces)."""

    def __init__(self, model: nn.Module, flip_test: bool = False):
        super().__init__()
        self.model = model
        self.boxes = takes_boxes(model)
        self.kwargs = {}
        if flip_test:
            if "flip_test" not in inspect.signature(model.forward).parameters:
                raise ValueError(f"{type(model).__name__} has no flip test (its forward takes no flip_test)")
            self.kwargs["flip_test"] = True

    def forward(self, images: torch.Tensor, bboxes: torch.Tensor | None = None,
                img_center: torch.Tensor | None = None):
        """images (B, 3, S, S)[, bboxes (B, 4), img_center (B, 2)] -> the tuple of :data:`OUTPUTS`."""
        boxes = {"bboxes": bboxes, "img_center": img_center} if self.boxes else {}
        fields = output_fields(self.model(images, **boxes, **self.kwargs))
        outs: list[torch.Tensor] = []
        for name in OUTPUTS:       # one tensor under two names (transl is cam_root): a node of its own
            t = fields[name]
            outs.append(t.clone() if any(t is o for o in outs) else t)
        return tuple(outs)


def check_writable(path) -> str:
    """The absolute path, after checking that a file can be created in its folder
    (OSError naming the path otherwise, before any work is done)."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot write the ONNX file {path!r}: it is a directory")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write the ONNX file {path!r}: the folder {folder!r} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as e:
        raise PermissionError(f"cannot write the ONNX file {path!r}: {e.strerror or e}") from None
    return path


def image_size(model: nn.Module) -> int:
    """The side S of the model's square input crops (``model.image_size``, else 256)."""
    return int(getattr(model, "image_size", 256))


def export_onnx(model: nn.Module, path, opset: int | None = None, flip_test: bool = False,
                example_batch: int = 2) -> str:
    """Export ``model`` (eval mode, float32, CPU) to the ONNX file ``path``; returns its absolute path.

    The graph is described in the module docstring; the batch dimension is
    dynamic (traced at ``example_batch`` >= 2 so it is not specialised).
    ``opset``: the ONNX opset (None: the exporter's default).  ``flip_test``:
    bake the model's flip test into the graph.  The file is written to a
    temporary name in the same folder and renamed over ``path`` once complete;
    an unwritable ``path`` raises OSError before the export starts.  Without
    the ``onnx`` extra: ImportError naming it.
    """
    require("onnx", "onnxscript")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int) or opset < 18):
        raise ValueError(f"opset must be an int >= 18 (the dynamo exporter's minimum), got {opset!r}")
    path = check_writable(path)
    graph = ExportGraph(model, flip_test).eval()
    S = image_size(model)
    g = torch.Generator().manual_seed(0)
    B = max(int(example_batch), 2)
    images = torch.randn(B, 3, S, S, generator=g)
    batch = torch.export.Dim("batch", min=1)
    args, shapes, names = (images,), {"images": {0: batch}}, ["images"]
    if graph.boxes:
        bboxes = torch.tensor([[0.0, 0.0, S, S]]).expand(B, 4).clone()
        img_center = torch.full((B, 2), S / 2.0)
        args += (bboxes, img_center)
        shapes.update(bboxes={0: batch}, img_center={0: batch})
        names += list(BOX_INPUTS)
    was_training = model.training
    model.eval()
    try:
        with _backend.exporting(), torch.no_grad():
            program = torch.onnx.export(graph, args, dynamic_shapes=shapes, input_names=names,
                                        output_names=list(OUTPUTS), opset_version=opset, dynamo=True,
                                        external_data=False, verbose=False, optimize=False)
    finally:
        model.train(was_training)
    atomic_write(path, lambda fh: fh.write(program.model_proto.SerializeToString()))
    return path


def load_model(path, map_location="cpu") -> nn.Module:
    """The model of a checkpoint file (published or ours), eval mode, through
    :func:`hybrik_fast.models.load_checkpoint`; a file that is not a model
    raises ValueError naming the path."""
    from .models import load_checkpoint
    try:
        return load_checkpoint(os.fspath(path), map_location=map_location).eval()
    except (RuntimeError, ValueError, KeyError, FileNotFoundError) as e:
        text = str(e)
        raise ValueError(text if os.fspath(path) in text else f"{os.fspath(path)!r}: {text}") from None


def main(args) -> int:
    """``hybrik-fast export``: arguments checkpoint, out, opset, flip_test."""
    import sys
    try:
        out = check_writable(args.out)
        require("onnx", "onnxscript")
        model = load_model(args.checkpoint)
        export_onnx(model, out, opset=args.opset, flip_test=args.flip_test)
    except (ImportError, OSError, ValueError, TypeError) as e:
        print(f"hybrik-fast export: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0
