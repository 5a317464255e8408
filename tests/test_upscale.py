"""Upscaler: tiled == untiled bit for bit, every input kind, alpha without fringes, bounded memory, folder runs."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srkit import Upscaler, models, zoo
from srkit.cli import main
from srkit.errors import SrkitError
from srkit.imaging.io import read_image, write_png
from srkit.upscale import plan, super_resolve, upscale_file
from srkit.upscale.runtime import _PixelShuffle, _subpixel
from srkit.zoo import save_weights

# Small configurations of every model kind: LR-input Y (FSRCNN's deconvolution reaches further on one side),
# bicubic-input Y, RGB; SRCNN and SRResNet have the 9x9 kernels.
KINDS = {
    "espcn": ("espcn", 3, {}),
    "espcn-centred": ("espcn", 3, {"input_range": (-5.0, 5.0), "output_range": (-0.5, 0.5)}),  # zero pads mid-grey
    "espcn-x4": ("espcn", 4, {"features": (8, 8)}),  # Cb/Cr's bicubic in 12 phases, 16 sub-pixels
    "espcn-replicate": ("espcn", 3, {"padding": "replicate"}),  # one input channel: the kernel-rows form
    "fsrcnn": ("fsrcnn", 3, {"d": 8, "s": 4, "m": 1}),
    "fsrcnn-centred": ("fsrcnn", 3, {"d": 8, "s": 4, "m": 1, "input_range": (-5.0, 5.0), "output_range": (-0.5, 0.5)}),
    "srcnn": ("srcnn", 2, {"n1": 8, "n2": 4, "init": "he"}),
    "srcnn-replicate": ("srcnn", 2, {"n1": 8, "n2": 4, "init": "he", "padding": "replicate"}),
    "vdsr": ("vdsr", 3, {"depth": 4, "num_features": 8}),
    "edsr-baseline": ("edsr-baseline", 4, {"num_blocks": 2, "num_features": 8}),
    "espcn-rgb": ("espcn-rgb", 2, {}),
    "espcn-rgb-replicate": ("espcn-rgb", 4, {"padding": "replicate", "input_range": (-5.0, 5.0)}),
    "srresnet": ("srresnet", 4, {"num_blocks": 1, "num_features": 8}),
}


@pytest.fixture(autouse=True)
def one_thread():
    """Two threads on a busy two-core machine make tiny tiles 30 times slower; exactness holds for both."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(kind: str) -> torch.nn.Module:
    name, scale, options = KINDS[kind]
    torch.manual_seed(0)
    model = models.build(name, scale, **options)
    if name == "srcnn":  # a last layer of N(0, 0.001) and no bias would round every output pixel to black
        torch.nn.init.normal_(model.body[-1].weight, 0.0, 0.05)
        torch.nn.init.constant_(model.body[-1].bias, 0.5)
    return model


def photo(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A smooth image with texture: edges and gradients, like a photo, in uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:height, :width]
    base = 128 + 60 * np.sin(x / 3.0)[..., None] * np.cos(y[..., None] / 4.0 + np.arange(channels))
    noisy = base + rng.normal(0, 20, (height, width, channels))
    return np.clip(noisy, 0, 255).astype(np.uint8).squeeze()


def identity_vdsr(scale: int = 2) -> torch.nn.Module:
    """VDSR with zero weights adds nothing to its bicubic input: the Upscaler becomes MATLAB bicubic."""
    model = models.build("vdsr", scale, depth=3, num_features=4)
    for p in model.parameters():
        torch.nn.init.zeros_(p)
    return model


@pytest.mark.parametrize("kind", list(KINDS))
def test_tiled_equals_untiled_exactly(kind):
    model = build(kind)
    image = photo(23, 29)
    whole = Upscaler(model)
    assert whole.tile_size(23, 29) >= 29  # small images are one tile
    untiled = whole.upscale_array(image)
    untiled_float = whole.upscale_array(image / np.float32(255))
    for tile in (5, 8, 13):  # none divides 23 or 29
        tiled = Upscaler(model, tile=tile)
        np.testing.assert_array_equal(tiled.upscale_array(image), untiled)
        np.testing.assert_array_equal(tiled.upscale_array(image / np.float32(255)), untiled_float)


