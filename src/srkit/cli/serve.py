"""`srkit serve`: a local web page to upscale an image with zoo models and compare them with bicubic."""

from __future__ import annotations

import argparse

from srkit.web import Limits, serve
from srkit.web.app import MB

DEFAULTS = Limits()


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="a web page to upscale images and compare models",
        description="Serve a web page where you drop an image in, choose a scale and pretrained models, and "
        "compare the results with bicubic (slider, synchronized zoomed crops, PSNR/SSIM against a ground "
        "truth, time taken), then download them. One job runs at a time; later ones wait in line.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    parser.add_argument(
        "--public",
        action="store_true",
        help="allow a --host that other machines can reach: whoever reaches it can use this machine's CPU",
    )
    parser.add_argument(
        "--max-upload-mb",
        type=float,
        default=DEFAULTS.max_bytes / MB,
        metavar="MB",
        help=f"largest upload, image and ground truth together (default: {DEFAULTS.max_bytes / MB:g})",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULTS.max_pixels,
        metavar="N",
        help=f"largest image to upscale, in pixels (default: {DEFAULTS.max_pixels:,})",
    )
    parser.add_argument(
        "--max-waiting",
        type=int,
        default=DEFAULTS.max_waiting,
        metavar="N",
        help=f"jobs that may wait in line; more are turned away (default: {DEFAULTS.max_waiting})",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    limits = Limits(int(args.max_upload_mb * MB), args.max_pixels, args.max_waiting)
    serve(args.host, args.port, public=args.public, limits=limits)
    return 0
