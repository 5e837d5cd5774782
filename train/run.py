"""Command lines of ``hybrik-fast train`` / ``python -m hybrik_fast.train`` and ``hybrik-fast eval``.

    hybrik-fast train [--preset cpu-quick] [--config FILE.yaml] [--out DIR] [--resume]
                      [--backend auto|reference|cpu] [key=value | --key value ...]

Any config key (see :class:`hybrik_fast.train.config.Config`) can be set as
``key=value`` or ``--key value``; values use YAML syntax (``milestones=[0.5,0.8]``).
The paper presets (``--preset resnet34-3dpw``, ``hrnet48-3dpw``) read real data
under ``--data-root DIR``; ``--init CKPT`` starts from a checkpoint's weights.
Under ``torchrun --nproc_per_node=N -m hybrik_fast.train ...`` the run is
distributed (DDP; NCCL on CUDA, gloo on CPU).

    hybrik-fast eval --checkpoint CKPT --data SPEC [--h36m-regressor J_regressor_h36m.npy]
                     [--batch-size N] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from . import config


def _overrides(tokens: list[str]) -> dict[str, str]:
    """``key=value``, ``--key=value`` and ``--key value`` tokens -> {key: value}."""
    out: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.startswith("--") and "=" not in tok:
            if i + 1 >= len(tokens):
                raise config.ConfigError(f"option {tok} needs a value")
            key, value = tok, tokens[i + 1]
            i += 2
        else:
            key, eq, value = tok.partition("=")
            if not eq:
                raise config.ConfigError(f"cannot read argument {tok!r}: expected key=value or --key value; "
                                         f"valid keys are: {', '.join(config.keys())}")
            i += 1
        out[key.lstrip("-").replace("-", "_")] = value
    return out


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hybrik-fast train", description="Train HybrIK (flat loop, see hybrik_fast.train.loop).",
        epilog="Any config key can be overridden as key=value or --key value. Keys: "
               + ", ".join(config.keys()))
    p.add_argument("--preset", default="cpu-quick", choices=list(config.PRESETS),
                   help="embedded configuration (default cpu-quick)")
    p.add_argument("--config", metavar="FILE", help="YAML file of config keys, applied over the preset")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last.pt (its config, plus the overrides given)")
    return p


def train_main(argv=None) -> int:
    from .checkpoint import CheckpointError
    from .data import DataSpecError
    from .loop import TrainingError, train
    args, rest = train_parser().parse_known_args(argv)
    try:
        overrides = _overrides(rest)
        cfg = config.make_config(args.preset, args.config, overrides)
        train(cfg, resume=args.resume, overrides=config.parse_overrides(overrides))
        if cfg.data == "synthetic" and cfg.predictions_png and int(os.environ.get("RANK", "0")) == 0:
            from hybrik_fast.predict.scenes import write_scenes      # for hybrik-fast predict (README)
            print(f"wrote held-out scenes: {', '.join(write_scenes(os.path.join(cfg.out, 'scenes')))}")
    except (config.ConfigError, DataSpecError, CheckpointError, TrainingError, FileNotFoundError) as e:
        print(f"hybrik-fast train: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, config.ConfigError) else 1
    return 0


def eval_main(argv=None) -> int:
    import torch

    from .checkpoint import CheckpointError, load, model_state
    from .data import DataSpecError, build_dataset
    from hybrik_fast._io import atomic_write
    from .evaluate import PROTOCOL_COLUMNS, evaluate, format_table, load_regressor
    from .loop import build_body, build_model

    p = argparse.ArgumentParser(prog="hybrik-fast eval",
                                description="MPJPE, PA-MPJPE, PVE, PCK and AUC of a checkpoint "
                                            "(protocol: hybrik_fast.train.evaluate).")
    p.add_argument("--checkpoint", required=True, help="a checkpoint written by hybrik-fast train")
    p.add_argument("--data", required=True,
                   help="dataset spec: synthetic[:SPLIT[:N]], h36m:ROOT, 3dpw:ROOT, 3dhp:ROOT, coco:ROOT")
    p.add_argument("--h36m-regressor", metavar="NPY",
                   help="the SMPL release's J_regressor_h36m.npy (17 x V): score H36M, 3DPW and "
                        "3DHP by the public protocol (default: the model's own, if it has one)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--backend", choices=config.VALID["backend"], default=None,
                   help="op implementations (default: the checkpoint's)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--max-batches", type=int, default=0, help="evaluate only this many batches (0 = all)")
    p.add_argument("--json", metavar="PATH",
                   help="where to save the metrics (default: eval_<data>.json next to the checkpoint)")
    args = p.parse_args(argv)
    try:
        ckpt = load(args.checkpoint)
        cfg = config.from_dict({**ckpt["config"], **({"backend": args.backend} if args.backend else {})})
        device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and
                                                                   torch.cuda.is_available()) else "cpu")
        body = build_body(cfg)
        model = build_model(cfg, device, body)
        model.load_state_dict(model_state(ckpt))
        dataset = build_dataset(args.data, cfg, split="val", body=body)
        regressor = (load_regressor(args.h36m_regressor) if args.h36m_regressor else
                     getattr(model.smpl, "J_regressor_h36m", None))
    except (config.ConfigError, DataSpecError, CheckpointError, FileNotFoundError, ValueError) as e:
        print(f"hybrik-fast eval: error: {e}", file=sys.stderr)
        return 1
    result = evaluate(model, dataset, batch_size=args.batch_size, device=device,
                      max_batches=args.max_batches,
                      h36m_regressor=None if regressor is None else regressor.to(torch.float64).cpu())
    result["data"] = args.data
    result["checkpoint"] = os.path.abspath(args.checkpoint)
    print(format_table({"model": result}, keys=PROTOCOL_COLUMNS[result["protocol"]]))
    print(f"protocol: {result['protocol']}")
    print(f"{result['samples']} samples of {args.data}")
    path = args.json or os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)),
                                     "eval_" + "".join(c if c.isalnum() else "_" for c in args.data) + ".json")
    atomic_write(path, lambda f: f.write(json.dumps(result, indent=2).encode()))
    print(f"wrote {path}")
    return 0
