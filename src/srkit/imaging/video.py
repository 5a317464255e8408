"""Video upscaling, frame by frame and streaming (PyAV): H.264 out, frame rate and audio kept.

ESPCN's headline is real-time video SR: frames are decoded, upscaled and encoded one at a time, so a
video of any length needs the memory of a few frames. The audio stream is copied packet by packet when
the output container can hold its codec, and re-encoded to AAC otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import av
import numpy as np
from tqdm import tqdm

from srkit.errors import SrkitError
from srkit.imaging.io import IMAGE_SUFFIXES

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm")
VIDEO_CODEC = "libx264"
PIXEL_FORMAT = "yuv420p"  # what every player decodes; it halves the chroma, so width and height must be even


class FrameUpscaler(Protocol):
    """What a video needs of an upscaler (`srkit.Upscaler` is one): imaging does not depend on the upscaling."""

    scale: int

    def upscale_array(self, pixels: np.ndarray) -> np.ndarray: ...


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


def upscale_video(upscaler: FrameUpscaler, source: str | Path, target: str | Path, progress: bool = True) -> None:
    """Upscale every frame of `source` into `target` (H.264, the same frame rate, the audio kept)."""
    try:
        with av.open(str(source)) as src, _open_output(target) as dst:
            _transcode(upscaler, src, dst, progress)
    except av.FFmpegError as error:
        raise SrkitError(f"{source}: cannot upscale the video ({error})") from None
    except SrkitError as error:
        raise SrkitError(f"{source}: {error}") from None


def _open_output(path: str | Path) -> av.container.OutputContainer:
    try:
        return av.open(str(path), "w")
    except ValueError:  # FFmpeg has no muxer for the suffix
        raise SrkitError(f"no video format is known for the output suffix {Path(path).suffix!r}") from None


def _transcode(
    upscaler: FrameUpscaler, src: av.container.InputContainer, dst: av.container.OutputContainer, progress: bool
) -> None:
    if not src.streams.video:
        raise SrkitError("no video stream")
    if VIDEO_CODEC not in dst.supported_codecs:
        raise SrkitError(f"the output format {dst.format.name} cannot hold H.264 video: write .mp4, .mkv or .mov")
    video_in = src.streams.video[0]
    video_out = dst.add_stream(VIDEO_CODEC, rate=video_in.average_rate or video_in.guessed_rate or 25)
    # yuv420p needs even sizes: drop the last row or column of an odd upscaled size.
    width = video_in.codec_context.width * upscaler.scale // 2 * 2
    height = video_in.codec_context.height * upscaler.scale // 2 * 2
    video_out.width, video_out.height, video_out.pix_fmt = width, height, PIXEL_FORMAT
    audio_in = src.streams.audio[0] if src.streams.audio else None
    copy_audio = audio_in is not None and audio_in.codec_context.name in dst.supported_codecs
    if audio_in is None:
        audio_out = None
    elif copy_audio:
        audio_out = dst.add_stream_from_template(audio_in)
    else:
        audio_out = dst.add_stream("aac", rate=audio_in.codec_context.sample_rate)  # stereo: mono is upmixed
    streams = [video_in] + ([audio_in] if audio_in is not None else [])
    with tqdm(total=video_in.frames or None, unit="frame", disable=not progress, leave=False) as bar:
        for packet in src.demux(streams):
            if packet.stream is audio_in:
                if copy_audio:
                    if packet.dts is not None:  # the demuxer's final empty packet
                        packet.stream = audio_out
                        dst.mux(packet)
                else:
                    for frame in packet.decode():
                        dst.mux(audio_out.encode(frame))
                continue
            for frame in packet.decode():
                pixels = upscaler.upscale_array(frame.to_ndarray(format="rgb24"))[:height, :width]
                out = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                out.pts, out.time_base = frame.pts, frame.time_base
                dst.mux(video_out.encode(out))
                bar.update()
    dst.mux(video_out.encode(None))
    if audio_out is not None and not copy_audio:
        dst.mux(audio_out.encode(None))
