"""Where the datasets live, and the benchmark sets of the evaluation protocol."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srkit.errors import SrkitError
from srkit.imaging.io import list_images, read_rgb_or_gray
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
    """Crop the bottom and right so that height and width are multiples of `scale`."""
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
