"""The best linear filter for ESPCN's receptive field: where a network whose tanh units stay linear stops.

ESPCN reads a 9x9 LR neighbourhood (5x5, 3x3, 3x3 convolutions) for the scale^2 sub-pixels of each LR pixel.
If its tanh units stay in their linear range, it is one linear filter of that size; this script finds the best
one by least squares on the training images (the same LR/HR pairs `srkit train` crops, with every position)
and measures it with the protocol, beside bicubic. Writes benchmarks/results/linear_filter.csv.

    python benchmarks/linear_filter.py --data-root ../shared/datasets [--scales 2 3 4] [--radius 4]
        [--datasets Set5 Set14 BSD100 Urban100]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from srkit.data import BENCHMARKS, TrainSet, data_root, training_files
from srkit.evaluate import bicubic, evaluate, network
from srkit.files import write_csv
from srkit.models.info import ModelInfo

RESULTS = Path(__file__).parent / "results" / "linear_filter.csv"


def fit(samples: TrainSet, scale: int, radius: int) -> nn.Module:
    """Least-squares (2r+1)^2 -> scale^2 filter with a bias, on Y - 0.5 (zero padding is then mid-grey)."""
    k = 2 * radius + 1
    gram = torch.zeros(k * k + 1, k * k + 1, dtype=torch.float64)
    cross = torch.zeros(k * k + 1, scale * scale, dtype=torch.float64)
    for sample in samples.samples:
        lr, hr = sample.lr[None] - 0.5, sample.hr[None] - 0.5
        columns = F.unfold(lr, k).double()[0]  # (k*k, positions) of every full neighbourhood
        h, w = lr.shape[-2] - k + 1, lr.shape[-1] - k + 1
        target = F.pixel_unshuffle(hr, scale)[0, :, radius : radius + h, radius : radius + w]
        x = torch.cat([columns, torch.ones(1, columns.shape[1], dtype=torch.float64)])
        gram += x @ x.T
        cross += x @ target.reshape(scale * scale, -1).double().T
    solution = torch.linalg.solve(gram, cross)  # (k*k + 1, scale^2)
    conv = nn.Conv2d(1, scale * scale, k, padding=radius)
    with torch.no_grad():
        conv.weight.copy_(solution[:-1].T.reshape(scale * scale, 1, k, k))
        conv.bias.copy_(solution[-1])
    model = nn.Sequential(conv, nn.PixelShuffle(scale))
    model.info = ModelInfo(
        name="linear",
        scale=scale,
        scales=(scale,),
        channels="y",
        upsampled_input=False,
        receptive_radius=radius,
        init="least squares",
        input_range=(-0.5, 0.5),
        output_range=(-0.5, 0.5),
    )
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root")
    parser.add_argument("--scales", type=int, nargs="+", default=[3])
    parser.add_argument("--radius", type=int, default=4, help="LR pixels each side (ESPCN: 4)")
    parser.add_argument("--train-sets", nargs="+", default=["T91", "BSD200"])
    parser.add_argument("--datasets", nargs="+", default=["Set5"], choices=BENCHMARKS)
    args = parser.parse_args()

    root = data_root(args.data_root)
    files = training_files(tuple(args.train_sets), root)
    rows = []
    for scale in args.scales:
        samples = TrainSet(files, (scale,), "y", upsampled_input=False, patch_size=scale)
        model = fit(samples, scale, args.radius)
        for dataset in args.datasets:
            k = 2 * args.radius + 1
            for name, method in ((f"linear {k}x{k}", network(model)), ("bicubic", bicubic)):
                record = evaluate(name, method, dataset, scale, root, progress=False)
                row = {"method": name, "dataset": dataset, "scale": scale, "psnr": f"{record.psnr:.2f}"}
                rows.append({**row, "ssim": f"{record.ssim:.4f}"})
                print(" ".join(map(str, rows[-1].values())))
    write_csv(RESULTS, rows)


if __name__ == "__main__":
    main()
