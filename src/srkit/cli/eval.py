"""`srkit eval`: the paper protocol's PSNR/SSIM table for a method over benchmark sets and scales."""

from __future__ import annotations

import argparse
import json

from srkit import zoo
from srkit.data import BENCHMARKS, check_benchmark, check_scale, data_root
from srkit.errors import SrkitError
from srkit.evaluate import bicubic, evaluate, format_table, network
from srkit.files import write_text


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="PSNR/SSIM on benchmark sets with the papers' protocol")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", default="bicubic", help="bicubic or a pretrained model id (default: bicubic)")
    source.add_argument(
        "--weights", metavar="FILE", help="a weights file written by srkit (.safetensors), or a run's checkpoint.pt"
    )
    parser.add_argument(
        "--dataset",
        nargs="+",
        default=list(BENCHMARKS),
        metavar="NAME",
        help=f"benchmark sets (default: {' '.join(BENCHMARKS)})",
    )
    parser.add_argument("--scale", nargs="+", type=int, metavar="N", help="scales (default: 2 3 4, or the model's own)")
    parser.add_argument("--data-root", help="folder holding the datasets (default: $SRKIT_DATA)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--json", metavar="FILE", help="also write the records as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    datasets = [check_benchmark(d) for d in args.dataset]
    if args.weights or args.model != "bicubic":
        model = zoo.load_model(args.model, args.weights, device=args.device)
        name, method, scales = args.weights or args.model, network(model), model.info.scales
    else:
        name, method, scales = "bicubic", bicubic, (2, 3, 4)
    for scale in args.scale or scales:
        if check_scale(scale) not in scales:
            raise SrkitError(f"{name} upscales by {' or '.join(map(str, scales))}, not by {scale}")
    root = data_root(args.data_root)
    records = [evaluate(name, method, d, s, root) for d in datasets for s in args.scale or scales]
    print(format_table(records))
    if args.json:
        write_text(args.json, json.dumps([r.to_dict() for r in records], indent=1) + "\n")
    return 0
