"""Command line: ``hybrik-fast`` (also ``python -m hybrik_fast``)."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("train", "eval"):      # their own parsers (hybrik_fast.train.run)
        from .train.run import eval_main, train_main
        return (train_main if argv[0] == "train" else eval_main)(argv[1:])
    if argv and argv[0] == "predict":                # its own parser (hybrik_fast.predict.cli)
        from .predict.cli import main as predict_main
        return predict_main(argv[1:])
    if argv and argv[0] == "compare":                # its own parser (hybrik_fast.train.compare)
        from .train.compare import compare_main
        return compare_main(argv[1:])
    parser = argparse.ArgumentParser(prog="hybrik-fast")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info", help="versions, compiled and available backends, device")
    p = sub.add_parser("body", help="write the synthetic body model")
    p.add_argument("--out", required=True, help="output path, .npz or .pkl")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("bench", help="time every op case on every available backend",
                       description="Prints ms, GB/s, poses/s, ratios against the reference "
                                   "and peak memory; see hybrik_fast.benchmark.")
    from .benchmark import add_arguments
    add_arguments(p)
    p.add_argument("--train", action="store_true",
                   help="instead: training step time and peak memory, fused vs reference, at the "
                        "cpu-quick size or a paper preset's (--preset) (hybrik_fast.train.bench)")
    p.add_argument("--onnx", metavar="MODEL,...", default=None,
                   help="instead: whole-model latency, onnxruntime vs eager (fused ops), CPU, B = 1 and 8, "
                        "threads from --threads (default 1,2); models: cpu-quick, resnet34, hrnet48 "
                        "(hybrik_fast.onnx_bench)")
    p.add_argument("--train-steps", type=int, default=None,
                   help="with --train: timed steps per backend (default 10, 3 with --quick)")
    p.add_argument("--model", choices=("hrnet48", "resnet34"), default=None,
                   help="instead: the published network's forward at B = 1 and 8, fused vs "
                        "reference, with the soft-argmax / IK / body shares (hybrik_fast.bench_model)")
    p.add_argument("--preset", default=None, choices=("paper", "resnet34-3dpw", "hrnet48-3dpw"),
                   help="with --train: 'paper': ResNet-34, 256 px, 29x64^3, batch 8, the four heads, one "
                        "process each, peak resident set (hybrik_fast.train.bench_memory); a training "
                        "preset: its model, sizes and loss, fused vs reference (hybrik_fast.train.bench)")
    p.add_argument("--train-rounds", type=int, default=None, metavar="R",
                   help="with --train --preset paper: rounds over the configurations, fresh processes in "
                        "rotated order, pooled (default 3)")
    p.add_argument("--train-batch", type=int, default=None, metavar="B",
                   help="with --train and a training preset: the batch size (default: the preset's)")
    for name, text in (("train", "train a model (hybrik-fast train --help)"),
                       ("eval", "evaluate a checkpoint (hybrik-fast eval --help)"),
                       ("predict", "SMPL parameters, meshes and renders of photos and videos "
                                   "(hybrik-fast predict --help)"),
                       ("compare", "train HybrIK, HybrIK-Transformer and HMR alike and compare them, "
                                   "with the IK against SMPLify-style fitting (hybrik-fast compare --help)")):
        sub.add_parser(name, help=text, add_help=False)
    p = sub.add_parser("export", help="export a checkpoint's whole model (network, IK, body) to ONNX")
    p.add_argument("--checkpoint", required=True, help="a training checkpoint, or a public one once loadable")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    p.add_argument("--flip-test", action="store_true", help="bake the flip test into the graph")
    p = sub.add_parser("paper", help="the paper's IK checks (round trip, Tables 1 and 3) as tables")
    p.add_argument("--backend", default="auto", help="IK backend (default: auto)")
    p.add_argument("--model", default=None, help="SMPL-format body model (.pkl/.npz); default: synthetic")
    args = parser.parse_args(argv)
    if args.cmd == "info":
        from .info import info_text
        print(info_text())
    elif args.cmd == "body":
        from .body import BodyModel
        BodyModel.synthetic(seed=args.seed).save(args.out)
        print(f"wrote {args.out}")
    elif args.cmd == "bench" and args.model:
        from .bench_model import main as model_bench_main
        return model_bench_main(args)
    elif args.cmd == "bench" and args.train:
        from .train.bench import main as train_bench_main
        return train_bench_main(args)
    elif args.cmd == "bench" and args.onnx:
        from .onnx_bench import main as onnx_bench_main
        return onnx_bench_main(args)
    elif args.cmd == "bench":
        from .benchmark import main as bench_main
        return bench_main(args)
    elif args.cmd == "export":
        from .onnx_export import main as export_main
        return export_main(args)
    elif args.cmd == "paper":
        from .body import BodyModel
        from .paper import report
        body = BodyModel.load(args.model) if args.model else None
        print(report(body, backend=args.backend))
    return 0
