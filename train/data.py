"""Datasets for training and evaluation, named by a spec string.

    synthetic[:SPLIT[:N]]     SyntheticHumans; SPLIT train|val (default: the
                              split asked for), N images (default: the
                              config's train_length / val_length)
    h36m:ROOT[:SPLIT]         Human36M       (held-out split: test)
    3dpw:ROOT[:SPLIT]         PW3D           (held-out split: test)
    3dhp:ROOT[:SPLIT]         MPIINF3DHP     (held-out split: test)
    coco:ROOT[:SPLIT]         COCO2D         (held-out split: val)
    mixed:ROOT                MixedDataset of whichever of ROOT/h36m, ROOT/coco,
                              ROOT/3dhp, ROOT/pw3d (or ROOT/3dpw) exist, at the
                              public ratios 0.3 / 0.4 / 0.1 / 0.2; its length is
                              twice the largest part's, as in the public mix

An empty ROOT (``3dpw``, ``3dpw::test``, ``mixed``) is the config's
``data_root`` joined with the dataset's folder (h36m, coco, 3dhp, pw3d: the
public layout).  A missing ROOT is an error naming the path.  The real
loaders get the config's ``augment`` (``augment_2d`` for COCO), ``joint_map``
and, for the training split, the annotation file ``data_files[name]`` under
ROOT when named.  Unreadable images are skipped by the loaders (a warning
names each file); :func:`skipped_images` counts them.
"""
from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader, Dataset, default_collate
from tqdm import tqdm

#: spec name -> (class name in hybrik_fast.data, held-out split)
REAL = {"h36m": ("Human36M", "test"), "3dpw": ("PW3D", "test"),
        "3dhp": ("MPIINF3DHP", "test"), "coco": ("COCO2D", "val")}
MIXED_ORDER = ("h36m", "coco", "3dhp", "3dpw")
#: spec name -> the folders tried under data_root / a mixed ROOT (the public layout first)
FOLDERS = {"h36m": ("h36m",), "coco": ("coco",), "3dhp": ("3dhp",), "3dpw": ("pw3d", "3dpw")}


def _folder(root: str, name: str) -> str:
    """root/<the first existing of the dataset's folders> (the first if none exists)."""
    paths = [os.path.join(root, f) for f in FOLDERS[name]]
    return next((p for p in paths if os.path.isdir(p)), paths[0])


class DataSpecError(ValueError):
    """A dataset spec that cannot be used (bad syntax, missing path)."""


def _root(path: str, spec: str) -> str:
    if not path:
        raise DataSpecError(f"data spec {spec!r} needs a dataset folder, e.g. h36m:/data/h36m")
    if not os.path.exists(path):
        raise FileNotFoundError(f"dataset path {path!r} (from the data spec {spec!r}) does not exist")
    return path


def build_dataset(spec: str, cfg, split: str = "train", body=None) -> Dataset:
    """The dataset named by ``spec`` for ``split`` ("train" or "val"); see the module docstring."""
    from hybrik_fast import data
    from hybrik_fast.data.transforms import AugmentConfig
    name, _, rest = spec.partition(":")
    name = name.strip().lower()
    if name == "synthetic":
        parts = rest.split(":") if rest else []
        want = parts[0] if parts and parts[0] else split
        if want not in ("train", "val"):
            raise DataSpecError(f"synthetic split must be train or val, got {want!r} in {spec!r}")
        try:
            length = int(parts[1]) if len(parts) > 1 else (cfg.train_length if want == "train"
                                                           else cfg.val_length)
        except ValueError:
            raise DataSpecError(f"synthetic length must be an int, got {parts[1]!r} in {spec!r}") from None
        return data.SyntheticHumans(split=want, length=length, image_size=cfg.image_size,
                                    seed=cfg.seed, cache_dir=cfg.cache_dir or None, **cfg.synthetic)
    if name in REAL:
        cls_name, held_out = REAL[name]
        root, _, want = rest.partition(":")
        root = _root(root or _folder(cfg.data_root, name), spec)
        want = want or ("train" if split == "train" else held_out)
        file = cfg.data_files.get(name) if want == "train" else None
        augment = {k: tuple(v) if isinstance(v, list) else v
                   for k, v in (cfg.augment_2d if name == "coco" else cfg.augment).items()}
        return getattr(data, cls_name)(root=root, split=want, image_size=cfg.image_size, body=body,
                                       seed=cfg.seed if want == "train" else None,
                                       annotation=None if file is None else _annotation(root, file),
                                       augment=AugmentConfig(**augment), joint_map=cfg.joint_map)
    if name == "mixed":
        root = _root(rest or cfg.data_root, spec)
        parts = [build_dataset(f"{k}:{_folder(root, k)}", cfg, split, body)
                 for k in MIXED_ORDER if os.path.isdir(_folder(root, k))]
        if not parts:
            raise FileNotFoundError(f"mixed data: none of {', '.join(MIXED_ORDER)} is a folder under {root!r}")
        return data.MixedDataset(parts, seed=cfg.seed, length=2 * max(len(p) for p in parts))
    raise DataSpecError(f"unknown dataset {name!r} in data spec {spec!r}; "
                        f"valid: synthetic, {', '.join(REAL)}, mixed")


def _annotation(root: str, file: str) -> str:
    """The annotation file named ``file`` anywhere under ``root`` (the formats keep it at
    the top or in annotations/ or json/)."""
    for sub in ("", "annotations", "json"):
        if os.path.isfile(os.path.join(root, sub, file)):
            return os.path.join(root, sub, file)
    raise FileNotFoundError(f"annotation file {file!r} (config data_files) not found in {root!r}, "
                            f"{root!r}/annotations or {root!r}/json")


class InMemory(Dataset):
    """Every sample of a dataset computed once and kept as stacked tensors {key: (N, ...)}."""

    def __init__(self, tensors: dict, skipped: int = 0):
        self.tensors = tensors
        self.skipped = skipped

    def __len__(self) -> int:
        return len(self.tensors["index"])

    def __getitem__(self, i: int) -> dict:
        return {k: v[i] for k, v in self.tensors.items()}


def materialise(dataset: Dataset, what: str = "data", progress: bool = True,
                workers: int = 0, chunk: int = 32) -> InMemory:
    """All samples of ``dataset``, generated by ``workers`` processes (0: this one).

    A worker runs one torch thread (DataLoader's default), which is what
    SyntheticHumans' many tiny ops want.  Samples travel in collated chunks
    and are concatenated, so no shared-memory handle per sample stays open.
    Unreadable images skipped in a worker are not counted in ``skipped``.
    """
    if isinstance(dataset, InMemory):
        return dataset
    loader = DataLoader(dataset, batch_size=chunk, shuffle=False, num_workers=workers,
                        collate_fn=collate,
                        generator=torch.Generator().manual_seed(0))   # leave the global RNG alone
    bar = tqdm(total=len(dataset), desc=f"generating {what}", unit="img",
               disable=not progress, dynamic_ncols=True)
    chunks = []
    for batch in loader:
        chunks.append(batch)
        bar.update(len(batch["index"]))
    bar.close()
    tensors = {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}
    return InMemory(tensors, skipped_images(dataset))


def skipped_images(dataset) -> int:
    """Unreadable images the loaders skipped (0 for datasets that never skip)."""
    if dataset is None:
        return 0
    own = getattr(dataset, "skipped", 0)
    return own + sum(skipped_images(d) for d in getattr(dataset, "datasets", ()))


def collate(samples: list[dict]) -> dict:
    """Stack the sample dicts (hybrik_fast.data.common) into a batch."""
    return default_collate(samples)

