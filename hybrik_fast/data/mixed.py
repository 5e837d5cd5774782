"""Several datasets sampled with fixed ratios."""
from __future__ import annotations

import numpy as np
import torch

#: the facts note's mixing ratios, by loader class name
DEFAULT_RATIOS = {"Human36M": 0.3, "COCO2D": 0.4, "MPIINF3DHP": 0.1, "PW3D": 0.2}


class MixedDataset(torch.utils.data.Dataset):
    """Item i comes from dataset k with probability ratios[k] / Σ ratios.

    Args:
        datasets: the datasets (each yields the common sample dict).
        ratios:   non-negative weights, one per dataset, with a positive sum.
                  Default: the facts note's 0.3 / 0.4 / 0.1 / 0.2 for Human36M /
                  COCO2D / MPIINF3DHP / PW3D when exactly those four loaders are
                  passed (any order), else equal weights.
        length:   the number of items (default: the sum of the datasets' lengths).
        seed:     item i is a function of (seed, epoch, i): which dataset, and a
                  uniform index into it.  :meth:`set_epoch` changes the draw.

    The sample's ``index`` is the index inside the chosen dataset;
    :meth:`source` maps an item to (dataset, index).
    """

    def __init__(self, datasets, ratios=None, length: int | None = None, seed: int = 0):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("MixedDataset needs at least one dataset")
        if ratios is None:
            names = sorted(type(d).__name__ for d in self.datasets)
            if names == sorted(DEFAULT_RATIOS):
                ratios = [DEFAULT_RATIOS[type(d).__name__] for d in self.datasets]
            else:
                ratios = [1.0] * len(self.datasets)
        ratios = np.asarray(ratios, dtype=np.float64)
        if ratios.shape != (len(self.datasets),):
            raise ValueError(f"ratios must have one entry per dataset ({len(self.datasets)}), "
                             f"got {ratios.tolist()}")
        if not np.all(np.isfinite(ratios)) or np.any(ratios < 0) or ratios.sum() <= 0:
            raise ValueError(f"ratios must be finite, non-negative and sum to > 0, got {ratios.tolist()}")
        for k, (d, r) in enumerate(zip(self.datasets, ratios)):
            if r > 0 and len(d) == 0:
                raise ValueError(f"dataset {k} ({type(d).__name__}) is empty but has ratio {r}")
        self.ratios = ratios / ratios.sum()
        self._cumulative = np.cumsum(self.ratios)
        self.length = sum(len(d) for d in self.datasets) if length is None else int(length)
        if self.length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw a different (still deterministic) mixture for another epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def source(self, index: int) -> tuple[int, int]:
        """(dataset number, index in that dataset) of item ``index``."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        u, v = np.random.default_rng((self.seed, self.epoch, index)).random(2)
        k = int(np.searchsorted(self._cumulative, u * self._cumulative[-1], side="right"))
        k = min(k, len(self.datasets) - 1)  # first k with cumulative > u: never a zero ratio
        return k, int(v * len(self.datasets[k]))

    def __getitem__(self, index: int) -> dict:
        k, i = self.source(index)
        return self.datasets[k][i]
