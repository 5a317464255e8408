"""Export: the files run in onnxruntime, OpenCV, TorchScript and torch.export as `Upscaler` and `srkit upscale` do."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from PIL import Image

from srkit import Upscaler, models, zoo
from srkit.cli import main
from srkit.errors import SrkitError
from srkit.export import contract, export
from srkit.imaging.color import y_channel
from srkit.imaging.resize import imresize
from srkit.zoo import save_weights

# The exporters warn about PyTorch's own deprecated internals.
EXPORTER_WARNINGS = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")
SIZES = [(1, 9, 14), (2, 20, 7)]  # batch, height, width: odd, non-square, neither the example's
SAMPLE = Path(__file__).parents[1] / "samples" / "butterfly_lr.png"  # a real colour photo, 85x85
ZOO = list(zoo.records())
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt", "pt2": ".pt2"}


def build(name: str, scale: int, **options) -> torch.nn.Module:
    torch.manual_seed(0)
    return models.build(name, scale, **options).eval()


def run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"input": x})
    return out


def load_torchscript(path: Path) -> tuple[torch.jit.ScriptModule, dict]:
    extra = {"srkit.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path), _extra_files=extra)
    return module, json.loads(extra["srkit.json"])


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.floor(np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


def assert_within_one_level(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


@pytest.fixture(scope="module")
def sample() -> np.ndarray:
    return np.asarray(Image.open(SAMPLE).convert("RGB"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str, str], Path]:
    """A zoo weight exported once per module: (id, graph, format) -> path."""
    folder, files = tmp_path_factory.mktemp("exported"), {}

    def get(name: str, graph: str = "image", format: str = "onnx") -> Path:
        if (name, graph, format) not in files:
            path = folder / f"{name}-{graph}{SUFFIX[format]}"
            export(zoo.load_pretrained(name), path, format, graph)
            files[name, graph, format] = path
        return files[name, graph, format]

    return get


def gray_of(rgb: np.ndarray) -> np.ndarray:
    """The rounded Y of an RGB image, as a grayscale image."""
    return np.floor(y_channel(rgb) + 0.5).astype(np.uint8)


@pytest.mark.parametrize("format", ["onnx", "torchscript"])
@pytest.mark.parametrize("name", ZOO)
def test_default_export_of_every_zoo_weight_takes_and_gives_image_values(exported, sample, name, format):
    """Fed [0, 1] values, the default export gives what Upscaler gives on that channel, within one grey level."""
    model = zoo.load_pretrained(name)
    info = model.info
    image = gray_of(sample) if info.channels == "y" else sample  # a gray image is its own Y in Upscaler
    expected = Upscaler(model).upscale_array(image)
    x = torch.from_numpy(image / np.float32(255)).reshape(*image.shape[:2], -1).permute(2, 0, 1)[None]
    x = imresize(x, scale=info.scale) if info.upsampled_input else x
    if format == "onnx":
        out = run_onnx(exported(name, "image", format), x.numpy())
    else:
        module, metadata = load_torchscript(exported(name, "image", format))
        assert metadata["srkit.graph"] == "image" and metadata["srkit.input_range"] == "[0.0, 1.0]"
        out = module(x).detach().numpy()
    out = out[0].transpose(1, 2, 0)
    assert_within_one_level(to_uint8(out if info.channels == "rgb" else out[..., 0]), expected)


@pytest.mark.parametrize("name", ["espcn-x3", "espcn-rgb-x4", "srcnn-x2"])  # Y, RGB, bicubic-upscaled input
def test_pipeline_onnx_equals_srkit_upscale(exported, sample, tmp_path, name):
    assert main(["upscale", str(SAMPLE), "--model", name, "-o", str(tmp_path / "out.png")]) == 0
    expected = np.asarray(Image.open(tmp_path / "out.png"))
    out = run_onnx(exported(name, "pipeline"), np.stack([sample, sample[::-1]]))  # a batch of two
    assert out.dtype == np.uint8
    assert_within_one_level(out[0], expected)
    assert_within_one_level(out[1], Upscaler(zoo.load_pretrained(name)).upscale_array(sample[::-1].copy()))


@pytest.mark.parametrize("format", ["torchscript", "pt2"])
def test_pipeline_holds_in_torchscript_and_pt2(exported, sample, format):
    path = exported("fsrcnn-x2", "pipeline", format)
    if format == "torchscript":
        module, metadata = load_torchscript(path)
    else:
        extra = {"srkit.json": ""}
        module, metadata = torch.export.load(path, extra_files=extra).module(), json.loads(extra["srkit.json"])
    assert metadata["srkit.graph"] == "pipeline" and metadata["srkit.channels"] == "rgb"
    image = sample[:31, :44]
    expected = Upscaler(zoo.load_pretrained("fsrcnn-x2")).upscale_array(image)
    assert_within_one_level(module(torch.from_numpy(image.copy())[None])[0].numpy(), expected)


def test_metadata_says_which_graph(exported):
    for graph, input_range in [("image", [0.0, 1.0]), ("raw", [-5.0, 5.0]), ("pipeline", [0, 255])]:
        path = exported("espcn-x3", graph)
        metadata = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert metadata["srkit.graph"] == graph
        assert json.loads(metadata["srkit.input_range"]) == input_range
        assert metadata["srkit.network_input_range"] == "[-5.0, 5.0]"


def test_opencv_dnn_runs_the_default_espcn_and_fsrcnn_exports(exported, sample):
    cv2 = pytest.importorskip("cv2", reason="OpenCV is not installed (pip install -e '.[bench]')")
    gray = gray_of(sample)
    for name in ("espcn-x3", "fsrcnn-x3"):
        net = cv2.dnn.readNetFromONNX(str(exported(name)))
        net.setInput((gray / np.float32(255))[None, None])
        expected = Upscaler(zoo.load_pretrained(name)).upscale_array(gray)
        assert_within_one_level(to_uint8(net.forward()[0, 0]), expected)


def test_opencv_dnn_runs_the_pipeline(exported, sample):
    cv2 = pytest.importorskip("cv2", reason="OpenCV is not installed (pip install -e '.[bench]')")
    net = cv2.dnn.readNetFromONNX(str(exported("espcn-x3", "pipeline")))
    net.setInput(sample[None])
    assert_within_one_level(net.forward()[0], Upscaler(zoo.load_pretrained("espcn-x3")).upscale_array(sample))


@EXPORTER_WARNINGS
@pytest.mark.parametrize(
    ("name", "scale", "options"),
    [
        ("espcn", 3, {}),
        ("edsr-baseline", 4, {"num_blocks": 1, "num_features": 8}),  # PixelShuffle x3, x2 x2
        ("srcnn", 2, {"n1": 8, "n2": 4, "init": "he", "padding": "replicate"}),  # ONNX's edge padding
        ("espcn-rgb", 2, {"features": (8, 8)}),  # value ranges 0..255 in, -1..1 out
    ],
)
def test_onnx_matches_pytorch_at_any_size(tmp_path, name, scale, options):
    model = build(name, scale, **options)
    info = model.info
    for graph in ("raw", "image"):
        path = tmp_path / f"{graph}.onnx"
        export(model, path, "onnx", graph)
        metadata = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert metadata["srkit.model"] == name and metadata["srkit.scale"] == str(scale)
        assert metadata["srkit.channels"] == info.channels
        assert metadata["srkit.upsampled_input"] == str(info.upsampled_input).lower()
        for batch, height, width in SIZES:
            x = torch.rand(batch, info.in_channels, height, width)
            out = run_onnx(path, x.numpy())
            factor = 1 if info.upsampled_input else scale
            assert out.shape == (batch, info.in_channels, height * factor, width * factor)
            lo, hi = info.input_range
            with torch.no_grad():
                expected = model(x) if graph == "raw" else (model(x * (hi - lo) + lo) - info.output_range[0])
            if graph == "image":
                expected = expected / (info.output_range[1] - info.output_range[0])
            np.testing.assert_allclose(out, expected.numpy(), atol=1e-4)


@EXPORTER_WARNINGS
def test_pt2_loads_back_and_matches(tmp_path):
    model = build("fsrcnn", 2, d=8, s=4, m=1)
    path = tmp_path / "model.pt2"
    export(model, path, "pt2", "raw")
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
    export(model, path, "torchscript", "raw")
    loaded, metadata = load_torchscript(path)
    assert metadata["srkit.scale"] == str(scale) and metadata["srkit.graph"] == "raw"
    for batch, height, width in SIZES:
        x = torch.rand(batch, 1, height, width)
        torch.testing.assert_close(loaded(x), model(x).detach(), atol=1e-5, rtol=1e-5)


def test_cli_prints_one_line_and_nothing_else(tmp_path):
    """The real command in a process of its own: one line on stdout naming the file, nothing on stderr."""
    command = [sys.executable, "-m", "srkit", "export", "espcn-x3", "--format", "onnx", "-o", str(tmp_path / "e.onnx")]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.count("\n") == 1
    assert str(tmp_path / "e.onnx") in done.stdout and "ONNX" in done.stdout and "[0, 1]" in done.stdout


@pytest.mark.parametrize(("suffix", "format"), [(".onnx", "onnx"), (".pt", "torchscript"), (".pt2", "pt2")])
def test_cli_takes_the_format_from_the_suffix(tmp_path, capsys, suffix, format):
    path = tmp_path / f"m{suffix}"
    assert main(["export", "fsrcnn", "--scale", "2", "-o", str(path)]) == 0
    if format == "onnx":
        onnx.load(str(path))
    elif format == "torchscript":
        load_torchscript(path)
    else:
        torch.export.load(path)


def test_cli_never_overwrites_without_overwrite(tmp_path, capsys):
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"a photo")
    assert main(["export", "espcn-x3", "--format", "onnx", "-o", str(photo)]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and str(photo) in error and "--overwrite" in error
    assert photo.read_bytes() == b"a photo"
    assert main(["export", "espcn-x3", "--format", "onnx", "-o", str(photo), "--overwrite"]) == 0
    onnx.load(str(photo))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ("espcn-x3 -o {tmp}/m.tflite", "cannot tell the export format from .tflite"),
        ("espcn-x3 -o {tmp}/m", "cannot tell the export format from no suffix"),
        ("fsrcnn --format onnx -o {tmp}/f.onnx", "its pretrained weights (fsrcnn-x2, fsrcnn-x3, fsrcnn-x4)"),
        ("vdsr -o {tmp}/v.onnx", "vdsr is an architecture without pretrained weights: give --scale N"),
        ("espcn-x3 --scale 2 -o {tmp}/m.onnx", "espcn-x3 upscales by 3, not by 2"),
        ("--weights {readme} -o {tmp}/m.onnx", "README.md: not a safetensors weights file"),
    ],
)
def test_cli_mistakes_are_one_line(tmp_path, capsys, argv, message):
    readme = Path(__file__).parents[1] / "README.md"
    assert main(["export", *argv.format(tmp=tmp_path, readme=readme).split()]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--pipeline", "--raw"], "argument --raw: not allowed with argument --pipeline"),
        (["--format", "tflite"], "argument --format: invalid choice: 'tflite'"),
    ],
)
def test_cli_usage_mistakes_are_one_line(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as stop:
        main(["export", "espcn-x3", *argv, "-o", str(tmp_path / "m.onnx")])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error


def test_unknown_format_is_an_error(tmp_path):
    with pytest.raises(SrkitError, match="unknown export format"):
        export(build("espcn", 3), tmp_path / "m.x", "tflite")
    with pytest.raises(SrkitError, match="unknown export graph"):
        export(build("espcn", 3), tmp_path / "m.onnx", graph="bare")


def test_missing_onnx_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import onnxscript raises ImportError
    with pytest.raises(SrkitError, match=r"needs onnxscript: pip install 'srkit\[export\]'"):
        export(build("espcn", 3), tmp_path / "m.onnx", "onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_contract_of_a_pipeline_is_rgb_uint8():
    model = build("srcnn", 3)
    entries = contract(model, "pipeline")
    assert entries["srkit.input"] == "RGB uint8 (N, H, W, 3)" and entries["srkit.output"] == "RGB uint8 (N, 3H, 3W, 3)"
    assert entries["srkit.upsampled_input"] == "false" and contract(model)["srkit.upsampled_input"] == "true"


def test_a_multi_scale_weight_exports_its_pipeline_at_the_scale_asked(tmp_path, capsys):
    weights = tmp_path / "vdsr.safetensors"
    zoo.save_weights(build("vdsr", 3, depth=3, num_features=4), weights, {"depth": 3, "num_features": 4}, scales=(2, 3))
    argv = ["export", "--weights", str(weights), "--pipeline", "-o", str(tmp_path / "v.onnx")]
    assert main([*argv, "--scale", "2"]) == 0
    image = np.random.default_rng(0).integers(0, 256, (1, 5, 6, 3), dtype=np.uint8)
    assert run_onnx(tmp_path / "v.onnx", image).shape == (1, 10, 12, 3)
    capsys.readouterr()
    assert main(["export", "--weights", str(weights), "--scale", "4", "-o", str(tmp_path / "w.onnx")]) == 1
    assert "upscales by 2 or 3, not by 4" in capsys.readouterr().err
