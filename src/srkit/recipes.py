"""Training recipes: one YAML per published weight, loaded into a typed, validated dataclass.

A recipe holds every choice that makes a result: model, data, patch, optimiser, schedule, loss and the
paper-specific tricks (SRCNN's smaller last-layer rate, VDSR's adjustable clipping and scale mixing,
FSRCNN's down-scaling augmentation, SRGAN's adversarial step). Unknown keys and wrong types are errors.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import dacite
import yaml
from torch import nn

from srkit import models
from srkit.errors import SrkitError


@dataclass(frozen=True)
class Recipe:
    model: str
    scale: int
    model_options: dict[str, Any] = field(default_factory=dict)  # build() overrides, e.g. num_blocks
    scales: tuple[int, ...] = ()  # VDSR: one network trained on a mix of these scales; () = (scale,)
    # Data
    train_sets: tuple[str, ...] = ("T91", "BSD200")  # the classic "291" images; folders under the data root
    val_set: str = "Set5"
    patch_size: int = 48  # HR patch side, in HR pixels; a multiple of the scale for LR-input models
    batch_size: int = 16  # per process under torchrun
    augment: bool = True  # random flips and 90-degree rotations
    downscale_augment: tuple[float, ...] = ()  # FSRCNN: extra copies of each image scaled by these factors
    # Optimisation
    steps: int = 10_000
    loss: Literal["mse", "l1", "vgg54", "vgg22"] = "mse"
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.9  # SGD only
    betas: tuple[float, float] = (0.9, 0.999)  # Adam only
    weight_decay: float = 0.0
    last_layer_lr: float = 1.0  # the last layer's rate as a multiple of lr: SRCNN trains it 10x slower
    schedule: Literal["constant", "step", "cosine", "linear"] = "constant"
    milestones: tuple[int, ...] = ()  # step schedule: lr *= gamma at each of these steps
    gamma: float = 0.1
    min_lr: float = 0.0  # cosine and linear schedules, and decay_steps: the rate at the last step
    # A linear decay to min_lr over the last decay_steps after a constant rate (warmup-stable-decay): unlike a cosine
    # fitted to `steps`, the run can be lengthened on --resume at any step before the decay starts
    decay_steps: int = 0
    warmup_steps: int = 0
    clip_theta: float = 0.0  # VDSR's adjustable clipping: gradients to [-theta/lr, theta/lr]; 0 = off
    # Mixed precision of the forward pass: bf16 autocast on the CPU (fast where the CPU has AVX512-BF16 or AMX, far
    # slower where it has neither) or CUDA, fp16 on CUDA only
    amp: Literal["none", "bf16", "fp16"] = "none"
    init_from: str = ""  # warm start from a .safetensors file (SRGAN from SRResNet, EDSR x3/x4 from x2)
    # Parameters of init_from that keep their initialisation: a layer whose shape differs (ESPCN's last at x2/x4)
    init_exclude: tuple[str, ...] = ()
    # ReDo (Sokar et al., ICML 2023): before the first step, every ReLU channel of init_from that fires on no pixel of
    # a sample of training crops gets fresh incoming weights and zero outgoing ones, so that it learns again
    revive_dead: bool = False
    # ReDo's dormancy threshold tau: revive_dead also takes a channel whose mean output is at most tau times its
    # layer's mean; 0 takes only the channels that never fire
    revive_threshold: float = 0.0
    # SRGAN: an adversarial term against this discriminator, with its own optimiser
    discriminator: str = ""  # "srgan-discriminator" turns it on
    adversarial_weight: float = 1e-3
    discriminator_lr: float = 1e-4
    vgg_weights: str = ""  # torchvision-format ImageNet VGG19 file, for the vgg54/vgg22 losses
    # Bookkeeping
    val_every: int = 1000
    checkpoint_every: int = 1000
    log_every: int = 50
    seed: int = 0
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    channels_last: bool = False  # memory format of the network: faster convolutions on this CPU

    @property
    def train_scales(self) -> tuple[int, ...]:
        return self.scales or (self.scale,)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def check(self) -> Recipe:
        """Errors that would only surface mid-run, raised before anything is loaded."""
        model = models.build(self.model, self.scale, **self.model_options)
        info = model.info
        for s in self.train_scales:
            if s not in info.scales and not self.scales:
                raise SrkitError(f"{self.model} does not support scale {s}")
            if not info.upsampled_input and self.patch_size % s:
                raise SrkitError(f"patch_size {self.patch_size} is not a multiple of scale {s}")
        if self.scales and not set(self.scales) <= set(info.scales):
            raise SrkitError(f"{self.model} handles scales {info.scales}, not {self.scales}")
        positive = ("steps", "batch_size", "patch_size", "val_every", "checkpoint_every", "log_every")
        for name in positive:
            if getattr(self, name) <= 0:
                raise SrkitError(f"recipe: {name} must be positive, got {getattr(self, name)}")
        if self.decay_steps and (self.schedule != "constant" or not 0 < self.decay_steps <= self.steps):
            raise SrkitError("recipe: decay_steps needs schedule: constant and 0 < decay_steps <= steps")
        if self.lr <= 0:
            raise SrkitError(f"recipe: lr must be positive, got {self.lr}")
        if self.loss.startswith("vgg") and not self.vgg_weights:
            raise SrkitError(f"recipe: loss {self.loss} needs vgg_weights (a torchvision-format VGG19 file)")
        if any(not 0 < f < 1 for f in self.downscale_augment):
            raise SrkitError(f"recipe: downscale_augment factors must be in (0, 1), got {self.downscale_augment}")
        if self.init_from and not Path(self.init_from).is_file():
            raise SrkitError(f"recipe: init_from {self.init_from} is not a file")
        if self.init_exclude and not self.init_from:
            raise SrkitError("recipe: init_exclude needs init_from")
        if self.revive_threshold and not self.revive_dead:
            raise SrkitError("recipe: revive_threshold needs revive_dead: true")
        if not 0 <= self.revive_threshold < 1:
            raise SrkitError(f"recipe: revive_threshold must be in [0, 1), got {self.revive_threshold}")
        if self.revive_dead and not self.init_from:
            raise SrkitError("recipe: revive_dead needs init_from (a fresh network has no dead channels to revive)")
        if self.revive_dead and not any(isinstance(m, nn.ReLU) for m in getattr(model, "body", ())):
            raise SrkitError(f"recipe: revive_dead needs a body of convolutions and ReLUs, which {self.model} lacks")
        unknown = set(self.init_exclude) - set(model.state_dict())
        if unknown:
            raise SrkitError(f"recipe: init_exclude names no parameter of {self.model}: {', '.join(sorted(unknown))}")
        return self


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`--set key=value` pairs; values are YAML (`lr=1e-4`, `scales=[2,3]`, `augment=false`)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SrkitError(f"--set expects key=value, got {pair!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def from_dict(data: dict[str, Any]) -> Recipe:
    """A Recipe from plain data, strictly: unknown keys and wrong types are one-line errors."""
    data = {k: _float(v) if _is_float(k) else v for k, v in data.items()}
    try:
        recipe = dacite.from_dict(Recipe, data, config=dacite.Config(strict=True, cast=[tuple]))
    except dacite.UnexpectedDataError as error:
        valid = ", ".join(f.name for f in dataclasses.fields(Recipe))
        raise SrkitError(f"recipe: unknown key(s) {', '.join(sorted(error.keys))}; valid keys: {valid}") from None
    except dacite.DaciteError as error:
        raise SrkitError(f"recipe: {error}") from None
    return recipe.check()


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read a YAML recipe and apply `--set` overrides."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SrkitError(f"recipe {path} not found") from None
    except yaml.YAMLError as error:
        raise SrkitError(f"recipe {path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise SrkitError(f"recipe {path} must be a mapping of keys to values")
    return from_dict({**data, **(overrides or {})})


def _is_float(name: str) -> bool:
    return any(f.name == name and f.type == "float" for f in dataclasses.fields(Recipe))


def _float(value: Any) -> Any:
    """YAML reads `lr: 1` as an int and `lr: 1e-4` as a string (no dot); a float field takes both."""
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value
