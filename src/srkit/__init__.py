"""srkit: the classic CNN super-resolution models, faithful to their papers."""

from srkit.data import modcrop
from srkit.imaging.color import rgb_to_ycbcr, ycbcr_to_rgb
from srkit.imaging.resize import imresize
from srkit.metrics import psnr, ssim
from srkit.upscale import Upscaler
from srkit.zoo import load

__all__ = ["Upscaler", "imresize", "load", "modcrop", "psnr", "rgb_to_ycbcr", "ssim", "ycbcr_to_rgb"]
__version__ = "0.1.0"
