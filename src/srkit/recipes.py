"""Training recipes: one YAML per published weight, loaded into typed, validated dataclasses.

A recipe holds every choice that makes a result: model, data, patch, optimiser, schedule, loss and the
paper-specific tricks (SRCNN's smaller last-layer rate, VDSR's adjustable clipping and scale mixing,
FSRCNN's down-scaling augmentation, SRGAN's adversarial step). Unknown keys and wrong types are errors.

A weight that took several runs, each warm-started from the one before, is one recipe with `stages:`, trained in
order. Its top-level keys are the first stage's; each stage has a `name` and the keys it changes from the stage
before it (a key it names replaces the value whole, `model_options` too). The keys that say how a stage starts
(`init_from`, `init_exclude`, `revive_dead`, `revive_threshold`) are not carried on: each stage names its own, and
`init_from: previous` or `init_from: stage:NAME` starts it from the final weights of an earlier stage:

    model: srcnn
    scale: 3
    steps: 40000
    stages:
      - name: x3
      - name: x2
        init_from: previous
        scale: 2
        steps: 20000
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import dacite
import yaml
from torch import nn

from srkit import models
from srkit.errors import SrkitError

STAGE = "stage:"  # init_from of a stage that starts from an earlier stage's final weights: `stage:NAME`
# How a stage starts, not how it trains: these keys belong to the stage that names them and are not carried on.
START_KEYS = ("init_from", "init_exclude", "revive_dead", "revive_threshold")
STAGE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")  # a stage's run folder


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
    # fitted to `steps`, the run can be lengthened on --resume at any step before the decay starts (a run shorter than
    # decay_steps decays all the way)
    decay_steps: int = 0
    warmup_steps: int = 0
    clip_theta: float = 0.0  # VDSR's adjustable clipping: gradients to [-theta/lr, theta/lr]; 0 = off
    # Mixed precision of the forward pass: bf16 autocast on the CPU (fast where the CPU has AVX512-BF16 or AMX, far
    # slower where it has neither) or CUDA, fp16 on CUDA only
    amp: Literal["none", "bf16", "fp16"] = "none"
    # Warm start from a .safetensors file (SRGAN from SRResNet, EDSR x3/x4 from x2) or, in a recipe with stages, from
    # the final weights of an earlier stage: `stage:NAME` (`previous` in the YAML)
    init_from: str = ""
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
        if self.decay_steps and (self.schedule != "constant" or self.decay_steps < 0):
            raise SrkitError("recipe: decay_steps needs schedule: constant, and must not be negative")
        if self.lr <= 0:
            raise SrkitError(f"recipe: lr must be positive, got {self.lr}")
        if self.loss.startswith("vgg") and not self.vgg_weights:
            raise SrkitError(f"recipe: loss {self.loss} needs vgg_weights (a torchvision-format VGG19 file)")
        if any(not 0 < f < 1 for f in self.downscale_augment):
            raise SrkitError(f"recipe: downscale_augment factors must be in (0, 1), got {self.downscale_augment}")
        if self.init_from and not self.init_from.startswith(STAGE) and not Path(self.init_from).is_file():
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


@dataclass(frozen=True)
class Stage:
    """One run of a recipe: its name (its run folder inside the recipe's; "" for a recipe without stages, which is
    one stage trained in the recipe's folder itself) and its resolved recipe."""

    name: str
    recipe: Recipe


def load_stages(path: str | Path, overrides: dict[str, Any] | None = None) -> tuple[Stage, ...]:
    """Every stage of a YAML recipe in order, each resolved and checked, with the `--set` overrides applied to each;
    a recipe without `stages:` is one unnamed stage."""
    path = Path(path)
    data = _read(path)
    stages, overrides = data.pop("stages", None), overrides or {}
    if stages is None:
        if data.get("init_from") == "previous" or str(data.get("init_from", "")).startswith(STAGE):
            raise SrkitError(f"recipe {path}: init_from {data['init_from']} names a stage, but it has no stages")
        return (Stage("", from_dict({**data, **overrides})),)
    if not isinstance(stages, list) or not stages:
        raise SrkitError(f"recipe {path}: stages must be a list of stages, each with a name")
    if set(data) & set(START_KEYS):
        keys = ", ".join(k for k in START_KEYS if k in data)
        raise SrkitError(f"recipe {path}: {keys} must be in the stage it starts, not at the top level")
    done: list[Stage] = []
    for number, entry in enumerate(stages, 1):
        names = [s.name for s in done]
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not STAGE_NAME.fullmatch(name):
            raise SrkitError(f"recipe {path}: stage {number} needs a name of lower-case letters, digits, '.', '-', '_'")
        if name in names:
            raise SrkitError(f"recipe {path}: two stages are named {name}")
        data = {k: v for k, v in data.items() if k not in START_KEYS} | {k: v for k, v in entry.items() if k != "name"}
        start = data.get("init_from")
        if start == "previous":
            if not done:
                raise SrkitError(f"recipe {path}: stage {name} starts from the previous stage, but it is the first")
            data["init_from"] = start = STAGE + names[-1]
        if isinstance(start, str) and start.startswith(STAGE) and start.removeprefix(STAGE) not in names:
            earlier = ", ".join(names) or "none"
            raise SrkitError(f"recipe {path}: stage {name} starts from {start}, which is no earlier stage ({earlier})")
        try:
            done.append(Stage(name, from_dict({**data, **overrides})))
        except SrkitError as error:
            raise SrkitError(f"recipe {path}, stage {name}: {str(error).removeprefix('recipe: ')}") from None
    return tuple(done)


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read a YAML recipe without stages and apply `--set` overrides."""
    stages = load_stages(path, overrides)
    if stages[0].name:
        names = ", ".join(s.name for s in stages)
        raise SrkitError(f"recipe {path} has stages ({names}); this takes a recipe of one run")
    return stages[0].recipe


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SrkitError(f"recipe {path} not found") from None
    except yaml.YAMLError as error:
        raise SrkitError(f"recipe {path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise SrkitError(f"recipe {path} must be a mapping of keys to values")
    return data


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
