"""Video upscaling end to end: frames/s of `srkit upscale` on a clip, beside its network alone and bicubic.

For espcn and fsrcnn, 360p -> 1080p (x3) and 540p -> 1080p (x2): a clip (H.264, yuv420p, BT.601 limited range as
most camera and web video, with AAC audio) panning over a benchmark image, is upscaled as `srkit upscale` does it
(`srkit.upscale.upscale_file`: decode, network, H.264 encode at the default crf and preset, audio copied), and again
with x264's veryfast preset (`--preset veryfast`), the encoder's share of two cores being what bounds the end to end
rate. Beside them, in the same run: the network alone (the upscaler's per-frame work on decoded frames held in
memory, no decoding or encoding) and a bicubic-only upscaler (srkit's MATLAB bicubic on every plane) through the
same decode and encode path. With `--base SRC` (the `src` of another checkout, e.g. `git worktree add /tmp/base
COMMIT`), that version's `upscale_file` runs on the same clips too, round by round in alternating order with this
one (this CPU's speed swings ~2x within a day), each version in a process of its own. Medians over the rounds; CSV in
benchmarks/results/ with the CPU named. `--parts MODEL` times each stage apart instead (decoding, the upscaler on 1
and 2 threads, Cb/Cr bicubic, x264 at four presets). Run it with the machine quiet.

    git worktree add /tmp/base 11c903a   # the commit before the video change (issue 36)
    python benchmarks/video_speed.py --data-root ../shared/datasets --base /tmp/base/src
    python benchmarks/video_speed.py --data-root ../shared/datasets --parts espcn-x3 --frames 60
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
OUTPUT = (1080, 1920)
CASES = {2: "540p", 3: "360p"}  # scale -> source height; both give 1920x1080
MODELS = ("espcn", "fsrcnn")
FPS = 30
AUDIO_RATE = 48000
IMAGE = "Urban100/img_004.png"  # a street scene: edges and texture for the encoder, as real video has


def make_clip(path: Path, image: Path, scale: int, frames: int) -> None:
    """A clip of `frames` frames at the source size of `scale`, panning across `image`, with stereo AAC audio."""
    import av
    import numpy as np
    from PIL import Image

    height, width = OUTPUT[0] // scale, OUTPUT[1] // scale
    picture = Image.open(image).convert("RGB")
    cover = max(1.3 * width / picture.width, 1.3 * height / picture.height)
    picture = np.asarray(picture.resize((round(picture.width * cover), round(picture.height * cover)), Image.LANCZOS))
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS, options={"crf": "18", "preset": "veryfast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream("aac", rate=AUDIO_RATE)
        for i in range(frames):
            t = i / max(frames - 1, 1)  # a diagonal pan over the picture
            y0, x0 = round(t * (picture.shape[0] - height)), round(t * (picture.shape[1] - width))
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture[y0 : y0 + height, x0 : x0 + width]))
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        samples = AUDIO_RATE * frames // FPS
        tone = np.sin(np.arange(samples) * 2 * np.pi * 440 / AUDIO_RATE).astype(np.float32)
        chunk = 1024
        for start in range(0, samples, chunk):
            block = np.ascontiguousarray(tone[None, start : start + chunk].repeat(2, 0))
            sound = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
            sound.sample_rate, sound.pts = AUDIO_RATE, start
            container.mux(audio.encode(sound))
        container.mux(audio.encode(None))


class BicubicFrames:
    """A FrameUpscaler with no network: srkit's MATLAB bicubic on every plane (Y, Cb, Cr), or on RGB."""

    luma_only = True

    def __init__(self, scale: int) -> None:
        import numpy as np
        import torch

        from srkit.upscale.runtime import Bicubic

        self.scale = scale
        self.plane = Bicubic(scale, np.eye(1), np.array([0.5]), torch.device("cpu"))  # +0.5: the cast truncates

    def _planes(self, planes):
        import torch

        with torch.no_grad():
            x = torch.from_numpy(planes).float()[:, None]
            return self.plane(x).clamp_(0, 255.5).to(torch.uint8)[:, 0].numpy()

    def upscale_yuv420(self, y, chroma, coding):
        return self._planes(y[None])[0], self._planes(chroma)

    def upscale_array(self, pixels):
        return self._planes(pixels.transpose(2, 0, 1)).transpose(1, 2, 0)


