"""`srkit train`: run a recipe, stage after stage, or continue one with --resume."""

from __future__ import annotations

import argparse
from pathlib import Path

from srkit.data import data_root
from srkit.recipes import load_stages, parse_overrides
from srkit.train import train_stages


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model from a recipe",
        description="Train from a YAML recipe. A recipe with stages trains them in order, each in its own run "
        "directory (--out/STAGE), each warm-started from the one it names. Under `torchrun --nproc_per_node=N` it "
        "trains with DistributedDataParallel (gloo on CPU, NCCL on CUDA); batch_size is per process.",
    )
    parser.add_argument("recipe", help="recipe YAML file (see recipes/)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe key, in every stage of a recipe with stages (--set steps=3: a few steps of each)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its checkpoint; a recipe with stages goes on from the stage it "
        "stopped in, and keeps the finished ones",
    )
    parser.add_argument("--out", help="run directory (default: runs/RECIPE_NAME; a stage's: runs/RECIPE_NAME/STAGE)")
    parser.add_argument("--data-root", help="folder holding the datasets (default: $SRKIT_DATA)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps (default: cpu)")
    parser.add_argument(
        "--amp",
        choices=["none", "bf16", "fp16"],
        help="mixed precision, overriding the recipe's amp: bf16 on the CPU or CUDA, fp16 on CUDA",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs still written)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides = parse_overrides(args.set) | ({"amp": args.amp} if args.amp else {})
    stages = load_stages(args.recipe, overrides)
    out = Path(args.out) if args.out else Path("runs") / Path(args.recipe).stem
    results = train_stages(stages, out, data_root(args.data_root), args.device, not args.no_progress, args.resume)
    for stage, state in zip(stages, results, strict=True):
        where = f"stage {stage.name}: " if stage.name else ""
        print(
            f"{where}best {stage.recipe.val_set} PSNR {state.best_psnr:.2f} dB at step {state.best_step}: "
            f"{out / stage.name / 'best.safetensors'}"
        )
    return 0
