"""Image files: each mode round-trips with its mode, size and bit depth; orientation, ICC; bad files fail clearly."""

from __future__ import annotations

import io

import numpy as np
import png
import pytest
import tifffile
import torch
from PIL import Image, ImageCms, ImageOps

from srkit import Upscaler, models
from srkit.errors import SrkitError
from srkit.imaging.io import Picture, read_image, write_image, write_png
from srkit.upscale import upscale_file

SCALE = 2


@pytest.fixture(scope="module")
def upscaler() -> Upscaler:
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield Upscaler(models.build("espcn", SCALE))
    torch.set_num_threads(threads)


def pattern(height: int = 6, width: int = 9, channels: int = 3) -> np.ndarray:
    values = np.arange(height * width * channels).reshape(height, width, channels) * 37 % 256
    return values.astype(np.uint8).squeeze()


def sixteen(height: int = 6, width: int = 9, channels: int = 3) -> np.ndarray:
    return (np.arange(height * width * channels).reshape(height, width, channels) * 4099 % 65536).astype(np.uint16)


def p_image(transparent: bool) -> Image.Image:
    image = Image.fromarray(pattern()).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    if transparent:
        image.info["transparency"] = 0
    return image


@pytest.mark.parametrize(
    ("name", "make", "mode"),
    [
        ("l.png", lambda: Image.fromarray(pattern(channels=1)), "L"),
        ("la.png", lambda: Image.fromarray(pattern(channels=2)), "LA"),
        ("rgb.png", lambda: Image.fromarray(pattern()), "RGB"),
        ("rgba.png", lambda: Image.fromarray(pattern(channels=4)), "RGBA"),
        ("p.png", lambda: p_image(False), "RGB"),
        ("p_transparent.png", lambda: p_image(True), "RGBA"),
        ("gray16.png", lambda: Image.fromarray(sixteen(channels=1)[..., 0]), "I;16"),
        ("cmyk.jpg", lambda: Image.fromarray(pattern()).convert("CMYK"), "RGB"),
        ("bilevel.png", lambda: Image.fromarray(pattern(channels=1)).convert("1"), "L"),
        ("rgb.tif", lambda: Image.fromarray(pattern()), "RGB"),
        ("rgb.bmp", lambda: Image.fromarray(pattern()), "RGB"),
        ("rgba.webp", lambda: Image.fromarray(pattern(channels=4)), "RGBA"),
    ],
)
def test_modes_round_trip(tmp_path, upscaler, name, make, mode):
    source, target = tmp_path / name, tmp_path / f"out_{name}"
    make().save(source)
    upscale_file(upscaler, source, target)
    with Image.open(target) as out:
        assert out.mode == mode and out.size == (9 * SCALE, 6 * SCALE)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_colour_stays_16bit(tmp_path, upscaler, suffix):
    source, target = tmp_path / f"rgb16{suffix}", tmp_path / f"out{suffix}"
    if suffix == ".png":
        png.from_array(sixteen().reshape(6, -1), "RGB;16").save(source)
    else:
        tifffile.imwrite(source, sixteen(), photometric="rgb")
    assert read_image(source).pixels.dtype == np.uint16  # PIL alone would give 8 bits
    upscale_file(upscaler, source, target)
    out = read_image(target).pixels
    assert out.dtype == np.uint16 and out.shape == (12, 18, 3)
    assert (out % 257 != 0).any()  # real 16-bit values, not 8-bit ones scaled up
    if suffix == ".png":
        assert png.Reader(filename=str(target)).read()[3]["bitdepth"] == 16


def test_16bit_gray_alpha_png(tmp_path, upscaler):
    source, target = tmp_path / "la16.png", tmp_path / "out.png"
    png.from_array(sixteen(channels=2).reshape(6, -1), "LA;16").save(source)
    upscale_file(upscaler, source, target)
    out = read_image(target).pixels
    assert out.dtype == np.uint16 and out.shape == (12, 18, 2)


@pytest.mark.parametrize("pixels", [pattern(channels=1), pattern(channels=2), pattern(), pattern(channels=4)])
@pytest.mark.parametrize("deep", [False, True])
def test_write_png_is_lossless(tmp_path, pixels, deep):
    pixels = pixels.astype(np.uint16) * 257 + 3 if deep else pixels
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    write_png(tmp_path / "x.png", [pixels[:2], pixels[2:]], *pixels.shape[:2], icc_profile=icc)
    picture = read_image(tmp_path / "x.png")
    np.testing.assert_array_equal(picture.pixels, pixels)
    assert picture.icc_profile == icc


def test_exif_orientation_is_applied(tmp_path, upscaler):
    source, target = tmp_path / "rotated.jpg", tmp_path / "out.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    Image.fromarray(pattern(6, 9)).save(source, exif=exif)
    upscale_file(upscaler, source, target)
    with Image.open(target) as out:
        assert out.size == (6 * SCALE, 9 * SCALE) and out.getexif().get(0x0112, 1) == 1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pil(tmp_path, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pattern(5, 8)).save(tmp_path / "x.png", exif=exif)
    with Image.open(tmp_path / "x.png") as image:
        expected = np.asarray(ImageOps.exif_transpose(image))
    np.testing.assert_array_equal(read_image(tmp_path / "x.png").pixels, expected)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".webp"])
def test_icc_profile_is_kept(tmp_path, upscaler, suffix):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source, target = tmp_path / f"icc{suffix}", tmp_path / f"out{suffix}"
    Image.fromarray(pattern()).save(source, icc_profile=icc)
    upscale_file(upscaler, source, target)
    assert read_image(target).icc_profile == icc


def test_jpeg_cannot_hold_alpha_in_one_line(tmp_path):
    with pytest.raises(SrkitError, match="out.jpg"):
        write_image(tmp_path / "out.jpg", Picture(pattern(channels=4)))


def valid_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pattern(40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("garbage.png", b"\x89PNG but then nothing sensible"),
        ("truncated.png", valid_png()[:200]),
        ("empty.jpg", b""),
        ("text.png", b"hello, I am a text file\n"),
    ],
)
def test_bad_files_fail_in_one_line_naming_the_file(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(SrkitError) as error:
        read_image(tmp_path / name)
    assert name in str(error.value) and "\n" not in str(error.value)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    Image.fromarray(pattern(40, 40)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1600 pixels: over the limit, under twice it
    with pytest.raises(SrkitError, match="bomb.png: too many pixels"):
        read_image(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # over twice the limit: PIL's own error
    with pytest.raises(SrkitError, match="bomb.png: too many pixels"):
        read_image(tmp_path / "bomb.png")


def test_unsupported_mode_names_the_file(tmp_path):
    Image.new("F", (4, 3)).save(tmp_path / "float.tif")
    with pytest.raises(SrkitError, match="float.tif: unsupported image mode F"):
        read_image(tmp_path / "float.tif")
