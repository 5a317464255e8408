"""SRCNN: Dong et al., "Image Super-Resolution Using Deep Convolutional Networks" (ECCV 2014, TPAMI 2016)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from srkit.models.info import ModelInfo, receptive_radius


@dataclass(frozen=True)
class SRCNNConfig:
    n1: int = 64  # patch extraction filters
    n2: int = 32  # non-linear mapping filters
    f1: int = 9
    f2: int = 5  # 9-5-5 is the TPAMI paper's best; 9-1-5 (f2=1) is the ECCV base network
    f3: int = 5
    # The paper's N(0, 0.001) suits its SGD at 1e-4; under Adam, whose steps do not shrink with the gradient, the
    # biases soon outweigh such small weights and silence the ReLUs for good (srcnn-x3 at 1e-3: 33 of 64 first-layer
    # and 19 of 32 second-layer channels never active on Set14 at step 31,073; at 1e-4, 18 and 21 at step 1,579;
    # benchmarks/dead_units.py).
    # "he": He et al.'s N(0, sqrt(2 / fan_in)) for the ReLU layers, the paper's N(0, 0.001) for the last.
    init: Literal["paper", "he"] = "paper"
    # What each convolution reads past the image's edge. The paper trained on valid convolutions and its own test
    # code (SRCNN.m) pads every layer's input by repeating its edge (imfilter's 'same', 'replicate'); PyTorch's
    # zeros read as black, which a network trained on crops must learn to see through at every border.
    padding: Literal["zeros", "replicate"] = "zeros"


class SRCNN(nn.Module):
    """Three convolutions on the bicubic-upscaled Y channel."""

    def __init__(self, config: SRCNNConfig, scale: int, name: str = "srcnn") -> None:
        super().__init__()
        c = config
        # The paper used valid convolutions (output smaller than input). We pad to 'same' so that a whole image
        # is super-resolved in one pass and tiles of any size join without a seam.
        self.body = nn.Sequential(
            nn.Conv2d(1, c.n1, c.f1, padding=c.f1 // 2, padding_mode=c.padding),
            nn.ReLU(inplace=True),
            nn.Conv2d(c.n1, c.n2, c.f2, padding=c.f2 // 2, padding_mode=c.padding),
            nn.ReLU(inplace=True),
            nn.Conv2d(c.n2, 1, c.f3, padding=c.f3 // 2, padding_mode=c.padding),
        )
        convs = [m for m in self.body if isinstance(m, nn.Conv2d)]
        for i, conv in enumerate(convs):
            if c.init == "he" and i < len(convs) - 1:
                nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            else:
                nn.init.normal_(conv.weight, 0.0, 0.001)  # the paper: N(0, 0.001), biases 0
            nn.init.zeros_(conv.bias)
        self.info = ModelInfo(
            name=name,
            scale=scale,
            scales=(scale,),  # one network is trained per scale
            channels="y",
            upsampled_input=True,
            receptive_radius=receptive_radius(self.modules()),
            init={
                "paper": "N(0, 0.001), biases 0",
                "he": "N(0, sqrt(2/fan_in)) on the ReLU layers, N(0, 0.001) on the last; biases 0",
            }[c.init],
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
