"""Exporting a network for other runtimes: ONNX, TorchScript, and PyTorch's torch.export archive (.pt2).

Three graphs, each with dynamic batch, height and width:
- "image" (the default): the network between the image's own values. Y (or RGB, for RGB models) in [0, 1] in,
  [0, 1] out (not clamped); the value ranges a network was trained with (10 (Y - 0.5) in and Y - 0.5 out for most
  of the zoo) are mapped inside the graph. Models that take the bicubic-upscaled image (SRCNN, VDSR) take it here.
- "raw": the bare network, in its own value ranges.
- "pipeline": all of `srkit upscale` for an RGB image: uint8 (N, H, W, 3) in, the upscaled uint8 image out.
  Y models get the Y of BT.601 YCbCr, Cb and Cr are upscaled with MATLAB's bicubic, and the result is turned back
  into RGB, rounded and clamped, all inside the graph, with the same constants and bicubic weights as `Upscaler`.
What goes in and out is written beside it (ONNX metadata_props, or srkit.json inside the TorchScript or .pt2
archive). TorchScript is what LibTorch (C++) and older deployments load; PyTorch 2.13 deprecates it in favour of
torch.export, so srkit traces it with that warning silenced and tests that the trace holds at other sizes.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from srkit.errors import SrkitError
from srkit.files import atomic_path
from srkit.imaging.color import FORWARD, INVERSE, OFFSET01
from srkit.upscale import from_range, to_range
from srkit.upscale.runtime import BICUBIC_REACH, bicubic_phases

FORMATS = ("onnx", "torchscript", "pt2")
FORMAT_NAMES = {"onnx": "ONNX", "torchscript": "TorchScript", "pt2": "torch.export (.pt2)"}
SUFFIXES = {".onnx": "onnx", ".pt": "torchscript", ".ts": "torchscript", ".pt2": "pt2"}
GRAPHS = ("image", "raw", "pipeline")
ONNX_OPSET = 18
EXAMPLE_SIZE = (2, 17, 23)  # batch, height, width of the example input; not 1, which torch.export fixes
# Loggers of the exporters' own progress ("Removed 14 unused nodes", "PassManager: ..."), which a library keeps quiet.
NOISY_LOGGERS = ("torch.onnx", "torch.export", "torch._export", "onnxscript", "onnx_ir")


class ImageValues(nn.Module):
    """The network between the image's own values: [0, 1] in, [0, 1] out, its trained value ranges inside."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.info = model, model.info

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return from_range(self.model(to_range(x, self.info.input_range)), self.info.output_range)


class Bicubic(nn.Module):
    """MATLAB's bicubic upscaling by an integer scale, as a graph any runtime runs: symmetric borders (a gather),
    one 5x5 convolution per output phase (the weights `Upscaler` uses), and a pixel shuffle."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        phases = bicubic_phases(scale)  # (scale, 5): output phase r reads inputs -2..2 around its input pixel
        size = phases.shape[1]
        kernel = np.einsum("ri,sj->rsij", phases, phases).reshape(scale * scale, 1, size, size)
        self.register_buffer("kernel", torch.tensor(kernel, dtype=torch.float32))
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, channels, height, width = x.shape
        x = x.reshape(n * channels, 1, height, width)
        x = x.index_select(2, _mirrored(height, x.device)).index_select(3, _mirrored(width, x.device))
        x = nn.functional.pixel_shuffle(nn.functional.conv2d(x, self.kernel), self.scale)
        return x.reshape(n, channels, height * self.scale, width * self.scale)


def _mirrored(length: int, device: torch.device) -> torch.Tensor:
    """Indices of MATLAB's symmetric padding by BICUBIC_REACH: -1 reads 0, `length` reads length - 1 (and a
    single pixel, every position)."""
    i = torch.arange(-BICUBIC_REACH, length + BICUBIC_REACH, device=device)
    i = torch.where(i < 0, -1 - i, i)
    i = torch.where(i < length, i, 2 * length - 1 - i)
    return torch.where(i < 0, 0, i)


class Pipeline(nn.Module):
    """`srkit upscale` of RGB images in one graph: uint8 (N, H, W, 3) -> uint8 (N, scale*H, scale*W, 3)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.network, self.info = ImageValues(model), model.info
        self.bicubic = Bicubic(model.info.scale)
        # BT.601 as MATLAB's rgb2ycbcr and ycbcr2rgb, in [0, 1] units (srkit.imaging.color), as 1x1 convolutions.
        self.to_ycbcr = _colour_map(FORWARD, OFFSET01)
        self.to_rgb = _colour_map(INVERSE, -INVERSE @ OFFSET01)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        x = rgb.permute(0, 3, 1, 2).float() / 255
        if self.info.channels == "y":
            ycbcr = self.to_ycbcr(x)
            x = self.to_rgb(torch.cat([self._network(ycbcr[:, :1]), self.bicubic(ycbcr[:, 1:])], 1))
        else:
            x = self._network(x)
        # Rounded half up, as srkit writes its uint8 images (ONNX's Round would round half to even).
        return torch.floor(x.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1)

    def _network(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(self.bicubic(x) if self.info.upsampled_input else x)


def _colour_map(matrix: np.ndarray, offset: np.ndarray) -> nn.Conv2d:
    """matrix @ colour + offset at every pixel."""
    conv = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(matrix[:, :, None, None]))
        conv.bias.copy_(torch.from_numpy(offset))
    return conv


