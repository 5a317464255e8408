"""What each recipe costs to train on this machine: steps/s measured, times the recipe's steps, stage by stage.

Each recipe (each stage of a recipe with stages, a row each) runs a few steps (and at least 3 s) after a warm-up
step, on its own batch and patch size, with Set5 as the training images (the cost of a step does not depend on how
many images there are; loading the 291 would take longer than the measurement). SRGAN's step includes its
discriminator's; its SRResNet start is not needed for timing. Writes benchmarks/results/train_cost.csv (or NAME.csv).

    python benchmarks/train_cost.py --data-root ../shared/datasets [--threads 2] [--steps 3] [--amp bf16]
        [--name train_cost] [RECIPE ...]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from srkit.data import data_root
from srkit.files import write_csv
from srkit.machine import cpu
from srkit.recipes import Recipe, load_stages
from srkit.train import Trainer

RECIPES = Path(__file__).parents[1] / "recipes"
RESULTS = Path(__file__).parent / "results" / "train_cost.csv"
MIN_SECONDS = 3.0  # timed at least this long, so that the fast recipes' rates are not one noisy step


def steps_per_second(recipe: Recipe, root: Path, steps: int) -> float:
    """Measured steps/s."""
    out = Path(tempfile.mkdtemp(prefix="srkit-cost-"))
    try:
        trainer = Trainer(recipe, out / "run", root, progress=False)
        trainer.train_step(0)  # warm-up: allocations and oneDNN's kernel choices
        start, done = time.perf_counter(), 0
        while done < steps or time.perf_counter() - start < MIN_SECONDS:
            done += 1
            trainer.train_step(done)
        return done / (time.perf_counter() - start)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="*", type=Path, help="default: every recipe in recipes/")
    parser.add_argument("--data-root")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="least timed steps per recipe, after a warm-up step")
    parser.add_argument("--amp", choices=["none", "bf16"], help="as srkit train --amp (default: each recipe's)")
    parser.add_argument("--name", default="train_cost", help="basename of the CSV written")
    args = parser.parse_args()

    root = data_root(args.data_root)
    rows = []
    machine = cpu()
    print(machine)
    # Its starting weights are not needed for timing (nor, then, a revival of its dead channels).
    fresh = {"init_from": "", "init_exclude": [], "revive_dead": False, "revive_threshold": 0.0}
    overrides = {"train_sets": ["Set5"], "threads": args.threads, **fresh} | ({"amp": args.amp} if args.amp else {})
    for path in args.recipes or sorted(RECIPES.glob("*.yaml")):
        for stage in load_stages(path, overrides):
            name = f"{path.stem}/{stage.name}" if stage.name else path.stem
            rate, total = steps_per_second(stage.recipe, root, args.steps), stage.recipe.steps
            hours = total / rate / 3600
            rows.append(
                {"recipe": name, "steps_per_s": f"{rate:.3g}", "steps": total, "hours": f"{hours:.3g}", "cpu": machine}
            )
            print(f"{name:<26} {rate:8.3g} steps/s  {total:>9,} steps  {hours:8.3g} h  ({hours / 24:.3g} days)")
    write_csv(RESULTS.with_stem(args.name), rows)


if __name__ == "__main__":
    main()
