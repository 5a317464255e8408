"""EDSR: Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution" (CVPRW 2017)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from srkit.models.info import ModelInfo, receptive_radius


@dataclass(frozen=True)
class EDSRConfig:
    num_blocks: int = 16  # the baseline; full EDSR uses 32
    num_features: int = 64  # the baseline; full EDSR uses 256
    res_scale: float = 1.0  # full EDSR scales each residual by 0.1 to keep 256-wide training stable
    # DIV2K's RGB mean. The original subtracts 255 * mean from 0..255 input; on our 0..1 input the same
    # network is this one with every conv bias divided by 255 (ReLU networks are positively homogeneous),
    # which is how its weights convert.
    rgb_mean: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)


class ResBlock(nn.Module):
    def __init__(self, f: int, res_scale: float) -> None:
        super().__init__()
        # No batch norm: the paper removes it, it hurts SR and costs memory.
        self.body = nn.Sequential(nn.Conv2d(f, f, 3, padding=1), nn.ReLU(True), nn.Conv2d(f, f, 3, padding=1))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) * self.res_scale


class EDSR(nn.Module):
    """Head conv, residual blocks, body conv and global skip in LR space; conv + PixelShuffle; tail conv."""

    def __init__(self, config: EDSRConfig, scale: int, name: str = "edsr") -> None:
        super().__init__()
        f = config.num_features
        # A constant, not the original's frozen 1x1 "MeanShift" convs: nothing to train, count or save.
        self.register_buffer("rgb_mean", torch.tensor(config.rgb_mean).view(1, 3, 1, 1), persistent=False)
        self.head = nn.Conv2d(3, f, 3, padding=1)
        self.body = nn.Sequential(
            *(ResBlock(f, config.res_scale) for _ in range(config.num_blocks)), nn.Conv2d(f, f, 3, padding=1)
        )
        factors = (2, 2) if scale == 4 else (scale,)  # x4 is two x2 stages
        stages = ((nn.Conv2d(f, f * r * r, 3, padding=1), nn.PixelShuffle(r)) for r in factors)
        self.upsample = nn.Sequential(*(m for stage in stages for m in stage))
        self.tail = nn.Conv2d(f, 3, 3, padding=1)
        self.info = ModelInfo(
            name=name,
            scale=scale,
            scales=(scale,),
            channels="rgb",
            upsampled_input=False,
            receptive_radius=receptive_radius(self.modules()),
            init="PyTorch default (kaiming_uniform a=sqrt(5)); the paper names none",
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x - self.rgb_mean)
        x = x + self.body(x)
        return self.tail(self.upsample(x)) + self.rgb_mean
