"""The evaluation protocol over benchmark sets: per-image PSNR/SSIM, their means, and tables."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from torch import nn
from tqdm import tqdm

from srkit.data import benchmark
from srkit.imaging.resize import imresize
from srkit.metrics import psnr, ssim
from srkit.upscale import sr_for_metrics

# A method maps a uint8 LR image (HxW or HxWx3) and a scale to its uint8 SR image of the same layout.
Method = Callable[[np.ndarray, int], np.ndarray]


def bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
    """The baseline every paper reports: MATLAB bicubic upscaling."""
    return imresize(lr, scale=scale)


def network(model: nn.Module) -> Method:
    """An SR network as the protocol measures it: Y models on the Y channel, RGB models on RGB."""
    return lambda lr, scale: sr_for_metrics(model, lr, scale)


@dataclass(frozen=True)
class Record:
    """Mean PSNR/SSIM of one method on one dataset at one scale, with the per-image values."""

    model: str
    dataset: str
    scale: int
    psnr: float
    ssim: float
    images: int
    per_image: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate(model: str, method: Method, dataset: str, scale: int, root: Path, progress: bool = True) -> Record:
    """Run `method` on every image of `dataset` at `scale` and measure it with the protocol."""
    rows = []
    for pair in tqdm(
        benchmark(dataset, scale, root), desc=f"{model} {dataset} x{scale}", disable=not progress, leave=False
    ):
        sr = method(pair.lr, scale)
        rows.append({"image": pair.name, "psnr": psnr(sr, pair.hr, scale), "ssim": ssim(sr, pair.hr, scale)})
    return Record(
        model=model,
        dataset=dataset,
        scale=scale,
        psnr=float(np.mean([r["psnr"] for r in rows])),
        ssim=float(np.mean([r["ssim"] for r in rows])),
        images=len(rows),
        per_image=rows,
    )


def format_table(records: list[Record]) -> str:
    """A plain-text table of mean PSNR/SSIM, one row per model, dataset and scale."""
    lines = [f"{'model':<16} {'dataset':<9} {'scale':>5} {'PSNR':>7} {'SSIM':>7} {'images':>6}"]
    for r in records:
        lines.append(f"{r.model:<16} {r.dataset:<9} {'x' + str(r.scale):>5} {r.psnr:7.2f} {r.ssim:7.4f} {r.images:6d}")
    return "\n".join(lines)
