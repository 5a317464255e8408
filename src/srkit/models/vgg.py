"""Frozen VGG19 feature maps for SRGAN's content loss (Ledig et al. 2017; VGG19: Simonyan & Zisserman 2015).

Built by hand with the module indices of torchvision's `vgg19().features`, so a torchvision-format state
dict (`features.0.weight`, ...) loads strictly without importing torchvision.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import load_file
from torch import nn

from srkit.errors import SrkitError

# VGG19 ("configuration E"): output channels of each 3x3 convolution, "M" a 2x2 max pooling.
_LAYOUT = (64, 64, "M", 128, 128, "M", *(256,) * 4, "M", *(512,) * 4, "M", *(512,) * 4, "M")
# SRGAN's phi_i,j: the j-th convolution's ReLU output before the i-th pooling -> how many `features` to keep.
_DEPTH = {"vgg22": 9, "vgg54": 36}  # up to and including relu2_2 (index 8) / relu5_4 (index 35)
_MEAN, _STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet statistics the weights were trained on


class VGGFeatures(nn.Module):
    """(N, 3, H, W) RGB in [0, 1] -> VGG19 feature maps at `layer`; frozen, always in eval mode."""

    def __init__(
        self,
        layer: Literal["vgg22", "vgg54"] = "vgg54",
        weights: str | Path | None = None,
        random_init: bool = False,  # only for tests: a loss on random features means nothing
    ) -> None:
        super().__init__()
        if layer not in _DEPTH:
            raise SrkitError(f"unknown VGG layer {layer!r}; valid: {', '.join(_DEPTH)}")
        layers: list[nn.Module] = []
        in_channels = 3
        for v in _LAYOUT:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(in_channels, v, 3, padding=1), nn.ReLU(inplace=True)]
                in_channels = v
        self.features = nn.Sequential(*layers[: _DEPTH[layer]])
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        if weights is not None:
            try:
                self.features.load_state_dict(_load_features(Path(weights), len(self.features)))
            except RuntimeError as error:  # missing keys or wrong shapes: not a VGG19 file
                raise SrkitError(f"{weights}: not a torchvision VGG19 state dict ({error})") from error
        elif not random_init:
            raise SrkitError("VGGFeatures needs weights=<torchvision-format VGG19 file> or random_init=True")
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGFeatures:
        """Stays in eval mode: the loss network is fixed, whatever its parent does."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((x - self.mean) / self.std)


def _load_features(path: Path, depth: int) -> dict[str, torch.Tensor]:
    """The `features.*` tensors of a torchvision VGG19 state dict, re-keyed for our Sequential."""
    if not path.is_file():
        raise SrkitError(
            f"VGG19 weights not found: {path}. srkit cannot download the ImageNet VGG19 weights at run "
            "time; supply a torchvision-format file (.pth or .safetensors, keys features.N.weight)"
        )
    if path.suffix == ".safetensors":
        state = load_file(str(path), device="cpu")
    else:
        state = torch.load(path, weights_only=True, map_location="cpu")
    features: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        prefix, _, rest = key.partition(".")
        if prefix == "classifier":
            continue  # the ImageNet classifier head is not used
        index, _, _ = rest.partition(".")
        if prefix != "features" or not index.isdigit():
            raise SrkitError(f"{path}: unexpected key {key!r}; expected a torchvision vgg19 state dict")
        if int(index) < depth:  # deeper layers than the chosen feature map are not needed
            features[rest] = tensor
    return features
