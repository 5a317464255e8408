import numpy as np
import pytest
import torch

from srkit import rgb_to_ycbcr, ycbcr_to_rgb
from srkit.imaging.color import y_channel


def test_matlab_values_for_uint8():
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    # What MATLAB's rgb2ycbcr returns for these colours.
    expected = np.array([[[16, 128, 128], [235, 128, 128], [81, 90, 240], [145, 54, 34], [41, 240, 110]]])
    np.testing.assert_array_equal(rgb_to_ycbcr(rgb), expected)
    assert rgb_to_ycbcr(rgb).dtype == np.uint8


def test_round_trip_float_and_uint8():
    rng = np.random.default_rng(0)
    rgb = rng.random((8, 9, 3))
    np.testing.assert_allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-12)
    rgb8 = rng.integers(0, 256, (8, 9, 3), dtype=np.uint8)
    assert np.abs(ycbcr_to_rgb(rgb_to_ycbcr(rgb8)).astype(int) - rgb8).max() <= 2


def test_numpy_and_torch_agree():
    rgb = np.random.default_rng(1).random((5, 6, 3))
    tensor = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    np.testing.assert_allclose(rgb_to_ycbcr(tensor)[0].permute(1, 2, 0).numpy(), rgb_to_ycbcr(rgb), atol=1e-12)
    back = ycbcr_to_rgb(rgb_to_ycbcr(tensor))
    torch.testing.assert_close(back, tensor)
    rgb8 = (rgb * 255).round().astype(np.uint8)
    tensor8 = torch.from_numpy(rgb8).permute(2, 0, 1)
    np.testing.assert_array_equal(rgb_to_ycbcr(tensor8).permute(1, 2, 0).numpy(), rgb_to_ycbcr(rgb8))


def test_gray_is_its_own_y():
    gray = np.array([[0, 100, 255]], np.uint8)
    np.testing.assert_array_equal(y_channel(gray), [[0.0, 100.0, 255.0]])
    np.testing.assert_allclose(y_channel(np.full((1, 1, 3), 255, np.uint8)), [[235.0]])


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("convert", [rgb_to_ycbcr, ycbcr_to_rgb])
def test_a_crop_converts_as_the_whole_image_bit_for_bit(convert, memory_format):
    """What tiled upscaling rests on: a pixel's result does not depend on the image's size or its place in it."""
    image = torch.rand(1, 3, 20, 150, generator=torch.Generator().manual_seed(0))
    image = image.contiguous(memory_format=memory_format)
    whole = convert(image)
    for top, left, width in [(0, 0, 1), (0, 0, 37), (3, 5, 64), (7, 11, 101), (0, 49, 101)]:
        crop = image[..., top:, left : left + width].contiguous(memory_format=memory_format)
        assert torch.equal(convert(crop), whole[..., top:, left : left + width])
