"""Learning-rate schedules, as multipliers of the base LR per optimiser step.

    multistep  the paper's: ×gamma at each milestone (fractions of the run:
               epochs 90 and 120 of 140 are 0.643 and 0.857)
    invsqrt    the transformer paper's: linear warm-up to the base LR over
               ``warmup_steps`` (a fraction of the run if < 1, as the
               milestones, else steps), then ∝ 1/√step  (Vaswani et al.
               2017, eq. 3, normalised so the peak is the base LR)
    constant   1

They are plain functions of the step so that the LR is reproducible from the
step alone; :func:`build` wraps one in a LambdaLR whose state (the step)
goes into the checkpoint.
"""
from __future__ import annotations

import bisect
import math
from functools import partial

import torch


def multistep(step: int, milestones: list[int], gamma: float) -> float:
    return gamma ** bisect.bisect_right(milestones, step)


def invsqrt(step: int, warmup: int) -> float:
    s = step + 1                                  # step 0 trains at a nonzero LR
    if warmup <= 0:
        return 1.0 / math.sqrt(s)
    return min(s / warmup, math.sqrt(warmup / s))


def constant(step: int) -> float:
    return 1.0


def lr_factor(cfg, total_steps: int):
    """The multiplier function of ``cfg.schedule`` for a run of ``total_steps``."""
    if cfg.schedule == "multistep":
        milestones = sorted(round(m * total_steps) if m < 1 else int(m) for m in cfg.milestones)
        return partial(multistep, milestones=milestones, gamma=cfg.gamma)
    if cfg.schedule == "invsqrt":
        w = cfg.warmup_steps
        return partial(invsqrt, warmup=round(w * total_steps) if w < 1 else int(w))
    return constant


def build(optimizer: torch.optim.Optimizer, cfg, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg, total_steps))
