"""Video upscaling, streaming (PyAV): H.264 out; frame rate, audio and colour description kept.

ESPCN's headline is real-time video SR. Frames flow through three threads with short queues between them: one
demuxes and decodes, the calling thread runs the network, one encodes and muxes; PyAV and torch release the GIL
while they work, so decoding and H.264 encoding overlap the network. A video of any length needs the memory of a few
frames, and the frames keep their order. The audio stream is copied packet by packet when the output container can
hold its codec, and re-encoded to AAC otherwise.

A Y network on an 8-bit 4:2:0 video (nearly every video) works on the decoded planes: Y through the network, Cb and
Cr with bicubic at their own resolution, with no trip through RGB (`srkit.Upscaler.upscale_yuv420`); other networks
and sources go through RGB. Either way the output keeps the source's matrix, range, primaries and transfer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import numpy as np
from tqdm import tqdm

from srkit.errors import SrkitError
from srkit.imaging.color import YuvCoding
from srkit.imaging.io import IMAGE_SUFFIXES

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm")
VIDEO_CODEC = "libx264"
PIXEL_FORMAT = "yuv420p"  # what every player decodes; it halves the chroma, so width and height must be even
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")
# The matrices (ITU-T H.273 matrix_coefficients, FFmpeg's AVColorSpace) whose frames can stay YUV, by their names in
# srkit.imaging.color.MATRICES. Unspecified (2) is read as BT.601, as FFmpeg's converter reads it, and written as
# BT.601 (smpte170m, 6): players guess BT.709 for HD, and would show the output in other colours than the source.
MATRICES = {1: "bt709", 2: "bt601", 4: "fcc", 5: "bt601", 6: "bt601", 7: "smpte240m", 9: "bt2020nc"}
UNSPECIFIED, SMPTE170M = 2, 6
LIMITED, FULL = 1, 2  # AVColorRange
YUV420 = ("yuv420p", "yuvj420p")  # 8-bit 4:2:0, as decoders give it; yuvj is full range
QUEUE_FRAMES = 3  # frames waiting between two threads: one slow frame is ridden out, memory stays small
POLL_SECONDS = 0.1  # how often a waiting thread looks whether another one has failed


class FrameUpscaler(Protocol):
    """What a video needs of an upscaler (`srkit.Upscaler` is one): imaging does not depend on the upscaling."""

    scale: int

    @property
    def luma_only(self) -> bool: ...

    def upscale_array(self, pixels: np.ndarray) -> np.ndarray: ...

    def upscale_yuv420(self, y: np.ndarray, chroma: np.ndarray, coding: YuvCoding) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class Encoding:
    """H.264 (x264) settings: the constant rate factor (0 lossless, 51 worst) and the speed preset; x264's defaults."""

    crf: float = 23
    preset: str = "medium"

    def __post_init__(self) -> None:
        if not 0 <= self.crf <= 51:
            raise SrkitError(f"crf must be from 0 (lossless) to 51, got {self.crf:g}")
        if self.preset not in PRESETS:
            raise SrkitError(f"unknown x264 preset {self.preset!r}; choose one of {', '.join(PRESETS)}")

    def options(self) -> dict[str, str]:
        return {"crf": f"{self.crf:g}", "preset": self.preset}


def is_video(path: str | Path) -> bool:
    """A video by its suffix; a file with another suffix that is no image is probed for a video stream."""
    suffix = Path(path).suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return True
    if suffix in IMAGE_SUFFIXES:
        return False
    try:
        with av.open(str(path)) as container:
            # FFmpeg opens still images too, as one-frame "pipe" formats.
            return bool(container.streams.video) and not container.format.name.endswith("_pipe")
    except (av.FFmpegError, OSError, ValueError):
        return False


