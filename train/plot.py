"""PNG artefacts drawn with OpenCV (matplotlib is not a dependency).

    training_curve   loss against step (raw and smoothed), labelled axes
    predictions      held-out images with the predicted mesh overlaid, next
                     to the ground-truth mesh
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from hybrik_fast.camera import root_from_camera
from hybrik_fast.data.common import denormalize_image

WHITE, BLACK, GREY = (255, 255, 255), (0, 0, 0), (200, 200, 200)
RAW, SMOOTH = (230, 180, 120), (160, 60, 20)          # BGR
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round tick values covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 5, 10) if m * mag >= raw), default=10 * mag)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.2e}"


def training_curve(rows: list[dict], path: str, key: str = "loss",
                   size: tuple[int, int] = (800, 480)) -> None:
    """Write ``key`` against "step" of the CSV rows (skipped steps left out) as a PNG."""
    pts = [(float(r["step"]), float(r[key])) for r in rows
           if not int(float(r.get("skipped", 0))) and math.isfinite(float(r[key]))]
    W, H = size
    left, right, top, bottom = 80, 20, 40, 60
    img = np.full((H, W, 3), 255, np.uint8)
    cv2.putText(img, f"training {key}", (left, 25), FONT, 0.6, BLACK, 1, cv2.LINE_AA)
    if pts:
        x = np.array([p[0] for p in pts])
        y = np.array([p[1] for p in pts])
        x0, x1 = float(x.min()), float(max(x.max(), x.min() + 1))
        y0, y1 = float(y.min()), float(y.max())
        if y1 <= y0:
            y0, y1 = y0 - 0.5, y1 + 0.5

        def px(xv, yv):
            return np.stack([left + (xv - x0) / (x1 - x0) * (W - left - right),
                             H - bottom - (yv - y0) / (y1 - y0) * (H - top - bottom)], -1)

        for t in _ticks(x0, x1):
            u = int(px(np.array([t]), np.array([y0]))[0, 0])
            cv2.line(img, (u, top), (u, H - bottom), GREY, 1)
            cv2.putText(img, _fmt(t), (u - 15, H - bottom + 18), FONT, 0.4, BLACK, 1, cv2.LINE_AA)
        for t in _ticks(y0, y1):
            v = int(px(np.array([x0]), np.array([t]))[0, 1])
            cv2.line(img, (left, v), (W - right, v), GREY, 1)
            cv2.putText(img, _fmt(t), (5, v + 4), FONT, 0.4, BLACK, 1, cv2.LINE_AA)
        cv2.polylines(img, [np.round(px(x, y)).astype(np.int32)], False, RAW, 1, cv2.LINE_AA)
        alpha = 2.0 / (1 + max(len(y) // 20, 1))
        ema = np.empty_like(y)
        ema[0] = y[0]
        for i in range(1, len(y)):
            ema[i] = alpha * y[i] + (1 - alpha) * ema[i - 1]
        cv2.polylines(img, [np.round(px(x, ema)).astype(np.int32)], False, SMOOTH, 2, cv2.LINE_AA)
    cv2.rectangle(img, (left, top), (W - right, H - bottom), BLACK, 1)
    cv2.putText(img, "step", (W // 2 - 15, H - 15), FONT, 0.5, BLACK, 1, cv2.LINE_AA)
    cv2.putText(img, key, (5, top - 8), FONT, 0.5, BLACK, 1, cv2.LINE_AA)
    cv2.imwrite(path, img)


@torch.no_grad()
def predictions(model: torch.nn.Module, dataset, path: str, n: int = 6, device="cpu") -> None:
    """A grid of ``n`` held-out images: input | predicted mesh | ground-truth mesh (PNG)."""
    from hybrik_fast.data.render import draw_mesh
    from .evaluate import body_mesh

    was_training = model.training
    model.eval()
    n = min(n, len(dataset))
    samples = [dataset[round(i * (len(dataset) - 1) / max(n - 1, 1))] for i in range(n)]
    images = torch.stack([s["image"] for s in samples]).to(device)      # (n, 3, S, S)
    out = model(images)
    faces = model.smpl.faces.cpu().numpy()
    pred_cam = (out["vertices"] + root_from_camera(out["camera"])[:, None]).float().cpu()  # (n, V, 3)
    tiles = []
    for i, s in enumerate(samples):
        rgb = denormalize_image(s["image"])
        row = [rgb, draw_mesh(rgb, pred_cam[i].numpy(), faces)]
        if float(s["smpl_weight"][0]) > 0:
            body = model.smpl
            dt = body.v_template.dtype
            gt = body_mesh(body, s["rotmats"][None].to(device, dt), s["betas"][None].to(device, dt))
            gt_cam = gt[0].cpu() + root_from_camera(s["camera"][None].to(torch.float64))[0].to(gt.dtype).cpu()
            row.append(draw_mesh(rgb, gt_cam.numpy(), faces, color=(120, 255, 150)))
        else:
            row.append(np.zeros_like(rgb))
        tiles.append(np.concatenate(row, axis=1))
    grid = np.concatenate(tiles, axis=0)
    S = samples[0]["image"].shape[-1]
    for j, text in enumerate(("input", "prediction", "ground truth")):
        cv2.putText(grid, text, (j * S + 4, 14), FONT, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.imwrite(path, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    model.train(was_training)
