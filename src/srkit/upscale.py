"""Upscaling real images with an SR network: Y vs RGB, alpha, 16-bit, tiling; and whole folders of files.

`super_resolve` runs a network on a batch whatever input kind and value range it expects. `Upscaler` applies
it to an image of any mode and size: Y models get the Y of YCbCr (Cb and Cr are upscaled with bicubic), RGB
models all three colours, a grayscale image stays gray, alpha is upscaled with bicubic and the colour is
premultiplied by it, so that garbage under transparent pixels cannot bleed into visible ones. Large images
are cut into tiles that overlap by the receptive field, so the tiled output equals the untiled one exactly.
"""

from __future__ import annotations

import copy
import ctypes
import glob
import logging
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from srkit.errors import SrkitError
from srkit.files import atomic_path
from srkit.imaging import video
from srkit.imaging.color import INVERSE, OFFSET01, ROW_BLOCK, rgb_to_ycbcr, y_channel
from srkit.imaging.io import IMAGE_SUFFIXES, Picture, from_array, read_image, to_array, write_image, write_png
from srkit.imaging.resize import contributions, imresize
from srkit.metrics import to_uint8

log = logging.getLogger(__name__)

MEMORY_BUDGET = 1 << 29  # bytes one tile may take while it is upscaled; larger images are tiled
BICUBIC_REACH = 2  # LR pixels either side that MATLAB's bicubic upscaling reads
PIPELINE_FLOATS = 16  # floats per output pixel besides the network: colour, Cb/Cr, alpha and their copies


def super_resolve(model: nn.Module, lr: torch.Tensor, scale: int | None = None) -> torch.Tensor:
    """(N, C, h, w) in [0, 1] -> (N, C, scale*h, scale*w) in [0, 1] (not clamped), whatever the model expects."""
    info = model.info
    return _forward(model, imresize(lr, scale=scale or info.scale) if info.upsampled_input else lr)


