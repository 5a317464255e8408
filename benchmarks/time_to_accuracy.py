"""ESPCN x3 trained from scratch on this CPU: Set5 PSNR (the protocol's) against wall-clock time.

Targets: the paper's 32.55 dB within 5 minutes, 33.0 dB within 30. The clock counts data preparation and
training; validation passes are measurement and are not counted. Writes a CSV and a PNG of the curve to
benchmarks/results/ and prints the time each target was first reached, with the steps/s measured.

    python benchmarks/time_to_accuracy.py --data-root ../shared/datasets [--recipe recipes/espcn-x3.yaml]
        [--set steps=20000 ...]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import tempfile
import time
from pathlib import Path

from srkit.data import data_root
from srkit.machine import cpu
from srkit.recipes import load_recipe, parse_overrides
from srkit.train import Trainer

RESULTS = Path(__file__).parent / "results"
TARGETS = ((32.55, 5), (33.0, 30))  # (dB, minutes)
DEFAULTS = ["val_every=250", "log_every=250", "checkpoint_every=1000000"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(Path(__file__).parents[1] / "experiments" / "espcn-x3-fast.yaml"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--data-root")
    parser.add_argument("--name", default="time_to_accuracy", help="basename of the CSV and PNG written")
    args = parser.parse_args()

    start = time.perf_counter()
    recipe = load_recipe(args.recipe, parse_overrides([*DEFAULTS, *args.set]))
    out = Path(tempfile.mkdtemp(prefix="srkit-tta-"))
    try:
        trainer = Trainer(recipe, out / "run", data_root(args.data_root), progress=True)
        setup = time.perf_counter() - start
        trainer.run()
        with (out / "run" / "log.csv").open() as f:
            rows = list(csv.DictReader(f))
    finally:
        shutil.rmtree(out, ignore_errors=True)

    curve = [(setup + float(r["elapsed_s"]), int(r["step"]), float(r["val_psnr"])) for r in rows if r["val_psnr"]]
    rates = [float(r["steps_per_s"]) for r in rows if r.get("steps_per_s")]
    RESULTS.mkdir(parents=True, exist_ok=True)
    with (RESULTS / f"{args.name}.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["wall_s", "step", "set5_psnr"])
        writer.writerows((f"{t:.1f}", s, f"{p:.3f}") for t, s, p in curve)
    plot(curve, RESULTS / f"{args.name}.png", recipe.model)
    print(
        f"{cpu()}: data preparation {setup:.1f} s; median {sorted(rates)[len(rates) // 2]:.1f} steps/s "
        f"(batch {recipe.batch_size}, {recipe.patch_size // recipe.scale}x{recipe.patch_size // recipe.scale} LR)"
    )
    for target, minutes in TARGETS:
        hit = next(((t, s) for t, s, p in curve if p >= target), None)
        verdict = f"reached at {hit[0] / 60:.1f} min (step {hit[1]})" if hit else "not reached"
        print(f"{target:.2f} dB (target {minutes} min): {verdict}")
    print(f"final {curve[-1][2]:.2f} dB at {curve[-1][0] / 60:.1f} min, best {max(p for _, _, p in curve):.2f} dB")


def plot(curve: list[tuple[float, int, float]], png: Path, model: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([t / 60 for t, _, _ in curve], [p for _, _, p in curve], marker=".", label=f"srkit {model} x3")
    for target, minutes in TARGETS:
        ax.axhline(target, color="gray", lw=0.8, ls="--")
        ax.axvline(minutes, color="gray", lw=0.8, ls=":")
    ax.set(xlabel="wall-clock minutes (2-core CPU)", ylabel="Set5 PSNR (dB, Y, shave 3)", ylim=(30, 33.5))
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
