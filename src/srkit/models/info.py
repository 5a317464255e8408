"""What inference and training need to know about a built network, and the receptive field it derives from."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from torch import nn


@dataclass(frozen=True)
class ModelInfo:
    """The facts about an SR network that inference, tiling and training rely on (`model.info`)."""

    name: str
    scale: int
    scales: tuple[int, ...]  # scales one set of weights handles: VDSR (2, 3, 4), the others (scale,)
    channels: Literal["y", "rgb"]
    upsampled_input: bool  # SRCNN and VDSR take the bicubic-upscaled image: output size == input size
    receptive_radius: int  # input pixels each side of an output's mapped input pixel; the tile overlap
    init: str  # the initialisation applied in __init__, as the paper states it
    input_range: tuple[float, float] = (0.0, 1.0)
    output_range: tuple[float, float] = (0.0, 1.0)

    @property
    def in_channels(self) -> int:
        return 1 if self.channels == "y" else 3

    @property
    def receptive_size(self) -> int:
        return 2 * self.receptive_radius + 1


@dataclass(frozen=True)
class DiscriminatorInfo:
    """A discriminator is no SR model: it has no scale and no receptive radius, it scores an HR image."""

    name: str
    patch_size: int  # the HR crop size of the paper; other sizes work (adaptive pooling)
    init: str
    channels: Literal["rgb"] = "rgb"
    input_range: tuple[float, float] = (0.0, 1.0)

    @property
    def in_channels(self) -> int:
        return 3


def receptive_radius(layers: Iterable[nn.Module]) -> int:
    """Exact receptive radius, in input pixels, of a chain of layers given in forward order.

    Only convolutions, transposed convolutions and pixel shuffles move information spatially; the skip
    connections of these networks add an identity branch, which never reaches further than the layers
    it bypasses. Each output position is traced back to the interval of input positions it reads (away
    from the border), and compared with its mapped input pixel `i // factor`, where `factor` is the
    network's own upsampling (1 for bicubic-upscaled input). The dependence repeats with period
    `factor`, so the outputs 0..factor-1 cover every case. Tiling relies on this being an upper bound
    that is also tight, so nothing here is rounded up.
    """
    spatial = [m for m in layers if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.PixelShuffle))]
    factor = 1
    for m in spatial:
        factor *= m.upscale_factor if isinstance(m, nn.PixelShuffle) else _square(m.stride)
    radius = 0
    for out in range(factor):
        lo = hi = out
        for m in reversed(spatial):
            if isinstance(m, nn.PixelShuffle):
                lo, hi = lo // m.upscale_factor, hi // m.upscale_factor
            elif isinstance(m, nn.ConvTranspose2d):  # out = in * stride - padding + tap
                k, s, p = _square(m.kernel_size), _square(m.stride), _square(m.padding)
                lo, hi = -((k - 1 - p - lo) // s), (hi + p) // s
            else:  # out = in + padding - dilation * tap
                if _square(m.stride) != 1:
                    raise ValueError("receptive_radius: strided convolutions have no per-pixel radius")
                k, p, d = _square(m.kernel_size), _square(m.padding), _square(m.dilation)
                lo, hi = lo - p, hi - p + d * (k - 1)
        radius = max(radius, out // factor - lo, hi - out // factor)
    return radius


def _square(pair: tuple[int, ...] | int | str) -> int:
    if isinstance(pair, str) or (not isinstance(pair, int) and pair[0] != pair[1]):
        raise ValueError(f"receptive_radius expects square, numeric sizes, got {pair!r}")
    return pair if isinstance(pair, int) else pair[0]
