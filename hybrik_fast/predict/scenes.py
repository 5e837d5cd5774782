"""Held-out full-frame synthetic scenes for ``hybrik-fast predict`` (the main job writes them).

Each scene is a W×H photo of 1–3 people of :class:`hybrik_fast.data.SyntheticHumans`
(its "val" poses and shapes, a seed the training set does not use), side by
side, seen by the Predictor's default camera (focal max(W, H) pixels,
principal point at the centre), drawn over one of that module's
backgrounds in its part colours by :mod:`hybrik_fast.predict.render`.
Files: ``scene_<i>.jpg``, ``boxes.json`` (the people's boxes, for
``--boxes``) and ``truth.npz`` (per person: scene, rotmats, betas, root,
camera-frame vertices).
"""
from __future__ import annotations

import os

import cv2
import numpy as np
import torch

from ..data.synthetic import SyntheticHumans, background
from .io import save_jpeg, save_json, save_npz
from .render import rasterize, shade

SIZE = (512, 384)            # W, H
HEIGHT = (0.45, 0.7)         # a person's height, in image heights
SEED = 7919                  # the held-out scenes' seed


def write_scenes(out: str, count: int = 4, seed: int = SEED) -> list[str]:
    """Write ``count`` scenes into the folder ``out``; returns the image paths."""
    W, H = SIZE
    f, c = float(max(W, H)), np.array([W / 2.0, H / 2.0])
    data = SyntheticHumans("val", length=3 * count, image_size=64, seed=seed, occluders=False)
    faces = torch.from_numpy(data.faces)
    colors = torch.from_numpy(data.face_colors)
    rng = np.random.default_rng(seed)
    paths, boxes, truth = [], {}, {k: [] for k in ("scene", "rotmats", "betas", "root", "vertices")}
    for i in range(count):
        people = int(rng.integers(1, 4))
        image = background(rng, max(W, H))[:H, :W].copy()                # RGB
        verts, name = [], f"scene_{i}.jpg"
        for p in range(people):
            s = data.scene(3 * i + p)
            rel = s.vertices_cam - s.root_cam                            # (V, 3)
            z = f * (rel[:, 1].max() - rel[:, 1].min()) / (rng.uniform(*HEIGHT) * H)
            pixel = np.array([W * (p + 0.5) / people + rng.uniform(-0.05, 0.05) * W,
                              H * rng.uniform(0.45, 0.55)])
            root = np.r_[(pixel - c) * z / f, z]
            verts.append(rel + root)
            for k, v in (("scene", i), ("rotmats", s.rotmats), ("betas", s.betas), ("root", root),
                         ("vertices", rel + root)):
                truth[k].append(v)
        for v in verts:
            face, _ = rasterize(torch.from_numpy(v), faces, f, c, (H, W))
            layer, mask = shade(torch.from_numpy(v), faces, colors, face)
            image[mask] = layer[mask]
        px = [f * v[:, :2] / v[:, 2:] + c for v in verts]
        boxes[name] = [[float(x) for x in np.r_[q.min(0), q.max(0)]] for q in px]
        path = os.path.join(out, name)
        save_jpeg(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), quality=95)
        paths.append(path)
    save_json(os.path.join(out, "boxes.json"), boxes)
    save_npz(os.path.join(out, "truth.npz"), {k: np.array(v) for k, v in truth.items()})
    return paths
