"""`srkit eval`: the paper protocol's PSNR/SSIM table for a method over benchmark sets and scales."""

from __future__ import annotations

import argparse
import json

from srkit.data import BENCHMARKS, SCALES, check_benchmark, check_scale, data_root
from srkit.errors import SrkitError
from srkit.evaluate import bicubic, evaluate, format_table
from srkit.files import write_text

METHODS = {"bicubic": bicubic}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="PSNR/SSIM on benchmark sets with the papers' protocol")
    parser.add_argument("--model", default="bicubic", help="method to evaluate (default: bicubic)")
    parser.add_argument(
        "--dataset",
        nargs="+",
        default=list(BENCHMARKS),
        metavar="NAME",
        help=f"benchmark sets (default: {' '.join(BENCHMARKS)})",
    )
    parser.add_argument(
        "--scale", nargs="+", type=int, default=list(SCALES), metavar="N", help="scales (default: 2 3 4)"
    )
    parser.add_argument("--data-root", help="folder holding the datasets (default: $SRKIT_DATA)")
    parser.add_argument("--json", metavar="FILE", help="also write the records as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.model not in METHODS:
        raise SrkitError(f"unknown model {args.model!r}; choose from {', '.join(METHODS)}")
    datasets = [check_benchmark(d) for d in args.dataset]
    scales = [check_scale(s) for s in args.scale]
    root = data_root(args.data_root)
    records = [evaluate(args.model, METHODS[args.model], d, s, root) for d in datasets for s in scales]
    print(format_table(records))
    if args.json:
        write_text(args.json, json.dumps([r.to_dict() for r in records], indent=1) + "\n")
    return 0
