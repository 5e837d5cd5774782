"""Fitting a run to its time budget (``time_budget`` > 0).

The run times CALIBRATION_STEPS steps after CALIBRATION_WARMUP (slower: memory
first touched, lazy allocations) and, once, computes how many steps fit in
what is left of the budget after a reserve for the final evaluation, the
PNGs and the saves (1.5 × the untrained evaluation's time + 5 s).  Under
torchrun every rank takes rank 0's figure.  The loop shortens the run to it
(the LR schedule rescaled to the new length) and stores the cut in the
checkpoint, so a resumed run keeps it and does not calibrate again.
"""
from __future__ import annotations

import time

import torch
import torch.distributed as dist

CALIBRATION_WARMUP = 3    # steps not timed: first-touch page faults, lazy allocations
CALIBRATION_STEPS = 20    # the steps timed after them


class TimeBudget:
    """``fit(step)`` after each step: the number of steps that fit the budget,
    once, at the end of the calibration; None before, after and when off."""

    def __init__(self, seconds: float, t_start: float, active: bool, world: int, device: torch.device):
        self.seconds, self.t_start, self.active = seconds, t_start, active and seconds > 0
        self.world, self.device = world, device
        self.t_eval = 0.0                         # seconds of one held-out evaluation, set by the loop
        self.per_step = None
        self._t_calib = None

    def fit(self, step: int) -> int | None:
        if not self.active:
            return None
        if step == CALIBRATION_WARMUP:
            self._t_calib = time.time()
        if self._t_calib is None or step != CALIBRATION_WARMUP + CALIBRATION_STEPS:
            return None
        self.active = False
        self.per_step = (time.time() - self._t_calib) / CALIBRATION_STEPS
        reserve = 1.5 * self.t_eval + 5.0                               # final eval, PNGs, saves
        left = self.seconds - (time.time() - self.t_start) - reserve
        fit = step + max(int(left / self.per_step), 0)
        if self.world > 1:                                              # every rank takes rank 0's
            t = torch.tensor([fit], device=self.device)
            dist.broadcast(t, 0)
            fit = int(t)
        return fit
