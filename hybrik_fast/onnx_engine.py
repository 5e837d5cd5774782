"""Run an exported HybrIK (:func:`hybrik_fast.export_onnx`) with onnxruntime, like the torch model.

``OnnxModel(path, threads=None, body=None)`` is called as
``model(images, bboxes=None, img_center=None)`` and returns a
:class:`~hybrik_fast.models.ModelOutput` with the graph's fields (uvd,
joints, twist, betas, rotmats, vertices, transl, cam_root; the others None)
as CPU float32 tensors.  ``image_size`` is read from the file; ``smpl`` is
the ``body`` given (the body model the graph was exported with, for callers
that skin or draw meshes themselves).

Input checks: images must be a (B, 3, S, S) tensor or array matching the
file's input; a mismatch raises ValueError giving both shapes.  Needs the
``onnx`` extra (ImportError naming it otherwise).
"""
from __future__ import annotations

import os

import numpy as np
import torch

from .models.output import ModelOutput
from .onnx_export import BOX_INPUTS, require


def _as_array(name: str, x, want) -> np.ndarray:
    """x (tensor or array) -> float32 C-contiguous array, checked against the file's shape ``want``
    (symbolic dimensions match anything)."""
    if isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating tensor, got dtype {x.dtype}")
        x = x.detach().cpu().numpy()
    elif not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    shape_ok = x.ndim == len(want) and all(not isinstance(w, int) or w == n for w, n in zip(want, x.shape))
    if not shape_ok:
        shown = tuple(w if isinstance(w, int) else "B" for w in want)
        raise ValueError(f"{name} has shape {tuple(x.shape)} but the ONNX file's input {name!r} "
                         f"is {shown}".replace("'B'", "B"))
    return np.ascontiguousarray(x, dtype=np.float32)


class OnnxModel:
    """An exported model in an onnxruntime CPU session (module docstring).

    path: the .onnx file; threads: intra-op threads (None: onnxruntime's
    default); body: optional :class:`~hybrik_fast.BodyModel`, kept as ``smpl``.
    """

    def __init__(self, path, threads: int | None = None, body=None):
        require("onnxruntime")
        import onnxruntime as ort
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"ONNX file {path!r} does not exist")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be None or an int >= 1, got {threads!r}")
        opts = ort.SessionOptions()
        if threads is not None:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise ValueError(f"{path!r} is not a loadable ONNX model: {e}") from None
        self.path, self.smpl = path, body
        self.inputs = {i.name: i.shape for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]
        if "images" not in self.inputs:
            raise ValueError(f"{path!r} has no input 'images' (its inputs: {list(self.inputs)}); "
                             f"export it with hybrik_fast.export_onnx")
        side = self.inputs["images"][-1]
        self.image_size = side if isinstance(side, int) else None

    @property
    def takes_boxes(self) -> bool:
        """Whether the graph has the ``bboxes`` and ``img_center`` inputs."""
        return all(n in self.inputs for n in BOX_INPUTS)

    def __call__(self, images, bboxes=None, img_center=None) -> ModelOutput:
        """images (B, 3, S, S)[, bboxes (B, 4), img_center (B, 2)] -> ModelOutput of CPU tensors."""
        feeds = {"images": _as_array("images", images, self.inputs["images"])}
        B = feeds["images"].shape[0]
        if self.takes_boxes:
            if (bboxes is None) != (img_center is None):
                raise ValueError("pass bboxes (B, 4) and img_center (B, 2) together, or neither")
            if bboxes is None:  # the crops themselves: their centre is the image's
                S = feeds["images"].shape[-1]
                bboxes = np.tile(np.array([[0.0, 0.0, S, S]], np.float32), (B, 1))
                img_center = np.full((B, 2), S / 2.0, np.float32)
            for name, x in (("bboxes", bboxes), ("img_center", img_center)):
                want = [B] + list(self.inputs[name][1:])
                feeds[name] = _as_array(name, x, want)
        elif bboxes is not None or img_center is not None:
            raise ValueError(f"{self.path!r} takes no bboxes / img_center (its inputs: {list(self.inputs)})")
        values = self.session.run(self.outputs, feeds)
        return ModelOutput(**{n: torch.from_numpy(v) for n, v in zip(self.outputs, values)})
