"""Where srkit's Upscaler spends a 1920x1080 output frame: torch.profiler's operators, by input shape.

The frame and the random-weight networks are benchmarks/upscale_speed.py's; the table lists the operators that
took the most time per frame (self time, averaged over the profiled frames). Run it with the machine quiet.

    python benchmarks/upscale_profile.py fsrcnn --scale 4 [--frames 5] [--rows 12]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch.profiler import profile

from srkit import Upscaler
from srkit.imaging.resize import imresize
from srkit.models import build, names

FRAME = (1080, 1920)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=names())
    parser.add_argument("--scale", type=int, default=3)
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--rows", type=int, default=12)
    args = parser.parse_args()
    torch.manual_seed(0)
    small = torch.rand(3, FRAME[0] // 24, FRAME[1] // 24)  # smooth content, as in upscale_speed.py
    hr = torch.nn.functional.interpolate(small[None], size=FRAME, mode="bicubic")[0].clamp(0, 1)
    hr = (hr.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    lr = imresize(hr, scale=1 / args.scale)
    upscaler = Upscaler(build(args.model, args.scale).eval())
    for _ in range(3):
        upscaler.upscale(lr)  # warm-up: oneDNN primitives, allocator
    with profile(record_shapes=True) as prof:
        for _ in range(args.frames):
            upscaler.upscale(lr)
    events = sorted(prof.key_averages(group_by_input_shape=True), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events) / args.frames / 1e3
    print(f"{args.model} x{args.scale}: {total:.1f} ms of operator time per frame")
    for e in events[: args.rows]:
        ms = e.self_cpu_time_total / args.frames / 1e3
        shapes = ", ".join(str(s) for s in e.input_shapes if s)
        print(f"{ms:7.1f} ms {e.count // args.frames:3d}x  {e.key:<34} {shapes[:70]}")


if __name__ == "__main__":
    main()
