"""Reading and writing image files: every mode a real file has, 16-bit kept, EXIF orientation applied, ICC kept.

srkit's in-memory image is a numpy array: HxW (gray), HxWx2 (gray + alpha), HxWx3 (RGB) or HxWx4 (RGBA),
uint8 or uint16. What a file holds is decided from its mode and header, never from its pixel values.
PIL cannot hold 16-bit colour: such PNGs are decoded with pypng, such TIFFs with tifffile; PNGs are
written by `write_png`, band by band, so that an output of any size needs no more than one band in memory.
"""

from __future__ import annotations

import itertools
import struct
import warnings
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import png
import tifffile
from PIL import Image, UnidentifiedImageError

from srkit.errors import SrkitError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MAX_PIXELS = 400_000_000  # larger files are refused: a decompression bomb, or more than one machine can hold
# PIL's own limit (89 MP) would refuse a 12000x12000 photo; above ours it warns, above twice ours it refuses.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
JPEG_QUALITY = 95
PNG_BLOCK_BYTES = 4 << 20  # rows filtered and compressed, or converted from PIL, at a time
_TIFF_SUFFIXES = (".tif", ".tiff")
_HIGH_DEPTH = (".png", *_TIFF_SUFFIXES)  # the formats that store 16 bits per sample
# Modes converted on reading to the nearest one srkit holds; the rest (L, LA, RGB, RGBA, I;16) are kept.
_CONVERT = {
    **{"1": "L", "La": "LA", "PA": "RGBA", "RGBa": "RGBA"},
    **dict.fromkeys(("RGBX", "CMYK", "YCbCr", "LAB", "HSV"), "RGB"),
}
# numpy versions of PIL's ImageOps.exif_transpose, by EXIF orientation tag value.
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


@dataclass
class Picture:
    """An image as read from a file: its pixels (see the module docstring) and the colour profile to keep."""

    pixels: np.ndarray
    icc_profile: bytes | None = None


def read_image(path: str | Path) -> Picture:
    """Read any image file into uint8 or uint16 pixels, upright (EXIF orientation applied)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                deep_colour = image.mode in ("RGB", "RGBA") and ";16" in _rawmode(image)
                icc = image.info.get("icc_profile") or None
                orientation = exif_orientation(image)
                if deep_colour:
                    pixels = _read_16bit_colour(Path(path), image.format)
                else:
                    image.load()
                    if image.mode in ("CMYK", "LAB", "HSV"):
                        icc = None  # it describes the old colour space, not the converted RGB
                    pixels = to_array(image)
    except FileNotFoundError:
        raise SrkitError(f"{path}: no such file") from None
    except SrkitError as error:
        raise SrkitError(f"{path}: {error}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise SrkitError(f"{path}: too many pixels ({error})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, png.Error) as error:
        raise SrkitError(f"{path}: not a readable image ({error})") from None
    return Picture(upright(pixels, orientation), icc)


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation tag of a PIL image: 1 where it is stored upright or has none."""
    return image.getexif().get(0x0112, 1)  # this may decode the image (PNG)


def upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Pixels as stored, turned upright by an EXIF orientation as PIL's ImageOps.exif_transpose does; contiguous."""
    return np.ascontiguousarray(_ORIENT.get(orientation, lambda a: a)(pixels))


def read_rgb_or_gray(path: str | Path) -> np.ndarray:
    """An 8-bit image: HxW for grayscale files (their own Y), HxWx3 RGB for everything else."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode not in ("L", "RGB"):
                image = image.convert("L" if image.mode in ("1", "I;16", "I") else "RGB")
            return np.asarray(image)
    except FileNotFoundError:
        raise SrkitError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise SrkitError(f"{path}: not a readable image ({error})") from None


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def to_array(image: Image.Image) -> np.ndarray:
    """A PIL image's pixels in srkit's layout; palette, CMYK and other modes become L, LA, RGB or RGBA."""
    mode = image.mode
    if mode.startswith("I;16"):
        return _numpy(image).astype(np.uint16, copy=False)  # I;16B is big-endian: make it native
    if mode == "I":  # 32-bit integer samples: 16-bit PNGs in old PIL versions, integer TIFFs
        return np.clip(_numpy(image), 0, 65535).astype(np.uint16)
    if mode in ("P", "L", "RGB") and "transparency" in image.info:
        mode = "LA" if mode == "L" else "RGBA"
    elif mode == "P":
        mode = "RGB"
    mode = _CONVERT.get(mode, mode)
    if mode not in ("L", "LA", "RGB", "RGBA"):
        raise SrkitError(f"unsupported image mode {image.mode}")
    return _numpy(image if mode == image.mode else image.convert(mode))


def _numpy(image: Image.Image) -> np.ndarray:
    """np.asarray(image), converted in row stripes: PIL's own conversion of a whole image makes its bytes
    in small pieces first, a second copy of the image that stays in the heap once freed."""
    first = np.asarray(image.crop((0, 0, image.width, 1)))
    pixels = np.empty((image.height, *first.shape[1:]), first.dtype)
    rows = max(1, PNG_BLOCK_BYTES // first.nbytes)
    for top in range(0, image.height, rows):
        pixels[top : top + rows] = np.asarray(image.crop((0, top, image.width, min(top + rows, image.height))))
    return pixels


def from_array(pixels: np.ndarray) -> Image.Image:
    """The PIL image of srkit pixels (16-bit colour has no PIL mode: it is an error)."""
    if pixels.dtype != np.uint8 and not (pixels.dtype == np.uint16 and pixels.ndim == 2):
        raise SrkitError(f"PIL holds 8-bit images and 16-bit gray, not {_describe(pixels)}")
    return Image.fromarray(pixels)  # uint8 HxW, HxWx2, x3, x4: L, LA, RGB, RGBA; uint16 HxW: I;16


def write_image(path: str | Path, picture: Picture) -> None:
    """Write pixels in the format of `path`'s suffix, keeping 16 bits where the format can (PNG, TIFF)."""
    path = Path(path)
    suffix = path.suffix.lower()
    pixels = picture.pixels
    if suffix == ".png":
        return write_png(path, [pixels], pixels.shape[0], pixels.shape[1], picture.icc_profile)
    if suffix in _TIFF_SUFFIXES:
        alpha = pixels.ndim == 3 and pixels.shape[2] in (2, 4)
        tifffile.imwrite(
            path,
            pixels,
            photometric="rgb" if pixels.ndim == 3 and pixels.shape[2] >= 3 else "minisblack",
            extrasamples=("unassalpha",) if alpha else None,
            compression="zlib",
            iccprofile=picture.icc_profile,
        )
        return None
    if pixels.dtype == np.uint16 and suffix not in _HIGH_DEPTH:
        pixels = ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    options = {"quality": JPEG_QUALITY} if suffix in (".jpg", ".jpeg") else {}
    if picture.icc_profile:
        options["icc_profile"] = picture.icc_profile
    try:
        from_array(pixels).save(path, **options)
    except (OSError, KeyError, ValueError) as error:
        raise SrkitError(f"{path}: cannot write a {_describe(pixels)} image as {suffix} ({error})") from None
    return None


