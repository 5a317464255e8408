"""One archive split across processes and machines (`--shard I/N`), and a record of what became of each input
(`--manifest FILE.jsonl`).

A shard takes the inputs whose path below their input folder hashes to it: every process computes the same split
from the same inputs, whatever machine it runs on and wherever the archive is mounted, so N processes together do
every file once. With existing outputs skipped, a shard that died is simply run again.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from srkit.errors import SrkitError
from srkit.files import cannot, check_writable


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count`, counted from 0 (as a SLURM array `--array=0-N-1`, or a Kubernetes Indexed Job's
    JOB_COMPLETION_INDEX)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """'I/N' -> Shard(I, N), or a one-line error."""
        match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
        if match is None:
            raise SrkitError(f"--shard {text}: give I/N, shard I of N counted from 0, such as 0/4")
        index, count = map(int, match.groups())
        if count < 1:
            raise SrkitError(f"--shard {text}: N must be at least 1")
        if index >= count:
            raise SrkitError(f"--shard {text}: I must be from 0 to {count - 1} (shards are counted from 0)")
        return cls(index, count)

    def takes(self, relative: Path) -> bool:
        """Whether this shard does the input at `relative` (its path below its input folder)."""
        digest = hashlib.blake2b(relative.as_posix().encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


class Manifest:
    """A JSON Lines file with one line per input of a run: source, output, status (upscaled, skipped: the output
    existed, failed), seconds, bytes and pixel sizes (width, height) in and out, the error, the shard, the time.

    Each line is appended in one write to a file opened with O_APPEND: a killed run leaves whole lines only, and
    the lines of processes sharing one manifest on one machine never interleave (on a network file system, give
    each process a manifest of its own).
    """

    def __init__(self, path: str | Path, shard: Shard | None = None) -> None:
        self.path, self.shard = Path(path), shard
        check_writable(self.path)
        _check_manifest(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        except OSError as error:
            raise cannot("write", self.path, error) from None

    def record(
        self,
        source: Path,
        target: Path,
        status: str,
        seconds: float = 0.0,
        sizes: tuple[tuple[int, int], tuple[int, int]] | None = None,
        error: str | None = None,
    ) -> None:
        line = {
            "source": str(source),
            "output": str(target),
            "status": status,
            "seconds": round(seconds, 3),
            "input_bytes": _bytes(source),
            "output_bytes": _bytes(target),
            "input_size": list(sizes[0]) if sizes else None,
            "output_size": list(sizes[1]) if sizes else None,
            "error": error,
            "shard": str(self.shard) if self.shard else None,
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        data = (json.dumps(line) + "\n").encode()
        try:
            written = os.write(self._fd, data)
        except OSError as error:
            raise cannot("write", self.path, error) from None
        if written != len(data):
            raise SrkitError(f"{self.path}: cannot write (the disk is full?)")

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, kind: type | None, value: BaseException | None, traceback: TracebackType | None) -> None:
        self.close()


def _check_manifest(path: Path) -> None:
    """Refuse to append to a file that is not empty and not a manifest: a mistyped path must not damage a file."""
    try:
        with path.open("rb") as file:
            first = file.readline(1 << 16)
    except FileNotFoundError:
        return
    except OSError as error:
        raise cannot("read", path, error) from None
    try:
        manifest = not first or "source" in json.loads(first)
    except (ValueError, TypeError):
        manifest = False
    if not manifest:
        raise SrkitError(f"{path}: is not a srkit manifest (JSON Lines); refusing to append to it")


def _bytes(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None
