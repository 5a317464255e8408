"""The web page's server: one static page and a small JSON API over the zoo's upscalers.

`POST /api/upscale` takes a multipart form: `image` (the LR input, upscaled as it is), `scale`, one `model`
field per zoo id, and optionally `hr`, the ground truth for PSNR/SSIM. It answers with one line of JSON per
step of the job: {"state": "queued", "ahead": N} while N jobs are ahead of it, {"state": "running"}, then
{"state": "done", ...} with every result (bicubic first) as a base64 PNG, or {"state": "error", "error": ...}.
One job runs at a time; the others wait in line, first come first served.

Uploads are decoded by srkit's reader through files in the server's temporary folder, removed at once;
results are encoded there too; the folder goes when the server stops.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import logging
import math
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from srkit import zoo
from srkit.data import modcrop
from srkit.errors import SrkitError
from srkit.evaluate import bicubic
from srkit.imaging.io import Picture, read_image, write_image
from srkit.metrics import psnr, ssim
from srkit.upscale import Upscaler

log = logging.getLogger(__name__)

STATIC = Path(str(resources.files("srkit.web") / "static"))
BASE_SCALES = (2, 3, 4)  # offered with bicubic alone while no zoo model has them
MB = 1_000_000


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the machine."""

    max_bytes: int = 50 * MB  # one upload: the image and its ground truth (which has scale^2 times its pixels)
    max_pixels: int = 1_000_000  # of the image; each result has scale^2 times as many
    max_waiting: int = 8  # jobs in line behind the running one; more are turned away

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value < 1:
                raise SrkitError(f"{name} must be positive, got {value}")


@dataclass(frozen=True)
class Job:
    """A validated request: the decoded image, the scale, the zoo ids and the mod-cropped ground truth."""

    image: Picture
    scale: int
    models: tuple[str, ...]
    truth: np.ndarray | None


class JobQueue:
    """One job at a time, first come first served; a waiting job learns how many jobs are ahead of it."""

    def __init__(self, max_waiting: int) -> None:
        self.max_waiting = max_waiting
        self._jobs: list[object] = []  # the running job first, then the waiting ones in order
        self._changed = asyncio.Event()

    @property
    def waiting(self) -> int:
        return max(len(self._jobs) - 1, 0)

    @property
    def running(self) -> int:
        return min(len(self._jobs), 1)

    def join(self) -> object:
        if self.waiting >= self.max_waiting:
            raise SrkitError(f"the server is busy ({self.waiting} waiting in line); try again in a while")
        job = object()
        self._jobs.append(job)
        return job

    async def ahead(self, job: object) -> AsyncIterator[int]:
        """The number of jobs ahead of `job` each time it changes; the iteration ends when it is its turn."""
        while (ahead := self._jobs.index(job)) > 0:
            changed = self._changed  # taken before yielding, so that no change is missed meanwhile
            yield ahead
            await changed.wait()

    def leave(self, job: object) -> None:
        self._jobs.remove(job)
        self._changed.set()
        self._changed = asyncio.Event()


