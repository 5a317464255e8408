"""The SRGAN discriminator: Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative
Adversarial Network" (CVPR 2017). It scores HR images; it is not an SR model."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from srkit.models.info import DiscriminatorInfo


@dataclass(frozen=True)
class DiscriminatorConfig:
    # Eight 3x3 convolutions; every second one has stride 2 and the next one doubles the width.
    features: tuple[int, ...] = (64, 64, 128, 128, 256, 256, 512, 512)
    dense: int = 1024
    patch_size: int = 96  # the paper's HR crop: 96 / 2^4 = 6x6 maps reach the dense layer


class Discriminator(nn.Module):
    """Conv-BN-LeakyReLU(0.2) stack, pooled to the paper's 6x6, dense 1024, dense 1; returns logits."""

    def __init__(self, config: DiscriminatorConfig, name: str = "srgan-discriminator") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for i, f in enumerate(config.features):
            layers.append(nn.Conv2d(in_channels, f, 3, stride=1 + i % 2, padding=1))
            if i > 0:  # no batch norm after the first convolution
                layers.append(nn.BatchNorm2d(f))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            in_channels = f
        # The paper's input is fixed, so its dense layer reads exactly 6x6 maps. Adaptive average pooling to
        # that size is the identity on 96x96 crops (same network, same parameters) and lets the net score any
        # size; pooling to 1x1 would instead change the dense layer and drop the paper's spatial layout.
        pool = config.patch_size // 2 ** (len(config.features) // 2)
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(pool))
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_channels * pool * pool, config.dense),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(config.dense, 1),  # logits: the adversarial loss is BCEWithLogits, stable in fp16 too
        )
        self.info = DiscriminatorInfo(
            name=name,
            patch_size=config.patch_size,
            init="PyTorch default (kaiming_uniform a=sqrt(5)); the paper names none",
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, 1) logits that the image is a real HR image."""
        return self.classifier(self.features(x))
