"""`srkit export`: write a network as ONNX, TorchScript or a torch.export archive (.pt2)."""

from __future__ import annotations

import argparse
import dataclasses
import logging

from torch import nn

from srkit import models, zoo
from srkit.errors import SrkitError
from srkit.export import FORMAT_NAMES, FORMATS, export, format_for, signature

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a network to ONNX, TorchScript or torch.export (.pt2)",
        description="Export a network with dynamic batch, height and width. By default it takes and returns the "
        "image's own values: Y (RGB for RGB models) in [0, 1], bicubic-upscaled for SRCNN and VDSR, and gives "
        "[0, 1]. --pipeline holds all of `srkit upscale`: an RGB uint8 image (N, H, W, 3) in, the upscaled one "
        "out. What goes in and out is stored beside it: ONNX metadata_props, or srkit.json inside the "
        "TorchScript or .pt2 archive.",
    )
    parser.add_argument(
        "model", nargs="?", metavar="MODEL", help="pretrained model id, or an architecture name with --scale"
    )
    parser.add_argument(
        "--weights", metavar="FILE", help="a weights file written by srkit, or a run's checkpoint.pt, instead of MODEL"
    )
    parser.add_argument(
        "--scale", type=int, metavar="N", help="scale of an architecture name, exported with random weights"
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="onnx, torchscript (LibTorch) or pt2 (torch.export); default: from the suffix (.onnx, .pt or .ts, .pt2)",
    )
    graph = parser.add_mutually_exclusive_group()
    graph.add_argument(
        "--pipeline",
        dest="graph",
        action="store_const",
        const="pipeline",
        default="image",
        help="the whole upscaling: RGB uint8 (N, H, W, 3) in and out, colour conversion and Cb/Cr bicubic inside",
    )
    graph.add_argument(
        "--raw", dest="graph", action="store_const", const="raw", help="the bare network, in its own value ranges"
    )
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    parser.set_defaults(func=run)


def load_model(name: str | None, weights: str | None, scale: int | None) -> nn.Module:
    """--weights FILE; else an architecture name (random weights, at --scale); else a pretrained model id."""
    if weights:
        if name:
            raise SrkitError("give MODEL or --weights, not both")
        return _check_scale(zoo.load_weights(weights), scale, weights)
    if name in zoo.records():  # a zoo id first: `vdsr` names both the architecture and its pretrained weights
        return _check_scale(zoo.load_pretrained(name), scale, name)
    if name in models.names():
        if scale is None:
            pretrained = [i for _, i in sorted((r.scale, r.id) for r in zoo.records().values() if r.model == name)]
            if pretrained:
                raise SrkitError(
                    f"{name} is an architecture: export its pretrained weights ({', '.join(pretrained)}), "
                    "or give --scale N for random weights"
                )
            raise SrkitError(f"{name} is an architecture without pretrained weights: give --scale N for random weights")
        log.warning("%s: exporting randomly initialised weights", name)
        return models.build(name, scale)
    if not name:
        raise SrkitError("give a pretrained model id (see `srkit models`), an architecture name or --weights FILE")
    return _check_scale(zoo.load_pretrained(name), scale, name)


def _check_scale(model: nn.Module, scale: int | None, source: str) -> nn.Module:
    """The model at `scale`, where it takes several (VDSR: the scale of --pipeline's bicubic steps)."""
    if scale is None:
        return model
    if scale not in model.info.scales:
        raise SrkitError(f"{source} upscales by {' or '.join(map(str, model.info.scales))}, not by {scale}")
    model.info = dataclasses.replace(model.info, scale=scale)
    return model


def run(args: argparse.Namespace) -> int:
    format = format_for(args.output, args.format)
    model = load_model(args.model, args.weights, args.scale)
    export(model, args.output, format, args.graph, overwrite=args.overwrite)
    inputs, outputs = signature(model, args.graph)
    print(f"wrote {args.output}: {FORMAT_NAMES[format]}, {args.model or args.weights}, {inputs} -> {outputs}")
    return 0
