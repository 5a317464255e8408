"""Upscaling files: images and videos, folders and glob patterns, each output written atomically, a failure counted."""

from __future__ import annotations

import glob
import itertools
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from srkit.errors import SrkitError
from srkit.files import atomic_path, check_writable, remove_orphans
from srkit.imaging import video
from srkit.imaging.io import IMAGE_SUFFIXES, Picture, read_image, write_image, write_png
from srkit.upscale.pipeline import Upscaler
from srkit.upscale.shards import Manifest, Shard

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One input file and the output it becomes."""

    source: Path
    target: Path
    relative: Path | None = None  # its path below the folder of the input that named it: what --shard hashes


@dataclass
class Summary:
    """What a run over many files did."""

    upscaled: int = 0  # the fields are the statuses of upscale_files and its manifest
    skipped: int = 0  # the output existed
    failed: int = 0

    def __str__(self) -> str:
        return f"{self.upscaled} upscaled, {self.skipped} skipped (exists), {self.failed} failed"


def plan(inputs: Sequence[str | Path], output: str | Path | None, scale: int, shard: Shard | None = None) -> list[Job]:
    """The jobs for files, folders (searched recursively) and glob patterns, checked before any is run.

    Without `output`, each output is written beside its input: a file's as NAME_x{scale}.EXT, a folder's files
    in FOLDER_x{scale}/ beside it, in the same tree. With it, `output` is the output file when there is one input
    file and `output` has a suffix (and is no folder); otherwise it is a folder where a folder's files keep their
    path below that folder, a glob pattern's matches their path below the pattern's fixed part (`g` of
    `g/**/*.png`), and files named one by one their path below the folder they all share.

    A one-line error, before anything is written: an input that does not exist, two inputs that would be
    written to one output, an output that is an input, an output file with an unknown suffix, an output folder
    that is a file or cannot be written. With `shard`, all of this is checked on every input, and the jobs of
    that shard are returned.
    """
    found = _find([str(item) for item in inputs])
    folder = output is not None and str(output).endswith(("/", os.sep))  # `-o out.v2/` names a folder
    output = None if output is None else Path(output)
    if output is not None and output.suffix and not folder and not output.is_dir() and _one_file(inputs, found):
        _check_suffix(found[0].source, output)
        jobs = [Job(found[0].source, output, found[0].relative)]
    else:
        if output is not None:
            check_writable(output, folder=True)
        jobs = [Job(f.source, _output_name(_target(f, output, scale)), f.relative) for f in found]
    for target in {job.target.parent: job.target for job in jobs}.values():  # one output per folder
        check_writable(target)
    jobs = _distinct(jobs, found)
    return jobs if shard is None else [job for job in jobs if shard.takes(job.relative)]


@dataclass(frozen=True)
class _Found:
    """A file to upscale, the input that named it, and its path below that input's folder."""

    source: Path
    item: str  # the input as it was typed
    relative: Path
    folder: Path | None = None  # the folder input it was found in


def _find(items: list[str]) -> list[_Found]:
    """Every file the inputs name, each with its path below its input's folder (see `plan`)."""
    named = [Path(item) for item in items if Path(item).exists() and not Path(item).is_dir()]
    shared = Path(os.path.commonpath([os.path.abspath(p.parent) for p in named])) if named else None
    found = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and is_media(p))
            found += [_Found(p, item, p.relative_to(path), path) for p in files]
        elif path.exists():
            found.append(_Found(path, item, Path(os.path.relpath(os.path.abspath(path), shared))))
        elif glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not matches:
                raise SrkitError(f"{item}: no file matches")
            fixed = Path(*itertools.takewhile(lambda part: not glob.has_magic(part), path.parts[:-1]))
            found += [_Found(p, item, Path(os.path.relpath(p, fixed))) for p in matches]
        else:
            raise SrkitError(f"{item}: no such file or folder")
    return found


def _one_file(inputs: Sequence[str | Path], found: list[_Found]) -> bool:
    """One input, a file or a pattern, that names one file."""
    return len(inputs) == 1 and len(found) == 1 and found[0].folder is None


def _target(found: _Found, output: Path | None, scale: int) -> Path:
    if output is not None:
        return output / found.relative
    if found.folder is not None:  # a folder beside the input folder: outputs inside it would be inputs next time
        folder = found.folder if found.folder.name not in ("", ".", "..") else found.folder.resolve()
        if not folder.name:
            raise SrkitError(f"{found.item}: give an output folder with -o")
        return folder.with_name(f"{folder.name}_x{scale}") / found.relative
    return found.source.with_name(f"{found.source.stem}_x{scale}{found.source.suffix}")


