"""srkit against OpenCV's dnn_superres on the same architectures, producing one 1920x1080 frame on the CPU.

ESPCN, FSRCNN and FSRCNN-small (the peer's files in ../shared/peers/opencv_dnn_superres) at x2, x3 and x4, and plain
bicubic (OpenCV) as a floor, interleaved round by round (this CPU's speed swings ~2x within seconds); medians and the
interquartile range. OpenCV runs in a process of its own, as a user gets it: srkit's Upscaler sets glibc's
allocator to keep freed buffers (see srkit.upscale.runtime.keep_freed_memory), which speeds OpenCV up as well when it
runs in srkit's process (`--same-process`, written to upscale_speed_same_process.csv). srkit runs the same networks
through `srkit.Upscaler` (Y with the network, Cb/Cr bicubic) with random weights: the cost does not depend on the
values. OpenCV's ESPCN files have ReLU hidden layers and a tanh on the output where srkit's `espcn` has the paper's
tanh hidden layers: "espcn" is built like the files, and "espcn-paper" (srkit's zoo network) is timed beside it
against the same OpenCV model. Also reports the share of this CPU's measured convolution throughput (64->64 3x3,
channels_last) srkit reaches, and what its fast path costs in quality: the PSNR (Y, protocol) against the HR frame
of the Upscaler's output minus that of srkit's plain fp32 pipeline (the network as built, imresize for Cb/Cr, the
colour functions), and the PSNR between the two. Each row names the CPU (model, cores, the vector ISA torch uses).
Needs opencv-contrib-python-headless, a benchmark-only dependency: `pip install -e '.[bench]'`.

    python benchmarks/upscale_speed.py [--peers ../shared/peers/opencv_dnn_superres] [--rounds 15] [--same-process]
        [--name upscale_speed]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from srkit import Upscaler
from srkit.files import write_csv
from srkit.imaging.color import rgb_to_ycbcr, ycbcr_to_rgb
from srkit.imaging.resize import imresize
from srkit.machine import cpu
from srkit.metrics import psnr
from srkit.models import build, describe

RESULTS = Path(__file__).parent / "results"
PEERS = Path(__file__).parents[2] / "shared" / "peers" / "opencv_dnn_superres"
# label -> (srkit name, build options, OpenCV algorithm name, file prefix): the peer ships FSRCNN (56, 12, 4),
# FSRCNN-small (fsrcnn-s) and an ESPCN with ReLU hidden layers and a tanh output; espcn-paper is srkit's own
# (tanh hidden layers), timed against the same file.
ARCHS = {
    "espcn": ("espcn", {"activation": "relu", "output_activation": "tanh"}, "espcn", "ESPCN"),
    "espcn-paper": ("espcn", {}, "espcn", "ESPCN"),
    "fsrcnn": ("fsrcnn", {}, "fsrcnn", "FSRCNN"),
    "fsrcnn-s": ("fsrcnn-s", {}, "fsrcnn", "FSRCNN-small"),
}
FRAME = (1080, 1920)


def conv_throughput(rounds: int = 10) -> float:
    """GFLOP/s of a 64->64 3x3 convolution on 1x64x256x256, channels_last: this CPU's practical ceiling."""
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.rand(1, 64, 256, 256).to(memory_format=torch.channels_last)
    with torch.no_grad():
        conv(x)
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            conv(x)
            times.append(time.perf_counter() - start)
    return 2 * 64 * 64 * 9 * 256 * 256 / statistics.median(times) / 1e9


def opencv_methods(peers: Path, lr: np.ndarray, scale: int) -> dict[str, Callable[[], np.ndarray]]:
    """OpenCV's bicubic and its dnn_superres models on `lr`, by method name."""
    methods = {"opencv bicubic": lambda: cv2.resize(lr, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)}
    for _, _, algo, prefix in ARCHS.values():
        peer = cv2.dnn_superres.DnnSuperResImpl_create()
        peer.readModel(str(peers / f"{prefix}_x{scale}.pb"))
        peer.setModel(algo, scale)
        methods[f"opencv {prefix}"] = lambda p=peer: p.upsample(lr)
    return methods


def opencv_worker(connection: multiprocessing.connection.Connection, peers: Path) -> None:
    """In a process of its own: load the OpenCV methods for (lr, scale), then time one method per request."""
    methods = {}
    while (request := connection.recv()) is not None:
        if isinstance(request, tuple):  # (lr, scale): a new frame
            methods = opencv_methods(peers, *request)
            connection.send(list(methods))
            continue
        start = time.perf_counter()
        methods[request]()
        connection.send(time.perf_counter() - start)


def receive(connection: multiprocessing.connection.Connection, worker: multiprocessing.Process):
    """The worker's next answer; if it has died (its traceback is on stderr), exit instead of waiting forever."""
    while not connection.poll(1.0):
        if not worker.is_alive():
            raise SystemExit(f"upscale_speed: the OpenCV worker died (exit code {worker.exitcode})")
    return connection.recv()


