"""Checkpoints that survive crashes.

A checkpoint is a dict of tensors and plain containers, written with
``torch.save`` and readable with ``torch.load(path, weights_only=True)``::

    format      "hybrik_fast.train/1"
    model       state_dict (the unwrapped module, no "module." prefix)
    optimizer   state_dict
    scheduler   state_dict
    scaler      state_dict ({} when no gradient scaler is used)
    rng         {"torch": ByteTensor, "cuda": [ByteTensor] | [], "numpy": {...}, "python": {...}}
    step        optimiser steps taken (skipped bad steps included)
    epoch       current epoch
    epoch_step  batches of that epoch already consumed
    config      the run's configuration, a plain dict
    metrics     held-out metrics at this step (may be {})
    extra       anything else (baseline metrics, bad-step count, ...)

Writes are atomic: the bytes go to a temporary file in the same directory,
are flushed and fsync'ed, and the file is renamed over the target with
``os.replace``.  A crash mid-write leaves the previous file untouched.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

from hybrik_fast._io import atomic_write

FORMAT = "hybrik_fast.train/1"
REQUIRED = ("model", "step", "epoch", "config")


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read (missing, truncated, corrupt, or not ours)."""


# ----------------------------------------------------------------------------- RNG states

def rng_state() -> dict:
    """Every RNG the run draws from, as tensors and plain values (weights_only-safe)."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss), "cached_gaussian": float(np_gauss)},
        "python": {"version": py_version, "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss_next": py_gauss},
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(x) for x in p["state"].tolist()), p["gauss_next"]))


# ----------------------------------------------------------------------------- save / load

def atomic_save(obj, path: str) -> None:
    """``torch.save(obj, path)`` so that ``path`` is either the old file or the complete new one."""
    atomic_write(path, lambda f: torch.save(obj, f))


def load(path: str, map_location="cpu") -> dict:
    """Read a checkpoint with ``weights_only=True``; a clear CheckpointError if it is unusable."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, bad pickle, unsafe globals, ...
        raise CheckpointError(
            f"checkpoint {path!r} is truncated or corrupt and cannot be loaded "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            f"use another checkpoint of the run (best.pt) or start afresh") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} is not a hybrik_fast training checkpoint "
                              f"(expected a dict with format={FORMAT!r})")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path!r} lacks the entries {missing}")
    return ckpt


def model_state(ckpt: dict) -> dict:
    """The model's state_dict from one of our checkpoints, a ``{'model': ...}`` dict, or a bare state_dict."""
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else ckpt
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_model_weights(path: str, map_location="cpu") -> tuple[dict, dict]:
    """(state_dict, config dict) of any checkpoint written by the trainer."""
    ckpt = load(path, map_location)
    return model_state(ckpt), ckpt["config"]


def init_weights(model: torch.nn.Module, path: str) -> str:
    """Start ``model`` from the weights of the checkpoint at ``path`` (``--init``, fine-tuning).

    ``path``: one of our training checkpoints, or a state dict in the
    published layout (``hybrik_hrnet.pth`` into the ``hrnet48-3dpw`` model,
    ``pretrained_w_cam.pth`` into ``resnet34-3dpw``'s; bare or under
    ``model`` / ``state_dict``, ``module.`` prefixes allowed), or any state
    dict whose keys are the model's.  Every network entry must be there with
    the model's shape; only the weights are taken (not the optimiser,
    schedule or step).  The ``smpl.*`` body buffers are not loaded: the run
    keeps its configured body (``body=``), the one its labels are computed
    with.  The camera head's scale is s = 0.9·exp(r) here (common.py) and
    0.9 + r in the public code: a public checkpoint's raw output r = 0 gives
    the same scale, r = −0.3 gives 0.67 here against 0.60 there; fine-tuning
    adapts the head to it.

    Returns a line saying what was loaded and what was done with the file's
    body.  A mismatch raises CheckpointError naming the path and the missing
    and unexpected keys, or a key and both shapes.
    """
    from hybrik_fast.models.checkpoint import load_network, read_state_dict
    path = os.fspath(path)
    try:
        state, kind = model_state(load(path)), "training checkpoint"
    except CheckpointError:
        try:
            state, kind = read_state_dict(path), "state dict"
        except (ValueError, FileNotFoundError) as e:
            raise CheckpointError(f"--init {path!r}: {e}") from e
    try:
        load_network(model, state, f"--init {path!r} ({kind})")
    except ValueError as e:
        raise CheckpointError(str(e)) from e
    note = f"--init: the network weights of {path} ({kind})"
    body = state.get("smpl.v_template")
    own = getattr(getattr(model, "smpl", None), "v_template", None)
    if body is None or own is None:
        return note
    return (note + f"; its smpl.* buffers (V = {body.shape[0]}) are not loaded, the run keeps "
            f"its own body (V = {own.shape[0]})")
