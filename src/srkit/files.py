"""Atomic file writes: a reader never sees a half-written output, checkpoint or table."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from srkit.errors import SrkitError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it into place on success, delete it on any failure.

    The temporary file is `.NAME.HOST-PID.XXXXXXXX.tmp.SUFFIX`: one that a killed process (SIGKILL, the OOM killer)
    could not delete is known as such later (`remove_orphans`).

    A failure names `path`, never the temporary file: an SrkitError raised in the block has the temporary path
    in its message replaced, and an OSError (no permission, a full disk, a folder in the way) becomes an
    SrkitError naming `path`. Missing folders above `path` are made.
    """
    path = Path(path)
    check_writable(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        prefix = f".{path.name}.{socket.gethostname()}-{os.getpid()}."
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp" + path.suffix)
        os.close(fd)
        tmp = Path(name)
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give it a normal file's mode
        os.replace(tmp, path)
    except SrkitError as error:
        raise SrkitError(str(error).replace(str(tmp), str(path)) if tmp else str(error)) from None
    except OSError as error:
        raise cannot("write", path, error) from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def cannot(action: str, path: str | Path, error: OSError) -> SrkitError:
    """The one-line error for an OSError on `path`: 'PATH: cannot write (Permission denied)'."""
    return SrkitError(f"{path}: cannot {action} ({error.strerror or error})")


def remove_orphans(folder: str | Path) -> int:
    """Delete the temporary files of `atomic_path` that processes of this machine which no longer run left in
    `folder` (killed by SIGKILL or the OOM killer, or a power cut); return how many. Those of running processes, and
    of other machines writing to a shared folder, are left alone."""
    pattern = re.compile(rf"\..+\.{re.escape(socket.gethostname())}-(\d+)\.\w+\.tmp")
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:  # missing, or not readable: nothing of ours is there
        return 0
    for entry in entries:
        match = pattern.match(entry.name)
        if match and entry.is_file(follow_symlinks=False) and not _running(int(match.group(1))):
            Path(entry.path).unlink(missing_ok=True)
            removed += 1
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


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
