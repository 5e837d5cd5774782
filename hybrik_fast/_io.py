"""Crash-safe file writes, shared by the body model, the dataset cache and checkpoints."""
from __future__ import annotations

import os
import tempfile
from typing import BinaryIO, Callable


def atomic_write(path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` so that it is either the old file or the complete new one.

    ``write(fh)`` fills a temporary file in the same directory, which is
    flushed, fsync'ed and renamed over ``path`` with ``os.replace``; the
    directory is fsync'ed too so that the rename survives a power loss.  On
    any error (or a KeyboardInterrupt) the temporary file is removed and
    ``path`` is untouched.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:  # some filesystems cannot open directories
        return
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
