"""VDSR: Kim et al., "Accurate Image Super-Resolution Using Very Deep Convolutional Networks" (CVPR 2016)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from srkit.models.info import ModelInfo, receptive_radius


@dataclass(frozen=True)
class VDSRConfig:
    depth: int = 20  # convolution layers, first and last included
    num_features: int = 64


class VDSR(nn.Module):
    """Twenty 3x3 convolutions predict the residual that is added to the bicubic-upscaled Y input."""

    def __init__(self, config: VDSRConfig, scale: int, name: str = "vdsr") -> None:
        super().__init__()
        f = config.num_features
        layers: list[nn.Module] = [nn.Conv2d(1, f, 3, padding=1, bias=False), nn.ReLU(inplace=True)]
        for _ in range(config.depth - 2):
            layers += [nn.Conv2d(f, f, 3, padding=1, bias=False), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(f, 1, 3, padding=1, bias=False))  # no bias anywhere, as in the paper
        self.residual = nn.Sequential(*layers)
        for m in self.residual:
            if isinstance(m, nn.Conv2d):
                # He et al. show that either fan keeps the signal's scale through a ReLU stack; the PyTorch
                # port in seed 004 draws N(0, sqrt(2/(k*k*out))), i.e. fan-out, and we follow it. The two
                # differ only in the first and last layer (fan 9 vs 576), whose ratios cancel end to end.
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        self.info = ModelInfo(
            name=name,
            scale=scale,
            scales=(2, 3, 4),  # one network for every scale: trained on a mix of x2, x3 and x4 inputs
            channels="y",
            upsampled_input=True,
            receptive_radius=receptive_radius(self.modules()),
            init="He: N(0, sqrt(2/(k*k*out))) (kaiming_normal fan_out); no biases",
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.residual(x)
