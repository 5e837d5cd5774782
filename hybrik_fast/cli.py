"""Command line: ``hybrik-fast`` (also ``python -m hybrik_fast``)."""
from __future__ import annotations

import argparse


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="hybrik-fast")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info", help="versions, compiled and available backends, device")
    p = sub.add_parser("body", help="write the synthetic body model")
    p.add_argument("--out", required=True, help="output path, .npz or .pkl")
    p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.cmd == "info":
        from .info import info_text
        print(info_text())
    elif args.cmd == "body":
        from .body import BodyModel
        BodyModel.synthetic(seed=args.seed).save(args.out)
        print(f"wrote {args.out}")
    return 0