def upscale_video(
    upscaler: FrameUpscaler,
    source: str | Path,
    target: str | Path,
    progress: bool = True,
    encoding: Encoding | None = None,
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Upscale every frame of `source` into `target` (H.264, the same frame rate, the audio and colours kept).
    Returns the (width, height) of the source and the output."""
    try:
        with av.open(str(source)) as src, _open_output(target) as dst:
            return _transcode(upscaler, src, dst, progress, encoding or Encoding())
    except av.FFmpegError as error:
        raise SrkitError(f"{source}: cannot upscale the video ({error})") from None
    except SrkitError as error:
        raise SrkitError(f"{source}: {error}") from None


def _open_output(path: str | Path) -> av.container.OutputContainer:
    try:
        return av.open(str(path), "w")
    except ValueError:  # FFmpeg has no muxer for the suffix
        raise SrkitError(f"no video format is known for the output suffix {Path(path).suffix!r}") from None


@dataclass(frozen=True)
class _Colour:
    """The output's colour description: the source's, with the matrix and the range made explicit; `coding` where
    frames stay YUV (a Y network on an 8-bit 4:2:0 source in a matrix of MATRICES), else None."""

    matrix: int
    full_range: bool
    primaries: int
    trc: int
    coding: YuvCoding | None

    @classmethod
    def of(cls, stream: av.video.stream.VideoStream, luma_only: bool) -> _Colour:
        context = stream.codec_context
        rgb = context.format is not None and context.format.is_rgb
        full = not rgb and (context.color_range == FULL or (context.pix_fmt or "").startswith("yuvj"))
        known = context.colorspace in MATRICES
        coding = YuvCoding(MATRICES[context.colorspace], full) if known else None
        yuv = luma_only and context.pix_fmt in YUV420 and coding is not None
        matrix = context.colorspace if known and context.colorspace != UNSPECIFIED else SMPTE170M
        return cls(matrix, full, context.color_primaries, context.color_trc, coding if yuv else None)


@dataclass
class _Picture:
    """A video frame on its way through the threads: its 4:2:0 planes or its RGB pixels, and its time."""

    pts: int | None
    time_base: Fraction | None
    planes: tuple[np.ndarray, np.ndarray] | None = None  # Y (H, W) and Cb, Cr (2, H/2, W/2), uint8
    rgb: np.ndarray | None = None


class _Stopped(Exception):
    """Another thread of the pipeline failed (or the caller was interrupted): this one stops too."""


class _Pipe:
    """A bounded queue from one thread to the next, whose ends give up when `stop` is set."""

    _END = object()

    def __init__(self, stop: threading.Event) -> None:
        self.queue: queue.Queue = queue.Queue(QUEUE_FRAMES)
        self.stop = stop

    def put(self, item: object) -> None:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                self.queue.put(item, timeout=POLL_SECONDS)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        self.put(self._END)

    def __iter__(self) -> Iterator:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                item = self.queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            if item is self._END:
                return
            yield item


class _Worker(threading.Thread):
    """A pipeline thread: what it raises is kept for the calling thread, and stops the others."""

    def __init__(self, work: Callable[[], None], stop: threading.Event, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.work, self.stop, self.error = work, stop, None

    def run(self) -> None:
        try:
            self.work()
        except _Stopped:
            pass
        except BaseException as error:  # re-raised in the calling thread
            self.error = error
            self.stop.set()


def _transcode(
    upscaler: FrameUpscaler,
    src: av.container.InputContainer,
    dst: av.container.OutputContainer,
    progress: bool,
    encoding: Encoding,
) -> tuple[tuple[int, int], tuple[int, int]]:
    if not src.streams.video:
        raise SrkitError("no video stream")
    if VIDEO_CODEC not in dst.supported_codecs:
        raise SrkitError(f"the output format {dst.format.name} cannot hold H.264 video: write .mp4, .mkv or .mov")
    video_in = src.streams.video[0]
    rate = video_in.average_rate or video_in.guessed_rate or 25
    video_out = dst.add_stream(VIDEO_CODEC, rate=rate, options=encoding.options())
    # yuv420p needs even sizes: drop the last row or column of an odd upscaled size.
    size = video_in.codec_context.width, video_in.codec_context.height
    width, height = size[0] * upscaler.scale // 2 * 2, size[1] * upscaler.scale // 2 * 2
    video_out.width, video_out.height, video_out.pix_fmt = width, height, PIXEL_FORMAT
    colour = _Colour.of(video_in, upscaler.luma_only)
    context = video_out.codec_context
    context.colorspace, context.color_range = colour.matrix, FULL if colour.full_range else LIMITED
    context.color_primaries, context.color_trc = colour.primaries, colour.trc
    audio_in = src.streams.audio[0] if src.streams.audio else None
    copy_audio = audio_in is not None and audio_in.codec_context.name in dst.supported_codecs
    if audio_in is None:
        audio_out = None
    elif copy_audio:
        audio_out = dst.add_stream_from_template(audio_in)
    else:
        audio_out = dst.add_stream("aac", rate=audio_in.codec_context.sample_rate)  # stereo: mono is upmixed

    def decode(put: Callable[[object], None]) -> None:
        """Demux and decode: audio packets (or frames, to re-encode) and video frames as _Pictures, in order."""
        streams = [video_in] + ([audio_in] if audio_in is not None else [])
        for packet in src.demux(streams):
            if packet.stream is audio_in:
                if not copy_audio:
                    for frame in packet.decode():
                        put(frame)
                elif packet.dts is not None:  # not the demuxer's final empty packet
                    put(packet)
                continue
            for frame in packet.decode():
                put(_picture(frame, colour.coding is not None and (frame.width, frame.height) == size))

    def upscale(item: object) -> object:
        if isinstance(item, _Picture):
            _upscale(upscaler, item, width, height, colour.coding)
            bar.update()
        return item

    def encode(items: Iterable[object]) -> None:
        """Encode and mux in the order the items come; at the end, flush the encoders."""
        for item in items:
            if isinstance(item, _Picture):
                dst.mux(video_out.encode(_frame(item, width, height, colour)))
            elif isinstance(item, av.Packet):
                item.stream = audio_out
                dst.mux(item)
            else:
                dst.mux(audio_out.encode(item))
        dst.mux(video_out.encode(None))
        if audio_out is not None and not copy_audio:
            dst.mux(audio_out.encode(None))

    with tqdm(total=video_in.frames or None, unit="frame", disable=not progress, leave=False) as bar:
        _overlapped(decode, upscale, encode)
    return size, (width, height)


def _overlapped(
    produce: Callable[[Callable[[object], None]], None],
    transform: Callable[[object], object],
    consume: Callable[[Iterable[object]], None],
) -> None:
    """produce(put) in a thread, transform(item) in this one, consume(items) in another, in order, with bounded
    queues between them. What any of the three raises (Ctrl-C here included) stops the other two, and is raised here
    once they have stopped: what they work on (the containers) may then be closed."""
    stop = threading.Event()
    produced, transformed = _Pipe(stop), _Pipe(stop)

    def producer() -> None:
        produce(produced.put)
        produced.close()

    workers = [
        _Worker(producer, stop, "srkit-video-decode"),
        _Worker(lambda: consume(transformed), stop, "srkit-video-encode"),
    ]
    for worker in workers:
        worker.start()
    try:
        for item in produced:
            transformed.put(transform(item))
        transformed.close()
        workers[1].join()
    except _Stopped:
        pass  # a worker failed: its error is raised below
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    for worker in workers:
        if worker.error is not None:
            raise worker.error


def _picture(frame: av.VideoFrame, yuv: bool) -> _Picture:
    """A decoded frame's planes (copied out of the decoder's buffers) where it stays YUV (and is 4:2:0), else its RGB
    pixels."""
    picture = _Picture(frame.pts, frame.time_base)
    if yuv and frame.format.name in YUV420:
        picture.planes = yuv420_planes(frame)
    else:  # FFmpeg converts with the frame's own matrix and range
        picture.rgb = frame.to_ndarray(format="rgb24")
    return picture


def yuv420_planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray]:
    """A 4:2:0 frame's Y (H, W) and Cb, Cr (2, H/2, W/2), uint8, copied out of the decoder's buffers."""
    y, cb, cr = (_plane(p) for p in frame.planes)
    return np.array(y), np.stack([cb, cr])


def yuv420_frame(y: np.ndarray, chroma: np.ndarray) -> av.VideoFrame:
    """A yuv420p frame holding Y (H, W) and Cb, Cr (2, H/2, W/2)."""
    frame = av.VideoFrame(y.shape[1], y.shape[0], PIXEL_FORMAT)
    for plane, pixels in zip(frame.planes, (y, *chroma), strict=True):
        _plane(plane)[:] = pixels
    return frame


def _plane(plane: av.video.plane.VideoPlane) -> np.ndarray:
    """A frame plane's pixels, a view without the rows' padding."""
    return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]


def _upscale(upscaler: FrameUpscaler, picture: _Picture, width: int, height: int, coding: YuvCoding | None) -> None:
    """Upscale a _Picture in place, cropped to the output's even size."""
    if picture.planes is not None:
        y, chroma = upscaler.upscale_yuv420(*picture.planes, coding)
        picture.planes = y[:height, :width], chroma[:, : height // 2, : width // 2]
    else:
        picture.rgb = upscaler.upscale_array(picture.rgb)[:height, :width]


def _frame(picture: _Picture, width: int, height: int, colour: _Colour) -> av.VideoFrame:
    """The encoder's yuv420p frame of an upscaled _Picture, in the output's matrix and range."""
    if picture.planes is not None:
        frame = yuv420_frame(*picture.planes)
        frame.colorspace, frame.color_range = colour.matrix, FULL if colour.full_range else LIMITED
    else:
        rgb = av.VideoFrame.from_ndarray(picture.rgb, format="rgb24")
        frame = rgb.reformat(
            width,
            height,
            PIXEL_FORMAT,
            dst_colorspace=_SWS_COLORSPACES[colour.matrix],
            dst_color_range=FULL if colour.full_range else LIMITED,
        )
    frame.pts, frame.time_base = picture.pts, picture.time_base
    return frame


# FFmpeg's converter names its matrices in its own numbers (SWS_CS_*), by name here.
_SWS_COLORSPACES = {1: "itu709", 4: "fcc", 5: "itu601", 6: "smpte170m", 7: "smpte240m", 9: "bt2020"}
