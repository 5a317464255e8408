"""Export: ONNX (run in onnxruntime) and torch.export (.pt2) match PyTorch at several input sizes."""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from srkit import models
from srkit.cli import main
from srkit.errors import SrkitError
from srkit.export import export
from srkit.zoo import save_weights

# The exporters warn about PyTorch's own deprecated internals.
EXPORTER_WARNINGS = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")
SIZES = [(1, 9, 14), (2, 20, 7)]  # batch, height, width: odd, non-square, neither the example's


def build(name: str, scale: int, **options) -> torch.nn.Module:
    torch.manual_seed(0)
    return models.build(name, scale, **options).eval()


@EXPORTER_WARNINGS
@pytest.mark.parametrize(
    ("name", "scale", "options"),
    [
        ("espcn", 3, {}),
        ("edsr-baseline", 4, {"num_blocks": 1, "num_features": 8}),  # PixelShuffle x3, x2 x2
        ("srcnn", 2, {"n1": 8, "n2": 4, "init": "he", "padding": "replicate"}),  # ONNX's edge padding
    ],
)
def test_onnx_matches_pytorch_at_any_size(tmp_path, name, scale, options):
    model = build(name, scale, **options)
    path = tmp_path / "model.onnx"
    export(model, path, "onnx")
    metadata = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert metadata["srkit.model"] == name and metadata["srkit.scale"] == str(scale)
    upsampled = str(model.info.upsampled_input).lower()
    assert metadata["srkit.channels"] == model.info.channels and metadata["srkit.upsampled_input"] == upsampled
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch, height, width in SIZES:
        x = torch.rand(batch, model.info.in_channels, height, width)
        (out,) = session.run(None, {"input": x.numpy()})
        factor = 1 if model.info.upsampled_input else scale
        assert out.shape == (batch, model.info.in_channels, height * factor, width * factor)
        np.testing.assert_allclose(out, model(x).detach().numpy(), atol=1e-4)


@EXPORTER_WARNINGS
def test_pt2_loads_back_and_matches(tmp_path):
    model = build("fsrcnn", 2, d=8, s=4, m=1)
    path = tmp_path / "model.pt2"
    export(model, path, "pt2")
    extra = {"srkit.json": ""}
    loaded = torch.export.load(path, extra_files=extra).module()
    assert json.loads(extra["srkit.json"])["srkit.model"] == "fsrcnn"
    for batch, height, width in SIZES:
        x = torch.rand(batch, 1, height, width)
        torch.testing.assert_close(loaded(x), model(x).detach(), atol=1e-5, rtol=1e-5)


@EXPORTER_WARNINGS
def test_cli_exports_a_weights_file(tmp_path):
    weights = tmp_path / "vdsr.safetensors"
    save_weights(build("vdsr", 2, depth=3, num_features=4), weights, {"depth": 3, "num_features": 4})
    assert main(["export", "--weights", str(weights), "--format", "pt2", "-o", str(tmp_path / "v.pt2")]) == 0
    assert (tmp_path / "v.pt2").stat().st_size > 0


@pytest.mark.parametrize(
    ("name", "scale", "options"),
    [("espcn", 4, {}), ("fsrcnn", 3, {"d": 8, "s": 4, "m": 1}), ("srcnn", 2, {})],  # shuffle, deconv, same size
)
@EXPORTER_WARNINGS
def test_torchscript_holds_at_other_sizes(tmp_path, name, scale, options):
    model = build(name, scale, **options)
    path = tmp_path / "model.pt"
    export(model, path, "torchscript")
    extra = {"srkit.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(extra["srkit.json"])["srkit.scale"] == str(scale)
    for batch, height, width in SIZES:
        x = torch.rand(batch, 1, height, width)
        torch.testing.assert_close(loaded(x), model(x).detach(), atol=1e-5, rtol=1e-5)


@EXPORTER_WARNINGS
def test_cli_exports_a_zoo_model(tmp_path):
    assert main(["export", "espcn-x3", "--format", "onnx", "-o", str(tmp_path / "e.onnx")]) == 0
    assert main(["export", "--format", "onnx", "-o", str(tmp_path / "e.onnx")]) == 1


def test_unknown_format_is_an_error(tmp_path):
    with pytest.raises(SrkitError, match="unknown export format"):
        export(build("espcn", 3), tmp_path / "m.x", "tflite")
