import numpy as np
import pytest
import torch
from PIL import Image

from srkit import imresize
from srkit.errors import SrkitError
from srkit.imaging.resize import _gather, _resize_dim, contributions, output_size


def test_matches_matlab_reference(matlab_reference):
    pairs = sorted(matlab_reference.glob("*/x*/*_HR.png"))
    assert len(pairs) == 57  # Set5 and Set14 at x2, x3, x4
    for hr_path in pairs:
        scale = int(hr_path.parent.name[1:])
        hr = np.asarray(Image.open(hr_path))
        expected = np.asarray(Image.open(str(hr_path).replace("_HR", "_LR"))).astype(int)
        ours = imresize(hr, scale=1 / scale).astype(int)
        assert ours.shape == expected.shape
        inner = np.abs(ours - expected)[2:-2, 2:-2]
        assert inner.max() <= 1, hr_path
        assert (inner > 0).mean() < 0.01, hr_path


@pytest.mark.parametrize("scale", [1 / 4, 1 / 3, 1 / 2, 2, 3, 4, 0.7, 1.5])
def test_strided_path_equals_gathering_every_output(scale):
    x = torch.rand(2, 37, 5, dtype=torch.float64)
    out_length = output_size((37, 37), scale)[0]
    first, weights = contributions(37, out_length, scale)
    expected = _gather(x, first, weights)
    torch.testing.assert_close(_resize_dim(x, 0, out_length, scale), expected, rtol=0, atol=1e-12)


def test_numpy_and_torch_agree():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (30, 42, 3), dtype=np.uint8)
    batch = torch.from_numpy(image).permute(2, 0, 1)[None]
    for scale in (1 / 3, 1 / 2, 4):
        ours = imresize(image, scale=scale)
        theirs = imresize(batch, scale=scale)[0].permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(ours, theirs)
        floats = imresize(image.astype(np.float64) / 255, scale=scale)
        tensor = imresize(batch.double() / 255, scale=scale)[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(floats, tensor, atol=1e-12)


def test_batched_float32_tensor_keeps_dtype_and_device():
    x = torch.rand(4, 1, 48, 48)
    y = imresize(x, scale=1 / 3)
    assert y.shape == (4, 1, 16, 16) and y.dtype == torch.float32 and y.device == x.device
    torch.testing.assert_close(y[2], imresize(x[2], scale=1 / 3))


def test_output_sizes_and_identity():
    assert output_size((255, 256), 1 / 3) == (85, 86)
    image = np.random.default_rng(1).integers(0, 256, (20, 21), dtype=np.uint8)
    np.testing.assert_array_equal(imresize(image, scale=1), image)
    assert imresize(image, size=(7, 50)).shape == (7, 50)
    assert imresize(image, scale=2.5).shape == (50, 53)


def test_uint16_stays_16_bit_and_agrees_with_uint8():
    image = np.random.default_rng(2).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    wide = imresize(image.astype(np.uint16) * 257, scale=1 / 2)
    assert wide.dtype == np.uint16
    narrow = imresize(image, scale=1 / 2).astype(int)
    assert np.abs(wide / 257.0 - narrow).max() <= 1


def test_constant_image_stays_constant_and_uint8_rounds_to_range():
    image = np.full((16, 16), 200, np.uint8)
    np.testing.assert_array_equal(imresize(image, scale=1 / 4), 200)
    edge = np.zeros((16, 16), np.uint8)
    edge[:, 8:] = 255  # a step overshoots with the cubic kernel: the uint8 result must clip, not wrap
    up = imresize(edge, scale=3)
    assert up.min() == 0 and up.max() == 255


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"scale": 0.5, "size": (2, 2)}, {"scale": -1}, {"size": (0, 3)}],
)
def test_bad_arguments_are_user_errors(kwargs):
    with pytest.raises(SrkitError):
        imresize(np.zeros((8, 8), np.uint8), **kwargs)


def test_bad_inputs_are_user_errors():
    with pytest.raises(SrkitError):
        imresize(np.zeros((8, 8), np.int64), scale=2)
    with pytest.raises(SrkitError):
        imresize([[1, 2], [3, 4]], scale=2)
