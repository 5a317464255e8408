"""Two versions of srkit's Upscaler on the same 1920x1080 output frame, interleaved frame by frame: is a change faster?

Each source tree (a folder holding the `srkit` package, such as `src` of a checkout or of `git worktree add`) runs
in a process of its own; frame by frame the two take turns, in alternating order, so that this CPU's swings in
speed (about 2x within seconds) fall on both. Prints each one's median and interquartile range in ms and the median
of the per-frame ratios A/B (above 1: B is faster). Random-weight networks and smooth content, as in
benchmarks/upscale_speed.py; both trees build the same weights and must give the same mean output value, printed
beside their paths (equal unless the change alters the arithmetic). Run it with the machine quiet.

    git worktree add /tmp/base HEAD
    python benchmarks/upscale_ab.py fsrcnn-s --scale 4 --rounds 31 /tmp/base/src src
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def worker(model: str, scale: int) -> None:
    """Upscale the frame once for every line on stdin, printing the seconds each took (srkit from PYTHONPATH)."""
    import numpy as np
    import torch
    from upscale_profile import smooth_lr

    import srkit
    from srkit import Upscaler
    from srkit.models import build

    lr = smooth_lr(scale)
    torch.manual_seed(1)
    upscaler = Upscaler(build(model, scale).eval())
    print(srkit.__file__, upscaler.upscale(lr).astype(np.float64).mean(), flush=True)
    for _ in sys.stdin:
        start = time.perf_counter()
        upscaler.upscale(lr)
        print(time.perf_counter() - start, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--scale", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("a", type=Path, help="source tree A (the baseline)")
    parser.add_argument("b", type=Path, help="source tree B (the change)")
    args = parser.parse_args()
    workers = []
    for tree in (args.a, args.b):
        env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
        command = [sys.executable, __file__, "--worker", args.model, str(args.scale)]
        workers.append(subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    for tree, process in zip((args.a, args.b), workers, strict=True):
        print(f"{tree}: {process.stdout.readline().strip()}")
    times: list[list[float]] = [[], []]
    for r in range(args.rounds):
        for i in (0, 1) if r % 2 == 0 else (1, 0):
            workers[i].stdin.write("go\n")
            workers[i].stdin.flush()
            times[i].append(float(workers[i].stdout.readline()))
    for process in workers:
        process.stdin.close()
        process.wait()
    for tree, spent in zip((args.a, args.b), times, strict=True):
        q1, _, q3 = statistics.quantiles(spent, n=4)
        print(f"{tree}: {statistics.median(spent) * 1e3:.1f} ms (IQR {q1 * 1e3:.1f}-{q3 * 1e3:.1f})")
    print(f"A/B {statistics.median(a / b for a, b in zip(*times, strict=True)):.3f} (above 1: B is faster)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:  # one of the two processes that main() starts
        worker(sys.argv[2], int(sys.argv[3]))
    else:
        main()
