"""``hybrik-fast predict INPUT... --checkpoint CKPT --out DIR``.

Per image ``DIR/<name>.npz`` (keys: :data:`hybrik_fast.predict.KEYS`),
``DIR/<name>.jpg`` (the overlay and a side view, unless ``--no-render``) and
with ``--save-mesh`` ``DIR/<name>_<p>.obj`` per person; per video
``DIR/<name>.npz`` (one row per person and frame, plus ``frame`` and
``track_id``) and ``DIR/<name>.mp4``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import cv2
import numpy as np
from tqdm import tqdm

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hybrik-fast predict",
                                description="SMPL parameters, meshes and renders of the people in "
                                            "photos and videos (see the README's Predict section).")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders of images, or videos")
    p.add_argument("--checkpoint", required=True, help="a model checkpoint")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--boxes", metavar="FILE.json",
                   help="people boxes: {image file name: [[x1, y1, x2, y2], ...]}, pixels; [] = nobody")
    p.add_argument("--detector", default="hog", help="hog | none (whole image) | onnx:PATH (default hog)")
    p.add_argument("--flip-test", action="store_true", help="average with the mirrored crop")
    p.add_argument("--save-mesh", action="store_true", help="one .obj per person, camera frame")
    p.add_argument("--no-render", action="store_true", help="no JPEG / mp4 overlays")
    p.add_argument("--batch-size", type=int, default=16, help="crops per network call (default 16)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--onnx", metavar="MODEL.onnx", default=None,
                   help="run the network through onnxruntime (hybrik-fast export of the same checkpoint)")
    p.add_argument("--no-smooth", action="store_true", help="video: no one-euro smoothing")
    p.add_argument("--focal", type=float, default=None,
                   help="focal length in pixels (default: the image's longer side)")
    return p


def read_boxes(path: str) -> dict:
    """The --boxes file -> {file name: list of boxes}; ValueError naming the file and entry."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read the boxes file {path!r}: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"boxes file {path!r}: expected an object keyed by image file name, "
                         f"got {type(data).__name__}")
    for name, boxes in data.items():
        if not isinstance(boxes, list):
            raise ValueError(f"boxes file {path!r}: entry {name!r} must be a list of [x1, y1, x2, y2] "
                             f"boxes, got {boxes!r}")
    return data


def collect(inputs: list[str]) -> tuple[list[str], list[str], list[str]]:
    """INPUT arguments -> (image files, video files, missing paths); folders are listed, sorted."""
    images, videos, missing = [], [], []
    for item in inputs:
        if os.path.isdir(item):
            images += sorted(os.path.join(item, n) for n in os.listdir(item)
                             if n.lower().endswith(IMAGE_EXTS))
        elif not os.path.exists(item):
            missing.append(item)
        elif item.lower().endswith(VIDEO_EXTS):
            videos.append(item)
        else:
            images.append(item)
    return images, videos, missing


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


class Writer:
    """Writes one image's (or video's) outputs and counts what was written."""

    def __init__(self, predictor, out: str, render: bool, save_mesh: bool, smooth: bool):
        self.predictor, self.out, self.render, self.save_mesh = predictor, out, render, save_mesh
        self.smooth = smooth
        self.people = 0

    def overlay(self, image, result):
        from .render import overlay
        with self.predictor.timer("render"):
            return overlay(image, result["vertices"], self.predictor.faces, float(result["focal_length"]),
                           result["principal_point"])

    def image(self, path: str, image: np.ndarray, result: dict) -> None:
        from .io import save_jpeg, save_npz, save_obj
        stem = os.path.join(self.out, _stem(path))
        self.people += len(result["boxes"])
        if not len(result["boxes"]):
            tqdm.write(f"{path}: nobody found")
        picture = self.overlay(image, result) if self.render else None
        with self.predictor.timer("write"):
            save_npz(stem + ".npz", result)
            if self.save_mesh:
                for p, v in enumerate(result["vertices"]):
                    save_obj(f"{stem}_{p}.obj", v, self.predictor.faces)
            if picture is not None:
                save_jpeg(stem + ".jpg", picture)

    def video(self, path: str, bar) -> int:
        """Process one video; returns its frame count."""
        from .io import VideoSink, save_npz, save_obj
        stem = os.path.join(self.out, _stem(path))
        rows, sink, n = [], None, 0
        try:
            for image, result in self.predictor.predict_video(path, smooth=self.smooth, with_images=True):
                n += 1
                rows.append(result)
                self.people += len(result["boxes"])
                if self.render:
                    sink = sink or VideoSink(stem + ".mp4", self.predictor.fps)
                    picture = self.overlay(image, result)
                    with self.predictor.timer("write"):
                        sink.write(picture)
                bar.update(1)
            with self.predictor.timer("write"):
                if sink is not None:
                    sink.close()
                save_npz(stem + ".npz", stack_frames(rows))
                if self.save_mesh:
                    for r in rows:
                        for p, v in enumerate(r["vertices"]):
                            save_obj(f"{stem}_f{int(r['frame']):06d}_t{int(r['track_id'][p])}.obj", v,
                                     self.predictor.faces)
        finally:
            if sink is not None:
                sink.discard()
        return n


