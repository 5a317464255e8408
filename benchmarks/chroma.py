"""What an RGB network does to colour: mean PSNR of Y, Cb, Cr and RGB on a benchmark set, against bicubic.

The protocol measures Y only; this shows what an RGB network does to the rest (a loss on Y alone, tried in commit
077f20c for the RGB ESPCN x4, kept Set5's Y at 30.47 dB and cost 4 dB on Cb and Cr). Each channel is measured as the
protocol measures Y: MATLAB's BT.601 in [0, 255] on doubles (srkit.metrics), `scale` pixels shaved;
gray images are skipped.

    python benchmarks/chroma.py runs/espcn-rgb-x4/x4-round5/final.safetensors --data-root ../shared/datasets \
        [--set Set5 Set14]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from srkit.data import benchmark, data_root
from srkit.evaluate import bicubic, network
from srkit.imaging.color import rgb_to_ycbcr
from srkit.zoo import load_weights

CHANNELS = ("Y", "Cb", "Cr", "RGB")


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def channel_psnr(sr: np.ndarray, hr: np.ndarray, shave: int) -> list[float]:
    """PSNR of Y, Cb, Cr and RGB between two uint8 HxWx3 images, `shave` pixels off each border."""
    sr, hr = sr[shave:-shave, shave:-shave], hr[shave:-shave, shave:-shave]
    ycc_sr, ycc_hr = (rgb_to_ycbcr(x.astype(np.float64) / 255.0) * 255.0 for x in (sr, hr))  # unrounded, as metrics
    return [_psnr(ycc_sr[..., c], ycc_hr[..., c]) for c in range(3)] + [_psnr(sr, hr)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path, nargs="+", help="RGB models' .safetensors, all at one scale")
    parser.add_argument("--data-root")
    parser.add_argument("--set", nargs="+", default=["Set5"])
    args = parser.parse_args()
    models = {str(path): load_weights(path) for path in args.weights}
    scales = {model.info.scale for model in models.values()}
    if len(scales) != 1 or any(model.info.channels != "rgb" for model in models.values()):
        parser.error("the weights must all be RGB models at one scale")
    scale = scales.pop()
    methods = {"bicubic": bicubic} | {name: network(model) for name, model in models.items()}
    print(f"{'method':<48} {'set':<9} " + " ".join(f"{c:>7}" for c in CHANNELS))
    for dataset in args.set:
        pairs = [p for p in benchmark(dataset, scale, data_root(args.data_root)) if p.hr.ndim == 3]
        for name, method in methods.items():
            values = np.mean([channel_psnr(method(p.lr, scale), p.hr, scale) for p in pairs], axis=0)
            print(f"{name:<48} {dataset:<9} " + " ".join(f"{v:7.3f}" for v in values))


if __name__ == "__main__":
    main()
