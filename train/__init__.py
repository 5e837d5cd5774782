"""Training with the fused ops (installed as hybrik_fast.train).

    config      Config dataclass, presets, YAML + command-line overrides
    loop        train(cfg): the flat training loop (DDP under torchrun)
    checkpoint  atomic, weights_only-loadable checkpoints with RNG states
    schedule    MultiStep and inverse-sqrt LR schedules
    evaluate    MPJPE / PA-MPJPE / PVE / PCK / AUC and the mean-pose baseline
    data        dataset specs ("synthetic", "h36m:ROOT", ...)
    plot        training-curve and prediction PNGs (OpenCV)
    bench       ``hybrik-fast bench --train``: step time and peak memory, fused vs reference
    run         the ``train`` and ``eval`` command lines
"""
from .config import Config, ConfigError, make_config

__all__ = ["Config", "ConfigError", "make_config"]
