"""The predictor's renderer: a z-buffered CPU rasteriser in torch (no OpenGL, no PyTorch3D).

Shapes: V vertices, F faces, H×W image.  Camera: a pinhole with focal
length ``focal`` (pixels) and principal point ``principal`` (cx, cy) pixels,
camera frame x right, y down, z forward (metres); a point projects to

    (x_px, y_px) = focal · (x, y) / z + (cx, cy)

with pixel (row i, column j) centred at (j, i).

Rasterisation, all faces at once (no Python loop over faces):

1. Faces with a vertex at z ≤ NEAR or facing away from the camera (outward
   normal n with n · v0 ≥ 0) are dropped.
2. Each face's rows of pixels (its bounding box, clipped to the image) are
   expanded into (face, row) spans.  On a row y each edge function
   e(x) = (x_b − x_a)(y − y_a) − (y_b − y_a)(x − x_a) is affine in x, so
   sign(area)·e ≥ 0 bounds x from one side; the span is the intersection of
   the three, widened by a pixel at each end (the test of step 3 decides), so
   long thin faces cost their pixels, not their boxes.  Spans are expanded
   into (face, pixel) candidates, CHUNK at a time.
3. Barycentric coordinates λ from the three edge functions; a pixel centre is
   inside when every λ ≥ 0.  1/z is affine in screen space, so the depth of a
   candidate is 1 / Σ λ_k / z_k (perspective-correct).
4. Z-buffer: a candidate's key is (bits of the float32 1/z) << 32 | face id.
   Positive float32 values order like their bit patterns, so one
   ``scatter_reduce(amax)`` over the pixels keeps the nearest face of every
   pixel (ties: the larger face id) and its depth.

Shading is flat Lambert per face, colour · (ambient + diffuse · max(0, n · l))
with the light from the camera.  ``bench/predict_speed.py`` times it (the
issue's target: a 6890-vertex mesh at 512×512 in ≤ 50 ms on one core).
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

#: faces with a vertex nearer than this (metres) are not drawn
NEAR = 1e-3
#: (face, pixel) candidates per z-buffer pass (bounds the memory: ~100 bytes each)
CHUNK = 1 << 20
#: direction from the surface to the light, camera frame: from the camera, above left
HEADLIGHT = (-0.3, -0.4, -0.87)
AMBIENT, DIFFUSE = 0.35, 0.65
#: one mesh colour per person, BGR, cycled
PERSON_COLORS = ((255, 170, 120), (120, 200, 255), (150, 255, 150), (230, 140, 240),
                 (120, 120, 250), (250, 250, 120))
#: the side view turns the scene by this angle about the vertical axis through its centre
SIDE_ANGLE = np.pi / 2


def rasterize(vertices: torch.Tensor, faces: torch.Tensor, focal: float, principal, size):
    """Z-buffer of a mesh: (face_id (H, W) int64, −1 where empty; depth (H, W) metres, inf where empty).

    vertices (V, 3) camera frame, metres, float; faces (F, 3) long, outward
    (counter-clockwise seen from outside) winding; size = (H, W).
    """
    H, W = size
    v = vertices.to(torch.float32)
    z = v[:, 2]
    px = focal * v[:, 0] / z + float(principal[0])                  # (V,)
    py = focal * v[:, 1] / z + float(principal[1])
    tri = v[faces]                                                  # (F, 3, 3)
    normals = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    keep = ((normals * tri[:, 0]).sum(-1) < 0) & (tri[..., 2].amin(1) > NEAR)
    ids = torch.nonzero(keep).squeeze(1)                            # (F',)
    f = faces[ids]
    x, y, iz = px[f], py[f], 1.0 / z[f]                             # (F', 3) each
    x0 = x.amin(1).ceil().clamp(0, W).long()
    x1 = x.amax(1).floor().clamp(-1, W - 1).long()
    y0 = y.amin(1).ceil().clamp(0, H).long()
    y1 = y.amax(1).floor().clamp(-1, H - 1).long()
    bh = (y1 - y0 + 1).clamp_min(0)                                 # rows per face
    # (face, row) spans
    rf = torch.repeat_interleave(torch.arange(len(ids)), bh)          # (R,) row -> face
    ry = y0[rf] + torch.arange(len(rf)) - torch.repeat_interleave(bh.cumsum(0) - bh, bh)
    xa, ya = x[rf], y[rf]                                           # (R, 3)
    xb, yb = xa.roll(-1, 1), ya.roll(-1, 1)
    sign = torch.sign((x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (y[:, 1] - y[:, 0]) * (x[:, 2] - x[:, 0]))
    a = -(yb - ya) * sign[rf, None]                                 # sign·e = a·x + b
    b = ((xb - xa) * (ry[:, None] - ya) + (yb - ya) * xa) * sign[rf, None]
    bound = -b / torch.where(a == 0, torch.ones_like(a), a)
    lower = torch.where(a > 0, bound, torch.full_like(a, -1e9)).amax(1).clamp(-1e9, 1e9)
    upper = torch.where(a < 0, bound, torch.full_like(a, 1e9)).amin(1).clamp(-1e9, 1e9)
    xl = torch.maximum(lower.ceil() - 1, x0[rf].float()).long()
    xr = torch.minimum(upper.floor() + 1, x1[rf].float()).long()
    n = (xr - xl + 1).clamp_min(0)
    n[((a == 0) & (b < 0)).any(1) | (sign[rf] == 0)] = 0
    best = torch.zeros(H * W, dtype=torch.int64)
    # chunks of rows with at most CHUNK pixels (one row may exceed it alone)
    ends = torch.searchsorted(n.cumsum(0), torch.arange(CHUNK, int(n.sum()) + CHUNK, CHUNK),
                              right=True).tolist()
    start = 0
    for end in ends:
        end = max(end, start + 1)
        if start >= len(rf):
            break
        rows = slice(start, end)
        k = torch.repeat_interleave(rf[rows], n[rows])              # (N,) candidate -> face
        local = torch.arange(len(k)) - torch.repeat_interleave(n[rows].cumsum(0) - n[rows], n[rows])
        cx = (torch.repeat_interleave(xl[rows], n[rows]) + local).float()
        cy = torch.repeat_interleave(ry[rows], n[rows]).float()
        _scatter(best, W, ids, k, cx, cy, x, y, iz)
        start = end
    hit = best > 0
    face_id = torch.full((H * W,), -1, dtype=torch.int64)
    depth = torch.full((H, W), float("inf"))
    face_id[hit] = best[hit] & 0xFFFFFFFF
    depth.view(-1)[hit] = 1.0 / (best[hit] >> 32).to(torch.int32).view(torch.float32)
    return face_id.view(H, W), depth


def _scatter(best, W, ids, k, cx, cy, x, y, iz) -> None:
    """Z-buffer (face, pixel) candidates into ``best`` (H·W,), keys as in the module docstring.
    ids (F',) face ids; k (N,) candidate -> face (into ids); cx, cy (N,) pixel centres;
    x, y, iz (F', 3) screen coordinates and 1/z of the faces' vertices."""
    # edge function of the edge a -> b at p: (b − a) × (p − a); λ_k uses the edge opposite vertex k
    xa, ya = x[k], y[k]                                             # (N, 3)
    xb, yb = xa.roll(-1, 1), ya.roll(-1, 1)
    edge = (xb - xa) * (cy[:, None] - ya) - (yb - ya) * (cx[:, None] - xa)   # (N, 3): edges 01, 12, 20
    area = edge.sum(1, keepdim=True)                                # 2 × signed area
    lam = edge.roll(-1, 1) / area                                   # λ_0 from edge 12, λ_1 from 20, λ_2 from 01
    inside = (lam >= 0).all(1) & (area[:, 0] != 0)
    inv_z = (lam * iz[k]).sum(1)
    sel = torch.nonzero(inside).squeeze(1)
    pix = cy[sel].long() * W + cx[sel].long()
    key = (inv_z[sel].view(torch.int32).to(torch.int64) << 32) | ids[k[sel]]
    best.scatter_reduce_(0, pix, key, reduce="amax", include_self=True)


def shade(vertices: torch.Tensor, faces: torch.Tensor, face_colors: torch.Tensor,
          face_id: torch.Tensor, light=HEADLIGHT) -> tuple[np.ndarray, np.ndarray]:
    """Flat Lambert colours of the rasterised faces: (image (H, W, 3) uint8, mask (H, W) bool).

    vertices (V, 3), faces (F, 3), face_colors (F, 3) in 0..255 (any channel
    order), face_id (H, W) from :func:`rasterize`.
    """
    tri = vertices.to(torch.float32)[faces]
    n = torch.nn.functional.normalize(torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]),
                                      dim=1)
    l = torch.nn.functional.normalize(torch.tensor(light, dtype=torch.float32), dim=0)
    lit = face_colors.float() * (AMBIENT + DIFFUSE * (n @ l).clamp_min(0))[:, None]   # (F, 3)
    mask = face_id >= 0
    image = torch.zeros(*face_id.shape, 3)
    image[mask] = lit[face_id[mask]]
    return image.round().clamp(0, 255).to(torch.uint8).numpy(), mask.numpy()


def scene_mesh(vertices, faces) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """People (P, V, 3) and one face list (F, 3) -> one mesh: (vertices (P·V, 3),
    faces (P·F, 3), face colours (P·F, 3) BGR, :data:`PERSON_COLORS` by person)."""
    vertices = torch.as_tensor(np.asarray(vertices), dtype=torch.float32)
    faces = torch.as_tensor(np.asarray(faces), dtype=torch.int64)
    P, V = vertices.shape[:2]
    all_faces = (faces[None] + V * torch.arange(P)[:, None, None]).reshape(-1, 3)
    colors = torch.tensor([PERSON_COLORS[p % len(PERSON_COLORS)] for p in range(P)], dtype=torch.float32)
    return vertices.reshape(-1, 3), all_faces, colors.repeat_interleave(len(faces), 0)


@contextlib.contextmanager
def one_thread():
    """Run torch on one thread inside the block.  The rasteriser is many small ops: with
    several threads each one waits for all of them, and on a busy machine (threads off
    their cores) that took an overlay from 25 ms of CPU to over a second."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def render_people(vertices, faces, focal: float, principal, size) -> tuple[np.ndarray, np.ndarray]:
    """Shaded people (P, V, 3) camera frame, faces (F, 3) -> (image (H, W, 3) uint8 BGR, mask (H, W))."""
    with one_thread():
        v, f, colors = scene_mesh(vertices, faces)
        face_id, _ = rasterize(v, f, focal, principal, size)
        return shade(v, f, colors, face_id)


def side_view(vertices, focal: float, size, fill: float = 0.8) -> np.ndarray:
    """People (P, V, 3) turned by SIDE_ANGLE about the vertical (camera y) axis through
    the centre of their vertices, then moved along z so that, seen with ``focal`` and
    the principal point at the centre of an image of ``size`` = (H, W), their box
    fills at most ``fill`` of it: what a camera to their side sees -> (P, V, 3)."""
    v = np.asarray(vertices, dtype=np.float64)
    flat = v.reshape(-1, 3)
    c, s = np.cos(SIDE_ANGLE), np.sin(SIDE_ANGLE)
    turn = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    turned = (flat - flat.mean(0)) @ turn.T
    lo, hi = turned.min(0), turned.max(0)
    mid = (lo + hi) / 2
    H, W = size
    # the nearest face of the box, at depth z - (hi - lo)_z / 2, must show the box within fill
    z = max(focal * (hi[0] - lo[0]) / (fill * W), focal * (hi[1] - lo[1]) / (fill * H)) + (hi[2] - lo[2]) / 2
    return (turned - mid + np.array([0.0, 0.0, z])).reshape(v.shape)


def overlay(image: np.ndarray, vertices, faces, focal: float, principal, alpha: float = 0.8) -> np.ndarray:
    """The rendered JPEG's picture: image (H, W, 3) uint8 BGR with the people
    (P, V, 3) drawn over it, and beside it the side view on grey -> (H, 2W, 3)."""
    H, W = image.shape[:2]
    front = image.copy()
    side = np.full_like(image, 64)
    if len(vertices):
        layer, mask = render_people(vertices, faces, focal, principal, (H, W))
        front[mask] = np.rint(alpha * layer[mask] + (1 - alpha) * image[mask]).astype(np.uint8)
        layer, mask = render_people(side_view(vertices, focal, (H, W)), faces, focal, (W / 2, H / 2), (H, W))
        side[mask] = layer[mask]
    return np.concatenate([front, side], axis=1)
