"""The training run's record on rank 0: OUT/log.csv, TensorBoard scalars and the progress bar.

log.csv holds one row per step (step, epoch, loss, lr, grad_norm,
images_per_s, skipped, loss_<term>...).  A resumed run keeps the rows up to
the checkpoint's step and rewrites the file from them at its first step, so a
killed and resumed run leaves one row per step.  The file is flushed every
step.  TensorBoard scalars (``train/<column>``, every ``log_every`` steps) are
written when tensorboard is installed.  On the other ranks only the images/s
clock runs.
"""
from __future__ import annotations

import csv
import os
import time

import torch
from tqdm import tqdm

CSV_NAME = "log.csv"


def read_csv(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class RunLog:
    """Per-step logging of a run that starts at ``step`` of ``total_steps``."""

    def __init__(self, out: str, step: int, total_steps: int, master: bool, progress: bool, log_every: int):
        self.master, self.log_every, self.total_steps = master, log_every, total_steps
        self.csv_path = os.path.join(out, CSV_NAME)
        self.rows = [r for r in read_csv(self.csv_path) if int(r["step"]) <= step] if master else []
        self._file = self._writer = None
        self.tb = None
        if master:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(os.path.join(out, "tb"), purge_step=step or None)
            except ImportError:                   # tensorboard not installed: CSV and PNG only
                self.tb = None
        self.bar = tqdm(total=total_steps, initial=step, desc="train", unit="step", dynamic_ncols=True,
                        disable=not (master and progress))
        self._t_last = time.time()

    def write(self, message: str) -> None:
        """A line on rank 0's console, above the bar."""
        if self.master:
            tqdm.write(message)

    def set_total(self, total_steps: int) -> None:
        self.total_steps = self.bar.total = total_steps
        self.bar.refresh()

    def step(self, step: int, epoch: int, loss: float, lr: float, grad_norm: float, skipped: bool,
             terms: dict, images: int) -> None:
        """Record the step just taken on ``images`` images (all ranks)."""
        now = time.time()
        ips = images / max(now - self._t_last, 1e-9)
        self._t_last = now
        if not self.master:
            return
        term_values = dict(zip(terms, torch.stack([t.detach().float() for t in terms.values()])
                               .tolist())) if terms else {}        # host sync
        row = {"step": step, "epoch": epoch, "loss": loss, "lr": lr, "grad_norm": grad_norm,
               "images_per_s": ips, "skipped": int(skipped), **{f"loss_{k}": v for k, v in term_values.items()}}
        if self._writer is None:
            fieldnames = list(self.rows[0]) if self.rows else list(row)
            self._file = open(self.csv_path, "w", newline="")
            self._writer = csv.DictWriter(self._file, fieldnames=fieldnames, extrasaction="ignore")
            self._writer.writeheader()
            self._writer.writerows(self.rows)
        self._writer.writerow(row)
        self._file.flush()
        self.rows.append(row)
        if step % self.log_every == 0 or step == self.total_steps:
            self.bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{ips:.1f}", lr=f"{lr:.2e}")
            if self.tb is not None:
                for k, v in row.items():
                    self.tb.add_scalar(f"train/{k}", float(v), step)
        self.bar.update(1)

    def close(self) -> None:
        """Close the bar (every rank), the CSV file and TensorBoard."""
        self.bar.close()
        if self._file is not None:
            self._file.close()
        if self.tb is not None:
            self.tb.close()