@pytest.mark.parametrize("kind", ["espcn", "espcn-centred", "espcn-replicate", "fsrcnn", "srcnn", "srcnn-replicate"])
def test_tiled_equals_untiled_with_two_threads(kind):
    """oneDNN's deconvolution, one-channel and fused-tanh convolutions round differently per size; see
    srkit.upscale.runtime.prepare."""
    torch.set_num_threads(2)
    model = build(kind)
    image = photo(16, 18, 1)
    np.testing.assert_array_equal(Upscaler(model, tile=7).upscale_array(image), Upscaler(model).upscale_array(image))


@pytest.mark.parametrize("kind", ["espcn", "vdsr", "edsr-baseline"])
def test_tiled_equals_untiled_rgba_and_16bit(kind):
    model = build(kind)
    rgba = np.dstack([photo(17, 20), photo(17, 20, 1, seed=1)])
    deep = photo(17, 20).astype(np.uint16) * 257 + 100
    for image in (rgba, deep):
        untiled = Upscaler(model).upscale_array(image)
        assert untiled.dtype == image.dtype
        np.testing.assert_array_equal(Upscaler(model, tile=6).upscale_array(image), untiled)


def test_automatic_tiles_bound_the_network_input_and_the_memory(tmp_path):
    model = build("espcn")
    windows = []
    upscaler = Upscaler(model, memory_budget=2_000_000)
    upscaler.model.register_forward_pre_hook(lambda _m, args: windows.append(args[0].shape[-2:]))
    peaks = []
    for height in (900, 3000):
        image = photo(height, 40, 1)
        out_height, out_width = upscaler.output_shape(image)
        tracemalloc.start()
        try:
            write_png(tmp_path / f"{height}.png", upscaler.bands(image), out_height, out_width)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    tile = upscaler.tile_size(*image.shape)
    assert tile < 40
    assert max(h * w for h, w in windows) <= (tile + 2 * upscaler.margin) ** 2
    # Numpy memory does not grow with the image (torch's is bounded by the windows above).
    assert peaks[1] < 1.1 * peaks[0] and peaks[1] < out_height * out_width / 1.5
    untiled = Upscaler(model, tile=10_000).upscale_array(image)
    np.testing.assert_array_equal(read_image(tmp_path / "3000.png").pixels, untiled)


@pytest.mark.parametrize("kind", ["espcn", "espcn-centred", "espcn-replicate", "srcnn-replicate"])
def test_y_model_on_gray_runs_on_the_gray_as_its_y(kind):
    model = build(kind).eval()
    image = photo(12, 14, 1)
    with torch.no_grad():
        expected = super_resolve(model, torch.from_numpy(image / np.float32(255))[None, None])[0, 0]
    expected = np.floor(expected.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(Upscaler(model).upscale_array(image), expected)


def test_rgb_model_keeps_gray_gray():
    out = Upscaler(build("edsr-baseline")).upscale(Image.fromarray(photo(10, 12, 1)))
    assert out.mode == "L" and out.size == (48, 40)


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("rows", [15, 1])  # one row: fewer than the bicubic reads either side
def test_identity_network_is_matlab_bicubic(scale, rows):
    from srkit import imresize

    image = photo(15, 13)[:rows]
    upscaler = Upscaler(identity_vdsr(scale))
    reference = imresize(image / np.float64(255), scale=scale)  # Y, Cb, Cr all bicubic: the RGB bicubic
    np.testing.assert_allclose(upscaler.upscale_array(image / np.float32(255)), np.clip(reference, 0, 1), atol=1e-5)
    rounded = np.floor(np.clip(reference, 0, 1) * 255 + 0.5)  # uint8 out: rounded, off by one where float32 says
    assert np.abs(upscaler.upscale_array(image).astype(int) - rounded).max() <= 1


def test_premultiplied_alpha_leaves_no_fringe():
    # An opaque red square on a transparent background whose (invisible) colour is garbage green.
    image = np.zeros((20, 20, 4), np.uint8)
    image[..., 1] = 255
    image[6:14, 6:14] = (255, 0, 0, 255)
    out = Upscaler(identity_vdsr()).upscale_array(image)
    visible = out[..., 3] > 0
    edge = visible & (out[..., 3] < 255)
    assert edge.sum() > 20  # the soft edge exists
    red, green, blue = (out[..., c][visible].astype(int) for c in range(3))
    assert red.min() >= 250 and green.max() <= 5 and blue.max() <= 5
    assert (out[..., 3][~visible] == 0).all()


@pytest.mark.parametrize(
    ("image", "kind"),
    [
        (np.zeros((6, 7), np.uint8), np.ndarray),
        (np.zeros((6, 7, 3), np.uint16), np.ndarray),
        (np.zeros((6, 7, 2), np.float64), np.ndarray),
        (torch.zeros(3, 6, 7), torch.Tensor),
        (torch.zeros(2, 4, 6, 7, dtype=torch.float64), torch.Tensor),
    ],
)
def test_upscale_returns_the_kind_and_dtype_it_was_given(image, kind):
    out = Upscaler(build("espcn")).upscale(image)
    assert isinstance(out, kind) and out.dtype == image.dtype
    shape = tuple(image.shape)
    if kind is torch.Tensor:
        assert tuple(out.shape) == (*shape[:-2], 18, 21)
    else:
        assert out.shape == (18, 21, *shape[2:])


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "P", "CMYK", "I;16", "1"])
def test_upscale_pil_modes(mode):
    image = (
        Image.fromarray(photo(6, 7)).convert(mode)
        if mode != "I;16"
        else Image.fromarray(photo(6, 7, 1).astype(np.uint16) * 257)
    )
    expected = {"P": "RGB", "CMYK": "RGB", "1": "L"}.get(mode, mode)
    out = Upscaler(build("espcn")).upscale(image)
    assert out.mode == expected and out.size == (21, 18)


