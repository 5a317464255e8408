"""PSNR and SSIM with the papers' protocol as defaults.

The protocol: the SR image is rounded to uint8 first, both images are reduced to the Y channel of
MATLAB's `rgb2ycbcr` on doubles (unrounded, as the EDSR/RCAN evaluation code does; a grayscale image
is its own Y), `scale` pixels are shaved from every border,
and SSIM is Wang et al.'s MATLAB `ssim_index`: an 11x11 Gaussian window with sigma 1.5, K1 = 0.01,
K2 = 0.03, on Y in [0, 255], over the 'valid' region.

`high_frequency_ratio` judges texture without a pretrained network (no VGG or LPIPS here): the share of Y's power
above a quarter of the sampling rate in the SR image, relative to the HR image's. A blurry result sits well
under 1, one that restores (or invents) texture comes closer to it.
"""

from __future__ import annotations

import math

import numpy as np

from srkit.errors import SrkitError
from srkit.imaging.color import y_channel

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
HIGH_FREQUENCY = 0.25  # cycles per pixel: half of Nyquist, and twice the LR image's Nyquist at x4


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Round an image to uint8: floats are taken to be in [0, 1]; uint8 passes through."""
    if image.dtype == np.uint8:
        return image
    if np.issubdtype(image.dtype, np.floating):
        return np.floor(np.clip(image * 255.0, 0, 255) + 0.5).astype(np.uint8)
    raise SrkitError(f"metrics expect uint8 or float images in [0, 1], got {image.dtype}")


def _prepare(sr: np.ndarray, hr: np.ndarray, shave: int) -> tuple[np.ndarray, np.ndarray]:
    if sr.shape != hr.shape[: sr.ndim]:
        raise SrkitError(f"SR and HR shapes differ: {sr.shape} vs {hr.shape}")
    if hr.ndim not in (2, 3) or (hr.ndim == 3 and hr.shape[2] != 3):
        raise SrkitError(f"metrics expect HxW (Y or gray) or HxWx3 (RGB) images, got shape {hr.shape}")
    y_sr, y_hr = y_channel(to_uint8(sr)), y_channel(to_uint8(hr))
    if shave:
        if min(y_sr.shape) <= 2 * shave:
            raise SrkitError(f"image of size {y_sr.shape} is too small to shave {shave} pixels")
        y_sr, y_hr = y_sr[shave:-shave, shave:-shave], y_hr[shave:-shave, shave:-shave]
    return y_sr, y_hr


def psnr(sr: np.ndarray, hr: np.ndarray, scale: int, shave: int | None = None) -> float:
    """PSNR in dB on Y in [0, 255]; `shave` defaults to `scale`.

    `sr` may also be just the Y channel (HxW) of the SR image, as a Y-channel network outputs it.
    """
    y_sr, y_hr = _prepare(sr, hr, scale if shave is None else shave)
    mse = np.mean((y_sr - y_hr) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _gaussian_filter(x: np.ndarray) -> np.ndarray:
    """MATLAB's `filter2(fspecial('gaussian', 11, 1.5), x, 'valid')`, as two separable passes."""
    t = np.arange(SSIM_WINDOW) - (SSIM_WINDOW - 1) / 2
    g = np.exp(-(t**2) / (2 * SSIM_SIGMA**2))
    g /= g.sum()
    h, w = x.shape[0] - SSIM_WINDOW + 1, x.shape[1] - SSIM_WINDOW + 1
    rows = sum(g[k] * x[k : k + h] for k in range(SSIM_WINDOW))
    return sum(g[k] * rows[:, k : k + w] for k in range(SSIM_WINDOW))


def ssim(sr: np.ndarray, hr: np.ndarray, scale: int, shave: int | None = None) -> float:
    """Mean SSIM on Y in [0, 255]; `shave` defaults to `scale`."""
    y_sr, y_hr = _prepare(sr, hr, scale if shave is None else shave)
    if min(y_sr.shape) < SSIM_WINDOW:
        raise SrkitError(f"image of size {y_sr.shape} is smaller than the {SSIM_WINDOW}x{SSIM_WINDOW} SSIM window")
    a, b = y_sr, y_hr
    mu_a, mu_b = _gaussian_filter(a), _gaussian_filter(b)
    var_a = _gaussian_filter(a * a) - mu_a**2
    var_b = _gaussian_filter(b * b) - mu_b**2
    cov = _gaussian_filter(a * b) - mu_a * mu_b
    c1, c2 = (SSIM_K1 * 255) ** 2, (SSIM_K2 * 255) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def high_frequency_share(y: np.ndarray, cutoff: float = HIGH_FREQUENCY) -> float:
    """The share of an image's power (DC aside) at radial frequencies above `cutoff` cycles per pixel.

    The image is Hann-windowed first, so that the jump between opposite borders of the periodic FFT adds no
    spurious high frequencies.
    """
    y = np.asarray(y, np.float64)
    if np.ptp(y) == 0:
        return 0.0
    window = np.outer(np.hanning(y.shape[0]), np.hanning(y.shape[1]))
    power = np.abs(np.fft.fft2((y - y.mean()) * window)) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(y.shape[0]), np.fft.fftfreq(y.shape[1]), indexing="ij")
    radius = np.hypot(fy, fx)
    return float(power[radius > cutoff].sum() / power[radius > 0].sum())


def high_frequency_ratio(sr: np.ndarray, hr: np.ndarray, scale: int, shave: int | None = None) -> float:
    """SR's high-frequency share of power over HR's, on Y with the protocol's rounding and border shave."""
    y_sr, y_hr = _prepare(sr, hr, scale if shave is None else shave)
    reference = high_frequency_share(y_hr)
    if reference == 0:
        raise SrkitError("the HR image has no power above a quarter of the sampling rate (a flat image?)")
    return high_frequency_share(y_sr) / reference
