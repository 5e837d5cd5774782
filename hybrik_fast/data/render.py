"""Flat-shaded mesh rasterisation with OpenCV, in the crop camera.

Shapes: V vertices, F faces, S crop size in pixels.

Vertices are in the camera frame of :mod:`hybrik_fast.camera` (metres, x
right, y down, z forward).  A point projects to the pixel coordinates

    p = (u + 0.5) · S,   (u, v) = FOCAL_NORM · (x, y) / z

so u = −0.5 is the centre of pixel 0 and the heatmap bin k of N sits at pixel
k·S/N, as the soft-argmax's ``c = k/N − 0.5`` says.

The renderer is a painter's algorithm: faces whose outward normal points away
from the camera are culled, the rest are sorted far to near by the depth of
their centroid and each is filled with ``cv2.fillConvexPoly`` (4 bits of
sub-pixel precision) in a flat colour, base colour × (ambient + diffuse ·
max(0, n·l)) (Lambert).  One ``cv2.fillPoly`` call with many triangles would
be fewer Python calls but fills by the even-odd rule, so overlapping
triangles of one call cancel; hence one call per face (~1800 visible faces of
the synthetic body: ~1.5 ms at S = 128).  The painter's order is exact for
the convex-ish tubes of the synthetic body except where parts interpenetrate.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..camera import FOCAL_NORM

#: fixed-point bits of the vertex coordinates given to OpenCV
SUBPIXEL_BITS = 4
#: the default light of :func:`draw_mesh`: from the camera, a little above and left
HEADLIGHT = (-0.3, -0.4, -0.87)
#: the default colour of :func:`draw_mesh`, RGB
MESH_COLOR = (120, 170, 255)


def to_pixels(xyz_cam: np.ndarray, size: int) -> np.ndarray:
    """Camera-frame points (N, 3) -> pixel coordinates (N, 2) of an S×S crop."""
    return (FOCAL_NORM * xyz_cam[:, :2] / xyz_cam[:, 2:] + 0.5) * size


def visible_faces(vertices_cam: np.ndarray, faces: np.ndarray):
    """Front-facing faces in painter's order (far to near).

    vertices_cam (V, 3), faces (F, 3) with outward (counter-clockwise) winding
    -> (ids (F',) into faces, unit normals (F', 3)).  A face is front-facing
    when its normal points at the camera (n · v0 < 0: the camera, at the
    origin, is on its outer side) and all its vertices are in front of the
    camera.  The sort key is the centroid's depth.
    """
    x, y, z = np.ascontiguousarray(vertices_cam.T)                # (V,) each
    f0, f1, f2 = faces.T
    ax, ay, az = x[f1] - x[f0], y[f1] - y[f0], z[f1] - z[f0]     # edges, (F,) each
    bx, by, bz = x[f2] - x[f0], y[f2] - y[f0], z[f2] - z[f0]
    normals = np.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], axis=1)
    z0, z1, z2 = z[f0], z[f1], z[f2]
    facing = normals[:, 0] * x[f0] + normals[:, 1] * y[f0] + normals[:, 2] * z0
    front = (facing < 0) & (np.minimum(np.minimum(z0, z1), z2) > 1e-6)
    ids = np.flatnonzero(front)
    ids = ids[np.argsort(-(z0 + z1 + z2)[ids], kind="stable")]    # far to near
    n = normals[ids]
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-30)
    return ids, n


def _fill(image: np.ndarray, polygons: np.ndarray, colors: list) -> None:
    """Fill triangles (F', 3, 2) fixed-point int32 in order, each in its colour."""
    for pts, color in zip(polygons, colors):
        cv2.fillConvexPoly(image, pts, color, cv2.LINE_8, SUBPIXEL_BITS)


def _fixed_point(vertices_cam: np.ndarray, faces: np.ndarray, size: int) -> np.ndarray:
    px = to_pixels(vertices_cam, size) * (1 << SUBPIXEL_BITS)
    # far outside the crop OpenCV's fixed-point arithmetic could overflow
    px = np.clip(np.rint(px), -(1 << 24), 1 << 24).astype(np.int32)
    return px[faces]                                              # (F, 3, 2)


def render_mesh(image: np.ndarray, vertices_cam: np.ndarray, faces: np.ndarray,
                face_colors, light=HEADLIGHT, ambient: float = 0.45,
                diffuse=0.55) -> np.ndarray:
    """Draw a flat-shaded mesh over ``image`` (S, S, 3) uint8, in place; returns it.

    vertices_cam (V, 3) camera frame, metres; faces (F, 3) outward winding;
    face_colors (F, 3) or (3,) in 0..255, in the image's channel order;
    ``light`` (3,) the direction from the surface towards the light, camera
    frame.  A face's colour is face_color · (ambient + diffuse · max(0, n·l)),
    rounded; ``diffuse`` may be per channel (3,), a tinted light.
    """
    size = image.shape[0]
    ids, normals = visible_faces(vertices_cam, faces)
    light = np.asarray(light, dtype=np.float64)
    light = light / np.linalg.norm(light)
    lambert = np.maximum(normals @ light, 0.0)[:, None]          # (F', 1)
    base = np.asarray(face_colors, dtype=np.float64)
    base = base[ids] if base.ndim == 2 else base
    shade = ambient + lambert * np.asarray(diffuse, dtype=np.float64)
    # small ints: tolist() reuses Python's cached int objects
    colors = np.clip(np.rint(base * shade), 0, 255).astype(np.int64).tolist()
    _fill(image, _fixed_point(vertices_cam, faces[ids], size), colors)
    return image


def silhouette(vertices_cam: np.ndarray, faces: np.ndarray, size: int) -> np.ndarray:
    """Binary mask (S, S) bool of the pixels :func:`render_mesh` draws."""
    mask = np.zeros((size, size), np.uint8)
    ids, _ = visible_faces(vertices_cam, faces)
    _fill(mask, _fixed_point(vertices_cam, faces[ids], size), [255] * len(ids))
    return mask > 0


def draw_mesh(image: np.ndarray, vertices_cam, faces, color=None, alpha: float = 0.6) -> np.ndarray:
    """Overlay a shaded mesh on a copy of ``image`` (S, S, 3) uint8, e.g. a prediction.

    vertices_cam (V, 3) in the crop camera of this image (metres; numpy or
    tensor), faces (F, 3); ``color`` (3,) or per-face (F, 3) in 0..255, in
    the image's channel order (default :data:`MESH_COLOR`); the mesh covers
    the image with opacity ``alpha``.  Lit by :data:`HEADLIGHT`.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 \
            or image.shape[0] != image.shape[1]:
        raise ValueError(f"image must be uint8 of shape (S, S, 3), got {image.dtype} {image.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    vertices = np.asarray(_numpy(vertices_cam), dtype=np.float64)
    faces = np.asarray(_numpy(faces), dtype=np.int64)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices_cam must have shape (V, 3), got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {faces.shape}")
    layer = image.copy()
    render_mesh(layer, vertices, faces, MESH_COLOR if color is None else color,
                light=HEADLIGHT, ambient=0.35, diffuse=0.75)
    mask = silhouette(vertices, faces, image.shape[0])
    out = image.copy()
    out[mask] = np.rint(alpha * layer[mask] + (1 - alpha) * image[mask]).astype(np.uint8)
    return out


def _numpy(x):
    return x.detach().cpu().numpy() if hasattr(x, "detach") else x
