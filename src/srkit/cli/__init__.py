"""The `srkit` command: parses arguments and calls the library, nothing else."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys

from srkit.errors import SrkitError

# Each subcommand module defines add_parser(subparsers), which sets `func` on its parser.
SUBCOMMANDS = ("eval", "models", "train", "upscale", "export", "serve")


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake reported in one line like every other srkit error."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="srkit", description="Classic CNN super-resolution.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"srkit.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops a command as Ctrl-C does, partial files removed
    try:
        return args.func(args) or 0
    except SrkitError as error:
        if os.environ.get("SRKIT_DEBUG"):
            raise
        print(f"srkit: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("srkit: interrupted", file=sys.stderr)
        return 130


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt
