"""Where the datasets live, and the benchmark sets of the evaluation protocol."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from srkit.errors import SrkitError
from srkit.imaging.color import y_channel
from srkit.imaging.io import IMAGE_SUFFIXES, list_images, read_rgb_or_gray
from srkit.imaging.resize import imresize

DATA_ENV = "SRKIT_DATA"
BENCHMARKS = ("Set5", "Set14", "BSD100", "Urban100")
SCALES = (2, 3, 4)


def data_root(path: str | Path | None = None) -> Path:
    """The data root: `path` (from --data-root) if given, else $SRKIT_DATA."""
    source = "--data-root" if path is not None else f"${DATA_ENV}"
    path = path if path is not None else os.environ.get(DATA_ENV)
    if not path:
        raise SrkitError(f"no data root: pass --data-root DIR or set {DATA_ENV}=DIR (a folder holding Set5, T91, ...)")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise SrkitError(f"data root {root} (from {source}) is not a folder; pass --data-root DIR or set {DATA_ENV}")
    return root


def dataset_folder(name: str, root: Path) -> Path:
    """The folder of one dataset under the data root, with a clear error when it is missing."""
    folder = root / name
    if not folder.is_dir():
        found = ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir())) or "nothing"
        raise SrkitError(f"dataset {name} not found: looked in {folder} (the data root holds {found})")
    return folder


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom and right of a numpy HxW or HxWxC image so that height and width are multiples of `scale`:
    the protocol's HR image, whose LR image `imresize(hr, scale=1 / scale)` upscales back to its size."""
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
        what = f"shape {image.shape}" if isinstance(image, np.ndarray) else f"a {type(image).__name__}"
        raise SrkitError(f"modcrop takes a numpy HxW or HxWxC image (np.asarray of a PIL image), not {what}")
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]


@dataclass(frozen=True)
class Pair:
    """One benchmark image: the mod-cropped HR image and its MATLAB-bicubic LR version (uint8)."""

    name: str
    hr: np.ndarray
    lr: np.ndarray


def check_scale(scale: int) -> int:
    if scale not in SCALES:
        raise SrkitError(f"scale {scale} is not supported; choose from {', '.join(map(str, SCALES))}")
    return scale


def check_benchmark(name: str) -> str:
    if name not in BENCHMARKS:
        raise SrkitError(f"unknown dataset {name!r}; choose from {', '.join(BENCHMARKS)}")
    return name


def benchmark(name: str, scale: int, root: Path) -> list[Pair]:
    """A benchmark set as (HR, LR) pairs: HR mod-cropped to `scale`, LR = imresize(HR, 1/scale)."""
    check_benchmark(name)
    check_scale(scale)
    files = list_images(dataset_folder(name, root))
    if not files:
        raise SrkitError(f"dataset {name} in {root / name} holds no images")
    pairs = []
    for path in files:
        hr = modcrop(read_rgb_or_gray(path), scale)
        pairs.append(Pair(path.stem, hr, imresize(hr, scale=1 / scale)))
    return pairs


@dataclass(frozen=True)
class Sample:
    """One training image at one scale: HR and its (bicubic-upscaled, for such models) LR, float (C, H, W)."""

    hr: torch.Tensor
    lr: torch.Tensor
    scale: int


class TrainSet:
    """HR training images in memory with their LR versions, made once per image with MATLAB bicubic.

    LR is made from the whole image and cropped, as the papers' MATLAB scripts do (a patch resized on
    its own would see mirrored borders). Everything is in the model's channels (Y or RGB), float in [0, 1].
    """

    def __init__(
        self,
        files: list[Path],
        scales: tuple[int, ...],
        channels: str,
        upsampled_input: bool,
        patch_size: int,
        downscale_augment: tuple[float, ...] = (),
    ) -> None:
        self.patch_size, self.upsampled_input = patch_size, upsampled_input
        self.samples: list[Sample] = []
        for path in files:
            image = read_rgb_or_gray(path)
            for factor in (1.0, *downscale_augment):  # FSRCNN's augmentation: smaller copies of each image
                hr_full = image if factor == 1.0 else imresize(image, scale=factor)
                for scale in scales:
                    hr = modcrop(hr_full, scale)
                    lr = imresize(hr, scale=1 / scale)
                    if min(lr.shape[:2]) * scale < patch_size:
                        continue  # smaller than one patch (only ever a shrunken augmentation copy)
                    lr_t = _channels(lr, channels)
                    if upsampled_input:  # SRCNN and VDSR see the bicubic-upscaled LR image
                        lr_t = imresize(lr_t, scale=scale)
                    self.samples.append(Sample(_channels(hr, channels), lr_t, scale))
        if not self.samples:
            raise SrkitError(f"no training image is at least {patch_size}x{patch_size} pixels")
        # Sampling an image in proportion to its patch positions = sampling uniformly over all patches.
        self.weights = torch.tensor([float(_positions(s, patch_size)) for s in self.samples], dtype=torch.float64)

    def batch(self, batch_size: int, generator: torch.Generator, augment: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Random aligned (LR, HR) crops, with random flips and 90-degree rotations when `augment`."""
        picks = torch.multinomial(self.weights, batch_size, replacement=True, generator=generator).tolist()
        draws = torch.rand(batch_size, 5, generator=generator, dtype=torch.float64).tolist()
        lrs, hrs = [], []
        for i, (u, v, flip_h, flip_v, rot) in zip(picks, draws, strict=True):
            s = self.samples[i]
            step = 1 if self.upsampled_input else s.scale  # LR pixels per HR pixel on the input's grid
            p = self.patch_size // step
            y = int(u * (s.lr.shape[-2] - p + 1))
            x = int(v * (s.lr.shape[-1] - p + 1))
            lr = s.lr[:, y : y + p, x : x + p]
            hr = s.hr[:, y * step : y * step + self.patch_size, x * step : x * step + self.patch_size]
            if augment:
                dims = [d for d, flag in ((-1, flip_h), (-2, flip_v)) if flag < 0.5]
                if dims:
                    lr, hr = lr.flip(dims), hr.flip(dims)
                if rot < 0.5:
                    lr, hr = lr.transpose(-1, -2), hr.transpose(-1, -2)
            lrs.append(lr)
            hrs.append(hr)
        return torch.stack(lrs), torch.stack(hrs)


def _positions(sample: Sample, patch_size: int) -> int:
    step = 1 if sample.lr.shape == sample.hr.shape else sample.scale
    p = patch_size // step
    return (sample.lr.shape[-2] - p + 1) * (sample.lr.shape[-1] - p + 1)


def _channels(image: np.ndarray, channels: str) -> torch.Tensor:
    """uint8 HxW or HxWx3 -> float (C, H, W) in [0, 1]: Y (unrounded BT.601) or RGB."""
    if channels == "y":
        return torch.from_numpy(y_channel(image) / 255.0).float()[None]
    rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    return torch.tensor(rgb).permute(2, 0, 1).float() / 255.0


def training_files(names: tuple[str, ...], root: Path) -> list[Path]:
    """The images of the named training sets (folders under the data root, or paths to folders)."""
    files = []
    for name in names:
        folder = Path(name) if Path(name).is_absolute() else root / name
        if not folder.is_dir():
            raise SrkitError(f"training set {name} not found: looked in {folder}")
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not found:
            raise SrkitError(f"training set {name} in {folder} holds no images")
        files += found
    return files