def graph_of(model: nn.Module, graph: str) -> nn.Module:
    """The module that `graph` ("image", "raw" or "pipeline") exports for `model`."""
    if graph not in GRAPHS:
        raise SrkitError(f"unknown export graph {graph!r}; choose from {', '.join(GRAPHS)}")
    return {"image": ImageValues, "raw": lambda m: m, "pipeline": Pipeline}[graph](model).eval()


def signature(model: nn.Module, graph: str) -> tuple[str, str]:
    """What the exported graph takes and gives, in words: ("Y in [0, 1], float32 (N, 1, H, W)", ...)."""
    info, s = model.info, model.info.scale
    if graph == "pipeline":
        return "RGB uint8 (N, H, W, 3)", f"RGB uint8 (N, {s}H, {s}W, 3)"
    channels, c = ("Y", 1) if info.channels == "y" else ("RGB", 3)
    upscaled = " (bicubic-upscaled)" if info.upsampled_input else ""
    size = "H, W" if info.upsampled_input else f"{s}H, {s}W"
    (lo, hi), (out_lo, out_hi) = _range(info.input_range, graph), _range(info.output_range, graph)
    return (
        f"{channels}{upscaled} in [{lo:g}, {hi:g}], float32 (N, {c}, H, W)",
        f"{channels} in [{out_lo:g}, {out_hi:g}], float32 (N, {c}, {size})",
    )


def contract(model: nn.Module, graph: str = "image") -> dict[str, str]:
    """What the exported graph's input and output mean, as `srkit.*` string entries."""
    info = model.info
    inputs, outputs = signature(model, graph)
    pipeline = graph == "pipeline"
    return {
        "srkit.model": info.name,
        "srkit.graph": graph,
        "srkit.input": inputs,
        "srkit.output": outputs,
        "srkit.scale": str(info.scale),
        "srkit.scales": str(info.scale) if pipeline else ",".join(map(str, info.scales)),
        "srkit.channels": "rgb" if pipeline else info.channels,
        "srkit.upsampled_input": str(info.upsampled_input and not pipeline).lower(),
        "srkit.input_range": json.dumps([0, 255] if pipeline else list(_range(info.input_range, graph))),
        "srkit.output_range": json.dumps([0, 255] if pipeline else list(_range(info.output_range, graph))),
        "srkit.network_input_range": json.dumps(list(info.input_range)),
        "srkit.network_output_range": json.dumps(list(info.output_range)),
        "srkit.receptive_radius": str(info.receptive_radius),
    }


def _range(value_range: tuple[float, float], graph: str) -> tuple[float, float]:
    """A value range of the exported graph: the network's own in the raw graph, else the image's."""
    return value_range if graph == "raw" else (0.0, 1.0)


def format_for(path: str | Path, format: str | None = None) -> str:
    """The export format: `format` if given, else the one the file's suffix names (.onnx, .pt or .ts, .pt2)."""
    if format is not None:
        if format not in FORMATS:
            raise SrkitError(f"unknown export format {format!r}; choose from {', '.join(FORMATS)}")
        return format
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        known = ", ".join(SUFFIXES)
        raise SrkitError(f"{path}: cannot tell the export format from {suffix or 'no suffix'}; use {known} or --format")
    return SUFFIXES[suffix]


def export(
    model: nn.Module, path: str | Path, format: str | None = None, graph: str = "image", overwrite: bool = False
) -> None:
    """Write `model` as `format` (else the one `path`'s suffix names) to `path`, atomically; `graph` is "image"
    ([0, 1] in and out), "raw" (the bare network) or "pipeline" (uint8 RGB in and out). An existing file is
    replaced only with `overwrite`."""
    format = format_for(path, format)
    if Path(path).exists() and not overwrite:
        raise SrkitError(f"{path}: exists; pass --overwrite to replace it")
    module = graph_of(copy.deepcopy(model).cpu().float().eval(), graph)
    batch, height, width = EXAMPLE_SIZE
    if graph == "pipeline":
        example = (torch.randint(0, 256, (batch, height, width, 3), dtype=torch.uint8),)
        dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("height"), 2: torch.export.Dim("width")}
    else:
        example = (torch.rand(batch, model.info.in_channels, height, width),)
        dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
    described = json.dumps(contract(model, graph), indent=1)
    with atomic_path(path) as tmp, _quiet():
        if format == "onnx":
            _export_onnx(module, example, (dims,), contract(model, graph), tmp)
        elif format == "torchscript":
            traced = torch.jit.trace(module, example)
            torch.jit.save(traced, str(tmp), _extra_files={"srkit.json": described})
        else:
            program = torch.export.export(module, example, dynamic_shapes=(dims,))
            torch.export.save(program, tmp, extra_files={"srkit.json": described})


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters' warnings about PyTorch's own deprecations, their progress logs and prints, silenced."""
    loggers = [logging.getLogger(name) for name in NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _export_onnx(
    module: nn.Module, example: tuple[torch.Tensor], dims: tuple[dict], metadata: dict[str, str], path: Path
) -> None:
    try:
        import onnx
        import onnxscript  # noqa: F401  (the exporter needs it)
    except ImportError as error:
        raise SrkitError(
            f"ONNX export needs {error.name}: pip install 'srkit[export]' (TorchScript and .pt2 need nothing more)"
        ) from None
    program = torch.onnx.export(
        module,
        example,
        dynamo=True,
        dynamic_shapes=dims,
        input_names=["input"],
        output_names=["output"],
        opset_version=ONNX_OPSET,
        verbose=False,
    )
    proto = program.model_proto
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))
