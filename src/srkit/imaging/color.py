"""BT.601 colour conversion exactly as MATLAB's `rgb2ycbcr` / `ycbcr2rgb` (Y in [16, 235] for 8-bit).

The protocol measures PSNR on this Y. Integer images come back rounded to their type as MATLAB does;
float images are in [0, 1] and stay float. Numpy arrays are HxWx3, torch tensors (..., 3, H, W).
`YuvCoding` relates the Y'CbCr of a video in any matrix and range to this Y.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from srkit.errors import SrkitError

# MATLAB's matrix, with R, G, B in [0, 1] and Y, Cb, Cr in [0, 255].
_MATRIX = np.array(
    [
        [65.481, 128.553, 24.966],
        [-37.797, -74.203, 112.0],
        [112.0, -93.786, -18.214],
    ]
)
_OFFSET = np.array([16.0, 128.0, 128.0])
# Everything in [0, 1] units: ycbcr = rgb @ FORWARD.T + OFFSET01, and back.
FORWARD = _MATRIX / 255.0
OFFSET01 = _OFFSET / 255.0
INVERSE = np.linalg.inv(FORWARD)
# MKL's AVX-512 matrix product rounds a row's last columns (past its last whole block of 32 floats) differently from
# the others: rows padded with zeros to multiples of this many floats are computed alike at every size, so that a
# tile's pixels equal the whole image's (here and in srkit.upscale.runtime's bicubic).
ROW_BLOCK = 64


def _affine(x: torch.Tensor, matrix: np.ndarray, offset: np.ndarray, inverse: bool) -> torch.Tensor:
    """matrix @ (x - offset) or matrix @ x + offset over the colour axis of (..., 3, H, W): a matrix product with the
    pixels as its columns, padded with zeros to whole ROW_BLOCKs."""
    m = torch.as_tensor(matrix, dtype=x.dtype, device=x.device)
    o = torch.as_tensor(offset, dtype=x.dtype, device=x.device)[:, None]
    channels_first = x.movedim(-3, 0)
    count = channels_first[0].numel()
    planes = torch.cat([channels_first.reshape(3, count), x.new_zeros(3, -count % ROW_BLOCK)], 1)  # a contiguous copy
    y = torch.matmul(m, planes - o)[:, :count] if inverse else torch.matmul(m, planes)[:, :count].add_(o)
    return y.view(channels_first.shape).movedim(0, -3)


def _convert(image, matrix: np.ndarray, offset: np.ndarray, inverse: bool):
    if isinstance(image, torch.Tensor):
        if image.dim() < 3 or image.shape[-3] != 3:
            raise SrkitError(f"colour conversion expects a (..., 3, H, W) tensor, got {tuple(image.shape)}")
        integer = not image.dtype.is_floating_point
        x = image.double() / torch.iinfo(image.dtype).max if integer else image
        y = _affine(x, matrix, offset, inverse)
        if integer:
            hi = torch.iinfo(image.dtype).max
            return torch.floor((y * hi).clamp(0, hi) + 0.5).to(image.dtype)
        return y
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise SrkitError(f"colour conversion expects an HxWx3 array, got shape {image.shape}")
        integer = image.dtype.kind in "ui"
        x = image.astype(np.float64) / np.iinfo(image.dtype).max if integer else image
        y = (x - offset) @ matrix.T if inverse else x @ matrix.T + offset
        if integer:
            hi = np.iinfo(image.dtype).max
            return np.floor(np.clip(y * hi, 0, hi) + 0.5).astype(image.dtype)
        return y.astype(image.dtype, copy=False)
    raise SrkitError(f"colour conversion expects a numpy array or a torch tensor, got {type(image).__name__}")


def rgb_to_ycbcr(image: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """MATLAB `rgb2ycbcr`: integer images stay integer (rounded), floats are in [0, 1]."""
    return _convert(image, FORWARD, OFFSET01, inverse=False)


def ycbcr_to_rgb(image: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """MATLAB `ycbcr2rgb`: integer images are rounded and clipped, floats are not clipped."""
    return _convert(image, INVERSE, OFFSET01, inverse=True)


def y_channel(image: np.ndarray) -> np.ndarray:
    """Y in [0, 255] as float64, unrounded, of an 8-bit RGB image; a grayscale (HxW) image is its own Y."""
    if image.ndim == 2:
        return image.astype(np.float64)
    return rgb_to_ycbcr(image.astype(np.float64) / 255.0)[..., 0] * 255.0


# Kr and Kb of the Y'CbCr matrices of video (ITU-T H.273), by FFmpeg's names; Kg = 1 - Kr - Kb.
MATRICES = {
    "bt601": (0.299, 0.114),  # bt470bg and smpte170m; MATLAB's rgb2ycbcr
    "bt709": (0.2126, 0.0722),
    "fcc": (0.30, 0.11),
    "smpte240m": (0.212, 0.087),
    "bt2020nc": (0.2627, 0.0593),
}


@dataclass(frozen=True)
class YuvCoding:
    """How a video codes R'G'B' as 8-bit Y'CbCr: a matrix of MATRICES and a range (limited: Y in 16-235, Cb and Cr
    in 16-240; full: all in 0-255)."""

    matrix: str = "bt601"
    full_range: bool = False

    def __post_init__(self) -> None:
        if self.matrix not in MATRICES:
            raise SrkitError(f"unknown Y'CbCr matrix {self.matrix!r}; known: {', '.join(MATRICES)}")

    @property
    def luma_limits(self) -> tuple[int, int]:
        return (0, 255) if self.full_range else (16, 235)

    @property
    def chroma_limits(self) -> tuple[int, int]:
        return (0, 255) if self.full_range else (16, 240)

    def to_bt601(self) -> tuple[float, float, float, float]:
        """(g, a, b, c): MATLAB's BT.601 Y (`rgb2ycbcr`'s, the Y srkit's networks take) of the same R'G'B', in 8-bit
        code values, is g * y + a * cb + b * cr + c for this coding's code values y, cb, cr.

        With Y' = Kr R' + Kg G' + Kb B', Cb = (B' - Y') / (2 - 2 Kb), Cr = (R' - Y') / (2 - 2 Kr), BT.601's Y' of the
        same R'G'B' is Y' + p Cb + q Cr, where (1, p, q) is BT.601's row of weights times the inverse of this matrix:
        0 for BT.601 itself, 0.1016 and 0.1961 for BT.709 (a saturated colour's Y moves by up to 0.15). Codes: limited
        y = 16 + 219 Y', cb = 128 + 224 Cb; full y = 255 Y', cb = 128 + 255 Cb; MATLAB's Y is 16 + 219 Y'. So BT.601
        in the limited range is MATLAB's Y as it is: (1, 0, 0, 0).
        """
        kr, kb = MATRICES[self.matrix]
        kg = 1 - kr - kb
        forward = np.array(
            [
                [kr, kg, kb],
                [-kr / (2 - 2 * kb), -kg / (2 - 2 * kb), 0.5],
                [0.5, -kg / (2 - 2 * kr), -kb / (2 - 2 * kr)],
            ]
        )
        bt601 = np.array([0.299, 0.587, 0.114])
        _, p, q = np.round(bt601 @ np.linalg.inv(forward), 12)  # BT.601's own p and q are 0 up to rounding
        luma, chroma, black = (255, 255, 0) if self.full_range else (219, 224, 16)
        g, a, b = 219 / luma, 219 * p / chroma, 219 * q / chroma
        return float(g), float(a), float(b), float(16 - g * black - 128 * (a + b))
