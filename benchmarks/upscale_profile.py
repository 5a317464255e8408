"""Where srkit's Upscaler spends a 1920x1080 output frame: each layer of the network, and what is around it.

The network and each of its layers are timed by wall clock (forward hooks, summed over a frame's tiles; what a
composite module does besides its layers, such as a crop, counts in the network but in none of them); the rest of
the frame (Cb/Cr bicubic, colour conversion, rounding, tiling) is the frame's time minus the network's. Medians
over the frames. (torch.profiler's self times put several milliseconds of thread synchronisation on the
elementwise layers; these are not.) Random-weight networks and smooth content, as in benchmarks/upscale_speed.py.
Run it with the machine quiet.

    python benchmarks/upscale_profile.py fsrcnn --scale 4 [--frames 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import numpy as np
import torch
from torch import nn

from srkit import Upscaler
from srkit.imaging.resize import imresize
from srkit.models import build, names

FRAME = (1080, 1920)


def smooth_lr(scale: int) -> np.ndarray:
    """The LR image (uint8 RGB) of a 1920x1080 frame of smooth content, as in upscale_speed.py."""
    torch.manual_seed(0)
    small = torch.rand(1, 3, FRAME[0] // 24, FRAME[1] // 24)
    hr = nn.functional.interpolate(small, size=FRAME, mode="bicubic")[0].clamp(0, 1).permute(1, 2, 0)
    return imresize((hr.numpy() * 255).round().astype(np.uint8), scale=1 / scale)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=names())
    parser.add_argument("--scale", type=int, default=3)
    parser.add_argument("--frames", type=int, default=7)
    args = parser.parse_args()
    lr = smooth_lr(args.scale)
    upscaler = Upscaler(build(args.model, args.scale).eval())
    starts, spent = {}, defaultdict(float)
    leaves = [(n, m) for n, m in upscaler.model.named_modules() if n and not list(m.children())]
    for name, module in [*leaves, ("(network)", upscaler.model)]:
        module.register_forward_pre_hook(lambda m, _, name=name: starts.__setitem__(name, time.perf_counter()))
        module.register_forward_hook(
            lambda m, _, __, name=name: spent.__setitem__(name, spent[name] + time.perf_counter() - starts[name])
        )
    upscaler.upscale(lr)  # warm-up: oneDNN primitives, allocator
    frames, layers = [], defaultdict(list)
    for _ in range(args.frames):
        spent.clear()
        start = time.perf_counter()
        upscaler.upscale(lr)
        frames.append(time.perf_counter() - start)
        for name in ["(network)", *(n for n, _ in leaves)]:
            layers[name].append(spent[name])
    frame = statistics.median(frames) * 1e3
    network = statistics.median(layers.pop("(network)")) * 1e3
    size = f"LR {lr.shape[1]}x{lr.shape[0]}"
    print(f"{args.model} x{args.scale}, {size}: {frame:.1f} ms per frame, network {network:.1f} ms")
    for name, module in leaves:
        print(f"{statistics.median(layers[name]) * 1e3:7.1f} ms  {name:<16} {module}"[:118])
    print(f"{frame - network:7.1f} ms  outside the network (Cb/Cr bicubic, colour, rounding, tiling)")


if __name__ == "__main__":
    main()
