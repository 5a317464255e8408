"""Atomic file writes: a reader never sees a half-written output, checkpoint or table."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from srkit.errors import SrkitError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it into place on success, delete it on any failure.

    A failure names `path`, never the temporary file: an SrkitError raised in the block has the temporary path
    in its message replaced, and an OSError (no permission, a full disk, a folder in the way) becomes an
    SrkitError naming `path`. Missing folders above `path` are made.
    """
    path = Path(path)
    check_writable(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
        os.close(fd)
        tmp = Path(name)
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give it a normal file's mode
        os.replace(tmp, path)
    except SrkitError as error:
        raise SrkitError(str(error).replace(str(tmp), str(path)) if tmp else str(error)) from None
    except OSError as error:
        raise SrkitError(f"{path}: cannot write ({error.strerror or error})") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def check_writable(path: str | Path, folder: bool = False) -> None:
    """Refuse, in one line naming `path`, a file (or a `folder`) that cannot be written: a file where it or a
    folder above it should be, or a folder without write permission. Missing folders are fine: they are made."""
    path = Path(path)
    existing = next(p for p in ([path] if folder else []) + list(path.parents) if p.exists())
    if not existing.is_dir():
        what = "is a file" if existing == path else f"{existing} is a file"
        raise SrkitError(f"{path}: {what}, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SrkitError(f"{path}: cannot write in {existing} (permission denied)")


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_csv(path: str | Path, rows: list[dict]) -> None:
    """Write rows of the same keys as a CSV table with a header, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
