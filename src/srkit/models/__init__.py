"""The network architectures, built by name from the registry below.

Forward contract of every SR model: a float tensor (N, C, H, W) with values in `model.info.input_range`
(C = `model.info.in_channels`) gives (N, C, scale*H, scale*W) in `model.info.output_range`; a model with
`info.upsampled_input` takes the bicubic-upscaled image and returns the same size. The ranges are (0, 1)
except for espcn-rgb (seed 000): 0..255 in, -1..1 out. `model.info` (a ModelInfo) says everything else
inference needs: scale, Y or RGB, input kind and the receptive radius that tiling uses as its overlap.
The SRGAN discriminator instead maps (N, 3, H, W) in [0, 1] to (N, 1) logits; its info is a DiscriminatorInfo.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, NamedTuple

import torch
from torch import nn

from srkit.errors import SrkitError
from srkit.models.discriminator import Discriminator, DiscriminatorConfig
from srkit.models.edsr import EDSR, EDSRConfig
from srkit.models.espcn import ESPCN, ESPCNConfig
from srkit.models.fsrcnn import FSRCNN, FSRCNNConfig
from srkit.models.info import DiscriminatorInfo, ModelInfo
from srkit.models.srcnn import SRCNN, SRCNNConfig
from srkit.models.srresnet import SRResNet, SRResNetConfig
from srkit.models.summary import ModelRow, summarize
from srkit.models.vdsr import VDSR, VDSRConfig

__all__ = ["DiscriminatorInfo", "ModelInfo", "ModelRow", "build", "describe", "names"]


class Entry(NamedTuple):
    cls: type[nn.Module]
    config: Any  # the frozen config dataclass of `cls`, holding this variant's hyperparameters
    scales: tuple[int, ...] = (2, 3, 4)  # scales it can be built for; () = not an SR model, no scale


# The one place that knows every architecture. A repeated key is a lint error (ruff F601).
REGISTRY: dict[str, Entry] = {
    "srcnn": Entry(SRCNN, SRCNNConfig()),
    "srcnn-915": Entry(SRCNN, SRCNNConfig(f2=1)),
    "fsrcnn": Entry(FSRCNN, FSRCNNConfig()),
    "fsrcnn-s": Entry(FSRCNN, FSRCNNConfig(d=32, s=5, m=1)),
    "espcn": Entry(ESPCN, ESPCNConfig()),
    "espcn-relu": Entry(
        ESPCN, ESPCNConfig(kernels=(5, 3, 3, 3), features=(64, 64, 32), activation="relu", init="orthogonal")
    ),
    "espcn-rgb": Entry(
        ESPCN,
        ESPCNConfig(
            channels="rgb",
            kernels=(1, 5, 5),
            features=(64, 64),
            activation="relu",
            output_activation="tanh",
            input_range=(0.0, 255.0),
            output_range=(-1.0, 1.0),
        ),
    ),
    "vdsr": Entry(VDSR, VDSRConfig()),
    "edsr-baseline": Entry(EDSR, EDSRConfig()),
    "edsr": Entry(EDSR, EDSRConfig(num_blocks=32, num_features=256, res_scale=0.1)),
    "srresnet": Entry(SRResNet, SRResNetConfig()),
    "srgan-discriminator": Entry(Discriminator, DiscriminatorConfig(), scales=()),
}


def names() -> list[str]:
    """The registered architecture names, in registry order."""
    return list(REGISTRY)


def build(name: str, scale: int | None = None, **overrides: Any) -> nn.Module:
    """A freshly initialised network: the named configuration with `overrides` replacing config fields."""
    entry = _entry(name)
    config = _replace(name, entry.config, overrides)
    if not entry.scales:
        if scale is not None:
            raise SrkitError(f"{name} is not an SR model and takes no scale")
        return entry.cls(config, name=name)
    if scale not in entry.scales:
        valid = ", ".join(map(str, entry.scales))
        raise SrkitError(f"{name}: scale must be one of {valid}; got {scale}")
    return entry.cls(config, scale, name=name)


def describe(name: str, scale: int | None = None) -> ModelRow:
    """Parameters, MACs and receptive field of `name` at `scale` (ignored for the discriminator)."""
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = build(name, scale if _entry(name).scales else None)
    return summarize(model)


def _entry(name: str) -> Entry:
    if name not in REGISTRY:
        raise SrkitError(f"unknown model {name!r}; valid names: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def _replace(name: str, config: Any, overrides: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(type(config))
    unknown = sorted(set(overrides) - set(hints))
    if unknown:
        raise SrkitError(f"{name}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(hints)}")
    # YAML and JSON have no tuples: a list given for a tuple field is that tuple.
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    for key, value in overrides.items():
        hint, current = hints[key], getattr(config, key)
        if typing.get_origin(hint) is typing.Literal:
            fits = value in typing.get_args(hint)
        elif isinstance(current, float):  # an int is a fine float (res_scale=1)
            fits = isinstance(value, (int, float))
        else:
            fits = isinstance(value, type(current))
        if not fits:
            raise SrkitError(f"{name}: {key}={value!r} is not a valid {getattr(hint, '__name__', hint)}")
    return dataclasses.replace(config, **overrides)
