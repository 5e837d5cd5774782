"""Inference on whole photos and videos: ``Predictor`` and ``hybrik-fast predict``.

predictor  Predictor: detect, crop, network, IK, body model; the image's camera
detect     detectors (HOG, whole image, ONNX via cv2.dnn) and box checks
track      IoU tracking and one-euro smoothing for video
render     the z-buffered CPU rasteriser and the overlay picture
io         atomic npz / obj / jpeg / mp4 writing
cli        the ``hybrik-fast predict`` command
scenes     the held-out full-frame synthetic scenes the training run writes
"""
from .predictor import KEYS, PredictError, Predictor

__all__ = ["KEYS", "PredictError", "Predictor"]
