"""What a network's border padding is worth: the same weights measured with zero and with replicate padding.

SRCNN and ESPCN pad every convolution to keep the image's size (`padding` in their configs). The paper's own SRCNN
test code (SRCNN.m) repeats each layer's edge; PyTorch's default reads zeros. A network learns the padding it is
trained with, so this measures trained weights both ways, with the protocol, and names the images whose PSNR moves
most: on Set14 at x2 that was one image, foreman, whose left edge is a black column.

    python benchmarks/padding.py runs/srcnn-x2/x2-long/final.safetensors --data-root ../shared/datasets \
        [--set Set5 Set14 BSD100 Urban100] [--images 3]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from srkit import models
from srkit.data import data_root
from srkit.errors import SrkitError
from srkit.evaluate import evaluate, network
from srkit.zoo import load_weights, read_metadata

PADDINGS = ("zeros", "replicate")


def by_padding(path: Path) -> tuple[dict[str, torch.nn.Module], str]:
    """The network of a weights file rebuilt with each padding, and the padding it was trained with."""
    metadata = read_metadata(path)
    options = json.loads(metadata.get("srkit.options", "{}"))
    state = load_weights(path).state_dict()
    networks = {}
    for padding in PADDINGS:
        model = models.build(metadata["srkit.model"], int(metadata["srkit.scale"]), **options | {"padding": padding})
        model.load_state_dict(state)
        networks[padding] = model.eval()
    return networks, options.get("padding", "zeros")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path, help="an SRCNN's or ESPCN's .safetensors")
    parser.add_argument("--data-root")
    parser.add_argument("--set", nargs="+", default=["Set5", "Set14"])
    parser.add_argument("--images", type=int, default=3, help="images listed per set, by the largest change")
    args = parser.parse_args()
    try:
        root = data_root(args.data_root)
        networks, trained = by_padding(args.weights)
    except SrkitError as error:  # not a weights file, or a model without the option
        parser.error(str(error))
    print(f"{args.weights}, trained with {trained} padding: PSNR (dB) on Y")
    print(f"{'set':<9} {'image':<24} " + " ".join(f"{p:>9}" for p in PADDINGS) + "   change")
    for dataset in args.set:
        zeros, replicate = (
            evaluate(padding, network(model), dataset, model.info.scale, root, progress=False)
            for padding, model in networks.items()
        )
        print(f"{dataset:<9} {'mean':<24} {zeros.psnr:9.3f} {replicate.psnr:9.3f} {replicate.psnr - zeros.psnr:+8.3f}")
        pairs = sorted(
            zip(zeros.per_image, replicate.per_image, strict=True), key=lambda p: -abs(p[1]["psnr"] - p[0]["psnr"])
        )
        for a, b in pairs[: args.images]:
            print(f"{'':<9} {a['image']:<24} {a['psnr']:9.3f} {b['psnr']:9.3f} {b['psnr'] - a['psnr']:+8.3f}")


if __name__ == "__main__":
    main()
