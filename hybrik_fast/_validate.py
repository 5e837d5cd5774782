"""Boundary checks shared by every public op.

Kernels assume valid input; these functions raise an error that names the
expected shape (``(B, 29, 3)``) as soon as a user passes something else.
The rule of every public entry (ops, BodyModel, models, losses, metrics): a
non-tensor or a wrong dtype (or dtypes that differ) raises TypeError, a wrong
shape (or devices that differ) ValueError.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch

Dim = Union[int, str]  # an int is a fixed size, a str names a free size ("B")

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def shape_str(spec: Sequence[Dim]) -> str:
    return "(" + ", ".join(str(d) for d in spec) + ")"


def check_tensor(name: str, x, spec: Sequence[Dim], dtypes=FLOAT_DTYPES,
                 sizes: dict | None = None) -> dict:
    """Check ``x`` against a shape spec such as ``("B", 29, 3)``.

    ``sizes`` carries the free sizes bound by earlier tensors (so ``B`` must
    agree across the inputs of one op); it is updated and returned.
    Raises TypeError for a non-tensor or a wrong dtype, ValueError for a wrong
    shape; both messages name the expected shape.
    """
    sizes = {} if sizes is None else sizes
    want = shape_str(spec)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {want}, got {type(x).__name__}")
    if x.dtype not in dtypes:
        names = ", ".join(str(d).replace("torch.", "") for d in dtypes)
        raise TypeError(f"{name} must be a floating tensor ({names}) of shape {want}, got dtype {x.dtype}")
    if x.dim() != len(spec):
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
    for axis, (d, n) in enumerate(zip(spec, x.shape)):
        if isinstance(d, int):
            if n != d:
                raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
        elif d in sizes and sizes[d] != n:
            raise ValueError(
                f"{name} must have shape {want} with {d} = {sizes[d]} as in the other inputs, "
                f"got {tuple(x.shape)}")
        else:
            sizes[d] = n
    return sizes


def check_same(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """The inputs of one op must share dtype and device."""
    if a.dtype != b.dtype:
        raise TypeError(f"{name_b} has dtype {b.dtype} but {name_a} has {a.dtype}; they must match")
    if a.device != b.device:
        raise ValueError(f"{name_b} is on {b.device} but {name_a} is on {a.device}; they must match")
