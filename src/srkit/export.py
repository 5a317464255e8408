"""Exporting a network for other runtimes: ONNX, TorchScript, and PyTorch's torch.export archive (.pt2).

Each holds the raw network, with dynamic batch, height and width; what its input and output mean is
written beside it (model name, scale, Y or RGB, value ranges, bicubic-upscaled input), so that a runtime
without srkit can prepare the input as `srkit.upscale.super_resolve` does.
TorchScript is what LibTorch (C++) and older deployments load; PyTorch 2.13 deprecates it in favour of
torch.export, so srkit traces it with that warning silenced and tests that the trace holds at other sizes.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from srkit.errors import SrkitError
from srkit.files import atomic_path

FORMATS = ("onnx", "torchscript", "pt2")
ONNX_OPSET = 18
EXAMPLE_SIZE = (2, 17, 23)  # batch, height, width of the example input; not 1, which torch.export fixes


def contract(model: nn.Module) -> dict[str, str]:
    """What the exported network's input and output mean, as `srkit.*` string entries."""
    info = model.info
    return {
        "srkit.model": info.name,
        "srkit.scale": str(info.scale),
        "srkit.scales": ",".join(map(str, info.scales)),
        "srkit.channels": info.channels,
        "srkit.upsampled_input": str(info.upsampled_input).lower(),
        "srkit.input_range": json.dumps(list(info.input_range)),
        "srkit.output_range": json.dumps(list(info.output_range)),
        "srkit.receptive_radius": str(info.receptive_radius),
        "srkit.layout": "float32 (N, C, H, W); output (N, C, H*scale, W*scale), or (N, C, H, W) for upsampled input",
    }


def export(model: nn.Module, path: str | Path, format: str) -> None:
    """Write `model` as `format` ("onnx", "torchscript" or "pt2") to `path`, atomically."""
    if format not in FORMATS:
        raise SrkitError(f"unknown export format {format!r}; choose from {', '.join(FORMATS)}")
    model = copy.deepcopy(model).cpu().float().eval()
    batch, height, width = EXAMPLE_SIZE
    example = (torch.rand(batch, model.info.in_channels, height, width),)
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
    with atomic_path(path) as tmp:
        if format == "onnx":
            _export_onnx(model, example, (dims,), tmp)
        elif format == "torchscript":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                traced = torch.jit.trace(model, example)
                torch.jit.save(traced, str(tmp), _extra_files={"srkit.json": json.dumps(contract(model), indent=1)})
        else:
            program = torch.export.export(model, example, dynamic_shapes=(dims,))
            extra = {"srkit.json": json.dumps(contract(model), indent=1)}
            torch.export.save(program, tmp, extra_files=extra)


def _export_onnx(model: nn.Module, example: tuple[torch.Tensor], dims: tuple[dict], path: Path) -> None:
    try:
        import onnx
        import onnxscript  # noqa: F401  (the exporter needs it)
    except ImportError:
        raise SrkitError("ONNX export needs the export extra: pip install 'srkit[export]'") from None

    # The exporter logs and prints its progress (and that torchvision is absent); a library stays quiet.
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            program = torch.onnx.export(
                model,
                example,
                dynamo=True,
                dynamic_shapes=dims,
                input_names=["input"],
                output_names=["output"],
                opset_version=ONNX_OPSET,
                verbose=False,
            )
    finally:
        quiet.setLevel(level)
    proto = program.model_proto
    for key, value in contract(model).items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))
