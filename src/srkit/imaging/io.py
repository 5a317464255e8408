"""Reading images from disk into the arrays the rest of srkit uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from srkit.errors import SrkitError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def read_rgb_or_gray(path: str | Path) -> np.ndarray:
    """An 8-bit image: HxW for grayscale files (their own Y), HxWx3 RGB for everything else."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode not in ("L", "RGB"):
                image = image.convert("L" if image.mode in ("1", "I;16", "I") else "RGB")
            return np.asarray(image)
    except FileNotFoundError:
        raise SrkitError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise SrkitError(f"{path}: not a readable image ({error})") from None


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
