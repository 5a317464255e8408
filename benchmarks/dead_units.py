"""How many channels of each ReLU layer never fire on a benchmark set: the mark of ReLUs that training killed.

A channel that is zero on every pixel of every image passes no gradient and stays dead; the count tells a run
that stalls because it lost its width from one that is still learning. Takes a .safetensors written by srkit
or a training checkpoint (a run's checkpoint.pt, with the recipe it holds); the images go through the
network as the evaluation protocol feeds them (srkit.upscale.sr_for_metrics).

    python benchmarks/dead_units.py runs/srcnn-x3/x3/checkpoint.pt --data-root ../shared/datasets [--set Set14]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn

from srkit.data import benchmark, data_root
from srkit.models import build
from srkit.upscale import sr_for_metrics
from srkit.zoo import load_weights


def load(path: Path) -> tuple[nn.Module, str]:
    """The network in a weights file or a checkpoint, and where in training it is."""
    if path.suffix == ".safetensors":
        return load_weights(path), "weights"
    state = torch.load(path, map_location="cpu", weights_only=True)
    recipe = state["recipe"]
    model = build(recipe["model"], recipe["scale"], **recipe["model_options"])
    model.load_state_dict(state["model"])
    return model, f"step {state['progress']['step']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--data-root")
    parser.add_argument("--set", default="Set14")
    args = parser.parse_args()
    model, where = load(args.path)
    model.eval()
    active, pixels = defaultdict(int), defaultdict(int)  # per layer: pixels each channel fired on, pixels seen

    def count(name: str):
        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            active[name] += (output > 0).sum((0, 2, 3))
            pixels[name] += output.numel() // output.shape[1]

        return hook

    for name, module in model.named_modules():
        if isinstance(module, nn.ReLU):
            module.register_forward_hook(count(name))
    for pair in benchmark(args.set, model.info.scale, data_root(args.data_root)):
        sr_for_metrics(model, pair.lr, model.info.scale)
    print(f"{args.path} ({model.info.name} x{model.info.scale}, {where}), {args.set}:")
    for name, fired in active.items():
        share = fired.double() / pixels[name]
        dead, rare = int((fired == 0).sum()), int((share < 0.01).sum())
        print(f"  {name}: {dead} of {len(fired)} channels never active, {rare} active on under 1% of pixels")


if __name__ == "__main__":
    main()