def decoded(clip: Path, count: int):
    """The first `count` frames of the clip as the video path hands them to its upscaler: 4:2:0 planes."""
    import av

    from srkit.imaging.video import yuv420_planes

    frames = []
    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            frames.append(yuv420_planes(frame))
            if len(frames) == count:
                break
    return frames


def timed(fn, items: list) -> tuple[float, list]:
    """ms per item of fn over the items, and the results."""
    start = time.perf_counter()
    results = [fn(item) for item in items]
    return (time.perf_counter() - start) / len(items) * 1e3, results


def parts(clip: Path, model: str, count: int = 60) -> None:
    """Print each stage of the video path timed apart, in ms a frame: decoding, the upscaler on 1 and 2 threads,
    Cb/Cr bicubic, and x264 encoding of the upscaled frames at a few presets."""
    import av
    import torch

    from srkit import zoo
    from srkit.imaging.color import YuvCoding
    from srkit.imaging.video import yuv420_frame
    from srkit.upscale import Upscaler

    start = time.perf_counter()
    frames, coding = decoded(clip, count), YuvCoding("bt601", False)
    print(f"decoding: {(time.perf_counter() - start) / len(frames) * 1e3:.1f}")
    upscaler = Upscaler(zoo.load_model(model, None, None, "cpu"))
    for threads in (2, 1):
        torch.set_num_threads(threads)
        upscaler.upscale_yuv420(*frames[0], coding)  # warm-up
        ms, upscaled = timed(lambda planes: upscaler.upscale_yuv420(*planes, coding), frames)
        print(f"{model} upscaler, {threads} thread(s): {ms:.1f}")
    torch.set_num_threads(2)
    bicubic = BicubicFrames(upscaler.scale)
    print(f"Cb/Cr bicubic: {timed(lambda planes: bicubic._planes(planes[1]), frames)[0]:.1f}")
    height, width = upscaled[0][0].shape
    for preset in ("medium", "fast", "faster", "veryfast"):
        with av.open(str(clip.with_name("encoded.mp4")), "w") as container:
            stream = container.add_stream("libx264", rate=FPS, options={"crf": "23", "preset": preset})
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"

            start = time.perf_counter()
            for planes in upscaled:
                container.mux(stream.encode(yuv420_frame(*planes)))
            container.mux(stream.encode(None))  # the frames still in x264's lookahead and threads
            print(f"x264 {preset}: {(time.perf_counter() - start) / len(upscaled) * 1e3:.1f}")


