"""How far a network's last convolution is from its optimum: refit it by least squares, every other layer kept.

SRCNN's last layer is linear in the features of the layers before it, so the weights that minimise the training MSE
given those layers are one least-squares solve away. Fitted on random training crops (as `srkit train` draws them,
with a share of their pixels) and measured with the protocol beside the weights as trained, the gap says whether a
faster last layer (a recipe's `last_layer_lr`) has anything left to find. Writes benchmarks/results/last_layer.csv.

    python benchmarks/last_layer.py runs/srcnn-x4/x4-shrink/final.safetensors --data-root ../shared/datasets
        [--datasets Set5 Set14 BSD100 Urban100] [--batches 60]
"""

from __future__ import annotations

import argparse
import copy
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from srkit.data import BENCHMARKS, TrainSet, data_root, training_files
from srkit.errors import SrkitError
from srkit.evaluate import evaluate, network
from srkit.files import write_csv
from srkit.zoo import load_weights

RESULTS = Path(__file__).parent / "results" / "last_layer.csv"
BATCH, KEEP = 64, 8  # crops of 96x96 a batch; one in KEEP of their pixels is fitted on (the Gram matrix is costly)


def refit(model: nn.Module, samples: TrainSet, batches: int) -> tuple[nn.Module, list[float]]:
    """A copy of `model` with the least-squares last layer, and the training MSE of both, as trained and refitted."""
    *features, last = model.body
    features, k = nn.Sequential(*features), last.kernel_size[0]
    dim = last.in_channels * k * k + 1
    gram = torch.zeros(dim, dim, dtype=torch.float64)
    cross = torch.zeros(dim, dtype=torch.float64)
    energy, count = 0.0, 0  # the sum of the squared targets (with `gram` and `cross`, any weights' MSE) and pixels
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(batches):
            lr, hr = samples.batch(BATCH, generator, augment=True)
            padded = F.pad(features(lr), [k // 2] * 4, mode="constant" if last.padding_mode == "zeros" else "replicate")
            columns = F.unfold(padded, k).transpose(1, 2).reshape(-1, dim - 1)
            x = torch.cat([columns, torch.ones(len(columns), 1)], 1)
            pick = torch.randperm(len(x), generator=generator)[: len(x) // KEEP]
            x, y = x[pick], hr.reshape(-1)[pick]
            gram += (x.T @ x).double()
            cross += (x.T @ y).double()
            energy, count = energy + float((y.double() ** 2).sum()), count + len(y)
        solution = torch.linalg.lstsq(gram, cross[:, None]).solution[:, 0]  # a channel idle on every crop: singular
        trained = torch.cat([last.weight.reshape(-1), last.bias]).double()
        mse = [float(w @ gram @ w - 2 * w @ cross + energy) / count for w in (trained, solution)]
        fitted = copy.deepcopy(model)
        fitted.body[-1].weight.copy_(solution[:-1].reshape(last.weight.shape))
        fitted.body[-1].bias.copy_(solution[-1:])
    return fitted.eval(), mse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("--data-root")
    parser.add_argument("--datasets", nargs="+", default=["Set5"], choices=BENCHMARKS)
    parser.add_argument("--batches", type=int, default=60, help="batches of 64 crops of 96x96 to fit on")
    parser.add_argument("--train-sets", nargs="+", default=["T91", "BSD200"])
    parser.add_argument("--downscale-augment", type=float, nargs="*", default=[0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    args = parser.parse_args()

    try:
        root = data_root(args.data_root)
        model = load_weights(args.weights).eval()
        if model.info.channels != "y" or not isinstance(model.body[-1], nn.Conv2d):
            raise SrkitError(f"{args.weights}: {model.info.name} does not end in a convolution on Y, as SRCNN does")
        files = training_files(tuple(args.train_sets), root)
    except SrkitError as error:  # not a weights file, not an SRCNN-like network, no data
        parser.error(str(error))
    scale = model.info.scale
    samples = TrainSet(files, (scale,), "y", model.info.upsampled_input, 96, tuple(args.downscale_augment))
    fitted, mse = refit(model, samples, args.batches)
    print("training MSE as trained / least squares: {:.4e} / {:.4e} ({:.4f} / {:.4f} dB)".format(
        *mse, *(-10 * math.log10(m) for m in mse)))  # fmt: skip
    rows = []
    for dataset in args.datasets:
        for name, net in (("as trained", model), ("least-squares last layer", fitted)):
            record = evaluate(name, network(net), dataset, scale, root, progress=False)
            rows.append({"weights": args.weights, "last layer": name, "dataset": dataset, "scale": scale,
                         "psnr": f"{record.psnr:.4f}", "ssim": f"{record.ssim:.4f}"})  # fmt: skip
            print(" ".join(map(str, rows[-1].values())))
    write_csv(RESULTS, rows)


if __name__ == "__main__":
    main()
