import math

import numpy as np
import pytest

from srkit import psnr, ssim
from srkit.errors import SrkitError
from srkit.imaging.resize import imresize
from srkit.metrics import SSIM_K1, high_frequency_ratio, high_frequency_share


def test_psnr_known_value_and_identity():
    hr = np.full((20, 20), 100, np.uint8)
    sr = np.full((20, 20), 110, np.uint8)
    assert psnr(sr, hr, scale=2) == pytest.approx(10 * math.log10(255**2 / 100))
    assert psnr(hr, hr, scale=2) == math.inf


def test_border_is_shaved_by_scale():
    hr = np.full((20, 20, 3), 128, np.uint8)
    sr = hr.copy()
    sr[:3] = 0  # damage only the top three rows
    assert psnr(sr, hr, scale=3) == math.inf
    assert psnr(sr, hr, scale=2) < 30
    assert psnr(sr, hr, scale=2, shave=3) == math.inf


def test_float_sr_is_rounded_to_uint8_first():
    hr = np.full((16, 16), 100, np.uint8)
    sr = np.full((16, 16), 100.4 / 255)  # rounds to 100
    assert psnr(sr, hr, scale=2) == math.inf


def test_gray_images_are_measured_as_their_own_y():
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    sr = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    mse = np.mean((sr[2:-2, 2:-2].astype(float) - hr[2:-2, 2:-2]) ** 2)
    assert psnr(sr, hr, scale=2) == pytest.approx(10 * math.log10(255**2 / mse))
    as_rgb = psnr(np.stack([sr] * 3, -1), np.stack([hr] * 3, -1), scale=2)
    assert as_rgb != pytest.approx(psnr(sr, hr, scale=2))  # RGB's Y is compressed to [16, 235]


def test_ssim_of_constant_images_has_closed_form():
    a, b = 90.0, 120.0
    c1 = (SSIM_K1 * 255) ** 2  # constant images: the contrast term is c2 / c2 = 1
    value = ssim(np.full((30, 30), a, np.uint8), np.full((30, 30), b, np.uint8), scale=2)
    assert value == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1))


def test_ssim_identity_and_order():
    rng = np.random.default_rng(1)
    hr = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    noisy = np.clip(hr + rng.normal(0, 10, hr.shape), 0, 255).astype(np.uint8)
    noisier = np.clip(hr + rng.normal(0, 40, hr.shape), 0, 255).astype(np.uint8)
    assert ssim(hr, hr, scale=4) == pytest.approx(1.0)
    assert 1 > ssim(noisy, hr, scale=4) > ssim(noisier, hr, scale=4)


def test_bad_shapes_are_user_errors():
    with pytest.raises(SrkitError):
        psnr(np.zeros((8, 8), np.uint8), np.zeros((8, 9), np.uint8), scale=2)
    with pytest.raises(SrkitError):
        ssim(np.zeros((12, 12), np.uint8), np.zeros((12, 12), np.uint8), scale=2)


def test_high_frequency_share_of_pure_tones():
    n = 64
    x = np.arange(n)
    low = np.tile(np.sin(2 * np.pi * 0.1 * x), (n, 1))  # 0.1 cycles/pixel: below the cut
    high = np.tile(np.sin(2 * np.pi * 0.4 * x), (n, 1))
    assert high_frequency_share(low) < 0.01
    assert high_frequency_share(high) > 0.99
    assert high_frequency_share(low + high) == pytest.approx(0.5, abs=0.02)


def test_high_frequency_ratio_is_one_for_hr_and_under_one_for_bicubic():
    rng = np.random.default_rng(0)
    hr = (rng.random((96, 96, 3)) * 255).astype(np.uint8)
    assert high_frequency_ratio(hr, hr, scale=4) == pytest.approx(1.0)
    bicubic = imresize(imresize(hr, scale=1 / 4), scale=4)
    assert high_frequency_ratio(bicubic, hr, scale=4) < 0.1
    with pytest.raises(SrkitError, match="no power"):
        high_frequency_ratio(hr, np.full_like(hr, 7), scale=4)


def test_the_protocol_in_python_with_public_names():
    """Issue 37, 7: the README's snippet: mod-crop, MATLAB bicubic down, upscale, PSNR and SSIM on the same size."""
    import srkit

    rng = np.random.default_rng(0)
    hr = np.clip(128 + rng.normal(0, 40, (64, 62, 3)), 0, 255).astype(np.uint8)  # neither side a multiple of 3
    hr = srkit.modcrop(hr, 3)
    assert hr.shape == (63, 60, 3)
    lr = srkit.imresize(hr, scale=1 / 3)
    sr = srkit.load("espcn-x3").upscale(lr)
    assert sr.shape == hr.shape and 10 < srkit.psnr(sr, hr, scale=3) < math.inf
    assert 0 < srkit.ssim(sr, hr, scale=3) < 1
    with pytest.raises(SrkitError, match="numpy"):
        srkit.modcrop([[1, 2]], 3)