def worker() -> None:
    """One version of srkit (from PYTHONPATH): for each JSON request on stdin, run it and print its seconds."""
    import srkit
    from srkit import zoo
    from srkit.upscale import Upscaler, upscale_file

    upscalers: dict[str, object] = {}
    print(json.dumps({"srkit": srkit.__file__}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        model, clip, out = request["model"], Path(request["clip"]), Path(request["out"])
        if model not in upscalers:
            upscalers[model] = (
                BicubicFrames(int(model.split("x")[-1]))
                if model.startswith("bicubic")
                else Upscaler(zoo.load_model(model, None, None, "cpu"))
            )
        upscaler = upscalers[model]
        if request["kind"] == "network":  # per frame, as the video path calls it (this version only: the base may
            # predate the YUV path, so what it lacks is imported here)
            from srkit.imaging.color import YuvCoding

            frames, coding = decoded(clip, request["frames"]), YuvCoding("bt601", False)
            upscaler.upscale_yuv420(*frames[0], coding)  # warm-up
            start = time.perf_counter()
            for planes in frames:
                upscaler.upscale_yuv420(*planes, coding)
            seconds, count = time.perf_counter() - start, len(frames)
        else:
            out.unlink(missing_ok=True)
            options = {}
            if request.get("preset"):  # this version only: the base may predate --preset
                from srkit.imaging.video import Encoding

                options["encoding"] = Encoding(preset=request["preset"])
            start = time.perf_counter()
            upscale_file(upscaler, clip, out, **options)
            seconds, count = time.perf_counter() - start, request["frames"]
        print(json.dumps({"seconds": seconds, "frames": count}), flush=True)


class Version:
    """A worker process running the srkit of one source tree."""

    def __init__(self, label: str, src: Path) -> None:
        self.label = label
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), str(Path(__file__).parent)]))
        command = [sys.executable, "-c", "import video_speed; video_speed.worker()"]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.path = self._answer()["srkit"]

    def _answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"video_speed: the {self.label} worker died (its traceback is above)")
        return json.loads(line)

    def run(self, **request) -> float:
        """frames/s of one request."""
        self.process.stdin.write(json.dumps(request, default=str) + "\n")
        self.process.stdin.flush()
        answer = self._answer()
        return answer["frames"] / answer["seconds"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


THIS, BASE, BICUBIC, NETWORK = "end to end (this)", "end to end (base)", "bicubic only", "network only"
FAST = "veryfast"  # the x264 preset of a second end-to-end run of this version: the encoder's share of the CPU


def measure(versions: list[Version], model: str, scale: int, clip: Path, frames: int, rounds: int) -> dict:
    """frames/s by run, round by round: each version end to end and bicubic through the same path, in alternating
    order, and the network alone (on at most 30 frames)."""
    runs = [(version, f"end to end ({version.label})", model, None) for version in versions]
    runs.append((versions[0], f"end to end (this, {FAST})", model, FAST))
    runs.append((versions[0], BICUBIC, f"bicubic-x{scale}", None))
    out = clip.with_name("out.mp4")
    fps: dict[str, list[float]] = {}
    for r in range(rounds):
        for version, key, name, preset in runs if r % 2 == 0 else runs[::-1]:
            speed = version.run(kind="file", model=name, clip=clip, out=out, frames=frames, preset=preset)
            fps.setdefault(key, []).append(speed)
        network = versions[0].run(kind="network", model=model, clip=clip, out=out, frames=min(frames, 30))
        fps.setdefault(NETWORK, []).append(network)
    return fps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=os.environ.get("SRKIT_DATA"))
    parser.add_argument("--base", type=Path, help="the src folder of another srkit checkout, timed beside this one")
    parser.add_argument("--frames", type=int, default=150, help="frames per clip (at 30 fps)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--scales", nargs="+", type=int, default=sorted(CASES, reverse=True))
    parser.add_argument("--name", default="video_speed", help="basename of the CSV written")
    parser.add_argument("--parts", metavar="MODEL", help="only time each stage apart for MODEL (e.g. espcn-x3)")
    args = parser.parse_args()
    if args.data_root is None:
        parser.error("give --data-root (or set SRKIT_DATA)")
    sys.path.insert(0, str(Path(__file__).parents[1] / "src"))
    if args.parts:
        with tempfile.TemporaryDirectory() as tmp:
            clip = Path(tmp) / "clip.mp4"
            make_clip(clip, args.data_root / IMAGE, int(args.parts.split("x")[-1]), args.frames)
            parts(clip, args.parts, min(args.frames, 60))
        return
    from srkit.files import write_csv
    from srkit.machine import cpu

    machine = cpu()
    print(machine)
    versions = [Version("this", Path(__file__).parents[1] / "src")]
    if args.base:
        versions.append(Version("base", args.base))
    for version in versions:
        print(f"{version.label}: {version.path}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scale in args.scales:
            clip = Path(tmp) / f"{CASES[scale]}.mp4"
            make_clip(clip, args.data_root / IMAGE, scale, args.frames)
            for model in (f"{name}-x{scale}" for name in args.models):
                fps = measure(versions, model, scale, clip, args.frames, args.rounds)
                medians = {key: statistics.median(values) for key, values in fps.items()}
                for key, median in medians.items():
                    row = {
                        "model": model,
                        "video": f"{CASES[scale]} -> 1080p",
                        "run": key,
                        "frames_per_s": f"{median:.2f}",
                        "rounds": " ".join(f"{v:.2f}" for v in fps[key]),
                        "over_network_only": f"{median / medians[NETWORK]:.2f}",
                        "over_base": f"{median / medians[BASE]:.2f}" if args.base and key.startswith(THIS[:-1]) else "",
                        "frames": args.frames,
                        "cpu": machine,
                    }
                    rows.append(row)
                    over_base = f", {row['over_base']}x base" if row["over_base"] else ""
                    print(
                        f"{model:<10} {row['video']:<15} {key:<28} {row['frames_per_s']:>6} frames/s "
                        f"({row['over_network_only']}x network only{over_base})"
                    )
    for version in versions:
        version.close()
    write_csv(RESULTS / f"{args.name}.csv", rows)


if __name__ == "__main__":
    main()
