"""Video: frame count, frame rate and audio survive upscaling; odd sizes are cropped to even ones."""

from __future__ import annotations

import fractions
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from srkit import models
from srkit.cli import main
from srkit.imaging.video import is_video
from srkit.zoo import save_weights

FRAMES, FPS, WIDTH, HEIGHT = 12, 10, 32, 24


def make_video(path: Path, width: int, height: int, codec: str, pixel_format: str, audio: str | None) -> None:
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=FPS)
        video.width, video.height, video.pix_fmt = width, height, pixel_format
        sound = container.add_stream(audio, rate=8000) if audio else None
        for i in range(FRAMES):
            pixels = np.full((height, width, 3), 20 * i, np.uint8)
            pixels[:, : i + 1] = 255
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = i, fractions.Fraction(1, FPS)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            samples = np.sin(np.arange(8000 * FRAMES // FPS) / 3).astype(np.float32)[None].repeat(2, 0)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 8000, 0
            container.mux(sound.encode(frame))
            container.mux(sound.encode(None))


def probe(path: Path) -> tuple[int, int, int, fractions.Fraction, list[str]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        audio = [s.codec_context.name for s in container.streams.audio]
        frames = sum(1 for _ in container.decode(video=0))
        return frames, stream.codec_context.width, stream.codec_context.height, stream.average_rate, audio


@pytest.fixture
def weights(tmp_path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "espcn.safetensors"
    save_weights(models.build("espcn", 3), path, {})
    return path


def test_video_keeps_frames_rate_and_audio(tmp_path, weights, capsys):
    source = tmp_path / "clip.mp4"
    make_video(source, WIDTH, HEIGHT, "libx264", "yuv420p", "aac")
    target = tmp_path / "big.mp4"
    assert main(["upscale", str(source), "-o", str(target), "--weights", str(weights)]) == 0
    assert probe(target) == (FRAMES, 3 * WIDTH, 3 * HEIGHT, FPS, ["aac"])
    assert list(tmp_path.glob(".*")) == []  # the temporary file was renamed into place


def test_odd_sizes_are_cropped_to_even(tmp_path, weights, capsys):
    source = tmp_path / "odd.mkv"
    make_video(source, 15, 11, "mjpeg", "yuvj444p", None)
    target = tmp_path / "big.mkv"
    assert main(["upscale", str(source), "-o", str(target), "--weights", str(weights)]) == 0
    assert probe(target) == (FRAMES, 44, 32, FPS, [])


def test_video_is_recognised_by_probing(tmp_path):
    make_video(tmp_path / "clip.mp4", WIDTH, HEIGHT, "libx264", "yuv420p", None)
    (tmp_path / "clip.mp4").rename(tmp_path / "clip.bin")
    (tmp_path / "text.bin").write_text("no video")
    assert is_video(tmp_path / "clip.bin") and not is_video(tmp_path / "text.bin")
    assert is_video(tmp_path / "anything.webm") and not is_video(tmp_path / "photo.png")


def test_bad_videos_fail_in_one_line(tmp_path, weights, capsys, caplog):
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 but nothing else")
    (tmp_path / "empty.mkv").write_bytes(b"")
    make_video(tmp_path / "clip.mp4", WIDTH, HEIGHT, "libx264", "yuv420p", None)
    assert main(["upscale", str(tmp_path / "*.m*"), "-o", str(tmp_path / "out"), "--weights", str(weights)]) == 1
    assert "1 upscaled, 0 skipped (exists), 2 failed" in capsys.readouterr().out
    failures = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert sorted(m.split(":")[0] for m in failures) == [str(tmp_path / "corrupt.mp4"), str(tmp_path / "empty.mkv")]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip.mp4"]
    main(["upscale", str(tmp_path / "clip.mp4"), "-o", str(tmp_path / "clip.webm"), "--weights", str(weights)])
    assert "cannot hold H.264" in caplog.records[-1].getMessage()
