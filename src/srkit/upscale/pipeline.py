"""Upscaling real images with an SR network: Y vs RGB, alpha, 16-bit, tiling.

`super_resolve` runs a network on a batch whatever input kind and value range it expects. `Upscaler` applies
it to an image of any mode and size: Y models get the Y of YCbCr (Cb and Cr are upscaled with bicubic), RGB
models all three colours, a grayscale image stays gray, alpha is upscaled with bicubic and the colour is
premultiplied by it, so that garbage under transparent pixels cannot bleed into visible ones. Large images
are cut into tiles that overlap by the receptive field, so the tiled output equals the untiled one exactly.
A video frame's 4:2:0 planes are upscaled as they are, without RGB (`Upscaler.upscale_yuv420`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator

import numpy as np
import torch
from PIL import Image
from torch import nn

from srkit.errors import SrkitError
from srkit.imaging.color import INVERSE, OFFSET01, YuvCoding, rgb_to_ycbcr, y_channel
from srkit.imaging.io import exif_orientation, from_array, to_array, upright
from srkit.imaging.resize import imresize
from srkit.metrics import to_uint8
from srkit.upscale.runtime import BICUBIC_REACH, Bicubic, keep_freed_memory, network_bytes_per_pixel, prepare

MEMORY_BUDGET = 1 << 29  # bytes one tile may take while it is upscaled; larger images are tiled
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
    glibc keep freed memory for reuse in the whole process (see keep_freed_memory).
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
        self.model = prepare(model, device, self.dtype)
        if device.type == "cpu":
            keep_freed_memory()
        self.device = device
        self.memory_budget = memory_budget
        # Input pixels around a tile that its outputs depend on: the network's receptive field (in LR pixels;
        # for bicubic-upscaled input that is r / scale, plus what the bicubic itself reads).
        radius = info.receptive_radius
        self.margin = -(-radius // scale) + BICUBIC_REACH if info.upsampled_input else max(radius, BICUBIC_REACH)
        # Peak bytes per input pixel while a window is upscaled: the network's, and the planes around it.
        self.bytes_per_pixel = network_bytes_per_pixel(self.model, scale, self.dtype) + PIPELINE_FLOATS * 4 * scale**2
        self._upsamplers: dict[tuple, nn.Module] = {}  # bicubic convolutions, by scale, channels and colour map

    def upscale(self, image: Image.Image | np.ndarray | torch.Tensor) -> Image.Image | np.ndarray | torch.Tensor:
        """Upscale a PIL image, a numpy image or a torch tensor; the result has the same kind and dtype.

        Numpy images are HxW, HxWx2 (gray + alpha), HxWx3 or HxWx4, uint8, uint16 or float in [0, 1];
        tensors are (C, H, W) or (N, C, H, W) float in [0, 1] with the same channel counts; PIL images of
        any mode (palette, CMYK and the like come back as RGB or RGBA). A PIL image is first turned upright by
        its EXIF orientation, as `srkit upscale` does with a file (the result is stored upright, without the tag);
        numpy arrays and tensors carry no EXIF and are upscaled as they are.
        """
        if isinstance(image, Image.Image):
            out = from_array(self.upscale_array(upright(to_array(image), exif_orientation(image))))
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

    @property
    def luma_only(self) -> bool:
        """Whether the network sees only Y (Cb and Cr are upscaled with bicubic): video frames then stay YUV."""
        return self.info.channels == "y"

    @torch.no_grad()
    def upscale_yuv420(self, y: np.ndarray, chroma: np.ndarray, coding: YuvCoding) -> tuple[np.ndarray, np.ndarray]:
        """Upscale the planes of an 8-bit 4:2:0 video frame in its own coding, without RGB: Y (H, W) through the
        network, Cb and Cr (2, ceil(H/2), ceil(W/2)) with bicubic at their own resolution. uint8 planes come back,
        clamped to the coding's nominal range as RGB's [0, 255] clamps a gray.

        The network takes MATLAB's BT.601 Y: BT.601 limited-range Y as it is, other codings' Y converted exactly
        (`YuvCoding.to_bt601`), with Cb and Cr brought to Y's resolution by bicubic where the matrix is not BT.601,
        and back.
        """
        if not self.luma_only:
            raise SrkitError(f"{self.info.name} upscales RGB, not the Y plane of a video frame")
        gain, cb, cr, offset = coding.to_bt601()
        (y_lo, y_hi), (c_lo, c_hi) = coding.luma_limits, coding.chroma_limits
        planes = torch.from_numpy(chroma).to(self.device).float()[:, None]  # Cb and Cr: a batch of two gray images
        rounded = (np.eye(1), np.array([0.5]))  # +0.5: the cast to uint8 truncates
        chroma = self._bicubic(planes, rounded).clamp_(c_lo + 0.5, c_hi + 0.5).to(torch.uint8)[:, 0].cpu().numpy()
        if (gain, cb, cr, offset) == (1, 0, 0, 0):
            out = self.upscale_array(y)
            return np.clip(out, y_lo, y_hi, out=out), chroma
        height, width = y.shape
        luma = torch.from_numpy(y).to(self.device).float().mul_(gain / 255).add_(offset / 255)
        share = (np.array([[cb, cr]]) / 255, np.zeros(1))  # Cb's and Cr's share of BT.601 Y in [0, 1] units
        pair = planes.view(1, 2, *planes.shape[2:])
        if cb or cr:
            luma += self._bicubic(pair, share, scale=2)[0, 0, :height, :width]
        out = torch.from_numpy(self.upscale_array(luma.cpu().numpy())).to(self.device)
        if cb or cr:
            out -= self._bicubic(pair, share, scale=2 * self.scale)[0, 0, : out.shape[0], : out.shape[1]]
        out = out.mul_(255 / gain).add_(0.5 - offset / gain).clamp_(y_lo + 0.5, y_hi + 0.5)
        return out.to(torch.uint8).cpu().numpy(), chroma

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
        scale: int | None = None,
    ) -> torch.Tensor:
        """MATLAB bicubic upscaling of (n, C, h, w) by `scale` (the upscaler's by default), then an affine map of its
        colours (matrix, offset), plus luma * y for an image y (n, 1, H, W) of the output's size (see Bicubic)."""
        scale = scale or self.scale
        matrix, offset = colours if colours is not None else (np.eye(x.shape[1]), np.zeros(x.shape[1]))
        key = (scale, x.shape[1], *matrix.ravel(), *offset, *(() if luma is None else luma))
        if key not in self._upsamplers:
            self._upsamplers[key] = Bicubic(scale, matrix, offset, self.device, luma)
        return self._upsamplers[key](x, y)


def _even(length: int, tile: int) -> int:
    """The size of `ceil(length / tile)` tiles as equal as can be: no small tile is left at the end."""
    return -(-length // -(-length // tile))


def ycbcr_to_rgb_affine() -> tuple[np.ndarray, np.ndarray]:
    """The Cb, Cr part of MATLAB's `ycbcr2rgb` in [0, 1] units: rgb = INVERSE[:, 0] * y + matrix @ cbcr + offset."""
    return INVERSE[:, 1:], -INVERSE @ OFFSET01


def _check_pixels(pixels: np.ndarray) -> None:
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (1, 2, 3, 4)):
        raise SrkitError(f"expected an HxW, HxWx2, HxWx3 or HxWx4 image, got shape {pixels.shape}")
    if pixels.dtype not in (np.uint8, np.uint16) and pixels.dtype.kind != "f":
        raise SrkitError(f"expected uint8, uint16 or float pixels, got {pixels.dtype}")
    if min(pixels.shape[:2]) < 1:
        raise SrkitError(f"cannot upscale an empty image of shape {pixels.shape}")
