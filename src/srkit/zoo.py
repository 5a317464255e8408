"""The pretrained weights shipped in the package, as typed records, and self-describing weight files.

Each record (`src/srkit/zoo.json`, written by `benchmarks/zoo_results.py`, never by hand) names a
safetensors file in `srkit/weights/`, its full sha256 (checked every time it is loaded), its parameter
count, the recipe that trained it and its PSNR/SSIM on the benchmark sets with the papers' protocol.
A weights file also describes itself (model name, scale and build options in its metadata), so
`--weights any.safetensors` rebuilds the network without the zoo.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import dacite
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from srkit import models
from srkit.errors import SrkitError
from srkit.files import atomic_path
from srkit.upscale import Upscaler

RECORDS = "zoo.json"
CHECKPOINT = ".pt"  # a training run's checkpoint.pt, taken wherever a weights file is
DEFAULT_MODEL = "espcn"  # `srkit upscale photo.jpg` uses espcn-x{scale}: the fastest good Y model


@dataclass(frozen=True)
class Score:
    """Mean PSNR (dB) and SSIM on the Y channel of one benchmark set at one scale."""

    dataset: str
    scale: int
    psnr: float
    ssim: float


@dataclass(frozen=True)
class Record:
    """One shipped weight: what it is, how it was made, and how well it does."""

    id: str  # "espcn-x3"
    model: str  # registry name
    options: dict[str, Any]  # build() overrides of the registry configuration
    scale: int  # the scale it was built with; VDSR handles `scales`
    scales: tuple[int, ...]
    training_set: str
    file: str  # in srkit/weights/
    sha256: str
    params: int
    recipe: str  # the recipe that reproduces it from scratch, in stages where it took several runs
    training: str  # steps, wall-clock time and hardware of the run that made it (and of the stages before it)
    scores: tuple[Score, ...]

    @property
    def path(self) -> Path:
        return Path(str(resources.files("srkit") / "weights" / self.file))

    def score(self, dataset: str, scale: int) -> Score | None:
        return next((s for s in self.scores if (s.dataset, s.scale) == (dataset, scale)), None)


@functools.cache
def records() -> dict[str, Record]:
    """Every shipped weight by id, in the order of the records file."""
    source = resources.files("srkit") / RECORDS
    rows = json.loads(source.read_text()) if source.is_file() else []
    config = dacite.Config(strict=True, cast=[tuple])
    return {row["id"]: dacite.from_dict(Record, row, config) for row in rows}


def record(name: str) -> Record:
    """The record of a zoo id; an unknown id is an error that lists the valid ones."""
    zoo = records()
    if name not in zoo:
        valid = ", ".join(zoo) or "none yet"
        raise SrkitError(f"unknown pretrained model {name!r}; available: {valid}")
    return zoo[name]


def default_id(scale: int | None = None) -> str:
    """The zoo id `srkit upscale` uses when no model is named: espcn at `scale` (3 if not given)."""
    return f"{DEFAULT_MODEL}-x{scale or 3}"


def resolve(name: str | None = None, scale: int | None = None) -> str:
    """The zoo id of what a user names: a zoo id ("espcn-x3"), or a model ("fsrcnn") at `scale`; nothing names
    espcn at `scale`, 3 if none is given. Anything else is an error that names what would work."""
    zoo = records()
    if name in zoo:
        if scale is not None and scale not in zoo[name].scales:
            upscales = " or ".join(map(str, zoo[name].scales))
            raise SrkitError(f"{name} upscales by {upscales}, not by {scale}; {_offer(zoo[name].model)}")
        return name
    if name is None:
        name, scale = DEFAULT_MODEL, scale or 3
    ids = _ids(name)
    if ids and scale in ids:
        return ids[scale]
    if ids and scale is None:
        raise SrkitError(f"{_offer(name)}: name one, or give the scale")
    if ids:
        raise SrkitError(f"{_offer(name)}, not {scale}")
    model, _, digits = name.rpartition("-x")
    if digits.isdigit() and _ids(model):  # an id at a scale the zoo lacks: "espcn-x5"
        raise SrkitError(f"unknown pretrained model {name!r}: {_offer(model)}")
    available = ", ".join(zoo) or "none yet"
    if name in models.names():
        raise SrkitError(f"{name} has no pretrained weights yet (train them with srkit train); available: {available}")
    raise SrkitError(f"unknown pretrained model {name!r}; available: {available}")


def _ids(model: str) -> dict[int, str]:
    """The zoo ids of a model by the scales they upscale by, the first record first."""
    ids: dict[int, str] = {}
    for entry in records().values():
        for scale in entry.scales if entry.model == model else ():
            ids.setdefault(scale, entry.id)
    return dict(sorted(ids.items()))


def _offer(model: str) -> str:
    """What the zoo has of a model: "espcn has pretrained weights for scales 2, 3, 4 (espcn-x2, ...)"."""
    ids = _ids(model)
    return f"{model} has pretrained weights for scales {', '.join(map(str, ids))} ({', '.join(ids.values())})"


def load_pretrained(name: str, device: str | torch.device = "cpu") -> nn.Module:
    """The network of a zoo id, its weights verified against the record's sha256, in eval mode."""
    entry = record(name)
    digest = sha256(entry.path)
    if digest != entry.sha256:
        raise SrkitError(f"{entry.path}: sha256 {digest} does not match the zoo's {entry.sha256}; reinstall srkit")
    return load_weights(entry.path, device)


