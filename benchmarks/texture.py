"""Texture without a pretrained judge: PSNR, SSIM and the high-frequency power ratio of SR against HR.

No VGG or LPIPS network can be had on this project's machines, so the GAN is judged by a measure computed from
the images alone (`srkit.metrics.high_frequency_ratio`): the share of Y's power above a quarter of the sampling
rate in the SR image over the HR image's, averaged over the set. Bicubic and MSE-trained networks sit well
under 1; a GAN that restores texture comes closer to it. Writes benchmarks/results/texture.csv and prints the
markdown table; `--figure PNG` also draws crops (bicubic / each model / HR) of the most textured part of a few
BSD100 and Urban100 images.

    python benchmarks/texture.py --data-root DATA --models srresnet-x4 srgan-x4 edsr-baseline-x4
    python benchmarks/texture.py --data-root DATA --weights runs/srgan-x4/final.safetensors --figure crops.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from srkit import Upscaler, zoo
from srkit.data import benchmark, data_root, dataset_folder, modcrop
from srkit.errors import SrkitError
from srkit.evaluate import Method, bicubic, network
from srkit.files import write_csv
from srkit.imaging.io import read_rgb_or_gray
from srkit.imaging.resize import imresize
from srkit.metrics import high_frequency_ratio, psnr, ssim

RESULTS = Path(__file__).parent / "results" / "texture.csv"
FIGURE_IMAGES = (("BSD100", "img_008"), ("BSD100", "img_053"), ("Urban100", "img_004"), ("Urban100", "img_062"))
CROP = 96  # HR pixels


def networks(ids: list[str], weights: list[Path]) -> dict[str, torch.nn.Module]:
    """Each zoo id and weights file, by name."""
    return {name: zoo.load_pretrained(name) for name in ids} | {str(p): zoo.load_weights(p) for p in weights}


def measure(nets: dict[str, torch.nn.Module], dataset: str, scale: int, root: Path) -> list[dict]:
    """Mean PSNR, SSIM and high-frequency ratio of bicubic and each network over the set, as the protocol runs them."""
    pairs = benchmark(dataset, scale, root)
    rows = []
    methods: dict[str, Method] = {"bicubic": bicubic} | {name: network(net) for name, net in nets.items()}
    for name, method in methods.items():
        values = []
        for pair in tqdm(pairs, desc=f"{name} {dataset} x{scale}", leave=False):
            sr = method(pair.lr, scale)
            values.append(
                (psnr(sr, pair.hr, scale), ssim(sr, pair.hr, scale), high_frequency_ratio(sr, pair.hr, scale))
            )
        mean = np.mean(values, axis=0)
        rows.append(
            {
                "method": name,
                "dataset": dataset,
                "scale": scale,
                "psnr": round(float(mean[0]), 3),
                "ssim": round(float(mean[1]), 4),
                "hf_ratio": round(float(mean[2]), 4),
                "images": len(pairs),
            }
        )
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| method | set | PSNR | SSIM | high-frequency power ratio (HR = 1) |", "|---|---|---|---|---|"]
    lines += [
        f"| {r['method']} | {r['dataset']} x{r['scale']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['hf_ratio']:.4f} |"
        for r in rows
    ]
    return "\n".join(lines)


def _crop_box(hr: np.ndarray) -> tuple[int, int]:
    """Top-left corner of the CROP x CROP window with the most detail (the largest mean gradient)."""
    y = hr.astype(np.float64).mean(axis=2) if hr.ndim == 3 else hr.astype(np.float64)
    detail = np.abs(np.diff(y, axis=0))[:, :-1] + np.abs(np.diff(y, axis=1))[:-1]
    integral = np.pad(detail.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = integral[CROP:, CROP:] - integral[:-CROP, CROP:] - integral[CROP:, :-CROP] + integral[:-CROP, :-CROP]
    top, left = np.unravel_index(np.argmax(sums), sums.shape)
    return int(top), int(left)


def figure(nets: dict[str, torch.nn.Module], scale: int, root: Path, path: Path) -> None:
    """A grid of colour crops: one row per image, one column for bicubic, each network and HR."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    upscalers = {name: Upscaler(net, scale=scale).upscale for name, net in nets.items()}
    methods = {"bicubic": lambda lr: imresize(lr, scale=scale)} | upscalers
    names = [*methods, "HR"]
    fig, axes = plt.subplots(len(FIGURE_IMAGES), len(names), figsize=(2 * len(names), 2 * len(FIGURE_IMAGES)))
    for i, (row, (dataset, image)) in enumerate(zip(axes, FIGURE_IMAGES, strict=True)):
        file = dataset_folder(dataset, root) / f"{image}.png"
        if not file.is_file():
            raise SrkitError(f"{file}: no such image for the figure")
        hr = modcrop(read_rgb_or_gray(file), scale)
        lr = imresize(hr, scale=1 / scale)
        top, left = _crop_box(hr)
        for ax, name in zip(row, names, strict=True):
            image_out = hr if name == "HR" else methods[name](lr)
            ax.imshow(image_out[top : top + CROP, left : left + CROP], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(Path(name).parent.name if name.endswith(".safetensors") else name, fontsize=9)
        row[0].set_ylabel(f"{dataset} {image}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root")
    parser.add_argument("--dataset", nargs="+", default=["BSD100"])
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--models", nargs="*", default=[], metavar="ID", help="zoo ids")
    parser.add_argument("--weights", nargs="*", default=[], type=Path, metavar="FILE", help="weights files")
    parser.add_argument("--figure", type=Path, metavar="PNG", help="also draw crops of a few images")
    args = parser.parse_args()
    try:
        root = data_root(args.data_root)
        nets = networks(args.models, args.weights)
        rows = [row for dataset in args.dataset for row in measure(nets, dataset, args.scale, root)]
        if args.figure:
            figure(nets, args.scale, root, args.figure)
    except SrkitError as error:
        raise SystemExit(f"texture.py: {error}") from None
    write_csv(RESULTS, rows)
    print(markdown(rows))


if __name__ == "__main__":
    main()
