"""Output files of ``hybrik-fast predict``, each written atomically (temp file, then os.replace)."""
from __future__ import annotations

import io
import json
import os
import tempfile

import cv2
import numpy as np

from .._io import atomic_write


def check_writable(folder) -> None:
    """Create ``folder`` if needed and prove a file can be written in it; else OSError naming it."""
    folder = os.fspath(folder)
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OSError(f"cannot write to the output folder {folder!r}: {e.strerror or e}") from None


def _publish(path) -> None:
    """Give a file made by atomic_write (mode 0600, from mkstemp) the usual mode, 0666 less the umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def save_npz(path, arrays: dict) -> None:
    """``np.savez(path, **arrays)``, atomically."""
    atomic_write(path, lambda fh: np.savez(fh, **arrays))
    _publish(path)


def save_json(path, data) -> None:
    """``data`` as indented JSON, atomically."""
    atomic_write(path, lambda fh: fh.write(json.dumps(data, indent=1).encode()))
    _publish(path)


def save_obj(path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """A Wavefront .obj of one mesh: vertices (V, 3) metres, faces (F, 3) 0-based (written 1-based)."""
    buf = io.BytesIO()
    np.savetxt(buf, np.asarray(vertices, dtype=np.float64), fmt="v %.6f %.6f %.6f")
    np.savetxt(buf, np.asarray(faces, dtype=np.int64) + 1, fmt="f %d %d %d")
    atomic_write(path, lambda fh: fh.write(buf.getvalue()))
    _publish(path)


def save_jpeg(path, image: np.ndarray, quality: int = 90) -> None:
    """image (H, W, 3) uint8 BGR -> a JPEG file, atomically."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"OpenCV could not encode {path!r} as JPEG")
    atomic_write(path, lambda fh: fh.write(data.tobytes()))
    _publish(path)


class VideoSink:
    """An .mp4 written frame by frame to a temporary file and renamed over ``path`` by :meth:`close`.

    Frames (H, W, 3) uint8 BGR, all the same size (the first sets it).  If
    :meth:`close` is never reached, ``path`` is untouched.
    """

    def __init__(self, path, fps: float):
        self.path, self.fps = os.fspath(path), fps
        folder, name = os.path.split(os.path.abspath(self.path))
        self.tmp = os.path.join(folder, f".{name}.tmp.mp4")
        self.writer = None

    def write(self, frame: np.ndarray) -> None:
        if self.writer is None:
            H, W = frame.shape[:2]
            self.writer = cv2.VideoWriter(self.tmp, cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (W, H))
            if not self.writer.isOpened():
                raise OSError(f"OpenCV cannot write the video {self.path!r} (mp4v codec)")
        self.writer.write(frame)

    def close(self) -> None:
        """Finish the file and move it to ``path``."""
        if self.writer is not None:
            self.writer.release()
            os.replace(self.tmp, self.path)
            self.writer = None

    def discard(self) -> None:
        """Drop the unfinished file."""
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)
