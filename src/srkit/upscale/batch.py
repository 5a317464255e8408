"""Upscaling files: images and videos, folders and glob patterns, each output written atomically, a failure counted."""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from srkit.errors import SrkitError
from srkit.files import atomic_path
from srkit.imaging import video
from srkit.imaging.io import IMAGE_SUFFIXES, Picture, read_image, write_image, write_png
from srkit.upscale.pipeline import Upscaler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One input file and the output it becomes."""

    source: Path
    target: Path


@dataclass
class Summary:
    """What a run over many files did."""

    upscaled: int = 0
    skipped: int = 0  # the output existed
    failed: int = 0

    def __str__(self) -> str:
        return f"{self.upscaled} upscaled, {self.skipped} skipped (exists), {self.failed} failed"


def plan(inputs: Sequence[str | Path], output: str | Path | None, scale: int) -> list[Job]:
    """The jobs for files, folders (searched recursively) and glob patterns.

    Without `output`, each result lands beside its input as NAME_x{scale}.EXT. With it, `output` is a file
    when there is one input file and it has a suffix (and is no folder); otherwise it is a folder where
    each result keeps its input's name, and its path relative to the input folder it was found in.
    """
    found: list[tuple[Path, Path]] = []  # (file, its name relative to the output folder)
    for item in map(str, inputs):
        path = Path(item)
        if path.is_dir():
            if output is None:  # outputs beside the inputs would be taken for inputs by the next run
                raise SrkitError(f"{item}: a folder needs -o OUTPUT_FOLDER")
            files = sorted(p for p in path.rglob("*") if p.is_file() and is_media(p))
            found += [(p, p.relative_to(path)) for p in files]
        elif path.exists():
            found.append((path, Path(path.name)))
        elif glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not matches:
                raise SrkitError(f"{item}: no file matches")
            found += [(p, Path(p.name)) for p in matches]
        else:
            raise SrkitError(f"{item}: no such file or folder")
    if output is None:
        return [Job(p, _output_name(p.with_name(f"{p.stem}_x{scale}{p.suffix}"))) for p, _ in found]
    output = Path(output)
    single = len(inputs) == 1 and len(found) == 1 and not Path(inputs[0]).is_dir()
    if single and output.suffix and not output.is_dir():
        return [Job(found[0][0], output)]
    return [Job(p, _output_name(output / relative)) for p, relative in found]


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
) -> None:
    """Upscale one image or video file into `target`, atomically (a half-written file is never left); a video is
    encoded with `encoding` (x264's defaults if None)."""
    source, target = Path(source), Path(target)
    if target.resolve() == source.resolve() or (target.exists() and os.path.samefile(source, target)):
        raise SrkitError(f"{target}: is the input {source}; refusing to overwrite an input")
    if video.is_video(source):
        with atomic_path(target) as tmp:
            video.upscale_video(upscaler, source, tmp, progress=progress, encoding=encoding)
        return
    picture = read_image(source)
    with atomic_path(target) as tmp:
        if target.suffix.lower() == ".png":  # streamed: the whole output is never in memory
            height, width = upscaler.output_shape(picture.pixels)[:2]
            write_png(tmp, upscaler.bands(picture.pixels), height, width, picture.icc_profile)
        else:
            write_image(tmp, Picture(upscaler.upscale_array(picture.pixels), picture.icc_profile))


def upscale_files(
    upscaler: Upscaler,
    jobs: Sequence[Job],
    overwrite: bool = False,
    progress: bool = True,
    encoding: video.Encoding | None = None,
) -> Summary:
    """Run the jobs, counting what became of each: upscaled, skipped (the output exists) or failed.

    A file that fails is logged in one line and the run goes on. Existing outputs are kept unless
    `overwrite`; an input is never overwritten.
    """
    summary = Summary()
    with logging_redirect_tqdm():
        for job in tqdm(jobs, unit="file", disable=not progress or len(jobs) < 2):
            if job.target.exists() and not overwrite and job.target.resolve() != job.source.resolve():
                summary.skipped += 1
                continue
            try:
                upscale_file(upscaler, job.source, job.target, progress=progress, encoding=encoding)
            except SrkitError as error:
                log.warning("%s", error)
                summary.failed += 1
            else:
                summary.upscaled += 1
    return summary
