"""People detectors behind one interface, and box checks.

A detector is any callable ``detector(image) -> (boxes, scores)``: image
(H, W, 3) uint8 BGR; boxes (N, 4) float64 xyxy pixels; scores (N,).

* ``"hog"``: OpenCV's HOG people detector (``HOGDescriptor_getDefaultPeopleDetector``,
  no download), :class:`HOGDetector`;
* ``"none"``: the whole image is one person, :func:`whole_image`;
* ``"onnx:PATH"``: the user's ONNX detector run by OpenCV's DNN module,
  :class:`ONNXDetector` (its input and output contract is in its docstring).
"""
from __future__ import annotations

import math
import os
import warnings

import cv2
import numpy as np

#: NMS overlap of the HOG and ONNX detectors
NMS_IOU = 0.45


def whole_image(image: np.ndarray):
    """The whole image as one person: boxes (1, 4) = [[0, 0, W, H]], scores (1,) = [1]."""
    H, W = image.shape[:2]
    return np.array([[0.0, 0.0, W, H]]), np.ones(1)


def _nms(boxes: np.ndarray, scores: np.ndarray, min_score: float):
    """Boxes (N, 4) xyxy, scores (N,) -> those kept by score and non-maximum suppression."""
    if not len(boxes):
        return np.zeros((0, 4)), np.zeros(0)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1)
    keep = np.asarray(cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), min_score, NMS_IOU),
                      dtype=np.int64).reshape(-1)
    return boxes[keep].astype(np.float64), scores[keep].astype(np.float64)


class HOGDetector:
    """OpenCV's default HOG + linear SVM people detector (Dalal & Triggs; 64×128 windows).

    The image is scaled so that its longer side is ``max_side`` pixels (HOG's
    cost grows with the area; people smaller than ~128 px tall are missed
    anyway).  ``min_score`` is the SVM margin a detection must reach.
    OpenCV 5 moved HOG out of its main package: there, RuntimeError saying
    what to do instead.
    """

    def __init__(self, max_side: int = 640, min_score: float = 0.5):
        if not hasattr(cv2, "HOGDescriptor"):
            raise RuntimeError(
                f"the HOG people detector is not in this OpenCV ({cv2.__version__}; OpenCV 5 moved it "
                f"out of the main package): install 'opencv-python-headless<5', or use "
                f"--detector none, --detector onnx:PATH or --boxes")
        self.max_side, self.min_score = max_side, min_score
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def __call__(self, image: np.ndarray):
        k = self.max_side / max(image.shape[:2])
        small = cv2.resize(image, None, fx=k, fy=k, interpolation=cv2.INTER_AREA) if k < 1 else image
        k = min(k, 1.0)
        rects, weights = self.hog.detectMultiScale(small, winStride=(8, 8), padding=(8, 8), scale=1.05)
        rects = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
        boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], 1) / k
        return _nms(boxes, np.asarray(weights, dtype=np.float64).reshape(-1), self.min_score)


class ONNXDetector:
    """A user's ONNX detector, run by ``cv2.dnn``.

    Contract.  Input: one tensor (1, 3, S, S) float32, RGB in [0, 1], the
    image resized (not letterboxed) to S = ``input_size``.  Output: one
    tensor of shape (N, 5) or (1, N, 5), rows (x1, y1, x2, y2, score) in the
    input's pixels.  Rows with a score below ``min_score`` are dropped, the
    rest go through NMS and are scaled back to the image.
    Raises ValueError naming the file if OpenCV cannot read it.
    """

    def __init__(self, path, input_size: int = 320, min_score: float = 0.5):
        self.path, self.input_size, self.min_score = os.fspath(path), input_size, min_score
        try:
            self.net = cv2.dnn.readNetFromONNX(self.path)
        except cv2.error as e:
            raise ValueError(f"cannot read the ONNX detector {self.path!r}: "
                             f"{str(e).strip().splitlines()[-1]}") from None

    def __call__(self, image: np.ndarray):
        H, W = image.shape[:2]
        S = self.input_size
        blob = cv2.dnn.blobFromImage(image, 1 / 255.0, (S, S), swapRB=True)
        self.net.setInput(blob)
        out = np.asarray(self.net.forward(), dtype=np.float64)
        if out.ndim == 3 and out.shape[0] == 1:
            out = out[0]
        if out.ndim != 2 or out.shape[1] != 5:
            raise ValueError(f"ONNX detector {self.path!r} must output (N, 5) or (1, N, 5) rows "
                             f"(x1, y1, x2, y2, score), got shape {out.shape}")
        boxes = out[:, :4] * np.array([W / S, H / S, W / S, H / S])
        return _nms(boxes, out[:, 4], self.min_score)


def make_detector(spec):
    """``"hog"`` | ``"none"`` | ``"onnx:PATH"`` | a callable -> a detector callable."""
    if callable(spec):
        return spec
    if spec == "hog":
        return HOGDetector()
    if spec == "none":
        return whole_image
    if isinstance(spec, str) and spec.startswith("onnx:"):
        return ONNXDetector(spec[len("onnx:"):])
    raise ValueError(f"unknown detector {spec!r}; valid: 'hog', 'none', 'onnx:PATH' or a callable")


def check_boxes(boxes, width: int, height: int, where: str) -> np.ndarray:
    """User boxes -> (N, 4) float64 xyxy clipped to the image.

    ``boxes``: a sequence of [x1, y1, x2, y2] in pixels.  ValueError naming
    ``where`` and the box unless each is four finite numbers with x1 ≤ x2 and
    y1 ≤ y2; boxes left with no area after clipping are dropped with a
    warning naming ``where``.
    """
    out = []
    for i, box in enumerate(list(boxes)):
        try:
            b = [float(x) for x in box]
        except (TypeError, ValueError):
            b = []
        if len(b) != 4 or not all(math.isfinite(x) for x in b) or b[2] < b[0] or b[3] < b[1]:
            raise ValueError(f"{where}: box {i} is {box!r}; expected [x1, y1, x2, y2] in pixels, "
                             f"finite, with x1 <= x2 and y1 <= y2")
        c = np.clip(np.array(b), 0.0, [width, height, width, height])
        if c[2] - c[0] < 1 or c[3] - c[1] < 1:
            warnings.warn(f"{where}: box {i} {b} has no area inside the {width}x{height} image; "
                          f"skipped", RuntimeWarning, stacklevel=2)
            continue
        out.append(c)
    return np.array(out, dtype=np.float64).reshape(-1, 4)
