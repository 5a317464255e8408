"""The `srkit export --pipeline` ONNX file in onnxruntime against `srkit upscale`, on Set14's colour images.

For each model (default: espcn-x2, espcn-x3, espcn-x4 and espcn-rgb-x4) the pipeline file (RGB uint8 in and out,
everything inside the graph) upscales every colour LR image of Set14 at the model's scale (the protocol's LR:
MATLAB bicubic of the mod-cropped HR image), one image at a time at its own size, and is compared with what
`srkit upscale` writes for the same pixels (`Upscaler.upscale_array`). Writes the largest difference per channel
and the share of differing values, per image, to benchmarks/results/export_pipeline.csv; exits 1 if any value
differs by more than one grey level.

    python benchmarks/export_pipeline.py --data-root ../shared/datasets [--models espcn-x3 ...] [--dataset Set14]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime

from srkit import Upscaler, zoo
from srkit.data import benchmark, data_root
from srkit.errors import SrkitError
from srkit.export import export
from srkit.files import write_csv

RESULTS = Path(__file__).parent / "results" / "export_pipeline.csv"
MODELS = ("espcn-x2", "espcn-x3", "espcn-x4", "espcn-rgb-x4")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root")
    parser.add_argument("--dataset", default="Set14")
    parser.add_argument("--models", nargs="+", default=list(MODELS), metavar="ID")
    args = parser.parse_args()
    try:
        root = data_root(args.data_root)
        networks = {name: zoo.load_pretrained(name) for name in args.models}
    except SrkitError as error:
        parser.error(str(error))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, model in networks.items():
            path = Path(folder) / f"{name}.onnx"
            export(model, path, graph="pipeline")
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            upscaler = Upscaler(model)
            for pair in benchmark(args.dataset, model.info.scale, root):
                if pair.lr.ndim != 3:  # the pipeline takes RGB; Set14's gray images are not its input
                    continue
                (out,) = session.run(None, {"input": pair.lr[None]})
                difference = np.abs(out[0].astype(int) - upscaler.upscale_array(pair.lr).astype(int))
                rows.append(
                    {
                        "model": name,
                        "dataset": args.dataset,
                        "scale": model.info.scale,
                        "image": pair.name,
                        "lr_size": f"{pair.lr.shape[1]}x{pair.lr.shape[0]}",
                        **{f"max_diff_{c}": int(difference[..., i].max()) for i, c in enumerate("rgb")},
                        "differing_share": f"{np.mean(difference > 0):.2e}",
                    }
                )
                print(" ".join(f"{key}={value}" for key, value in rows[-1].items()))
    write_csv(RESULTS, rows)
    worst = max(max(row[f"max_diff_{c}"] for c in "rgb") for row in rows)
    print(f"{len(rows)} images, largest difference {worst} grey level(s); wrote {RESULTS}")
    sys.exit(0 if worst <= 1 else 1)


if __name__ == "__main__":
    main()