def create_app(limits: Limits | None = None) -> Starlette:
    """The web app: the page at /, its API under /api (see the module docstring)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        with tempfile.TemporaryDirectory(prefix="srkit-web-") as folder:
            app.state.folder = Path(folder)
            app.state.queue = JobQueue(app.state.limits.max_waiting)
            yield

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/api/config", config),
            Route("/api/status", status),
            Route("/api/upscale", upscale, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC)),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.limits = limits or Limits()
    return app


async def page(request: Request) -> Response:
    return FileResponse(STATIC / "index.html")


async def config(request: Request) -> Response:
    """The scales and zoo models to choose from, and the limits."""
    records = zoo.records().values()
    return JSONResponse(
        {
            "scales": [{"scale": s, "models": [_describe(r, s) for r in records if s in r.scales]} for s in scales()],
            "limits": vars(request.app.state.limits),
        }
    )


def _describe(record: zoo.Record, scale: int) -> dict:
    set5 = record.score("Set5", scale)
    return {"id": record.id, "model": record.model, "params": record.params, "set5": set5 and set5.psnr}


async def status(request: Request) -> Response:
    queue = request.app.state.queue
    return JSONResponse({"running": queue.running, "waiting": queue.waiting})


async def upscale(request: Request) -> Response:
    state = request.app.state
    size = request.headers.get("content-length", "")
    if not size.isdigit():
        return _error("the upload has no Content-Length", 411)
    if int(size) > state.limits.max_bytes:
        limit = state.limits.max_bytes / MB
        return _error(f"the upload is {int(size) / MB:.3g} MB; this server takes at most {limit:.3g} MB", 413)
    try:
        async with request.form(max_files=2, max_fields=16) as form:
            job = await _parse(form, state.folder, state.limits)
    except SrkitError as error:
        return _error(str(error), 400)
    return StreamingResponse(_progress(state.queue, job, state.folder), media_type="application/x-ndjson")


async def _parse(form: FormData, folder: Path, limits: Limits) -> Job:
    """Check the form and decode its images, before the job waits in line."""
    image, hr = form.get("image"), form.get("hr")
    if not isinstance(image, UploadFile) or not image.filename:
        raise SrkitError("choose an image to upscale")
    scale = _scale(form.get("scale"))
    models = tuple(form.getlist("model"))
    for name in models:
        if name not in zoo.records() or scale not in zoo.record(name).scales:
            available = ", ".join(r.id for r in zoo.records().values() if scale in r.scales) or "none"
            raise SrkitError(f"no pretrained model {name!r} at x{scale}; available: {available}")

    def within_limit(width: int, height: int) -> str | None:
        if width * height > limits.max_pixels:
            return f"{width}x{height} is too many pixels: this server takes images of at most {limits.max_pixels:,}"
        return None

    picture = await run_in_threadpool(read_upload, await image.read(), image.filename, folder, within_limit)
    if not isinstance(hr, UploadFile) or not hr.filename:
        return Job(picture, scale, models, None)
    lr_height, lr_width = picture.pixels.shape[:2]

    def wrong_size(width: int, height: int) -> str:
        return (
            f"the ground truth is {width}x{height}; at x{scale} it must be {scale * lr_width}x{scale * lr_height} "
            f"({scale} times the {lr_width}x{lr_height} image), or up to {scale - 1} pixels larger"
        )

    def fits(width: int, height: int) -> str | None:  # before decoding: no larger than the largest right size
        too_large = width * height > scale * scale * (lr_width + 1) * (lr_height + 1)
        return wrong_size(width, height) if too_large else None

    truth = (await run_in_threadpool(read_upload, await hr.read(), hr.filename, folder, fits)).pixels
    cropped = modcrop(truth, scale)
    if cropped.shape[:2] != (scale * lr_height, scale * lr_width):
        raise SrkitError(f"{hr.filename}: {wrong_size(truth.shape[1], truth.shape[0])}")
    cropped = _measurable(cropped)
    if cropped.ndim != _measurable(picture.pixels).ndim:
        raise SrkitError(f"{hr.filename}: the image and its ground truth must both be grayscale or both colour")
    return Job(picture, scale, models, cropped)


def scales() -> list[int]:
    """The scales to choose from: those of the zoo's models, and bicubic's usual ones."""
    return sorted({*BASE_SCALES, *(s for r in zoo.records().values() for s in r.scales)})


def _scale(value: object) -> int:
    if not isinstance(value, str) or not value.isdigit() or int(value) not in scales():
        raise SrkitError(f"scale must be one of {', '.join(map(str, scales()))}, not {value!r}")
    return int(value)


def read_upload(data: bytes, name: str, folder: Path, check: Callable[[int, int], str | None]) -> Picture:
    """Decode an uploaded file with srkit's reader, through a file in `folder` that is removed at once.

    `check(width, height)` sees the size in the file's header before anything is decoded; what it returns, if
    anything, is why the file is refused.
    """
    path = folder / f"upload-{uuid.uuid4().hex}"
    path.write_bytes(data)
    try:
        size = _header_size(path)
        if size and (problem := check(*size)):
            raise SrkitError(f"{path}: {problem}")
        return read_image(path)
    except SrkitError as error:  # the upload's name, not the temporary file's
        raise SrkitError(str(error).replace(str(path), name)) from None
    finally:
        path.unlink(missing_ok=True)


def _header_size(path: Path) -> tuple[int, int] | None:
    try:
        with Image.open(path) as image:
            return image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None  # read_image says what is wrong with the file


async def _progress(queue: JobQueue, job: Job, folder: Path) -> AsyncIterator[str]:
    """The job's lines of JSON: its place in line while it waits, then its results."""
    start = time.perf_counter()
    try:
        ticket = queue.join()
    except SrkitError as error:
        yield _line(state="error", error=str(error))
        return
    try:
        async for ahead in queue.ahead(ticket):
            yield _line(state="queued", ahead=ahead)
        yield _line(state="running")
        waited = time.perf_counter() - start
        yield _line(state="done", waited=round(waited, 3), **await run_in_threadpool(compare, job, folder))
    except SrkitError as error:
        yield _line(state="error", error=str(error))
    except Exception as error:  # a bug: the page says so, the server log has the traceback
        log.exception("job failed")
        yield _line(state="error", error=f"internal error ({type(error).__name__}); see the server's log")
    finally:
        queue.leave(ticket)


