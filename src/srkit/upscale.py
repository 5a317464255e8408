"""Running an SR network on images: input kind (bicubic-upscaled or LR), value ranges, Y vs RGB."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from srkit.imaging.color import y_channel
from srkit.imaging.resize import imresize
from srkit.metrics import to_uint8


def super_resolve(model: nn.Module, lr: torch.Tensor, scale: int | None = None) -> torch.Tensor:
    """(N, C, h, w) in [0, 1] -> (N, C, scale*h, scale*w) in [0, 1] (not clamped), whatever the model expects."""
    info = model.info
    scale = scale or info.scale
    x = imresize(lr, scale=scale) if info.upsampled_input else lr
    lo, hi = info.input_range
    y = model(x * (hi - lo) + lo if (lo, hi) != (0.0, 1.0) else x)
    lo, hi = info.output_range
    return (y - lo) / (hi - lo) if (lo, hi) != (0.0, 1.0) else y


def _to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """HxW or HxWxC float -> (1, C, H, W)."""
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    t = t[None, None] if t.dim() == 2 else t.permute(2, 0, 1)[None]
    return t.to(device)


@torch.no_grad()
def sr_for_metrics(model: nn.Module, lr: np.ndarray, scale: int) -> np.ndarray:
    """SR of a uint8 LR image as the protocol measures it.

    Y models return their rounded Y output (HxW uint8), as the papers measure it, without a trip through
    RGB; RGB models return the RGB image (or, for a grayscale input, its channel mean).
    """
    device = next(model.parameters()).device
    if model.info.channels == "y":
        y = super_resolve(model, _to_tensor(y_channel(lr) / 255.0, device), scale)
        return to_uint8(y[0, 0].clamp(0, 1).cpu().numpy())
    rgb = lr if lr.ndim == 3 else np.repeat(lr[..., None], 3, axis=2)
    out = super_resolve(model, _to_tensor(rgb / 255.0, device), scale)[0].clamp(0, 1)
    out = out.mean(0) if lr.ndim == 2 else out.permute(1, 2, 0)
    return to_uint8(out.cpu().numpy())
