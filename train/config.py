"""Training configuration: one flat dataclass, presets, a YAML file, command-line overrides.

Precedence (later wins): the dataclass defaults, the preset (``--preset``,
default ``cpu-quick``), the YAML file (``--config``), then ``key=value``
overrides on the command line.  Every key is checked against the dataclass,
so a typo is an error that lists the valid keys.  The resolved configuration
is written next to every run as ``config.yaml``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields

import yaml

from hybrik_fast._backend import canonical
from hybrik_fast.models.common import MODEL_BACKENDS


@dataclass
class Config:
    # ---- model (hybrik_fast.models.build_model)
    head: str = "heatmap"                 # heatmap | transformer | hmr
    backbone: str = "resnet18"            # resnet18 | resnet34 | resnet50 | hrnet48
    image_size: int = 128                 # S, crop size in pixels
    heatmap_size: list = field(default_factory=lambda: [32, 32, 32])   # D, H, W
    backend: str = "auto"                 # auto (alias fused) | reference | cpu, see hybrik_fast._backend
    model_kwargs: dict = field(default_factory=dict)   # extra build_model options (deconv_channels, ...)
    body: str = ""                        # SMPL-format body model file ("" = the synthetic body)
    init: str = ""                        # checkpoint whose weights start the run (fine-tuning; "" = none)
    pretrained: str = ""                  # backbone weights: torchvision ImageNet (ResNet) or pose-HRNet file
    # ---- data
    data: str = "synthetic"               # dataset spec, see hybrik_fast.train.data
    val_data: str = ""                    # held-out spec; "" = the synthetic val split of `data`
    data_root: str = "data"               # real data: the folder of h36m/, coco/, 3dhp/, pw3d/ (specs without ROOT)
    data_files: dict = field(default_factory=dict)  # real data: {h36m|coco|3dhp|3dpw: training annotation file name}
    augment: dict = field(default_factory=dict)     # real data: AugmentConfig options of the 3D datasets
    augment_2d: dict = field(default_factory=dict)  # real data: AugmentConfig options of COCO
    joint_map: str = "public"             # real data: public | extended keypoint maps (data/joint_maps.py)
    train_length: int = 2000              # synthetic: images in the training split
    val_length: int = 200                 # synthetic: images in the held-out split
    cache_dir: str = ""                   # synthetic: on-disk cache ("" = none)
    synthetic: dict = field(default_factory=dict)   # synthetic: SyntheticHumans options (occluders, clutter)
    in_memory: bool = True                # materialise the training set once, before step 1
    num_workers: int = 0                  # DataLoader workers (with in_memory: for the generation only)
    # ---- optimisation
    optimizer: str = "adam"               # adam | adamw
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 32                  # per process
    epochs: float = 1.0                   # length of the run, in passes over the training set
    max_steps: int = 0                    # if > 0, overrides `epochs`
    time_budget: float = 0.0              # seconds for the whole run (0 = none); see budget.py
    schedule: str = "multistep"           # multistep | invsqrt | constant
    milestones: list = field(default_factory=lambda: [0.64, 0.86])   # multistep: fractions of the run (< 1) or steps
    gamma: float = 0.1                    # multistep: factor at each milestone
    warmup_steps: float = 4000.0          # invsqrt: linear warm-up, a fraction of the run (< 1) or steps
    grad_clip: float = 1.0                # max global grad norm; 0 = no clipping
    grad_clip_per_param: bool = False     # grad_clip bounds each parameter's grad norm (the public script)
    amp: str = "auto"                     # auto (bf16 on CUDA, off on CPU) | bf16 | fp16 (CUDA, loss scaling) | off
    loss: dict = field(default_factory=dict)   # keyword arguments of hybrik_fast.losses.HybrIKLoss
    # ---- run
    seed: int = 0
    device: str = "auto"                  # auto | cpu | cuda
    threads: int = 0                      # torch.set_num_threads; 0 = leave as is
    out: str = "runs/train"
    log_every: int = 10                   # tqdm postfix / TensorBoard interval (the CSV gets every step)
    ckpt_every: int = 0                   # save last.pt every N steps (0 = at each epoch end only)
    eval_every: int = 0                   # held-out eval + best.pt every N steps (0 = at the end only)
    eval_batches: int = 0                 # cap on held-out batches per eval (0 = all)
    max_bad_steps: int = 5                # stop after this many consecutive NaN/inf steps
    baselines: bool = True                # evaluate the untrained model and the mean-pose baseline
    predictions_png: int = 6              # held-out images in predictions.png (0 = none)
    progress: bool = True                 # tqdm bar
    # ---- debugging (tests)
    kill_after_step: int = 0              # SIGKILL this process right after the checkpoint of step N
    inject_nan_steps: list = field(default_factory=list)   # steps (1-based) whose loss is made NaN


# The public HybrIK recipe (configs/256x192_adam_lr1e-3-*_w_pw3d*.yaml at 9b8681d): 256 x 256
# crops, 29 x 64^3 heatmaps, H36M / COCO / 3DHP / 3DPW mixed 0.3 / 0.4 / 0.1 / 0.2, the
# Laplace loss (beta 1, theta 0.01, twist 1, uvd 1), Adam 1e-3 x 0.1 at two milestones of 200
# epochs, each parameter's gradient norm clipped at 5 (scripts/train_smpl_cam.py), augmentation: scale 0.3 and rotation 30 deg drawn from
# clipped normals (rotation with probability 0.6), colour 0.2, flip 0.25 (3D sets) / 0.5 (COCO),
# synthetic occlusion (area up to 0.3 / 0.7 of the box, aspect 0.5..2 / 0.3..3.3).  The public
# runs start the backbone from pose_hrnet_w48_256x192.pth (HRNet) or torchvision's ImageNet
# ResNet-34: pass that file as pretrained=FILE (not set here: the file is the user's).
#: the public recipe's loss weights and its Laplace uvd term, also cpu-quick's: at 1500 steps
#: cpu-quick's held-out MPJPE / PA-MPJPE / PVE went from 219 / 156 / 226 mm (L1 uvd, twist
#: 0.01) to 197 / 149 / 198 at the same step time; the 1/σ factor gives the pose term ~22x the
#: gradient on the backbone (bench/pa_floor.py --checkpoint splits the error)
PUBLIC_LOSS = dict(uvd=1.0, beta=1.0, rot=0.01, twist=1.0, camera=1.0, laplace=True)
_PUBLIC_AUGMENT = dict(sampling="normal", scale_factor=0.3, rotation_factor=30.0, rotation_prob=0.6,
                       flip_prob=0.25, colour_factor=0.2, occlusion=True, occlusion_area=[0.0, 0.3],
                       occlusion_ratio=[0.5, 2.0])
_PAPER = dict(
    head="heatmap", image_size=256, heatmap_size=[64, 64, 64], data="mixed", val_data="3dpw::test",
    optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="multistep", gamma=0.1, epochs=200,
    grad_clip=5.0, grad_clip_per_param=True, loss=dict(PUBLIC_LOSS),
    augment=_PUBLIC_AUGMENT,
    augment_2d={**_PUBLIC_AUGMENT, "flip_prob": 0.5, "occlusion_area": [0.0, 0.7],
                "occlusion_ratio": [0.3, 1 / 0.3]},
    joint_map="public", num_workers=8, in_memory=False, amp="auto", ckpt_every=2000,
    eval_every=5000, log_every=50, baselines=False,
)
_PUBLIC_FILES = {"h36m": "Sample_trainmin_train_Human36M_smpl_leaf_twist_protocol_2.json",
                 "coco": "person_keypoints_train2017.json", "3dpw": "3DPW_train_new.json"}

#: the embedded presets; "cpu-quick" is the default of ``hybrik-fast train``
PRESETS: dict[str, dict] = {
    # small HybrIK on SyntheticHumans: <= 5 min on 2 CPU cores, data generation included.
    # The two cores first generate the training set (2 workers, in memory), then train
    # one process on two torch threads (0.18 s/step).  The heatmap head has lateral
    # connections (see models/hybrik.py); its 16x16 logits are resampled to 24x24 and the
    # depth has 24 bins: finer bins than 16^3 for 0.01 s/step more, and a heatmap large
    # enough that the soft-argmax's memory, not the backbone's, sets the step's peak.
    "cpu-quick": dict(
        backbone="resnet18", image_size=64, heatmap_size=[24, 24, 24], data="synthetic",
        model_kwargs={"deconv_channels": 64, "lateral": True}, train_length=2000, val_length=200,
        num_workers=2, batch_size=16, epochs=40, time_budget=270.0, threads=2, optimizer="adam",
        lr=1e-3, schedule="multistep", milestones=[0.8, 0.95], grad_clip=1.0, out="runs/cpu-quick",
        loss=dict(PUBLIC_LOSS),
    ),
    # the paper's configuration: ResNet-34, 256 px, 29x64^3, batch 32 per GPU,
    # Adam 1e-3 divided by 10 at epochs 90 and 120 of 140
    "gpu": dict(
        backbone="resnet34", image_size=256, heatmap_size=[64, 64, 64], data="mixed",
        batch_size=32, epochs=140, optimizer="adam", lr=1e-3, schedule="multistep",
        milestones=[90 / 140, 120 / 140], num_workers=8, in_memory=False, amp="auto",
        ckpt_every=2000, eval_every=5000, log_every=50, out="runs/gpu",
    ),
    # HybrIK-Transformer: inverse-sqrt schedule, 4000 warm-up steps, lr 5e-4
    "transformer": dict(
        head="transformer", backbone="resnet34", image_size=256, heatmap_size=[64, 64, 64],
        data="mixed", batch_size=32, epochs=140, optimizer="adamw", lr=5e-4,
        schedule="invsqrt", warmup_steps=4000, num_workers=8, in_memory=False,
        ckpt_every=2000, eval_every=5000, log_every=50, out="runs/transformer",
    ),
    # the public HRNet-W48 model trained with 3DPW (3DPW PA-MPJPE 41.8, MPJPE 71.3):
    # batch 36 per GPU on 4 GPUs, lr steps at epochs 60 and 80, 3DHP train_v3
    "hrnet48-3dpw": dict(
        _PAPER, backbone="hrnet48", batch_size=36, milestones=[60 / 200, 80 / 200],
        data_files={**_PUBLIC_FILES, "3dhp": "annotation_mpi_inf_3dhp_train_v3.json"},
        out="runs/hrnet48-3dpw",
    ),
    # the public ResNet-34 model trained with 3DPW (44.5 / 72.4): batch 32 per GPU on 8
    # GPUs, lr steps at epochs 90 and 120, 3DHP train_v2
    "resnet34-3dpw": dict(
        _PAPER, backbone="resnet34", batch_size=32, milestones=[90 / 200, 120 / 200],
        data_files={**_PUBLIC_FILES, "3dhp": "annotation_mpi_inf_3dhp_train_v2.json"},
        out="runs/resnet34-3dpw",
    ),
    # seconds, for tests of the plumbing
    "tiny": dict(
        backbone="resnet18", image_size=64, heatmap_size=[8, 16, 16], data="synthetic",
        train_length=16, val_length=8, batch_size=4, epochs=1, lr=1e-3, predictions_png=2,
        progress=False, out="runs/tiny",
    ),
}

VALID = {
    "head": ("heatmap", "transformer", "hmr"),
    "backbone": ("resnet18", "resnet34", "resnet50", "hrnet48"),
    "joint_map": ("public", "extended"),
    "backend": MODEL_BACKENDS,
    "optimizer": ("adam", "adamw"),
    "schedule": ("multistep", "invsqrt", "constant"),
    "amp": ("auto", "bf16", "fp16", "off"),
    "device": ("auto", "cpu", "cuda"),
}


class ConfigError(ValueError):
    """A bad configuration key or value."""


def keys() -> list[str]:
    return [f.name for f in fields(Config)]


def _check_keys(d: dict, where: str) -> None:
    bad = sorted(set(d) - set(keys()))
    if bad:
        raise ConfigError(f"unknown config key{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad))} "
                          f"in {where}; valid keys are: {', '.join(keys())}")


def _coerce(key: str, value, default):
    """Parse an override's value (YAML syntax) and check its type against the default's."""
    if isinstance(value, str) and not isinstance(default, str):
        value = yaml.safe_load(value)
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, str):
        ok = isinstance(value, str)
        if not ok and value is not None and not isinstance(value, (list, dict)):
            value, ok = str(value), True
    elif isinstance(default, list):
        ok = isinstance(value, (list, tuple))
        value = list(value) if ok else value
    elif isinstance(default, dict):
        ok = isinstance(value, dict)
    else:
        ok = True
    if not ok:
        raise ConfigError(f"config key {key!r} expects a {type(default).__name__}, got {value!r}")
    return value


def validate(cfg: Config) -> Config:
    for key, allowed in VALID.items():
        if getattr(cfg, key) not in allowed:
            raise ConfigError(f"config key {key!r} must be one of {allowed}, got {getattr(cfg, key)!r}")
    cfg.backend = canonical(cfg.backend)  # the alias "fused" is saved as "auto"
    if len(cfg.heatmap_size) != 3 or not all(isinstance(n, int) and n > 0 for n in cfg.heatmap_size):
        raise ConfigError(f"heatmap_size must be three positive ints [D, H, W], got {cfg.heatmap_size}")
    for key in ("image_size", "batch_size"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key} must be >= 1, got {getattr(cfg, key)}")
    if cfg.max_steps <= 0 and cfg.epochs <= 0:
        raise ConfigError("set epochs > 0 or max_steps > 0")
    if cfg.max_bad_steps < 1:
        raise ConfigError(f"max_bad_steps must be >= 1, got {cfg.max_bad_steps}")
    return cfg


def make_config(preset: str | None = "cpu-quick", yaml_path: str | None = None,
                overrides: list[str] | dict | None = None) -> Config:
    """Defaults <- preset <- YAML file <- overrides (``["key=value", ...]`` or a dict)."""
    values: dict = {}
    if preset:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; presets are: {', '.join(PRESETS)}")
        values.update(PRESETS[preset])
    if yaml_path:
        with open(yaml_path) as f:
            loaded = yaml.safe_load(f) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{yaml_path}: expected a mapping of config keys, got {type(loaded).__name__}")
        _check_keys(loaded, yaml_path)
        values.update(loaded)
    if isinstance(overrides, dict):
        _check_keys(overrides, "the overrides")
        values.update(overrides)
    else:
        for item in overrides or ():
            key, eq, value = item.partition("=")
            key = key.strip().lstrip("-").replace("-", "_")
            if not eq:
                raise ConfigError(f"override {item!r} is not of the form key=value")
            _check_keys({key: None}, "the command line")
            values[key] = value
    defaults = Config()
    cfg = Config(**{k: _coerce(k, v, getattr(defaults, k)) for k, v in values.items()})
    return validate(cfg)


def parse_overrides(overrides: dict) -> dict:
    """Check the keys of ``{key: value}`` overrides and parse their values (YAML syntax)."""
    _check_keys(overrides, "the overrides")
    defaults = Config()
    return {k: _coerce(k, v, getattr(defaults, k)) for k, v in overrides.items()}


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(d: dict) -> Config:
    _check_keys(d, "the checkpoint's config")
    return validate(Config(**d))


def save(cfg: Config, path: str) -> None:
    with open(path, "w") as f:
        yaml.safe_dump(to_dict(cfg), f, sort_keys=False)