def compare(job: Job, folder: Path) -> dict:
    """Bicubic and each model on the job's image: time, size, PSNR/SSIM against the ground truth, and PNG."""
    methods = {"bicubic": functools.partial(bicubic, scale=job.scale)}
    methods |= {name: load_upscaler(name, job.scale).upscale_array for name in job.models}
    results = []
    for name, method in methods.items():
        start = time.perf_counter()
        pixels = method(job.image.pixels)
        seconds = time.perf_counter() - start
        log.info("%s: %s x%d in %.3f s", name, "x".join(map(str, job.image.pixels.shape[1::-1])), job.scale, seconds)
        row = {"name": name, "width": pixels.shape[1], "height": pixels.shape[0], "seconds": round(seconds, 4)}
        if job.truth is not None:
            sr = _measurable(pixels)
            row["psnr"] = _number(psnr(sr, job.truth, job.scale))
            row["ssim"] = _number(ssim(sr, job.truth, job.scale))
        row["png"] = base64.b64encode(encode_png(Picture(pixels, job.image.icc_profile), folder)).decode()
        results.append(row)
    return {"scale": job.scale, "results": results}


@functools.lru_cache(maxsize=8)
def load_upscaler(name: str, scale: int) -> Upscaler:
    """A zoo model, warmed up (oneDNN compiles its kernels on the first call) so that the times shown are its own."""
    upscaler = zoo.load(name, scale=scale)
    upscaler.upscale_array(np.zeros((32, 32, 3), np.uint8))
    return upscaler


def encode_png(picture: Picture, folder: Path) -> bytes:
    """The PNG file of `picture` (16 bits kept), written by srkit's writer in `folder` and removed."""
    path = folder / f"result-{uuid.uuid4().hex}.png"
    try:
        write_image(path, picture)
        return path.read_bytes()
    finally:
        path.unlink(missing_ok=True)


def _measurable(pixels: np.ndarray) -> np.ndarray:
    """Gray or RGB without alpha, uint8 or float in [0, 1]: what the metrics take."""
    if pixels.ndim == 3 and pixels.shape[2] in (2, 4):
        pixels = pixels[..., 0] if pixels.shape[2] == 2 else pixels[..., :3]
    return pixels / 65535.0 if pixels.dtype == np.uint16 else pixels


def _number(value: float) -> float | str:
    """JSON has no infinity (identical images have an infinite PSNR)."""
    return round(value, 4) if math.isfinite(value) else "inf"


def _line(**message: object) -> str:
    return json.dumps(message) + "\n"


def _error(message: str, status_code: int) -> Response:
    return JSONResponse({"error": message}, status_code=status_code)


async def http_error(request: Request, error: HTTPException) -> Response:
    """Starlette's own errors (a malformed form, an unknown path) as JSON, like every other error."""
    return _error(str(error.detail), error.status_code)