def stack_frames(rows: list[dict]) -> dict:
    """Per-frame results -> one dict with a leading person-frame axis, ``frame`` and ``track_id``
    (N,); focal_length and principal_point from the first frame."""
    from . import KEYS
    out = {k: np.concatenate([r[k] for r in rows]) for k in KEYS
           if k not in ("focal_length", "principal_point")} if rows else {}
    out["frame"] = np.concatenate([np.full(len(r["boxes"]), r["frame"], np.int64) for r in rows]) \
        if rows else np.zeros(0, np.int64)
    out["track_id"] = np.concatenate([r["track_id"] for r in rows]) if rows else np.zeros(0, np.int64)
    if rows:
        out["focal_length"], out["principal_point"] = rows[0]["focal_length"], rows[0]["principal_point"]
    return out


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from . import PredictError, Predictor
    from .io import check_writable
    import torch

    try:
        check_writable(args.out)
        boxes = read_boxes(args.boxes) if args.boxes else None
        if args.device == "cuda" and not torch.cuda.is_available():
            raise PredictError("--device cuda: no CUDA device is available")
        predictor = Predictor(args.checkpoint, device=args.device, flip_test=args.flip_test,
                              batch_size=args.batch_size, detector=args.detector, focal_length=args.focal,
                              engine="onnx" if args.onnx else "torch", onnx_path=args.onnx)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"hybrik-fast predict: error: {e}", file=sys.stderr)
        return 1
    images, videos, missing = collect(args.inputs)
    skipped = list(missing)
    for m in missing:
        warnings.warn(f"skipping {m!r}: no such file or folder", RuntimeWarning, stacklevel=1)
    writer = Writer(predictor, args.out, not args.no_render, args.save_mesh, not args.no_smooth)
    t0 = time.perf_counter()
    try:
        done = _images(args, predictor, writer, images, boxes, skipped)
        for path in videos:
            with tqdm(total=int(cv2.VideoCapture(path).get(cv2.CAP_PROP_FRAME_COUNT)) or None,
                      unit="frame", desc=os.path.basename(path)) as bar:
                done += writer.video(path, bar)
    except (ValueError, RuntimeError) as e:   # a bad boxes entry, a video that won't open, no HOG
        print(f"hybrik-fast predict: error: {e}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - t0
    shares = ", ".join(f"{k} {v / max(seconds, 1e-9):.0%}" for k, v in predictor.seconds.most_common())
    print(f"{done} images, {writer.people} people, {len(skipped)} skipped, "
          f"{done / max(seconds, 1e-9):.2f} images/s ({shares}); wrote {args.out}")
    return 0


def _images(args, predictor, writer: Writer, images: list, boxes, skipped: list) -> int:
    """Decode, predict and write the image files in chunks of --batch-size; returns how many were done."""
    from .detect import check_boxes
    done = 0
    with tqdm(total=len(images), unit="img", desc="images", disable=not images) as bar:
        for i in range(0, len(images), args.batch_size):
            chunk, pictures, chunk_boxes = [], [], []
            for path in images[i:i + args.batch_size]:
                with predictor.timer("decode"):
                    image = cv2.imread(path, cv2.IMREAD_COLOR)
                if image is None:
                    warnings.warn(f"skipping {path!r}: OpenCV cannot read it as an image",
                                  RuntimeWarning, stacklevel=1)
                    skipped.append(path)
                    bar.update(1)
                    continue
                name = os.path.basename(path)
                b = None if boxes is None or name not in boxes else check_boxes(
                    boxes[name], image.shape[1], image.shape[0], f"boxes file {args.boxes!r}, entry {name!r}")
                chunk.append(path)
                pictures.append(image)
                chunk_boxes.append(b)
            results = predictor.predict_batch(pictures, chunk_boxes) if chunk else []
            for path, image, result in zip(chunk, pictures, results):
                writer.image(path, image, result)
                done += 1
                bar.update(1)
    return done
