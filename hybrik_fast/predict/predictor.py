"""``Predictor``: images in; SMPL parameters, meshes and 2D/3D joints out, one row per person.

Stages (names as in :attr:`Predictor.seconds` and the bench): ``detect``,
``crop``, ``network``, ``ik``, ``body`` (the CLI adds ``decode``, ``render``
and ``write``).

Geometry.  Each image has one pinhole camera: focal length f pixels
(default ``max(H, W)``, a 53° field of view across the longer side; pass
``focal_length`` when it is known) and principal point p = (W/2, H/2).  A
person's box becomes the padded square crop of :mod:`hybrik_fast.data.transforms`
(centre c, side L pixels), resized to the network's S×S.  That crop is the
same camera with focal F = f/L crop widths, its centre o = (c − p)/L crop
widths from the principal point.  The network reads (u, v, d) per joint
and a root depth z_net = FOCAL_NORM/s for its training focal FOCAL_NORM; the
metric size it infers, Δu·z/focal, does not depend on the focal, so in this
crop the root depth is z_root = z_net · F / FOCAL_NORM and

    z_j = d_j · DEPTH_RANGE + z_root,   (x_j, y_j) = (u_j + o) · z_j / F      (camera frame, metres)

(:func:`hybrik_fast.camera.back_project` with (u, v), offset and scale
rescaled by FOCAL_NORM/F).  The twist-and-swing IK then runs on these
root-relative joints, so the root rotation is in this image's camera frame
even for people far off the optical axis.

Outputs per image (P people), float32 numpy:
    boxes (P, 4) xyxy px; global_orient (P, 3), body_pose (P, 69) axis-angle;
    rotmats (P, 24, 3, 3); betas (P, 10); transl (P, 3) m, SMPL's translation:
    smpl(global_orient, body_pose, betas) + transl = vertices; focal_length ()
    and principal_point (2,) px; vertices (P, V, 3), joints3d (P, 29, 3)
    camera frame m; joints2d (P, 29, 2) px; twist (P, 23, 2) (cos φ, sin φ).
"""
from __future__ import annotations

import contextlib
import os
import time
from collections import Counter

import cv2
import numpy as np
import torch

from ..camera import DEPTH_RANGE, FOCAL_NORM, back_project
from ..data.common import normalize_image
from ..data.transforms import FLIP_PERM_29, TWIST_FLIP_ROWS, crop_matrix, square_box, warp_image
from ..ik import hybrik_ik
from ..poses import matrix_to_axis_angle
from .detect import check_boxes, make_detector
from .track import IoUTracker, TrackSmoother

#: output keys of one image, in the order they are saved
KEYS = ("boxes", "global_orient", "body_pose", "rotmats", "betas", "transl", "focal_length",
        "principal_point", "vertices", "joints3d", "joints2d", "twist")


class PredictError(ValueError):
    """Input the predictor cannot use: a checkpoint that is no model, a video that cannot be opened, ..."""


def load_model(path, device="cpu", backend="auto") -> torch.nn.Module:
    """The model of a checkpoint (published or ours), eval mode:
    :func:`hybrik_fast.models.load_checkpoint`; a model it returned is taken as it is
    (moved to ``device``, eval mode; its ops keep their backend)."""
    if isinstance(path, torch.nn.Module):
        return path.to(device).eval()
    from ..models import load_checkpoint
    return load_checkpoint(path, map_location=device, backend=backend)


def unflip(raw: dict, size: int) -> dict:
    """Raw predictions of crops flipped by ``crops.flip(-1)`` -> those of the crops themselves.

    Column j goes to S − 1 − j, and u = j/S − 0.5 at pixel centres, so a
    point at u is seen at −u − 1/S: uvd (B, 29, 3) gets u -> −u − 1/S and
    left/right joints swapped; twist (B, 23, 2): rows swapped, sin negated;
    betas (B, 10) and the root depth z (B,) unchanged.
    """
    uvd = raw["uvd"][:, FLIP_PERM_29] * raw["uvd"].new_tensor([-1.0, 1.0, 1.0])
    uvd[..., 0] -= 1.0 / size
    twist = raw["twist"][:, TWIST_FLIP_ROWS] * raw["twist"].new_tensor([1.0, -1.0])
    return {"uvd": uvd, "twist": twist, "betas": raw["betas"], "z": raw["z"]}