def write_png(
    path: str | Path, bands: Iterable[np.ndarray], height: int, width: int, icc_profile: bytes | None = None
) -> None:
    """Write a PNG from row bands (top to bottom, uint8 or uint16, 1 to 4 channels), holding one band at a time.

    PIL cannot write 16-bit colour PNGs and needs the whole image at once; this encoder needs neither.
    Every row gets the Paeth filter, which compresses smooth (upscaled) images about as well as PIL does.
    """
    bands = iter(bands)
    first = next(bands)
    channels = 1 if first.ndim == 2 else first.shape[2]
    depth = 16 if first.dtype == np.uint16 else 8
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    compressor = zlib.compressobj(6)
    previous = np.zeros(width * channels * depth // 8, np.int16)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        _chunk(f, b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0))
        if icc_profile:
            _chunk(f, b"iCCP", b"ICC profile\0\0" + zlib.compress(icc_profile))
        for band in _row_blocks(itertools.chain([first], bands), len(previous)):
            raw = band.astype(">u2" if depth == 16 else np.uint8).reshape(len(band), -1).view(np.uint8)
            filtered, previous = _paeth(raw.astype(np.int16), previous, channels * depth // 8)
            _chunk(f, b"IDAT", compressor.compress(filtered))
        _chunk(f, b"IDAT", compressor.flush())
        _chunk(f, b"IEND", b"")


def _row_blocks(bands: Iterable[np.ndarray], row_bytes: int) -> Iterator[np.ndarray]:
    """The bands cut into blocks of about PNG_BLOCK_BYTES: the filter's temporaries (ten times that) stay small."""
    rows = max(1, PNG_BLOCK_BYTES // row_bytes)
    for band in bands:
        for top in range(0, len(band), rows):
            yield band[top : top + rows]
        del band  # let it go before the next band is made


def _paeth(raw: np.ndarray, previous: np.ndarray, bpp: int) -> tuple[bytes, np.ndarray]:
    """PNG filter type 4 on rows of bytes (as int16), given the row above the first one."""
    up = np.vstack([previous[None], raw[:-1]])
    left, upper_left = np.zeros_like(raw), np.zeros_like(raw)
    left[:, bpp:], upper_left[:, bpp:] = raw[:, :-bpp], up[:, :-bpp]
    pa, pb, pc = np.abs(up - upper_left), np.abs(left - upper_left), np.abs(left + up - 2 * upper_left)
    predictor = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upper_left))
    filtered = np.empty((len(raw), raw.shape[1] + 1), np.uint8)
    filtered[:, 0] = 4
    filtered[:, 1:] = (raw - predictor).astype(np.uint8)  # modulo 256
    return filtered.tobytes(), raw[-1]


def _chunk(f, kind: bytes, data: bytes) -> None:
    f.write(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data)))


def _rawmode(image: Image.Image) -> str:
    """How the file stores its samples (PIL's raw mode, e.g. RGB;16B): PIL's mode says only what it decodes to."""
    args = image.tile[0][3] if image.tile else ""  # (codec, extents, offset, args)
    return args if isinstance(args, str) else str(args[0]) if args else ""


def _read_16bit_colour(path: Path, file_format: str | None) -> np.ndarray:
    """16-bit colour (RGB, RGBA, gray + alpha), which PIL would cut to 8 bits."""
    if file_format == "PNG":
        width, height, rows, info = png.Reader(filename=str(path)).read()
        pixels = np.empty((height, width * info["planes"]), np.uint16)
        for i, row in enumerate(rows):
            pixels[i] = row
        return pixels.reshape(height, width, info["planes"])
    if file_format == "TIFF":
        with tifffile.TiffFile(path) as tiff:
            page = tiff.pages[0]
            pixels = page.asarray()
            return np.moveaxis(pixels, 0, -1) if page.axes.startswith("S") else pixels
    raise SrkitError(f"{path}: 16-bit colour {file_format} files are not supported")


def _describe(pixels: np.ndarray) -> str:
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    return f"{pixels.dtype.itemsize * 8}-bit {['gray', 'gray+alpha', 'RGB', 'RGBA'][channels - 1]}"
