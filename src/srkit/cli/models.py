"""`srkit models`: a table of the architectures with their size, cost and receptive field."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from srkit import zoo
from srkit.data import BENCHMARKS
from srkit.models import ModelRow, describe, names

# (header, cell) per column; a new column (pretrained weights, say) is one more line here.
COLUMNS: list[tuple[str, Callable[[ModelRow], str]]] = [
    ("name", lambda r: r.name),
    ("scale", lambda r: ",".join(map(str, r.scales)) or "-"),
    ("params", lambda r: f"{r.params:,}"),
    ("MACs/px", lambda r: "-" if r.macs_per_pixel is None else f"{r.macs_per_pixel:,.1f}"),
    ("GMACs/1080p", lambda r: "-" if r.gmacs_per_frame is None else f"{r.gmacs_per_frame:,.1f}"),
    ("RF radius", lambda r: "-" if r.receptive_radius is None else str(r.receptive_radius)),
    ("RF size", lambda r: "-" if r.receptive_size is None else f"{r.receptive_size}x{r.receptive_size}"),
    ("input", lambda r: r.input),
]


def _scores(record: zoo.Record, dataset: str) -> str:
    """PSNR/SSIM on one set, one pair per scale the weight handles."""
    found = [s for s in (record.score(dataset, scale) for scale in record.scales) if s]
    return " ".join(f"{s.psnr:.2f}/{s.ssim:.4f}" for s in found) or "-"


ZOO_COLUMNS: list[tuple[str, Callable[[zoo.Record], str]]] = [
    ("pretrained", lambda r: r.id),
    ("model", lambda r: r.model),
    ("scale", lambda r: ",".join(map(str, r.scales))),
    ("params", lambda r: f"{r.params:,}"),
    *((d, lambda r, d=d: _scores(r, d)) for d in BENCHMARKS),
    ("trained on", lambda r: r.training_set),
]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list the architectures",
        description="Parameters, multiply-accumulates per output pixel and per 1920x1080 output frame, "
        "and receptive field (in input pixels) of every architecture; then the pretrained weights shipped "
        "with srkit and their PSNR/SSIM (Y channel, the papers' protocol) on the benchmark sets.",
    )
    parser.add_argument("--scale", type=int, default=3, help="scale to build the SR models at (default 3)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(format_table(COLUMNS, [describe(name, args.scale) for name in names()]))
    records = sorted(zoo.records().values(), key=lambda r: (r.model, r.scale))
    print("\n" + (format_table(ZOO_COLUMNS, records) if records else "No pretrained weights are shipped yet."))
    return 0


def format_table(columns: list[tuple[str, Callable]], rows: list) -> str:
    """Plain aligned text: the first and last columns left-aligned, the others right-aligned."""
    cells = [[header for header, _ in columns]] + [[cell(row) for _, cell in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    left = (0, len(columns) - 1)
    lines = [
        "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True)))
        for line in cells
    ]
    return "\n".join(line.rstrip() for line in lines)