def test_a_pil_image_is_turned_upright_as_the_cli_does(tmp_path):
    """Issue 37, 6: srkit.load(...).upscale(Image.open(photo)) on an EXIF-rotated photo equals the CLI's output."""
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    Image.fromarray(photo(6, 9)).save(tmp_path / "rotated.png", exif=exif)
    upscaler = Upscaler(build("espcn"))
    with Image.open(tmp_path / "rotated.png") as image:
        out = upscaler.upscale(image)
    assert out.size == (6 * 3, 9 * 3) and out.getexif().get(0x0112, 1) == 1
    upscale_file(upscaler, tmp_path / "rotated.png", tmp_path / "cli.png")
    np.testing.assert_array_equal(np.asarray(out), read_image(tmp_path / "cli.png").pixels)
    array = upscaler.upscale(np.asarray(Image.open(tmp_path / "rotated.png")))  # numpy carries no EXIF
    assert array.shape == (6 * 3, 9 * 3, 3)


def test_scale_must_be_one_the_model_has():
    with pytest.raises(SrkitError, match="upscales by 3, not by 2"):
        Upscaler(build("espcn"), scale=2)
    assert Upscaler(identity_vdsr(), scale=4).scale == 4  # VDSR: one network for every scale


def test_subpixel_equals_the_transposed_convolution():
    torch.manual_seed(0)
    # The kernel spans only the input offsets that some phase reads: 5, 3 and 3 wide
    # (x3 reads -1..2; with phase 2 taken one input later, -1..1).
    for scale, size in ((2, 5), (3, 3), (4, 3)):
        deconv = torch.nn.ConvTranspose2d(5, 2, 9, stride=scale, padding=4, output_padding=scale - 1)
        x = torch.rand(1, 5, 7, 10)
        subpixel = _subpixel(deconv)
        assert subpixel.conv.weight.shape[-2:] == (size, size)
        with torch.no_grad():
            torch.testing.assert_close(subpixel(x), deconv(x), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("memory_format", [torch.channels_last, torch.contiguous_format])
def test_pixel_shuffle_of_one_channel_equals_torchs(scale, dtype, memory_format):
    x = torch.randn(2, scale * scale, 5, 7).to(dtype).contiguous(memory_format=memory_format)
    for image in (x, x[:, :, 1:, 2:]):  # whole, and a strided view
        assert torch.equal(_PixelShuffle(scale)(image), torch.nn.functional.pixel_shuffle(image, scale))


# Files, folders and the CLI ---------------------------------------------------------------------------


@pytest.fixture
def weights(tmp_path) -> Path:
    path = tmp_path / "espcn.safetensors"
    save_weights(build("espcn"), path, {})
    return path


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def test_folder_run_skips_bad_files_counts_them_and_never_touches_inputs(tmp_path, weights, capsys, caplog):
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    Image.fromarray(photo(8, 9)).save(inputs / "a.png")
    Image.fromarray(photo(7, 6)).save(inputs / "sub" / "b.jpg")
    (inputs / "bad.png").write_bytes(b"this is no png")
    (inputs / "empty.jpg").write_bytes(b"")
    (inputs / "notes.txt").write_text("not an image: not picked up")
    before = digest(inputs)
    out = tmp_path / "out"
    args = ["upscale", str(inputs), "-o", str(out), "--weights", str(weights)]

    assert main(args) == 1
    assert "2 upscaled, 0 skipped (exists), 2 failed" in capsys.readouterr().out
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == ["a.png", "sub/b.jpg"]
    assert Image.open(out / "a.png").size == (27, 24) and Image.open(out / "sub" / "b.jpg").size == (18, 21)
    failures = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(failures) == 2 and any("bad.png" in m for m in failures) and any("empty.jpg" in m for m in failures)
    assert all("\n" not in m for m in failures)

    assert main(args) == 1
    assert "0 upscaled, 2 skipped (exists), 2 failed" in capsys.readouterr().out
    assert main([*args, "--overwrite"]) == 1
    assert "2 upscaled, 0 skipped (exists), 2 failed" in capsys.readouterr().out
    assert digest(inputs) == before


def test_an_input_is_never_overwritten(tmp_path, weights, capsys):
    source = tmp_path / "a.png"
    Image.fromarray(photo(8, 9)).save(source)
    (tmp_path / "link.png").symlink_to(source)
    before = source.read_bytes()
    for target in (source, tmp_path / "link.png"):
        assert main(["upscale", str(source), "-o", str(target), "--overwrite", "--weights", str(weights)]) == 1
    assert source.read_bytes() == before
    assert list(tmp_path.glob(".*")) == []  # no temporary file left behind


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_run_leaves_no_partial_file(tmp_path, weights, stop):
    source = tmp_path / "in" / "big.png"
    source.parent.mkdir()
    Image.fromarray(np.tile(photo(100, 100), (16, 16, 1))).save(source)  # a 4800x4800 PNG output takes seconds
    out = tmp_path / "out"
    command = [sys.executable, "-m", "srkit", "upscale", str(source), "-o", str(out), "--weights", str(weights)]
    # Ctrl-C's signal may be ignored by a test runner started in the background; the command must see its default.
    run = subprocess.Popen(command, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (out.exists() and any(out.iterdir())) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.poll() is None, "finished before it could be stopped"
    run.send_signal(stop)
    assert run.wait(timeout=60) == 130
    assert list(out.iterdir()) == []


def test_default_output_is_beside_the_input_and_a_file_output_is_a_file(tmp_path, weights, capsys):
    source = tmp_path / "photo.png"
    Image.fromarray(photo(8, 9)).save(source)
    assert main(["upscale", str(source), "--weights", str(weights)]) == 0
    assert Image.open(tmp_path / "photo_x3.png").size == (27, 24)
    assert main(["upscale", str(source), "-o", str(tmp_path / "big.webp"), "--weights", str(weights)]) == 0
    assert Image.open(tmp_path / "big.webp").size == (27, 24)


def test_glob_and_folder_planning(tmp_path):
    for name in ("a.png", "b.png", "c.jpg"):
        Image.fromarray(photo(4, 4)).save(tmp_path / name)
    jobs = plan([str(tmp_path / "*.png")], tmp_path / "out", 3)
    assert [(j.source.name, j.target) for j in jobs] == [
        ("a.png", tmp_path / "out/a.png"),
        ("b.png", tmp_path / "out/b.png"),
    ]
    assert plan([tmp_path / "*.png"], None, 3)[0].target == tmp_path / "a_x3.png"
    assert plan([tmp_path], None, 3)[0].target == tmp_path.with_name(f"{tmp_path.name}_x3") / "a.png"
    assert plan([tmp_path / "a.png"], f"{tmp_path / 'out.v2'}/", 3)[0].target == tmp_path / "out.v2" / "a.png"
    with pytest.raises(SrkitError, match="no such file"):
        plan([tmp_path / "missing.png"], None, 3)


def test_cli_scale_mismatch_is_one_line(tmp_path, weights, capsys):
    source = tmp_path / "a.png"
    Image.fromarray(photo(8, 9)).save(source)
    assert main(["upscale", str(source), "--scale", "2", "--weights", str(weights)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not by 2" in err


def test_without_a_model_the_cli_uses_the_zoo_default(tmp_path, capsys):
    Image.fromarray(photo(8, 9)).save(tmp_path / "a.png")
    assert main(["upscale", str(tmp_path / "a.png")]) == 0
    assert Image.open(tmp_path / f"a_x{zoo.record(zoo.default_id()).scale}.png").size == (27, 24)
    assert main(["upscale", str(tmp_path / "a.png"), "--model", "espcn-x9"]) == 1
    err = capsys.readouterr().err
    assert "unknown pretrained model 'espcn-x9'" in err and err.count("\n") == 1