def _check_suffix(source: Path, target: Path) -> None:
    """Refuse an output file whose suffix names no format srkit writes for its input, before any work."""
    kind, suffixes = ("a video", video.VIDEO_SUFFIXES) if video.is_video(source) else ("an image", IMAGE_SUFFIXES)
    if target.suffix.lower() not in suffixes:
        raise SrkitError(f"{target}: cannot write {kind} as {target.suffix}; use {', '.join(suffixes)}")


def _distinct(jobs: list[Job], found: list[_Found]) -> list[Job]:
    """The jobs once each; two inputs that would be written to one output, or an output that is an input, are an
    error naming both."""
    inputs = {_identity(f.source): f for f in found}
    by_target: dict[Path, tuple[Job, _Found]] = {}
    distinct = []
    for job, source in zip(jobs, found, strict=True):
        if job.target.exists() and (clash := inputs.get(_identity(job.target))) is not None:
            raise SrkitError(f"{job.target}: is the input {clash.source}; refusing to overwrite an input")
        key = job.target.resolve()
        if key not in by_target:
            by_target[key] = job, source
            distinct.append(job)
        elif _identity(by_target[key][0].source) != _identity(job.source):
            first = by_target[key][1]
            raise SrkitError(
                f"{_typed(first)} and {_typed(source)} would both be written to {job.target}: "
                "upscale them in separate runs or to separate -o folders"
            )
    return distinct


def _typed(found: _Found) -> str:
    """A file as the user named it: its path, and the folder or pattern it came from."""
    return str(found.source) if str(found.source) == found.item else f"{found.source} (from {found.item})"


def _identity(path: Path) -> tuple[int, int]:
    """What makes two paths one file: links and hard links included."""
    status = path.stat()
    return status.st_dev, status.st_ino


def is_media(path: Path) -> bool:
    """An image or video file by its suffix."""
    return path.suffix.lower() in IMAGE_SUFFIXES or path.suffix.lower() in video.VIDEO_SUFFIXES


def _output_name(path: Path) -> Path:
    """Videos are written as H.264, which WebM cannot hold: those become Matroska."""
    return path.with_suffix(".mkv") if path.suffix.lower() == ".webm" else path


def upscale_file(
    upscaler: Upscaler,
    source: str | Path,
    target: str | Path,
    progress: bool = False,
    encoding: video.Encoding | None = None,
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Upscale one image or video file into `target`, atomically (a half-written file is never left); a video is
    encoded with `encoding` (x264's defaults if None). Returns the (width, height) of the input and the output."""
    source, target = Path(source), Path(target)
    if target.resolve() == source.resolve() or (target.exists() and os.path.samefile(source, target)):
        raise SrkitError(f"{target}: is the input {source}; refusing to overwrite an input")
    if video.is_video(source):
        with atomic_path(target) as tmp:
            return video.upscale_video(upscaler, source, tmp, progress=progress, encoding=encoding)
    picture = read_image(source)
    height, width = upscaler.output_shape(picture.pixels)[:2]
    with atomic_path(target) as tmp:
        if target.suffix.lower() == ".png":  # streamed: the whole output is never in memory
            write_png(tmp, upscaler.bands(picture.pixels), height, width, picture.icc_profile)
        else:
            write_image(tmp, Picture(upscaler.upscale_array(picture.pixels), picture.icc_profile))
    return (picture.pixels.shape[1], picture.pixels.shape[0]), (width, height)


def upscale_files(
    upscaler: Upscaler,
    jobs: Sequence[Job],
    overwrite: bool = False,
    progress: bool = True,
    encoding: video.Encoding | None = None,
    manifest: Manifest | None = None,
) -> Summary:
    """Run the jobs, counting what became of each: upscaled, skipped (the output exists) or failed, and writing
    it to `manifest` if given.

    A file that fails is logged in one line and the run goes on. Existing outputs are kept unless
    `overwrite`; an input is never overwritten. The temporary files that a killed earlier run left in the output
    folders are deleted first.
    """
    for folder in {job.target.parent for job in jobs}:
        if removed := remove_orphans(folder):
            log.info("%s: deleted %d partial file(s) that a killed run left", folder, removed)
    summary = Summary()
    with logging_redirect_tqdm():
        for job in tqdm(jobs, unit="file", disable=not progress or len(jobs) < 2):
            start, sizes, error = time.perf_counter(), None, None
            if job.target.exists() and not overwrite and job.target.resolve() != job.source.resolve():
                status = "skipped"
            else:
                try:
                    sizes = upscale_file(upscaler, job.source, job.target, progress=progress, encoding=encoding)
                    status = "upscaled"
                except SrkitError as failure:
                    log.warning("%s", failure)
                    status, error = "failed", str(failure)
            setattr(summary, status, getattr(summary, status) + 1)
            if manifest:
                manifest.record(job.source, job.target, status, time.perf_counter() - start, sizes, error)
    return summary
