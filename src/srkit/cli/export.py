"""`srkit export`: write a network as ONNX, TorchScript or a torch.export archive (.pt2)."""

from __future__ import annotations

import argparse
import logging

from torch import nn

from srkit import models, zoo
from srkit.errors import SrkitError
from srkit.export import FORMATS, export

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a network to ONNX, TorchScript or torch.export (.pt2)",
        description="Export the raw network with dynamic batch, height and width. Its input and output "
        "contract (model, scale, Y or RGB, value ranges, bicubic-upscaled input) is stored beside it: "
        "ONNX metadata_props, or srkit.json inside the TorchScript or .pt2 archive.",
    )
    parser.add_argument(
        "model", nargs="?", metavar="MODEL", help="pretrained model id, or an architecture name (random weights)"
    )
    parser.add_argument("--weights", metavar="FILE", help="a weights file written by srkit, instead of MODEL")
    parser.add_argument("--scale", type=int, metavar="N", help="scale of an architecture built with random weights")
    parser.add_argument(
        "--format", choices=FORMATS, required=True, help="onnx, torchscript (LibTorch), or pt2 (torch.export)"
    )
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="file to write")
    parser.set_defaults(func=run)


def load_model(name: str | None, weights: str | None, scale: int | None) -> nn.Module:
    """--weights FILE; else an architecture name (random weights, at --scale); else a pretrained model id."""
    if weights:
        if name:
            raise SrkitError("give MODEL or --weights, not both")
        return zoo.load_weights(weights)
    if name in models.names():
        log.warning("%s: exporting randomly initialised weights", name)
        return models.build(name, scale)
    if not name:
        raise SrkitError("give a pretrained model id (see `srkit models`), an architecture name or --weights FILE")
    return zoo.load_pretrained(name)


def run(args: argparse.Namespace) -> int:
    export(load_model(args.model, args.weights, args.scale), args.output, args.format)
    return 0
