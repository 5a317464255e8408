"""`srkit upscale`: upscale image files, folders, glob patterns and videos with a pretrained network."""

from __future__ import annotations

import argparse
import contextlib

from srkit import zoo
from srkit.imaging.video import PRESETS, Encoding
from srkit.upscale import Manifest, Shard, Upscaler, plan, upscale_files


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "upscale",
        help="upscale images, folders and videos",
        description="Upscale images (any mode: gray, palette, RGBA, 16-bit, CMYK; EXIF orientation applied, "
        "ICC profile kept) and videos (H.264, frame rate and audio kept). Without -o, each output is written "
        "beside its input: a file as NAME_x{scale}.EXT, a folder's files in FOLDER_x{scale}/ beside the folder, "
        "in the same tree (a .webm video becomes .mkv: WebM cannot hold H.264). Existing outputs are kept "
        "(skipped) unless --overwrite; an input is never overwritten. Mistakes that would lose or clash files "
        "(two inputs to one output, an output folder that is a file, an unknown output suffix) stop the command "
        "before anything is written. A file that fails is reported and skipped; the run then exits with code 1.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files, folders, glob patterns")
    parser.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="the output file, for one input file; else a folder (made if missing) where a folder's files keep "
        "their path below it, a glob's matches their path below the pattern's folder ('g' of 'g/**/*.png'), and "
        "files named one by one their path below the folder they share",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--model",
        metavar="ID",
        help="pretrained model id such as fsrcnn-x3, or a model name with --scale (see `srkit models`; "
        "default: espcn at --scale, else espcn-x3)",
    )
    source.add_argument(
        "--weights", metavar="FILE", help="a weights file written by srkit (.safetensors), or a run's checkpoint.pt"
    )
    parser.add_argument(
        "--scale",
        type=int,
        metavar="N",
        help="the pretrained model of --model (or espcn) at scale N, or the scale of a network with several (VDSR)",
    )
    parser.add_argument(
        "--tile",
        type=int,
        metavar="N",
        help="tile size in input pixels (default: sized for speed, within the memory budget)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--half", action="store_true", help="float16 on CUDA")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (never an input)")
    parser.add_argument("--crf", type=float, default=23, help="videos: H.264 quality, 0 (lossless) to 51 (default: 23)")
    parser.add_argument("--preset", default="medium", help=f"videos: x264 preset, {'/'.join(PRESETS)} (default medium)")
    parser.add_argument(
        "--shard",
        metavar="I/N",
        help="do shard I of N (I from 0 to N-1): the inputs whose path below their folder hashes to I, the same "
        "split on every machine, so that N processes (a SLURM array, a Kubernetes Indexed Job) do every file once",
    )
    parser.add_argument(
        "--manifest",
        metavar="FILE.jsonl",
        help="append one JSON line per input: source, output, status, seconds, sizes, error",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    encoding = Encoding(args.crf, args.preset)
    shard = Shard.parse(args.shard) if args.shard else None
    model = zoo.load_model(args.model, args.weights, args.scale, args.device)
    upscaler = Upscaler(model, scale=args.scale, tile=args.tile, device=args.device, half=args.half)
    jobs = plan(args.inputs, args.output, upscaler.scale, shard=shard)
    with contextlib.ExitStack() as stack:
        manifest = stack.enter_context(Manifest(args.manifest, shard)) if args.manifest else None
        summary = upscale_files(upscaler, jobs, overwrite=args.overwrite, encoding=encoding, manifest=manifest)
    print(f"shard {shard}: {summary}" if shard else summary)
    return 1 if summary.failed else 0