def to_range(x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    """[0, 1] -> a model's value range (espcn-rgb: 0..255 in, -1..1 out)."""
    lo, hi = value_range
    return x if (lo, hi) == (0.0, 1.0) else x * (hi - lo) + lo


def from_range(y: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    """A model's value range -> [0, 1]."""
    lo, hi = value_range
    return y if (lo, hi) == (0.0, 1.0) else (y - lo) / (hi - lo)


def _forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The network on its input kind in [0, 1], mapped to and from the value ranges it was trained with."""
    return from_range(model(to_range(x, model.info.input_range)), model.info.output_range)


def _to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """HxW or HxWxC float -> (1, C, H, W)."""
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    t = t[None, None] if t.dim() == 2 else t.permute(2, 0, 1)[None]
    return t.to(device)


@torch.no_grad()
def sr_for_metrics(model: nn.Module, lr: np.ndarray, scale: int) -> np.ndarray:
    """SR of a uint8 LR image as the protocol measures it.

    Y models return their rounded Y output (HxW uint8), as the papers measure it, without a trip through
    RGB; RGB models return the RGB image (or, for a grayscale input, its channel mean).
    """
    device = next(model.parameters()).device
    if model.info.channels == "y":
        y = super_resolve(model, _to_tensor(y_channel(lr) / 255.0, device), scale)
        return to_uint8(y[0, 0].clamp(0, 1).cpu().numpy())
    rgb = lr if lr.ndim == 3 else np.repeat(lr[..., None], 3, axis=2)
    out = super_resolve(model, _to_tensor(rgb / 255.0, device), scale)[0].clamp(0, 1)
    out = out.mean(0) if lr.ndim == 2 else out.permute(1, 2, 0)
    return to_uint8(out.cpu().numpy())


class Upscaler:
    """Upscales images of every kind with one SR network, in tiles when they are large.

    Args:
        model: a built network with its `info` (see `srkit.models`); the upscaler works on its own copy.
        scale: for networks that handle several scales (VDSR); the others only take their own.
        tile: tile size in input pixels; None picks the largest that fits `memory_budget` (often the whole image).
        device: "cpu", "cuda" or a torch device.
        half: run the network in float16 (CUDA only).
        memory_budget: bytes one tile may use while it is upscaled.

    On the CPU it keeps some buffers from call to call, so one Upscaler is not for two threads at once, and it has
    glibc keep freed memory for reuse in the whole process (see _keep_freed_memory).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        scale: int | None = None,
        tile: int | None = None,
        device: str | torch.device = "cpu",
        half: bool = False,
        memory_budget: int = MEMORY_BUDGET,
    ) -> None:
        info = model.info
        scale = scale or info.scale
        if scale not in info.scales:
            raise SrkitError(f"{info.name} upscales by {' or '.join(map(str, info.scales))}, not by {scale}")
        device = torch.device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise SrkitError("CUDA was asked for but is not available")
        if half and device.type != "cuda":
            raise SrkitError("half precision is for CUDA devices")
        if tile is not None and tile < 1:
            raise SrkitError(f"tile size must be positive, got {tile}")
        self.info, self.scale, self.tile = info, scale, tile
        self.dtype = torch.float16 if half else torch.float32
        self.model = _prepare(model, device, self.dtype)
        if device.type == "cpu":
            _keep_freed_memory()
        self.device = device
        self.memory_budget = memory_budget
        # Input pixels around a tile that its outputs depend on: the network's receptive field (in LR pixels;
        # for bicubic-upscaled input that is r / scale, plus what the bicubic itself reads).
        radius = info.receptive_radius
        self.margin = -(-radius // scale) + BICUBIC_REACH if info.upsampled_input else max(radius, BICUBIC_REACH)
        self.bytes_per_pixel = _bytes_per_pixel(self.model, scale, self.dtype)
        self._upsamplers: dict[tuple, nn.Module] = {}  # bicubic convolutions, by channels and colour map

    def upscale(self, image: Image.Image | np.ndarray | torch.Tensor) -> Image.Image | np.ndarray | torch.Tensor:
        """Upscale a PIL image, a numpy image or a torch tensor; the result has the same kind and dtype.

        Numpy images are HxW, HxWx2 (gray + alpha), HxWx3 or HxWx4, uint8, uint16 or float in [0, 1];
        tensors are (C, H, W) or (N, C, H, W) float in [0, 1] with the same channel counts; PIL images of
        any mode (palette, CMYK and the like come back as RGB or RGBA).
        """
        if isinstance(image, Image.Image):
            out = from_array(self.upscale_array(to_array(image)))
            if image.info.get("icc_profile") and image.mode not in ("CMYK", "LAB", "HSV"):
                out.info["icc_profile"] = image.info["icc_profile"]
            return out
        if isinstance(image, np.ndarray):
            return self.upscale_array(image)
        if isinstance(image, torch.Tensor):
            if image.dim() not in (3, 4) or not image.dtype.is_floating_point:
                shape = tuple(image.shape)
                raise SrkitError(f"expected a float (C, H, W) or (N, C, H, W) tensor, got {image.dtype} {shape}")
            batch = image[None] if image.dim() == 3 else image
            outs = [self.upscale_array(x.permute(1, 2, 0).cpu().numpy()) for x in batch]
            out = torch.stack([torch.from_numpy(o).permute(2, 0, 1) for o in outs]).to(image.device, image.dtype)
            return out[0] if image.dim() == 3 else out
        raise SrkitError(f"cannot upscale a {type(image).__name__}: give a PIL image, a numpy array or a tensor")

    def upscale_array(self, pixels: np.ndarray) -> np.ndarray:
        """Upscale a numpy image (see `upscale`); the result has its dtype and channels."""
        out = np.empty(self.output_shape(pixels), pixels.dtype)
        for y0, y1 in self._band_rows(pixels):
            self._band(pixels, y0, y1, out[y0 * self.scale : y1 * self.scale])
        return out

    def output_shape(self, pixels: np.ndarray) -> tuple[int, ...]:
        """The shape of `pixels` upscaled."""
        return (pixels.shape[0] * self.scale, pixels.shape[1] * self.scale, *pixels.shape[2:])

    def bands(self, pixels: np.ndarray) -> Iterator[np.ndarray]:
        """The upscaled image as bands of rows, top to bottom: one row of tiles at a time."""
        for y0, y1 in self._band_rows(pixels):
            band = np.empty(((y1 - y0) * self.scale, *self.output_shape(pixels)[1:]), pixels.dtype)
            self._band(pixels, y0, y1, band)
            yield band
            del band  # before the next one exists: a band can be a large part of the output

    def _band_rows(self, pixels: np.ndarray) -> Iterator[tuple[int, int]]:
        """The input rows [y0, y1) of each band: one row of tiles."""
        _check_pixels(pixels)
        rows = _even(pixels.shape[0], self.tile_size(*pixels.shape[:2]))
        for y0 in range(0, pixels.shape[0], rows):
            yield y0, min(y0 + rows, pixels.shape[0])

    @torch.no_grad()
    def _band(self, pixels: np.ndarray, y0: int, y1: int, out: np.ndarray) -> None:
        """Upscale input rows [y0, y1) into `out`, tile by tile, each tile's window reaching `margin` further."""
        image = pixels[..., None] if pixels.ndim == 2 else pixels
        height, width = image.shape[:2]
        s, m = self.scale, self.margin
        cols = _even(width, self.tile_size(height, width))
        target = torch.from_numpy(out.reshape(*out.shape[:2], -1))  # HxWxC: a view of `out`
        for x0 in range(0, width, cols):
            x1 = min(x0 + cols, width)
            wy0, wx0 = max(y0 - m, 0), max(x0 - m, 0)
            window = self._window(image[wy0 : min(y1 + m, height), wx0 : min(x1 + m, width)])
            # One pass converts to the output dtype (truncating: see _window) and puts the tile in place.
            tile = window[(y0 - wy0) * s : (y1 - wy0) * s, (x0 - wx0) * s : (x1 - wx0) * s]
            target[:, x0 * s : x1 * s].copy_(tile)

    def tile_size(self, height: int, width: int) -> int:
        """Tile size in input pixels: the one asked for, else the largest whose window fits the memory budget.
        Images are then cut into tiles of equal size no larger than it."""
        if self.tile:
            return self.tile
        pixels = self.memory_budget / self.bytes_per_pixel
        if (height + 2 * self.margin) * (width + 2 * self.margin) <= pixels:
            return max(height, width)
        return max(int(math.sqrt(pixels)) - 2 * self.margin, 16)

    def _window(self, window: np.ndarray) -> torch.Tensor:
        """Upscale one window (h, w, C) of the image to (s*h, s*w, C) float in the output's units: for integer
        pixels, 0.5 above the value they round to (the cast into the output truncates)."""
        with warnings.catch_warnings():  # a read-only array (np.asarray of a PIL image) is never written to here
            warnings.simplefilter("ignore", UserWarning)
            x = torch.from_numpy(window)
        x = x.to(self.device).permute(2, 0, 1)[None].float()
        top = float(np.iinfo(window.dtype).max) if window.dtype.kind == "u" else 1.0
        x = x / top if top != 1.0 else x
        colours = 1 if x.shape[1] <= 2 else 3
        if x.shape[1] in (2, 4):  # premultiplied: a transparent pixel's colour weighs nothing
            alpha = x[:, colours:]
            out = self._colour(x[:, :colours] * alpha)
            alpha = self._bicubic(alpha).clamp_(0, 1)
            out = torch.where(alpha > 0, out / alpha, out)
            out = torch.cat([out, alpha], 1).clamp_(0, 1)
            if top != 1.0:
                out = out.mul_(top).add_(0.5)
        else:  # straight into the output's units: the scaling and the rounding's 0.5 ride on the colour maps
            bias = 0.5 if top != 1.0 else 0.0
            out = self._colour(x, top, bias).clamp_(bias, top + bias)
        return out[0].permute(1, 2, 0)

    def _colour(self, x: torch.Tensor, gain: float = 1.0, bias: float = 0.0) -> torch.Tensor:
        """Upscale gray (1, 1, h, w) or RGB (1, 3, h, w) colour in [0, 1] the way the network's channels ask for,
        to gain * colour + bias."""
        lo, hi = self.info.output_range  # the network's output y -> gain * (y - lo) / (hi - lo) + bias
        scale, shift = gain / (hi - lo), bias - gain * lo / (hi - lo)
        if self.info.channels == "y" and x.shape[1] == 3:
            ycbcr = rgb_to_ycbcr(x)
            y = self._network(ycbcr[:, :1])
            # RGB from Y and the bicubic Cb, Cr, in one pass: the colour matrix, gain and bias are folded into the
            # bicubic convolution, and the network's output range into the factor of Y.
            matrix, offset = ycbcr_to_rgb_affine()
            colours = (gain * matrix, gain * offset + (shift - bias) * INVERSE[:, 0] + bias)
            return self._bicubic(ycbcr[:, 1:], colours, y, scale * INVERSE[:, 0])
        if self.info.channels == "rgb" and x.shape[1] == 1:  # gray through an RGB network, back to gray as
            y = self._network(x.expand(-1, 3, -1, -1)).mean(1, keepdim=True)  # sr_for_metrics measures it
        else:
            y = self._network(x)  # RGB through an RGB network; a gray image is its own Y
        return y if (scale, shift) == (1.0, 0.0) else y.mul_(scale).add_(shift)

    def _network(self, x: torch.Tensor) -> torch.Tensor:
        """The network's raw output (in its output range) for x in [0, 1]."""
        x = self._bicubic(x) if self.info.upsampled_input else x
        return self.model(to_range(x.to(self.dtype), self.info.input_range)).float()

    def _bicubic(
        self,
        x: torch.Tensor,
        colours: tuple[np.ndarray, np.ndarray] | None = None,
        y: torch.Tensor | None = None,
        luma: np.ndarray | None = None,
    ) -> torch.Tensor:
        """MATLAB bicubic upscaling of (1, C, h, w), then an affine map of its colours (matrix, offset), plus
        luma * y for an image y (1, 1, H, W) of the output's size (see _Bicubic)."""
        matrix, offset = colours if colours is not None else (np.eye(x.shape[1]), np.zeros(x.shape[1]))
        key = (x.shape[1], *matrix.ravel(), *offset, *(() if luma is None else luma))
        if key not in self._upsamplers:
            self._upsamplers[key] = _Bicubic(self.scale, matrix, offset, self.device, luma)
        return self._upsamplers[key](x, y)


def _even(length: int, tile: int) -> int:
    """The size of `ceil(length / tile)` tiles as equal as can be: no small tile is left at the end."""
    return -(-length // -(-length // tile))


@lru_cache(maxsize=64)
def _symmetric(length: int, before: int, after: int, device: torch.device) -> torch.Tensor:
    """Indices of MATLAB's symmetric padding: -1 reads 0, `length` reads length - 1."""
    i = torch.arange(-before, length + after, device=device) % (2 * length)
    return torch.where(i < length, i, 2 * length - 1 - i)


def ycbcr_to_rgb_affine() -> tuple[np.ndarray, np.ndarray]:
    """The Cb, Cr part of MATLAB's `ycbcr2rgb` in [0, 1] units: rgb = INVERSE[:, 0] * y + matrix @ cbcr + offset."""
    return INVERSE[:, 1:], -INVERSE @ OFFSET01


@lru_cache(maxsize=16)
def _bicubic_phases(scale: int) -> np.ndarray:
    """MATLAB's bicubic upscaling by an integer scale in one dimension: (scale, 5) weights, one row per output
    phase r, for the inputs -2..2 around input pixel i that output scale * i + r reads."""
    n = 16
    first, weights = contributions(n, n * scale, scale)
    phases = np.zeros((scale, 2 * BICUBIC_REACH + 1))
    i = n // 2
    for r in range(scale):
        for k, w in enumerate(weights[scale * i + r]):
            phases[r, first[scale * i + r] + k - i + BICUBIC_REACH] = w
    return phases


class _Bicubic(nn.Module):
    """MATLAB bicubic upscaling by an integer scale, then an affine colour map (matrix @ colour + offset), as
    convolutions without padding; MATLAB's symmetric borders are added here, so that a convolution computes every
    pixel in the same way (imresize does border pixels in another way than inner ones), in a tile as in the image.

    Two channels or more go down the columns (a matrix product of each output row's 5 input rows by the phases'
    weights, which writes the rows in the upscaled image's order), then along the rows with the colour map (a
    convolution, channel rx * out + c, whose output is already in the upscaled image's memory order). oneDNN
    computes 8 output channels at a time, and 6 or 12 (x2, x4) took about twice as long as 8 or 16: there `group`
    input columns become one pixel of group * C channels, so that the row pass has 24 (a 1x3 kernel over groups;
    the image is padded to whole groups and the output cropped). One channel
    (oneDNN rounds one-channel convolutions differently per size but for the kernel-rows form of _StableConv2d)
    takes one 5x5 convolution, channel (ry * scale + rx) * out + c, and a rearrangement of the whole output.

    With `luma` (a factor per output colour), forward adds luma * y for an image y of the output's size: Y's share
    of RGB when Cb and Cr are the input. On the CPU that is a 1x1 convolution of y (its rows seen as `scale`
    channels of every scale-th pixel, a view) added to the row pass's output by oneDNN as a post-op, in one pass:
    torch's elementwise kernels spread one pixel over three interleaved colours slowly (7 ms against 5 for x4
    at 1080p).
    """

    def __init__(
        self, scale: int, matrix: np.ndarray, offset: np.ndarray, device: torch.device, luma: np.ndarray | None = None
    ) -> None:
        super().__init__()
        self.stable = stable = device.type == "cpu" and torch.backends.mkldnn.is_available()
        phases = _bicubic_phases(scale)  # (scale, 5)
        out_channels, in_channels = matrix.shape
        size = phases.shape[1]
        self.scale, self.group = scale, 1
        self.joint = self.horizontal = self.luma = None
        factors = None if luma is None else torch.tensor(luma, dtype=torch.float32)[:, None, None]
        self.register_buffer("factors", factors)
        if in_channels == 1:  # weights (phase, out, in, 5, 5)
            kernel = np.einsum("ri,sj->rsij", phases, phases).reshape(scale * scale, 1, 1, size, size)
            self.joint = _conv(kernel * matrix[None, :, :, None, None], np.tile(offset, scale * scale), stable)
        else:
            self.register_buffer("phases", torch.tensor(phases, dtype=torch.float32))
            g = 8 // math.gcd(8, scale * out_channels)  # x3 would take 8 columns (72 channels): slower, measured
            self.group = g if g <= 4 else 1
            self.horizontal = _conv(self._grouped(phases, matrix), np.tile(offset, scale * self.group), stable)
            if luma is not None and stable:  # weights (member and phase, out, member and phase, 1, 1)
                eye = np.eye(scale * self.group)[:, None, :, None, None]
                self.luma = _conv(eye * luma[None, :, None, None, None], None, stable)
        self.to(device)

    def _grouped(self, phases: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """The row pass's weights (member m, phase rx, out, in, 1, kernel width): member m of a group of columns
        reads columns m + d for taps d = -2..2, which are column left + m + d of the kernel's window: its pixel
        (left + m + d) // group, channels ((left + m + d) % group) * in + c."""
        g, (scale, size), (out_channels, in_channels) = self.group, phases.shape, matrix.shape
        weight = np.zeros((g, scale, out_channels, g * in_channels, 1, self.left // g * 2 + 1))
        for m in range(g):
            for tap in range(size):
                column = self.left + m + tap - BICUBIC_REACH
                window = column % g * in_channels
                block = phases[:, tap, None, None] * matrix[None]  # (phase, out, in)
                weight[m, :, :, window : window + in_channels, 0, column // g] = block
        return weight.reshape(g * scale, out_channels, g * in_channels, 1, -1)

    @property
    def left(self) -> int:
        """Columns padded on the left: the bicubic's reach, in whole groups."""
        return -(-BICUBIC_REACH // self.group) * self.group

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(n, C, h, w) -> (n, out, s*h, s*w), channels_last, plus luma * y (n, 1, s*h, s*w) if given (for more
        than one input channel)."""
        n, channels, height, width = x.shape
        s, reach = self.scale, BICUBIC_REACH
        if self.joint is not None:
            x = self.joint(_pad_symmetric(x, reach, reach, reach))
            x = x.permute(0, 2, 3, 1).reshape(n, height, width, s, s, -1).transpose(2, 3)
            return x.reshape(n, height * s, width * s, -1).permute(0, 3, 1, 2)  # one copy, channels_last
        g, groups = self.group, -(-width // self.group)
        columns = (groups + 2 * self.left // g) * g
        # On the CPU, zero columns make rows of whole ROW_BLOCKs for MKL (see srkit.imaging.color.ROW_BLOCK).
        zeros = -columns % math.lcm(g, ROW_BLOCK // math.gcd(ROW_BLOCK, channels)) if self.stable else 0
        x = _pad_symmetric(x, reach, self.left, columns - width - self.left, zeros)
        # Down the columns as one matrix product per output row: its 5 input rows (a view) by the phases' weights
        # give its s output rows, already in the upscaled image's order.
        rows = x.permute(0, 2, 3, 1).reshape(n, height + 2 * reach, -1)
        row = rows.stride(1)
        windows = rows.as_strided((n, height, 2 * reach + 1, rows.shape[2]), (rows.stride(0), row, row, 1))
        x = torch.matmul(self.phases, windows).view(n, height * s, -1, g * channels)[:, :, : columns // g]
        x = self.horizontal(x.permute(0, 3, 1, 2))  # (n, g * s * out, H, groups)
        if y is not None and self.luma is not None:
            y = nn.functional.pad(y, (0, groups * g * s - width * s)) if width % g else y
            x = self.luma(y.reshape(n, height * s, groups, g * s).permute(0, 3, 1, 2), add=x)
        x = x.permute(0, 2, 3, 1).reshape(n, height * s, groups * g * s, -1)[:, :, : width * s].permute(0, 3, 1, 2)
        if y is not None and self.luma is None:  # off the CPU: an elementwise pass
            x = x.addcmul_(y, self.factors)
        return x


def _pad_symmetric(x: torch.Tensor, pad: int, left: int, right: int, zeros: int = 0) -> torch.Tensor:
    """MATLAB's symmetric padding of (n, C, h, w): `pad` rows above and below, `left` and `right` columns, then
    `zeros` columns of zeros; channels_last."""
    x = x.permute(0, 2, 3, 1)
    for dim, (before, after) in ((1, (pad, pad)), (2, (left, right))):
        length = x.shape[dim]
        if length >= max(before, after):  # slices are cheaper than a gather, along the rows as along the columns
            ends = x.narrow(dim, 0, before).flip(dim), x.narrow(dim, length - after, after).flip(dim)
            parts = [ends[0], x, ends[1]]
        else:
            parts = [x.index_select(dim, _symmetric(length, before, after, x.device))]
        if dim == 2 and zeros:
            parts.append(x.new_zeros(*x.shape[:2], zeros, x.shape[3]))
        x = torch.cat(parts, dim) if len(parts) > 1 else parts[0]
    return x.permute(0, 3, 1, 2)


def _conv(weight: np.ndarray, bias: np.ndarray | None, stable: bool) -> nn.Module:
    """A convolution without padding of weights (phase, out, in, kh, kw): output channel phase * out + o."""
    phases, out_channels, in_channels, kh, kw = weight.shape
    conv = nn.Conv2d(in_channels, phases * out_channels, (kh, kw), bias=bias is not None)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(weight.reshape(conv.weight.shape)))
        if bias is not None:
            conv.bias.copy_(torch.from_numpy(bias))
    # Whole output channels: a padded last pass would leave the image a strided view that costs a copy.
    return _StableConv2d(conv, pad_channels=False) if stable else conv


class _StableConv2d(nn.Module):
    """A Conv2d whose output bits do not depend on the input size, so that tiles equal the whole image.

    PyTorch hands small convolutions to its own kernels and large ones to oneDNN, and the two round
    differently. oneDNN's direct convolution of channels_last tensors gives the same bits at every size (measured
    for every layer shape of srkit's models, with 1 to 3 threads), except with one input channel, where it takes
    another path: there the kh rows that the kernel reads become kh channels of a (1, kw) kernel, over an input
    padded here (its fused activations, and one-row inputs, came out differently at some widths with the padding
    left to oneDNN). A following ReLU is fused. tanh (see _fuse) is computed as tanh(z)/2 = sigmoid(2z) - 1/2:
    oneDNN's fused tanh is neither size-stable nor fast, torch's tanh and sigmoid are not size-stable (their last
    few elements take a scalar path). The logistic is fused into the kernel-rows form (size-stable there, and one
    pass against four: 1->64 channels at 480x270 took 10 ms against 20); in the other convolutions it made the
    convolution itself slower, and it is taken from exp apart, as 1/(1 + exp(-2z)) - 1/2.
    """

    def __init__(self, conv: nn.Conv2d, pad_channels: bool = True) -> None:
        super().__init__()
        weight, bias = conv.weight.detach(), None if conv.bias is None else conv.bias.detach()
        self.rows = conv.in_channels == 1 and conv.kernel_size[0] > 1
        if self.rows:
            weight = weight.transpose(1, 2)  # (out, kh, 1, kw)
        # oneDNN's AVX2 kernels compute 8 output channels at a time; 9 (a x3 sub-pixel layer) take longer than 16.
        self.out_channels = conv.out_channels
        padded = -(-self.out_channels // 8) * 8 if self.out_channels > 8 and pad_channels else self.out_channels
        weight = nn.functional.pad(weight, (0, 0, 0, 0, 0, 0, 0, padded - self.out_channels))
        bias = None if bias is None else nn.functional.pad(bias, (0, padded - self.out_channels))
        self.weight = nn.Parameter(weight.contiguous(memory_format=torch.channels_last), requires_grad=False)
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)
        # oneDNN pads with zeros, except where the input is padded here: in the kernel-rows form, and for replicate
        # padding (which oneDNN lacks).
        replicate = conv.padding_mode == "replicate"
        self.pad_mode = "replicate" if replicate else "constant" if self.rows else None
        self.pad = conv.padding
        self.padding = (0, 0) if self.pad_mode else conv.padding
        self.activation = "none"  # "relu", or "tanh": see _fuse

    def forward(self, x: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
        """The convolution of x; with `add` (the output's shape, channels_last), `add` + it, written into `add`."""
        if self.pad_mode:
            py, px = self.pad
            x = nn.functional.pad(x, (px, px, py, py), mode=self.pad_mode)
        if self.rows:
            kh = self.weight.shape[1]
            x = x.contiguous()
            n, _, height, width = x.shape
            x = x.as_strided((n, kh, height - kh + 1, width), (x.stride(0), width, width, 1))
        x = x.contiguous(memory_format=torch.channels_last)
        if add is not None:  # the sum is a post-op of oneDNN's convolution, written into `add`
            assert self.activation == "none" and self.out_channels == self.weight.shape[0]
            return torch.ops.mkldnn._convolution_pointwise_.binary(
                add, x, self.weight, self.bias, self.padding, (1, 1), (1, 1), 1, "add", None, None, [], None
            )
        attr = {"relu": "relu", "tanh": "sigmoid" if self.rows else "none"}.get(self.activation, "none")
        y = torch.ops.mkldnn._convolution_pointwise(
            x, self.weight, self.bias, self.padding, (1, 1), (1, 1), 1, attr, [], None
        )
        if self.activation == "tanh":  # tanh(z)/2 = sigmoid(2z) - 1/2, the factor 2 (or -2) being in the weights
            y = y.sub_(0.5) if self.rows else y.exp_().add_(1).reciprocal_().sub_(0.5)
        return y[:, : self.out_channels]


def _fuse(layers: nn.Sequential) -> None:
    """Fold activations that follow a stable convolution into it: ReLU as is; tanh, when another convolution
    follows, as tanh/2 (a logistic, see _StableConv2d; zero where tanh is, so padding is unchanged), whose
    factor 2 goes into the next convolution's weights."""
    for i in range(len(layers) - 1):
        conv, activation = layers[i], layers[i + 1]
        if not isinstance(conv, _StableConv2d) or conv.activation != "none":
            continue
        if isinstance(activation, nn.ReLU):
            conv.activation, layers[i + 1] = "relu", nn.Identity()
        elif isinstance(activation, nn.Tanh) and i + 2 < len(layers) and isinstance(layers[i + 2], _StableConv2d):
            conv.activation, layers[i + 1] = "tanh", nn.Identity()
            factor = 2 if conv.rows else -2  # sigmoid(2z) or 1/(1 + exp(-2z))
            conv.weight.mul_(factor)
            if conv.bias is not None:
                conv.bias.mul_(factor)
            layers[i + 2].weight.mul_(2)


def _subpixel(deconv: nn.ConvTranspose2d) -> nn.Module | None:
    """The same layer as a convolution and a pixel shuffle (Shi et al. 2016, the ESPCN paper, show they are
    equal), or None where the output is not exactly `stride` times the input.

    Output pixel s*q + r of a transposed convolution reads input q - t through tap s*t + r + padding: a
    convolution with one output channel per colour and phase r, then PixelShuffle(s). oneDNN's transposed
    convolution rounds differently for different input sizes (with several threads); its plain convolution
    does not.
    """
    k, s, p = deconv.kernel_size[0], deconv.stride[0], deconv.padding[0]
    square = len({*deconv.kernel_size, k}) == len({*deconv.stride, s}) == len({*deconv.padding, p}) == 1
    output_padding = deconv.output_padding[0]
    if not square or deconv.groups != 1 or deconv.dilation != (1, 1) or k + output_padding - 2 * p != s:
        return None
    # The input offsets (-t) that each phase reads, and where its deconvolution taps are.
    offsets = {r: [(-t, s * t + r + p) for t in range(-k, k + 1) if 0 <= s * t + r + p < k] for r in range(s)}
    return _SubPixel(deconv, offsets, min(range(1 - s, 1), key=lambda first: (_reach(offsets, s, first), -first)))


def _reach(offsets: dict[int, list[tuple[int, int]]], s: int, first: int) -> int:
    """How far either side the convolution must read when pixel s*q + j, for j in first..first+s-1, is
    computed at input q (a phase j < 0 is phase j + s of input q - 1)."""
    return max(abs(d - (j < 0)) for j in range(first, first + s) for d, _ in offsets[j % s])


class _SubPixel(nn.Module):
    """A transposed convolution as a same-size convolution and PixelShuffle(s), off by `first` output pixels.

    With the deconvolution's own phases, the kernel must span every offset any phase reads, centred: x3 of
    FSRCNN's 9x9 deconvolution reads offsets -1..2, a 5x5 kernel. Taking phase 2 one input later (as phase -1)
    centres them all in 3x3, 2.8 times less work; the input then gets one more row and column (zeros, as the
    deconvolution sees beyond the image), and the output is cropped. Only same-size padding keeps oneDNN's
    results independent of the input size (a 3x3 kernel padded by 2 is not).
    """

    def __init__(self, deconv: nn.ConvTranspose2d, offsets: dict[int, list[tuple[int, int]]], first: int) -> None:
        super().__init__()
        s, reach = deconv.stride[0], _reach(offsets, deconv.stride[0], first)
        size = 2 * reach + 1
        weight = deconv.weight.new_zeros(deconv.out_channels, s, s, deconv.in_channels, size, size)
        for jy in range(first, first + s):
            for jx in range(first, first + s):
                for dy, ky in offsets[jy % s]:
                    for dx, kx in offsets[jx % s]:
                        tap = deconv.weight[:, :, ky, kx].T
                        weight[:, jy - first, jx - first, :, reach + dy - (jy < 0), reach + dx - (jx < 0)] = tap
        bias = deconv.bias is not None
        conv = nn.Conv2d(deconv.in_channels, deconv.out_channels * s * s, size, padding=reach, bias=bias)
        conv = conv.to(deconv.weight.device, deconv.weight.dtype)
        with torch.no_grad():
            conv.weight.copy_(weight.reshape(conv.weight.shape))
            if bias:
                conv.bias.copy_(deconv.bias.repeat_interleave(s * s))
        self.conv, self.shuffle, self.first = _StableConv2d(conv), _PixelShuffle(s), first
        # The padded input, kept from call to call (tiles of one size, frames of a video): a new one of this size
        # would be page-faulted in anew each time, which took longer than the copy into it.
        self.padded: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if self.first:
            shape = (*x.shape[:2], height + 1, width + 1)
            if self.padded is None or self.padded.shape != shape or self.padded.dtype != x.dtype:
                self.padded = x.new_zeros(shape).contiguous(memory_format=torch.channels_last)
            self.padded[:, :, :height, :width] = x  # the last row and column stay zero
            x = self.padded
        y = self.shuffle(self.conv(x))
        s, crop = self.shuffle.upscale_factor, -self.first
        return y[:, :, crop : crop + s * height, crop : crop + s * width]


# Element types as wide as 2 or 4 float32s (or 2 or 4 halves), to move a row of pixels' values as one element.
_WIDE = {4: torch.int32, 8: torch.int64, 16: torch.complex128}


class _PixelShuffle(nn.PixelShuffle):
    """nn.PixelShuffle, with one output channel (the Y of every Y model) as a single strided copy: 2-3x faster than
    PixelShuffle's own kernel on channels_last input at x3 and x4 (slower with more channels). On channels_last
    input, each LR pixel's values for one output row are `scale` floats side by side in memory, and so are they in
    the output: at x2 and x4 they are copied as one 8- or 16-byte element (2.6 -> 1.5 ms at x4, 1080p, in
    `benchmarks/upscale_profile.py fsrcnn-s --scale 4`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, channels, height, width = x.shape
        s = self.upscale_factor
        if channels != s * s:
            return super().forward(x)
        out = x.new_empty(n, height, s, width, s)
        wide = _WIDE.get(s * x.element_size())
        if wide is not None and x.is_contiguous(memory_format=torch.channels_last):
            rows = x.permute(0, 2, 3, 1).view(wide)  # (n, height, width, s): output row phase, of s values each
            out.view(wide).copy_(rows.transpose(2, 3).unsqueeze(-1))
        else:
            out.copy_(x.view(n, s, s, height, width).permute(0, 3, 1, 4, 2))
        return out.view(n, 1, height * s, width * s)


def _plain(conv: nn.Conv2d) -> bool:
    """Zero or replicate padding given in pixels, no stride, dilation or groups: what every srkit model uses."""
    numeric = not isinstance(conv.padding, str) and conv.padding_mode in ("zeros", "replicate")
    return numeric and conv.stride == conv.dilation == (1, 1) and conv.groups == 1


def _prepare(model: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """An inference copy of `model` on `device`; on the CPU in float32, its convolutions are made
    size-stable (see _StableConv2d and _subpixel), so that tiles equal the whole image bit for bit."""
    model = copy.deepcopy(model).to(device, dtype).eval()
    if device.type != "cpu" or dtype != torch.float32 or not torch.backends.mkldnn.is_available():
        return model
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if type(child) is nn.Conv2d and _plain(child):
                setattr(parent, name, _StableConv2d(child))
            elif type(child) is nn.ConvTranspose2d and (replacement := _subpixel(child)) is not None:
                setattr(parent, name, replacement)
            elif type(child) is nn.PixelShuffle:
                setattr(parent, name, _PixelShuffle(child.upscale_factor))
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            _fuse(module)
    return model


@torch.no_grad()
def _bytes_per_pixel(model: nn.Module, scale: int, dtype: torch.dtype) -> float:
    """Peak bytes per input pixel while a window is upscaled, measured on a 16x16 input.

    Three times the widest activation (a layer's input, its output and a skip connection), plus the
    colour, Cb/Cr and alpha planes around the network.
    """
    widest = [0]

    def record(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        widest[0] = max(widest[0], output.numel())

    hooks = [m.register_forward_hook(record) for m in model.modules()]
    try:
        parameter = next(model.parameters())
        model(torch.zeros(1, model.info.in_channels, 16, 16, device=parameter.device, dtype=dtype))
    finally:
        for hook in hooks:
            hook.remove()
    per_pixel = widest[0] / 256 * (scale**2 if model.info.upsampled_input else 1)
    element = torch.finfo(dtype).bits // 8
    return 3 * per_pixel * element + PIPELINE_FLOATS * 4 * scale**2


@lru_cache(maxsize=1)
def _keep_freed_memory() -> None:
    """Have glibc serve buffers up to 256 MiB from its heap, and keep up to 512 MiB of it when freed.

    By default it maps every buffer over 32 MiB afresh, and returns freed heap over 64 MiB to the system: each
    frame then page-faults its activations in anew. FSRCNN-small x2 on 480x540 tiles of a 1080p frame took 1.6x as
    long that way (an A/B with MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_); with this, tiles as large as the
    memory budget allows are the fastest. It holds for the whole process; elsewhere than on glibc, nothing changes.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-1, 512 << 20)  # M_TRIM_THRESHOLD
    libc.mallopt(-3, 256 << 20)  # M_MMAP_THRESHOLD


def _check_pixels(pixels: np.ndarray) -> None:
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (1, 2, 3, 4)):
        raise SrkitError(f"expected an HxW, HxWx2, HxWx3 or HxWx4 image, got shape {pixels.shape}")
    if pixels.dtype not in (np.uint8, np.uint16) and pixels.dtype.kind != "f":
        raise SrkitError(f"expected uint8, uint16 or float pixels, got {pixels.dtype}")
    if min(pixels.shape[:2]) < 1:
        raise SrkitError(f"cannot upscale an empty image of shape {pixels.shape}")


# Files and folders --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One input file and the output it becomes."""

    source: Path
    target: Path


@dataclass
class Summary:
    """What a run over many files did."""

    upscaled: int = 0
    skipped: int = 0  # the output existed
    failed: int = 0

    def __str__(self) -> str:
        return f"{self.upscaled} upscaled, {self.skipped} skipped (exists), {self.failed} failed"


def plan(inputs: Sequence[str | Path], output: str | Path | None, scale: int) -> list[Job]:
    """The jobs for files, folders (searched recursively) and glob patterns.

    Without `output`, each result lands beside its input as NAME_x{scale}.EXT. With it, `output` is a file
    when there is one input file and it has a suffix (and is no folder); otherwise it is a folder where
    each result keeps its input's name, and its path relative to the input folder it was found in.
    """
    found: list[tuple[Path, Path]] = []  # (file, its name relative to the output folder)
    for item in map(str, inputs):
        path = Path(item)
        if path.is_dir():
            if output is None:  # outputs beside the inputs would be taken for inputs by the next run
                raise SrkitError(f"{item}: a folder needs -o OUTPUT_FOLDER")
            files = sorted(p for p in path.rglob("*") if p.is_file() and is_media(p))
            found += [(p, p.relative_to(path)) for p in files]
        elif path.exists():
            found.append((path, Path(path.name)))
        elif glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not matches:
                raise SrkitError(f"{item}: no file matches")
            found += [(p, Path(p.name)) for p in matches]
        else:
            raise SrkitError(f"{item}: no such file or folder")
    if output is None:
        return [Job(p, _output_name(p.with_name(f"{p.stem}_x{scale}{p.suffix}"))) for p, _ in found]
    output = Path(output)
    single = len(inputs) == 1 and len(found) == 1 and not Path(inputs[0]).is_dir()
    if single and output.suffix and not output.is_dir():
        return [Job(found[0][0], output)]
    return [Job(p, _output_name(output / relative)) for p, relative in found]


def is_media(path: Path) -> bool:
    """An image or video file by its suffix."""
    return path.suffix.lower() in IMAGE_SUFFIXES or path.suffix.lower() in video.VIDEO_SUFFIXES


def _output_name(path: Path) -> Path:
    """Videos are written as H.264, which WebM cannot hold: those become Matroska."""
    return path.with_suffix(".mkv") if path.suffix.lower() == ".webm" else path


def upscale_file(upscaler: Upscaler, source: str | Path, target: str | Path, progress: bool = False) -> None:
    """Upscale one image or video file into `target`, atomically (a half-written file is never left)."""
    source, target = Path(source), Path(target)
    if target.resolve() == source.resolve() or (target.exists() and os.path.samefile(source, target)):
        raise SrkitError(f"{target}: is the input {source}; refusing to overwrite an input")
    if video.is_video(source):
        with atomic_path(target) as tmp:
            video.upscale_video(upscaler, source, tmp, progress=progress)
        return
    picture = read_image(source)
    with atomic_path(target) as tmp:
        if target.suffix.lower() == ".png":  # streamed: the whole output is never in memory
            height, width = upscaler.output_shape(picture.pixels)[:2]
            write_png(tmp, upscaler.bands(picture.pixels), height, width, picture.icc_profile)
        else:
            write_image(tmp, Picture(upscaler.upscale_array(picture.pixels), picture.icc_profile))


def upscale_files(upscaler: Upscaler, jobs: Sequence[Job], overwrite: bool = False, progress: bool = True) -> Summary:
    """Run the jobs, counting what became of each: upscaled, skipped (the output exists) or failed.

    A file that fails is logged in one line and the run goes on. Existing outputs are kept unless
    `overwrite`; an input is never overwritten.
    """
    summary = Summary()
    with logging_redirect_tqdm():
        for job in tqdm(jobs, unit="file", disable=not progress or len(jobs) < 2):
            if job.target.exists() and not overwrite and job.target.resolve() != job.source.resolve():
                summary.skipped += 1
                continue
            try:
                upscale_file(upscaler, job.source, job.target, progress=progress)
            except SrkitError as error:
                log.warning("%s", error)
                summary.failed += 1
            else:
                summary.upscaled += 1
    return summary
