"""ESPCN: Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel
Convolutional Neural Network" (CVPR 2016), with the ReLU/orthogonal (seed 003) and RGB (seed 000) variants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from srkit.errors import SrkitError
from srkit.models.info import ModelInfo, receptive_radius


@dataclass(frozen=True)
class ESPCNConfig:
    channels: Literal["y", "rgb"] = "y"
    kernels: tuple[int, ...] = (5, 3, 3)  # one per convolution; the last predicts channels * scale^2 maps
    features: tuple[int, ...] = (64, 32)  # output channels of all convolutions but the last
    activation: Literal["tanh", "relu"] = "tanh"  # the paper found tanh better than ReLU for SISR
    output_activation: Literal["none", "tanh"] = "none"  # seed 000 squashes its RGB output into [-1, 1]
    init: Literal["default", "orthogonal"] = "default"  # the paper names none; seed 003 is orthogonal
    input_range: tuple[float, float] = (0.0, 1.0)  # seed 000 feeds raw 0..255 pixels
    output_range: tuple[float, float] = (0.0, 1.0)  # seed 000 targets x / 127.5 - 1
    padding: Literal["zeros", "replicate"] = "zeros"  # what a convolution reads past the edge; see SRCNNConfig

    def __post_init__(self) -> None:
        if len(self.features) != len(self.kernels) - 1 or any(k % 2 == 0 for k in self.kernels):
            raise SrkitError(f"espcn: need odd kernels, one more than widths: {self.kernels} {self.features}")


class ESPCN(nn.Module):
    """Convolutions in LR space, the last one predicting scale^2 sub-pixels per channel, then PixelShuffle."""

    def __init__(self, config: ESPCNConfig, scale: int, name: str = "espcn") -> None:
        super().__init__()
        c = config
        channels = 1 if c.channels == "y" else 3
        widths = (channels, *c.features, channels * scale**2)
        layers: list[nn.Module] = []
        for i, k in enumerate(c.kernels):
            layers.append(nn.Conv2d(widths[i], widths[i + 1], k, padding=k // 2, padding_mode=c.padding))
            if i < len(c.kernels) - 1:
                layers.append(nn.Tanh() if c.activation == "tanh" else nn.ReLU(inplace=True))
        # On 3 * 16 channels PixelShuffle(4) shuffles each 16-channel group into one HR colour: seed 000's
        # split-shuffle-concat. tanh is elementwise, so applying it after the shuffle changes nothing.
        layers.append(nn.PixelShuffle(scale))
        if c.output_activation == "tanh":
            layers.append(nn.Tanh())
        self.body = nn.Sequential(*layers)
        convs = [m for m in self.body if isinstance(m, nn.Conv2d)]
        if c.init == "orthogonal":
            for conv in convs[:-1]:
                nn.init.orthogonal_(conv.weight, nn.init.calculate_gain(c.activation))
            nn.init.orthogonal_(convs[-1].weight)  # gain 1: the output layer is linear
        self.info = ModelInfo(
            name=name,
            scale=scale,
            scales=(scale,),
            channels=c.channels,
            upsampled_input=False,
            receptive_radius=receptive_radius(self.modules()),
            init={
                "default": "PyTorch default (kaiming_uniform a=sqrt(5)); no source names one",
                "orthogonal": f"orthogonal, gain {c.activation} on hidden layers, 1 on the last",
            }[c.init],
            input_range=c.input_range,
            output_range=c.output_range,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