@torch.no_grad()
def plain(model: torch.nn.Module, lr: np.ndarray, scale: int) -> np.ndarray:
    """srkit's reference: the network as built on Y, MATLAB bicubic Cb/Cr, BT.601 back to RGB, in float32."""
    ycbcr = rgb_to_ycbcr(torch.from_numpy(lr).permute(2, 0, 1)[None] / np.float32(255))
    y = model(ycbcr[:, :1])
    out = ycbcr_to_rgb(torch.cat([y, imresize(ycbcr[:, 1:], scale=scale)], 1))[0].permute(1, 2, 0)
    return torch.floor(out.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=Path, default=PEERS)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--same-process", action="store_true", help="run OpenCV in srkit's process")
    parser.add_argument("--name", help="basename of the CSV written (default: upscale_speed[_same_process])")
    args = parser.parse_args()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    rows = []
    machine = cpu()
    print(machine)
    small = (rng.random((FRAME[0] // 24, FRAME[1] // 24, 3)) * 255).astype(np.uint8)
    hr = cv2.resize(small, FRAME[::-1], interpolation=cv2.INTER_CUBIC)  # smooth content, no degenerate input
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: glibc's default allocator settings
    connection, child = spawn.Pipe()
    # --same-process calls OpenCV on the main thread: a worker thread's allocations come from a glibc arena of
    # its own, which maps buffers over 64 MiB afresh whatever mallopt says, as the default allocator does.
    worker = None if args.same_process else spawn.Process(target=opencv_worker, args=(child, args.peers), daemon=True)
    if worker:
        worker.start()
    for scale in (2, 3, 4):
        lr = imresize(hr, scale=1 / scale)
        methods: dict[str, Callable[[], object] | None]
        if worker:
            connection.send((lr, scale))
            methods = dict.fromkeys(receive(connection, worker))  # timed by the worker
        else:
            methods = opencv_methods(args.peers, lr, scale)
        quality = {}
        for arch, (name, options, _, _) in ARCHS.items():
            model = build(name, scale, **options).eval()
            upscaler = Upscaler(model)
            methods[f"srkit {arch}"] = lambda lr=lr, u=upscaler: u.upscale(lr)
            fast, reference = upscaler.upscale(lr), plain(model, lr, scale)
            quality[arch] = (psnr(fast, hr, scale) - psnr(reference, hr, scale), psnr(fast, reference, scale))
        times = {name: [] for name in methods}
        for _ in range(args.rounds + 1):  # the first round warms up
            for name, fn in methods.items():
                if fn is None:
                    connection.send(name)
                    times[name].append(receive(connection, worker))
                else:
                    start = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - start)
        times = {name: t[1:] for name, t in times.items()}
        gflops = conv_throughput()
        for name, t in times.items():
            median = statistics.median(t)
            q1, _, q3 = statistics.quantiles(t, n=4)
            arch = name.split()[1]
            srkit_name, _, _, prefix = ARCHS.get(arch, (None, None, None, None))
            row = {
                "scale": scale,
                "method": name,
                "median_ms": f"{median * 1e3:.1f}",
                "iqr_ms": f"{q1 * 1e3:.1f}-{q3 * 1e3:.1f}",
                "opencv_over_srkit": "",
                "conv_ceiling_share": "",
                "psnr_delta_db": "",
                "psnr_vs_plain_db": "",
                "cpu": machine,
            }
            if name.startswith("srkit"):
                row["opencv_over_srkit"] = f"{statistics.median(times[f'opencv {prefix}']) / median:.2f}"
                macs = describe(srkit_name, scale).macs_per_pixel * FRAME[0] * FRAME[1]
                row["conv_ceiling_share"] = f"{2 * macs / median / 1e9 / gflops:.2f}"
                row["psnr_delta_db"] = f"{quality[arch][0]:+.4f}"
                row["psnr_vs_plain_db"] = f"{quality[arch][1]:.1f}"
            rows.append(row)
            print(
                f"x{scale} {name:<16} {row['median_ms']:>7} ms (IQR {row['iqr_ms']})"
                + (
                    f"  OpenCV/srkit {row['opencv_over_srkit']}x, {row['conv_ceiling_share']} of the"
                    f" {gflops:.0f} GFLOP/s conv ceiling, PSNR {row['psnr_delta_db']} dB vs plain fp32"
                    f" ({row['psnr_vs_plain_db']} dB apart)"
                    if row["opencv_over_srkit"]
                    else ""
                )
            )
    if worker:
        connection.send(None)
        worker.join()
    name = args.name or ("upscale_speed_same_process" if args.same_process else "upscale_speed")
    write_csv(RESULTS / f"{name}.csv", rows)


if __name__ == "__main__":
    main()