def load_model(
    name: str | None = None, weights: str | Path | None = None, scale: int | None = None, device: str = "cpu"
) -> nn.Module:
    """The network of a weights file if one is given, else of a zoo id or model name at `scale` (see `resolve`)."""
    if weights:
        return load_weights(weights, device)
    return load_pretrained(resolve(name, scale), device)


def load(name: str | Path, **options: Any) -> Upscaler:
    """A ready upscaler for a zoo id ("espcn-x3"), a model at a scale (`"fsrcnn", scale=3`), a .safetensors file
    written by srkit or a training run's checkpoint.pt.

    `options` go to `Upscaler` (scale, tile, device, half): `srkit.load("espcn-x3").upscale(image)`.
    """
    weights = name if Path(name).suffix in (".safetensors", CHECKPOINT) else None
    model = load_model(str(name), weights, options.get("scale"), device=options.get("device", "cpu"))
    return Upscaler(model, **options)


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def save_weights(
    model: nn.Module, path: str | Path, options: dict[str, Any], scales: tuple[int, ...] = (), **extra: str
) -> None:
    """Write `model`'s weights with the metadata `load_weights` needs (model name, scale, build options).

    `scales`: those it was trained for, where the network could take more (a VDSR trained on x2 and x3 only).
    """
    metadata = {
        "srkit.model": model.info.name,
        "srkit.scale": str(model.info.scale),
        "srkit.options": json.dumps(options, sort_keys=True),
        **({"srkit.scales": ",".join(map(str, scales))} if scales else {}),
        **{f"srkit.{k}": v for k, v in extra.items()},
    }
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)


def read_metadata(path: str | Path) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except FileNotFoundError:
        raise SrkitError(f"{path}: no such weights file") from None
    except (SafetensorError, OSError) as error:
        raise SrkitError(f"{path}: not a safetensors weights file ({error})") from None
    if "srkit.model" not in metadata:
        raise SrkitError(f"{path}: no srkit metadata (model name and scale); was it written by srkit?")
    return metadata


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the network a weights file describes and load it (strictly), in eval mode. A training run's
    `checkpoint.pt` (any `.pt` file that `srkit train` wrote) is taken too: a run in progress can be measured."""
    if Path(path).suffix == CHECKPOINT:
        name, scale, options, trained, state = _read_checkpoint(path)
    else:
        metadata = read_metadata(path)
        name, scale = metadata["srkit.model"], int(metadata["srkit.scale"])
        options, state = json.loads(metadata.get("srkit.options", "{}")), load_file(str(path))
        trained = tuple(int(s) for s in metadata["srkit.scales"].split(",")) if "srkit.scales" in metadata else ()
    model = models.build(name, scale, **options)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        reason = str(error).splitlines()[0]
        raise SrkitError(f"{path}: weights do not fit {name}: {reason}") from None
    if trained:  # asked for another scale, the upscaler says which it was trained for
        scale = model.info.scale if model.info.scale in trained else trained[0]
        model.info = dataclasses.replace(model.info, scale=scale, scales=trained)
    return model.to(device).eval()


def _read_checkpoint(path: str | Path) -> tuple[str, int, dict[str, Any], tuple[int, ...], dict[str, torch.Tensor]]:
    """Model name, scale, build options, trained scales and weights of a checkpoint that `srkit train` wrote."""
    if not Path(path).is_file():
        raise SrkitError(f"{path}: no such weights file")
    try:
        with warnings.catch_warnings():  # torch warns before it refuses a TorchScript file (`srkit export x.pt`)
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises a different kind for each way a file can be wrong
        raise SrkitError(f"{path}: not a training checkpoint written by srkit ({type(error).__name__})") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict) or "recipe" not in state:
        raise SrkitError(f"{path}: not a training checkpoint written by srkit (no model and recipe in it)")
    recipe = state["recipe"]
    scales = tuple(recipe.get("scales") or ())
    return recipe["model"], recipe["scale"], recipe.get("model_options") or {}, scales, state["model"]
