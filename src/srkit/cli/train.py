"""`srkit train`: run a recipe, or continue one with --resume."""

from __future__ import annotations

import argparse
from pathlib import Path

from srkit.data import data_root
from srkit.recipes import load_recipe, parse_overrides
from srkit.train import Trainer


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model from a recipe",
        description="Train from a YAML recipe. Under `torchrun --nproc_per_node=N` it trains with "
        "DistributedDataParallel (gloo on CPU, NCCL on CUDA); batch_size is per process.",
    )
    parser.add_argument("recipe", help="recipe YAML file (see recipes/)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--out", help="run directory (default: runs/RECIPE_NAME)")
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
    recipe = load_recipe(args.recipe, overrides)
    out = Path(args.out) if args.out else Path("runs") / Path(args.recipe).stem
    trainer = Trainer(recipe, out, data_root(args.data_root), args.device, progress=not args.no_progress)
    best = trainer.run(resume=args.resume)
    print(f"best {recipe.val_set} PSNR {best:.2f} dB at step {trainer.state.best_step}: {out / 'best.safetensors'}")
    return 0
