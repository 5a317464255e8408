"""OpenCV dnn_superres's model files against srkit's exports run by OpenCV: PSNR/SSIM with the papers' protocol.

For ESPCN and FSRCNN at x2, x3 and x4, three ways to upscale each LR image of the set (MATLAB bicubic of the
mod-cropped HR image):
- "opencv dnn_superres": the peer's files (../shared/peers/opencv_dnn_superres) through
  `cv2.dnn_superres.DnnSuperResImpl`, as OpenCV users run them (BGR uint8 in and out, Y inside);
- "srkit pipeline in opencv": srkit's zoo weight exported with `srkit export ID --pipeline -o ID.onnx`, run by
  `cv2.dnn.readNetFromONNX` (RGB uint8 in and out): the file an OpenCV user swaps in;
- "srkit eval": the zoo weight measured by `srkit eval --model ID` (its Y output, not rounded through RGB);
and MATLAB bicubic as the floor. PSNR and SSIM are on Y, the border of `scale` pixels shaved, as `srkit eval`
measures them. Each OpenCV model runs in a process of its own: in OpenCV 5.0 a `--pipeline` net read after a
DnnSuperResImpl was created in the same process computes wrong colours (Set5 x2 fell to 20.5 dB). Writes
benchmarks/results/opencv_swap.csv. Needs opencv-contrib-python-headless: `pip install -e '.[bench]'`.

    python benchmarks/opencv_swap.py --data-root ../shared/datasets [--dataset Set5] [--peers DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
from pathlib import Path

import cv2
import numpy as np

from srkit import zoo
from srkit.data import data_root
from srkit.errors import SrkitError
from srkit.evaluate import Method, Record, bicubic, evaluate, network
from srkit.export import export
from srkit.files import write_csv

RESULTS = Path(__file__).parent / "results" / "opencv_swap.csv"
PEERS = Path(__file__).parents[2] / "shared" / "peers" / "opencv_dnn_superres"
ARCHS = {"espcn": "ESPCN", "fsrcnn": "FSRCNN"}  # srkit's zoo model -> the peer's file prefix and algorithm name


def dnn_superres(path: Path, algorithm: str, scale: int) -> Method:
    """The peer's file as OpenCV users run it: BGR uint8 in and out."""
    peer = cv2.dnn_superres.DnnSuperResImpl_create()
    peer.readModel(str(path))
    peer.setModel(algorithm, scale)
    return lambda lr, _scale: cv2.cvtColor(peer.upsample(cv2.cvtColor(_rgb(lr), cv2.COLOR_RGB2BGR)), cv2.COLOR_BGR2RGB)


def pipeline_in_opencv(path: Path) -> Method:
    """srkit's `--pipeline` ONNX file read by OpenCV's dnn: RGB uint8 (1, H, W, 3) in and out."""
    net = cv2.dnn.readNetFromONNX(str(path))

    def upscale(lr: np.ndarray, _scale: int) -> np.ndarray:
        net.setInput(_rgb(lr)[None])
        return net.forward()[0]

    return upscale


def in_opencv(path: Path, algorithm: str | None, scale: int, dataset: str, root: Path) -> tuple[float, float, int]:
    """In a process of its own: (PSNR, SSIM, images) of a dnn_superres file (with its `algorithm` name), or of
    srkit's --pipeline ONNX file (algorithm None), run by OpenCV."""
    upscale = pipeline_in_opencv(path) if algorithm is None else dnn_superres(path, algorithm, scale)
    return scores(evaluate(path.name, upscale, dataset, scale, root, progress=False))


def scores(record: Record) -> tuple[float, float, int]:
    """(PSNR, SSIM, images) of a record."""
    return record.psnr, record.ssim, record.images


def row(dataset: str, scale: int, arch: str, method: str, file: str, measured: tuple[float, float, int]) -> dict:
    psnr, ssim, images = measured
    values = {"dataset": dataset, "scale": scale, "arch": arch, "method": method, "file": file}
    print(" ".join(f"{key}={value}" for key, value in values.items()), f"psnr={psnr:.2f} ssim={ssim:.4f}")
    return {**values, "psnr": f"{psnr:.2f}", "ssim": f"{ssim:.4f}", "images": images}


def _rgb(lr: np.ndarray) -> np.ndarray:
    if lr.ndim != 3:
        raise SrkitError("opencv_swap compares colour images; this set holds a grayscale one")
    return lr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root")
    parser.add_argument("--dataset", default="Set5")
    parser.add_argument("--peers", type=Path, default=PEERS)
    args = parser.parse_args()
    try:
        root = data_root(args.data_root)
        if not args.peers.is_dir():
            raise SrkitError(f"{args.peers}: no such folder (the OpenCV dnn_superres model files)")
    except SrkitError as error:
        parser.error(str(error))
    rows = []
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as folder, spawn.Pool(1, maxtasksperchild=1) as pool:
        for scale in (2, 3, 4):
            record = evaluate("bicubic", bicubic, args.dataset, scale, root, progress=False)
            rows.append(row(args.dataset, scale, "bicubic", "matlab bicubic", "", scores(record)))
            for arch, prefix in ARCHS.items():
                name = f"{arch}-x{scale}"
                model = zoo.load_pretrained(name)
                onnx_file = Path(folder) / f"{name}.onnx"
                export(model, onnx_file, graph="pipeline")
                peer = args.peers / f"{prefix}_x{scale}.pb"
                for method, file, source in [
                    ("opencv dnn_superres", peer.name, (peer, prefix.lower())),
                    ("srkit pipeline in opencv", onnx_file.name, (onnx_file, None)),
                ]:
                    measured = pool.apply(in_opencv, (*source, scale, args.dataset, root))
                    rows.append(row(args.dataset, scale, arch, method, file, measured))
                record = evaluate(name, network(model), args.dataset, scale, root, progress=False)
                rows.append(row(args.dataset, scale, arch, "srkit eval", name, scores(record)))
    write_csv(RESULTS, rows)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
