"""SRResNet, the SRGAN generator: Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a
Generative Adversarial Network" (CVPR 2017)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from srkit.models.info import ModelInfo, receptive_radius


@dataclass(frozen=True)
class SRResNetConfig:
    num_blocks: int = 16
    num_features: int = 64


class ResBlock(nn.Module):
    def __init__(self, f: int) -> None:
        super().__init__()
        # PReLU per channel, as He et al. define it and FSRCNN uses it; the paper does not say which.
        self.body = nn.Sequential(
            nn.Conv2d(f, f, 3, padding=1), nn.BatchNorm2d(f), nn.PReLU(f),
            nn.Conv2d(f, f, 3, padding=1), nn.BatchNorm2d(f),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SRResNet(nn.Module):
    """9x9 head, residual blocks with BN, global skip, conv + PixelShuffle + PReLU stages, 9x9 tail."""

    def __init__(self, config: SRResNetConfig, scale: int, name: str = "srresnet") -> None:
        super().__init__()
        f = config.num_features
        self.head = nn.Sequential(nn.Conv2d(3, f, 9, padding=4), nn.PReLU(f))
        self.body = nn.Sequential(
            *(ResBlock(f) for _ in range(config.num_blocks)), nn.Conv2d(f, f, 3, padding=1), nn.BatchNorm2d(f)
        )
        # The paper is x4 only: two conv(64, 256) + PixelShuffle(2) + PReLU stages; x2 uses one, x3 one x3.
        factors = (2, 2) if scale == 4 else (scale,)
        stages = ((nn.Conv2d(f, f * r * r, 3, padding=1), nn.PixelShuffle(r), nn.PReLU(f)) for r in factors)
        self.upsample = nn.Sequential(*(m for stage in stages for m in stage))
        self.tail = nn.Conv2d(f, 3, 9, padding=4)
        self.info = ModelInfo(
            name=name,
            scale=scale,
            scales=(scale,),
            channels="rgb",
            upsampled_input=False,
            receptive_radius=receptive_radius(self.modules()),
            # The paper names no initialisation (SRGAN starts from trained SRResNet weights). It scales HR
            # targets to [-1, 1]; the output layer is linear, so srkit's [0, 1] contract is the same network.
            init="PyTorch default (kaiming_uniform a=sqrt(5)); PReLU 0.25; BN weight 1, bias 0",
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x)
        x = x + self.body(x)
        return self.tail(self.upsample(x))
