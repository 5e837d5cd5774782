"""Video: identities by box overlap, and one-euro smoothing of each track.

Tracking.  Each frame's boxes are matched to the live tracks' last boxes by
maximum total IoU (``scipy.optimize.linear_sum_assignment``); pairs under
``min_iou`` are not matched.  Unmatched boxes start new tracks (ids 0, 1, …
in order of appearance); a track unseen for more than ``max_age`` frames ends.

Smoothing (Casiez et al., "1€ Filter", CHI 2012), per track and per value:

    α(f_c) = 1 / (1 + f_s / (2π f_c))                  (f_s: frame rate)
    ẋ̂_t  = ẋ̂_{t−1} + α(d_cutoff) · ((x_t − x̂_{t−1}) f_s − ẋ̂_{t−1})
    x̂_t  = x̂_{t−1} + α(min_cutoff + beta · |ẋ̂_t|) · (x_t − x̂_{t−1})

applied to the rotations as their first two columns (the 6D representation
of Zhou et al. 2019: continuous, unlike axis-angle or quaternions, which
jump by 2π or change sign), mapped back by Gram-Schmidt; to the root's
camera-frame position (the translation); and to the betas (one body shape
per track: a low cutoff and no speed term).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ..models.hmr import matrix_to_rot6d, rot6d_to_matrix


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Boxes a (N, 4), b (M, 4) xyxy -> IoU (N, M)."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=-1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=-1)
    union = area_a[:, None] + area_b[None] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


class IoUTracker:
    """Track ids for each frame's boxes (see the module docstring)."""

    def __init__(self, min_iou: float = 0.3, max_age: int = 5):
        self.min_iou, self.max_age = min_iou, max_age
        self.tracks: dict[int, tuple[np.ndarray, int]] = {}   # id -> (last box, frames unseen)
        self.next_id = 0

    def update(self, boxes: np.ndarray) -> np.ndarray:
        """boxes (N, 4) xyxy of the next frame -> track ids (N,) int64."""
        ids = np.full(len(boxes), -1, dtype=np.int64)
        live = list(self.tracks)
        if live and len(boxes):
            overlap = iou(np.asarray(boxes, dtype=np.float64), np.stack([self.tracks[t][0] for t in live]))
            for i, j in zip(*linear_sum_assignment(-overlap)):
                if overlap[i, j] >= self.min_iou:
                    ids[i] = live[j]
        for t in live:
            if t not in ids:
                box, age = self.tracks[t]
                self.tracks[t] = (box, age + 1)
                if age + 1 > self.max_age:
                    del self.tracks[t]
        for i in range(len(boxes)):
            if ids[i] < 0:
                ids[i], self.next_id = self.next_id, self.next_id + 1
            self.tracks[int(ids[i])] = (np.asarray(boxes[i], dtype=np.float64), 0)
        return ids


class OneEuroFilter:
    """One-euro filter of a value (any shape), sampled at ``rate`` frames per second."""

    def __init__(self, rate: float, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0):
        self.rate, self.min_cutoff, self.beta, self.d_cutoff = rate, min_cutoff, beta, d_cutoff
        self.x = self.dx = None

    def _alpha(self, cutoff):
        return 1.0 / (1.0 + self.rate / (2 * math.pi * cutoff))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.x is None:
            self.x, self.dx = x.clone(), torch.zeros_like(x)
            return x.clone()
        self.dx = self.dx + self._alpha(self.d_cutoff) * ((x - self.x) * self.rate - self.dx)
        a = self._alpha(self.min_cutoff + self.beta * self.dx.abs())
        self.x = self.x + a * (x - self.x)
        return self.x.clone()


class TrackSmoother:
    """Per-track one-euro filters of rotations, root position and betas."""

    def __init__(self, rate: float, rot=(1.0, 0.5), root=(1.0, 0.5), betas=(0.1, 0.0)):
        self.rate = rate
        self.settings = {"rot": rot, "root": root, "betas": betas}
        self.filters: dict[int, dict[str, OneEuroFilter]] = {}

    def __call__(self, track_id: int, rotmats: torch.Tensor, root: torch.Tensor, betas: torch.Tensor):
        """One person's rotmats (24, 3, 3), root (3,), betas (10,) -> the smoothed ones."""
        f = self.filters.setdefault(int(track_id), {
            k: OneEuroFilter(self.rate, min_cutoff=c, beta=b) for k, (c, b) in self.settings.items()})
        rot = rot6d_to_matrix(f["rot"](matrix_to_rot6d(rotmats)))
        return rot, f["root"](root), f["betas"](betas)
