"""Time srkit.imresize (MATLAB bicubic) against PIL's bicubic on a 2040x1356 RGB image, x4 down.

The methods are interleaved round by round in one process (this CPU's speed swings ~2x within seconds),
and the ratio of medians is reported. Writes benchmarks/results/imresize_speed.csv.

    python benchmarks/imresize_speed.py [--rounds 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from srkit import imresize
from srkit.files import write_csv

RESULTS = Path(__file__).parent / "results" / "imresize_speed.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    # A smooth image with detail, so that no method meets a degenerate (constant) input.
    image = (rng.random((1356 // 8, 2040 // 8, 3)) * 255).astype(np.uint8)
    image = np.asarray(Image.fromarray(image).resize((2040, 1356), Image.BICUBIC))
    pil = Image.fromarray(image)
    size = (2040 // 4, 1356 // 4)
    methods = {
        "srkit.imresize": lambda: imresize(image, scale=1 / 4),
        "PIL.resize(BICUBIC)": lambda: pil.resize(size, Image.BICUBIC),
    }
    times = {name: [] for name in methods}
    for fn in methods.values():
        fn()  # warm-up: caches, allocator
    for _ in range(args.rounds):
        for name, fn in methods.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)

    base = statistics.median(times["PIL.resize(BICUBIC)"])
    rows = []
    for name, t in times.items():
        median = statistics.median(t)
        q1, _, q3 = statistics.quantiles(t, n=4)
        rows.append(
            {
                "method": name,
                "median_ms": f"{median * 1e3:.1f}",
                "iqr_ms": f"{q1 * 1e3:.1f}-{q3 * 1e3:.1f}",
                "ratio_vs_pil": f"{median / base:.2f}",
            }
        )
        print(
            f"{name:<22} median {median * 1e3:7.1f} ms  (IQR {q1 * 1e3:.1f}-{q3 * 1e3:.1f})  {median / base:.2f}x PIL"
        )
    write_csv(RESULTS, rows)


if __name__ == "__main__":
    main()