def place(uvd, z_net, centre, side, focal, principal):
    """Crop predictions -> the image's camera frame (see the module docstring).

    uvd (B, 29, 3) crop-normalised; z_net (B,) root depth for the training
    focal; centre (B, 2), side (B,) the crops in pixels; focal (B,),
    principal (B, 2) pixels.  Returns (joints (B, 29, 3) root-relative,
    root (B, 3)), metres.
    """
    F = focal / side                                               # (B,) crop widths
    r = (FOCAL_NORM / F)[:, None]
    offset = (centre - principal) / side[:, None]                  # (B, 2) crop widths
    z_root = z_net * F / FOCAL_NORM                                # (B,)
    scaled = torch.cat([uvd[..., :2] * r[:, None], uvd[..., 2:]], -1)
    camera = torch.stack([FOCAL_NORM / z_root, torch.zeros_like(z_root), torch.zeros_like(z_root)], -1)
    joints = back_project(scaled, camera, offset * r)
    root = torch.cat([(uvd[:, 0, :2] + offset) * (z_root / F)[:, None], z_root[:, None]], -1)
    return joints, root


class Predictor:
    """HybrIK on whole images.

    checkpoint: a path or a loaded model (see :func:`load_model`); device: "cpu" | "cuda";
    flip_test: average each crop's prediction with its mirror's;
    batch_size: crops per network call; detector: "hog" | "none" |
    "onnx:PATH" | a callable (see :mod:`.detect`); focal_length: pixels, None
    for max(H, W); backend: the ops' backend ("auto" | "reference" | ...);
    engine: "torch", or "onnx" to run the network through onnxruntime from
    ``onnx_path`` (``hybrik-fast export``; CPU; the checkpoint still gives the
    body model, and the IK and body run as with "torch").
    ``seconds`` and ``cpu_seconds`` accumulate the wall and CPU time of each stage.
    """

    def __init__(self, checkpoint, device="cpu", flip_test: bool = False, batch_size: int = 16,
                 detector="hog", focal_length: float | None = None, backend: str = "auto",
                 engine: str = "torch", onnx_path=None):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if engine not in ("torch", "onnx") or (engine == "onnx") != (onnx_path is not None):
            raise ValueError(f"engine must be 'torch', or 'onnx' with onnx_path; got {engine!r}, {onnx_path!r}")
        self.device = torch.device(device)
        if engine == "onnx" and self.device.type != "cpu":
            raise ValueError(f"engine 'onnx' runs on the CPU, got device {device!r}")
        self.model = load_model(checkpoint, self.device, backend)
        self.body = self.model.smpl
        # a published model's cam_root is its root joint (d_0 need not be 0), at its own depth factor
        self._public_depth = self.model.depth_factor if hasattr(self.model, "decode_crop") else None
        if engine == "onnx":   # the network's outputs from the graph (its cam_root gives the depth)
            from ..onnx_engine import OnnxModel
            self.model = OnnxModel(onnx_path, body=self.body)
        self.faces = self.body.faces.cpu().numpy()                  # (F, 3)
        self.image_size = getattr(self.model, "image_size", 256)  # the public models' crops: 256
        self.flip_test, self.batch_size = flip_test, batch_size
        self._detector_spec, self._detector = detector, None
        self.focal_length = focal_length
        self.seconds: Counter = Counter()
        self.cpu_seconds: Counter = Counter()                       # CPU time of the process, all threads
        self.fps: float | None = None                               # of the last video opened

    @property
    def detector(self):
        """The detector callable, built on first use (so that ``--boxes`` runs need none)."""
        if self._detector is None:
            self._detector = make_detector(self._detector_spec)
        return self._detector

    @contextlib.contextmanager
    def timer(self, stage: str):
        """Adds the wall time spent in the block to ``seconds[stage]``, its CPU time to ``cpu_seconds``."""
        t, c = time.perf_counter(), time.process_time()
        yield
        self.seconds[stage] += time.perf_counter() - t
        self.cpu_seconds[stage] += time.process_time() - c

    # ------------------------------------------------------------ public
    def predict(self, image: np.ndarray, boxes=None) -> dict:
        """One image (H, W, 3) uint8 BGR -> dict of arrays, one row per person (module docstring).

        boxes: None (run the detector) or a sequence of xyxy boxes in pixels
        (clipped to the image; boxes without area dropped with a warning).
        """
        return self.predict_batch([image], [boxes])[0]

    def predict_video(self, path, smooth: bool = True, with_images: bool = False):
        """Yield one result per frame of the video at ``path``, with ``frame`` () and ``track_id`` (P,).

        Frames are read ``batch_size`` at a time and their crops share network
        batches.  Identities come from :class:`IoUTracker`; with ``smooth``
        each track's rotations, root position and betas go through
        :class:`TrackSmoother` before the body model.  With ``with_images``
        it yields (frame (H, W, 3) uint8 BGR, result).  PredictError naming
        the file if OpenCV cannot open it.
        """
        cap = cv2.VideoCapture(os.fspath(path))
        if not cap.isOpened():
            raise PredictError(f"cannot open the video {os.fspath(path)!r} (missing, or a format OpenCV "
                               f"cannot read)")
        self.fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        tracker, smoother = IoUTracker(), TrackSmoother(self.fps) if smooth else None
        frame = 0
        try:
            while True:
                images = []
                with self.timer("decode"):
                    while len(images) < self.batch_size:
                        ok, image = cap.read()
                        if not ok:
                            break
                        images.append(image)
                if not images:
                    return
                params, meta = self.parameters(images)
                ids = [tracker.update(m["boxes"]) for m in meta]
                if smoother is not None:
                    for m, t in zip(meta, ids):
                        for i, track in zip(range(*m["rows"]), t):
                            params["rotmats"][i], params["root"][i], params["betas"][i] = smoother(
                                track, params["rotmats"][i], params["root"][i], params["betas"][i])
                for image, t, result in zip(images, ids, self.outputs(params, meta)):
                    result["frame"], result["track_id"] = np.int64(frame), t
                    frame += 1
                    yield (image, result) if with_images else result
        finally:
            cap.release()

    def predict_batch(self, images: list, boxes: list | None = None) -> list[dict]:
        """Several images at once (their crops share network batches) -> one dict per image."""
        params, meta = self.parameters(images, boxes)
        return self.outputs(params, meta)

    def parameters(self, images: list, boxes: list | None = None):
        """Images -> (params, meta): the per-person torch tensors before the body model
        (rotmats (N, 24, 3, 3), betas (N, 10), root (N, 3), twist (N, 23, 2)) and
        per image (boxes (P, 4), focal, principal (2,), row range)."""
        boxes = [None] * len(images) if boxes is None else boxes
        if len(boxes) != len(images):
            raise ValueError(f"got {len(images)} images but {len(boxes)} box lists")
        crops, geo, meta = [], [], []
        for image, b in zip(images, boxes):
            check_image(image)
            H, W = image.shape[:2]
            with self.timer("detect"):
                b = self.detector(image)[0] if b is None else check_boxes(b, W, H, "boxes")
            focal = float(self.focal_length or max(H, W))
            principal = np.array([W / 2.0, H / 2.0])
            with self.timer("crop"):
                for box in b:
                    centre, side = square_box(np.r_[box[:2], box[2:] - box[:2]])
                    A = crop_matrix(centre, side, self.image_size)
                    rgb = warp_image(image, A, self.image_size)[..., ::-1]
                    crops.append(normalize_image(rgb))
                    geo.append(np.r_[centre, side, focal, principal])
            meta.append({"boxes": np.asarray(b, dtype=np.float64).reshape(-1, 4), "focal": focal,
                         "principal": principal, "rows": (len(geo) - len(b), len(geo))})
        params = self._infer(crops, torch.tensor(np.array(geo).reshape(-1, 6)))
        return params, meta

    # ------------------------------------------------------------ stages
    @torch.no_grad()
    def _network(self, crops: torch.Tensor) -> dict:
        """Normalised crops (B, 3, S, S) -> raw predictions uvd, twist, betas and z, the root
        depth for the training focal: from ``predict`` (the package's models) or
        ``decode_crop`` (the published ones), which both stop before the IK and the
        mesh, or else from the forward's ``cam_root`` (the ONNX engine; crop camera,
        no boxes given)."""
        crops = crops.to(self.device)
        if hasattr(self.model, "predict"):
            out = self.model.predict(crops)
            z = FOCAL_NORM / out["camera"][:, 0]
        else:
            if hasattr(self.model, "decode_crop"):                 # the public flip test, in the model
                out = self.model.decode_crop(crops, flip_test=self.flip_test)
                out = {**out, "cam_root": out["points"][:, 0]}
            else:
                out = self.model(crops)
            z = out["cam_root"][:, 2]
            if self._public_depth is not None:     # the root's depth: d measured from it, as place reads it
                d = (out["uvd"][..., 2:] - out["uvd"][:, :1, 2:]) * (self._public_depth / DEPTH_RANGE)
                out = {**out, "uvd": torch.cat([out["uvd"][..., :2], d], -1)}
        return {"uvd": out["uvd"], "twist": out["twist"], "betas": out["betas"], "z": z}

    @torch.no_grad()
    def _infer(self, crops: list, geo: torch.Tensor) -> dict:
        """Crops [(3, S, S)] with geometry (N, 6) = centre, side, focal, principal -> params."""
        raws = []
        with self.timer("network"):
            for i in range(0, len(crops), self.batch_size):
                x = torch.stack(crops[i:i + self.batch_size])
                raw = self._network(x)
                if self.flip_test and not hasattr(self.model, "decode_crop"):
                    f = unflip(self._network(x.flip(-1)), self.image_size)
                    raw = {k: (raw[k] + f[k]) / 2 for k in raw}
                    raw["twist"] = torch.nn.functional.normalize(raw["twist"], dim=-1)
                raws.append(raw)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
        dtype = self.body.v_template.dtype
        if not raws:
            return {"rotmats": torch.zeros(0, 24, 3, 3, dtype=dtype), "betas": torch.zeros(0, 10, dtype=dtype),
                    "root": torch.zeros(0, 3, dtype=dtype), "twist": torch.zeros(0, 23, 2, dtype=dtype)}
        raw = {k: torch.cat([r[k] for r in raws]).to(dtype) for k in raws[0]}
        with self.timer("ik"):
            g = geo.to(self.device, dtype)
            joints, root = place(raw["uvd"], raw["z"], g[:, :2], g[:, 2], g[:, 3], g[:, 4:])
            rest = self.body.rest_joints(raw["betas"])
            rotmats = hybrik_ik(joints, raw["twist"], rest, backend=getattr(self.model, "backend", "auto"))
        return {"rotmats": rotmats, "betas": raw["betas"], "root": root, "twist": raw["twist"]}

    @torch.no_grad()
    def outputs(self, params: dict, meta: list) -> list[dict]:
        """Body model and projections: params (N people) -> one dict of numpy arrays per image."""
        with self.timer("body"):
            rotmats, betas, root = params["rotmats"], params["betas"], params["root"]
            vertices, joints = self.body(rotmats, betas)            # model frame, root joint at rest
            transl = root - joints[:, 0]
            joints3d = joints + transl[:, None]
            rows = {"global_orient": matrix_to_axis_angle(rotmats[:, 0]),
                    "body_pose": matrix_to_axis_angle(rotmats[:, 1:]).reshape(-1, 69),
                    "rotmats": rotmats, "betas": betas, "transl": transl,
                    "vertices": vertices + transl[:, None], "joints3d": joints3d, "twist": params["twist"]}
            rows = {k: v.float().cpu().numpy() for k, v in rows.items()}
        results = []
        for m in meta:
            a, b = m["rows"]
            r = {k: v[a:b] for k, v in rows.items()}
            xyz = r["joints3d"]
            r["joints2d"] = (m["focal"] * xyz[..., :2] / xyz[..., 2:] + m["principal"]).astype(np.float32)
            r["boxes"] = m["boxes"].astype(np.float32)
            r["focal_length"] = np.float32(m["focal"])
            r["principal_point"] = m["principal"].astype(np.float32)
            results.append({k: r[k] for k in KEYS})
        return results


def check_image(image) -> None:
    """TypeError / ValueError unless ``image`` is an (H, W, 3) uint8 numpy array."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array (H, W, 3) uint8 BGR, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"image must be uint8 (H, W, 3) BGR, got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise ValueError(f"image must have shape (H, W, 3) BGR, got {image.shape}")
