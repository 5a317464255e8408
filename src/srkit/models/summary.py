"""One row per architecture: parameters, multiply-accumulates and receptive field, for `srkit models`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from srkit.models.info import ModelInfo

FRAME = (1920, 1080)  # the output frame GMACs are quoted for: ESPCN's headline is real-time 1080p video


@dataclass(frozen=True)
class ModelRow:
    name: str
    scales: tuple[int, ...]  # empty for the discriminator, which has none
    params: int
    macs_per_pixel: float | None  # per output pixel; None where the cost is not per pixel
    gmacs_per_frame: float | None  # per FRAME of output
    receptive_radius: int | None  # input pixels; None where every output reads the whole input
    input: str

    @property
    def receptive_size(self) -> int | None:
        return None if self.receptive_radius is None else 2 * self.receptive_radius + 1


def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of the convolutions, transposed convolutions and dense layers in model(x).

    Exact: a convolution costs (in/groups * k*k) per output element, zero padding included, a transposed
    convolution (out/groups * k*k) per input element. Works on the meta device, which needs no memory.
    """
    total = 0

    def hook(m: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(m, nn.ConvTranspose2d):
            total += inputs[0].numel() * m.out_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Conv2d):
            total += out.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            total += out.numel() * m.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total


def summarize(model: nn.Module) -> ModelRow:
    """The row of a built model; build it on the meta device to make this instant."""
    info = model.info
    params = sum(p.numel() for p in model.parameters())
    if not isinstance(info, ModelInfo):
        return ModelRow(info.name, (), params, None, None, None, "RGB, HR image (discriminator)")
    size = 8  # any size gives the same per-pixel count: every layer here is translation invariant
    x = torch.zeros(1, info.in_channels, size, size, device=next(model.parameters()).device)
    out_size = size if info.upsampled_input else size * info.scale
    per_pixel = count_macs(model.eval(), x) / out_size**2
    kind = f"{info.channels.upper()}, {'bicubic-upscaled' if info.upsampled_input else 'LR'}"
    gmacs = per_pixel * FRAME[0] * FRAME[1] / 1e9
    return ModelRow(info.name, info.scales, params, per_pixel, gmacs, info.receptive_radius, kind)
