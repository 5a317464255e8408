"""FSRCNN: Dong, Loy, Tang, "Accelerating the Super-Resolution Convolutional Neural Network" (ECCV 2016)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from srkit.models.info import ModelInfo, receptive_radius


@dataclass(frozen=True)
class FSRCNNConfig:
    d: int = 56  # feature dimension (LR feature extraction and expanding)
    s: int = 12  # shrinking dimension, where the mapping layers work
    m: int = 4  # mapping layers; FSRCNN-s uses (d, s, m) = (32, 5, 1)
    input_range: tuple[float, float] = (0.0, 1.0)  # what [0, 1] pixels are mapped to on the way in
    output_range: tuple[float, float] = (0.0, 1.0)


def _conv(in_channels: int, out_channels: int, kernel: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2)
    # The paper: N(0, sqrt(2 / (out * k * k))), i.e. He init over fan-out, for the PReLU layers.
    nn.init.normal_(conv.weight, 0.0, math.sqrt(2 / (out_channels * kernel * kernel)))
    nn.init.zeros_(conv.bias)
    return conv


class FSRCNN(nn.Module):
    """Feature extraction, shrinking, mapping, expanding in LR space, then a 9x9 deconvolution."""

    def __init__(self, config: FSRCNNConfig, scale: int, name: str = "fsrcnn") -> None:
        super().__init__()
        d, s, m = config.d, config.s, config.m
        layers: list[nn.Module] = [_conv(1, d, 5), nn.PReLU(d), _conv(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            layers += [_conv(s, s, 3), nn.PReLU(s)]
        layers += [_conv(s, d, 1), nn.PReLU(d)]
        self.body = nn.Sequential(*layers)
        # padding 4 and output_padding scale - 1 make the output exactly scale*H x scale*W.
        self.deconv = nn.ConvTranspose2d(d, 1, 9, stride=scale, padding=4, output_padding=scale - 1)
        nn.init.normal_(self.deconv.weight, 0.0, 0.001)  # the paper: deconvolution N(0, 0.001)
        nn.init.zeros_(self.deconv.bias)
        self.info = ModelInfo(
            name=name,
            scale=scale,
            scales=(scale,),  # the paper fine-tunes only the deconvolution per scale: separate weights
            channels="y",
            upsampled_input=False,
            receptive_radius=receptive_radius(self.modules()),
            init="N(0, sqrt(2/(out*k*k))); deconv N(0, 0.001); biases 0; PReLU 0.25",
            input_range=config.input_range,
            output_range=config.output_range,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.body(x))
