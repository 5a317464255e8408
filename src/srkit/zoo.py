"""Self-describing weight files: safetensors whose metadata says how to rebuild the network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from srkit import models
from srkit.errors import SrkitError
from srkit.files import atomic_path


def save_weights(model: nn.Module, path: str | Path, options: dict[str, Any], **extra: str) -> None:
    """Write `model`'s weights with the metadata `load_weights` needs (model name, scale, build options)."""
    metadata = {
        "srkit.model": model.info.name,
        "srkit.scale": str(model.info.scale),
        "srkit.options": json.dumps(options, sort_keys=True),
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
    """Rebuild the network a weights file describes and load it (strictly), in eval mode."""
    metadata = read_metadata(path)
    model = models.build(
        metadata["srkit.model"], int(metadata["srkit.scale"]), **json.loads(metadata.get("srkit.options", "{}"))
    )
    try:
        model.load_state_dict(load_file(str(path)), strict=True)
    except RuntimeError as error:
        reason = str(error).splitlines()[0]
        raise SrkitError(f"{path}: weights do not fit {metadata['srkit.model']}: {reason}") from None
    return model.to(device).eval()
