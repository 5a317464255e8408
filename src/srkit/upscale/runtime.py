"""The networks' exact fast runtime on the CPU: every convolution gives the same bits whatever the input's size.

`prepare` makes an inference copy of a network whose convolutions are size-stable (oneDNN's direct convolution of
channels_last tensors, see _StableConv2d), its transposed convolutions sub-pixel convolutions, and its activations
fused; `Bicubic` is MATLAB's bicubic upscaling as such convolutions. So a tile's pixels equal the whole image's,
bit for bit, and `srkit.upscale.pipeline` can cut any image into tiles.
"""

from __future__ import annotations

import copy
import ctypes
import math
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from srkit.imaging.color import ROW_BLOCK
from srkit.imaging.resize import contributions

BICUBIC_REACH = 2  # LR pixels either side that MATLAB's bicubic upscaling reads


@lru_cache(maxsize=64)
def _symmetric(length: int, before: int, after: int, device: torch.device) -> torch.Tensor:
    """Indices of MATLAB's symmetric padding: -1 reads 0, `length` reads length - 1."""
    i = torch.arange(-before, length + after, device=device) % (2 * length)
    return torch.where(i < length, i, 2 * length - 1 - i)


@lru_cache(maxsize=16)
def bicubic_phases(scale: int) -> np.ndarray:
    """MATLAB's bicubic upscaling by an integer scale in one dimension: (scale, 5) weights, one row per output
    phase r, for the inputs -2..2 around input pixel i that output scale * i + r reads."""
    n = 16
    first, weights = contributions(n, n * scale, scale)
    phases = np.zeros((scale, 2 * BICUBIC_REACH + 1))
    i = n // 2
    for r in range(scale):
        for k, w in enumerate(weights[scale * i + r]):
            phases[r, first[scale * i + r] + k - i + BICUBIC_REACH] = w
    return phases


class Bicubic(nn.Module):
    """MATLAB bicubic upscaling by an integer scale, then an affine colour map (matrix @ colour + offset), as
    convolutions without padding; MATLAB's symmetric borders are added here, so that a convolution computes every
    pixel in the same way (imresize does border pixels in another way than inner ones), in a tile as in the image.

    Two channels or more go down the columns (a matrix product of each output row's 5 input rows by the phases'
    weights, which writes the rows in the upscaled image's order), then along the rows with the colour map (a
    convolution, channel rx * out + c, whose output is already in the upscaled image's memory order). oneDNN
    computes 8 output channels at a time, and 6 or 12 (x2, x4) took about twice as long as 8 or 16: there `group`
    input columns become one pixel of group * C channels, so that the row pass has 24 (a 1x3 kernel over groups;
    the image is padded to whole groups and the output cropped). One channel
    (oneDNN rounds one-channel convolutions differently per size but for the kernel-rows form of _StableConv2d)
    takes one 5x5 convolution, channel (ry * scale + rx) * out + c, and a rearrangement of the whole output.

    With `luma` (a factor per output colour), forward adds luma * y for an image y of the output's size: Y's share
    of RGB when Cb and Cr are the input. On the CPU that is a 1x1 convolution of y (its rows seen as `scale`
    channels of every scale-th pixel, a view) added to the row pass's output by oneDNN as a post-op, in one pass:
    torch's elementwise kernels spread one pixel over three interleaved colours slowly (7 ms against 5 for x4
    at 1080p).
    """

    def __init__(
        self, scale: int, matrix: np.ndarray, offset: np.ndarray, device: torch.device, luma: np.ndarray | None = None
    ) -> None:
        super().__init__()
        self.stable = stable = device.type == "cpu" and torch.backends.mkldnn.is_available()
        phases = bicubic_phases(scale)  # (scale, 5)
        out_channels, in_channels = matrix.shape
        size = phases.shape[1]
        self.scale, self.group = scale, 1
        self.joint = self.horizontal = self.luma = None
        factors = None if luma is None else torch.tensor(luma, dtype=torch.float32)[:, None, None]
        self.register_buffer("factors", factors)
        if in_channels == 1:  # weights (phase, out, in, 5, 5)
            kernel = np.einsum("ri,sj->rsij", phases, phases).reshape(scale * scale, 1, 1, size, size)
            self.joint = _conv(kernel * matrix[None, :, :, None, None], np.tile(offset, scale * scale), stable)
        else:
            self.register_buffer("phases", torch.tensor(phases, dtype=torch.float32))
            g = 8 // math.gcd(8, scale * out_channels)  # x3 would take 8 columns (72 channels): slower, measured
            self.group = g if g <= 4 else 1
            self.horizontal = _conv(self._grouped(phases, matrix), np.tile(offset, scale * self.group), stable)
            if luma is not None and stable:  # weights (member and phase, out, member and phase, 1, 1)
                eye = np.eye(scale * self.group)[:, None, :, None, None]
                self.luma = _conv(eye * luma[None, :, None, None, None], None, stable)
        self.to(device)

    def _grouped(self, phases: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """The row pass's weights (member m, phase rx, out, in, 1, kernel width): member m of a group of columns
        reads columns m + d for taps d = -2..2, which are column left + m + d of the kernel's window: its pixel
        (left + m + d) // group, channels ((left + m + d) % group) * in + c."""
        g, (scale, size), (out_channels, in_channels) = self.group, phases.shape, matrix.shape
        weight = np.zeros((g, scale, out_channels, g * in_channels, 1, self.left // g * 2 + 1))
        for m in range(g):
            for tap in range(size):
                column = self.left + m + tap - BICUBIC_REACH
                window = column % g * in_channels
                block = phases[:, tap, None, None] * matrix[None]  # (phase, out, in)
                weight[m, :, :, window : window + in_channels, 0, column // g] = block
        return weight.reshape(g * scale, out_channels, g * in_channels, 1, -1)

    @property
    def left(self) -> int:
        """Columns padded on the left: the bicubic's reach, in whole groups."""
        return -(-BICUBIC_REACH // self.group) * self.group

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(n, C, h, w) -> (n, out, s*h, s*w), channels_last, plus luma * y (n, 1, s*h, s*w) if given (for more
        than one input channel)."""
        n, channels, height, width = x.shape
        s, reach = self.scale, BICUBIC_REACH
        if self.joint is not None:
            x = self.joint(_pad_symmetric(x, reach, reach, reach))
            x = x.permute(0, 2, 3, 1).reshape(n, height, width, s, s, -1).transpose(2, 3)
            return x.reshape(n, height * s, width * s, -1).permute(0, 3, 1, 2)  # one copy, channels_last
        g, groups = self.group, -(-width // self.group)
        columns = (groups + 2 * self.left // g) * g
        # On the CPU, zero columns make rows of whole ROW_BLOCKs for MKL (see srkit.imaging.color.ROW_BLOCK).
        zeros = -columns % math.lcm(g, ROW_BLOCK // math.gcd(ROW_BLOCK, channels)) if self.stable else 0
        x = _pad_symmetric(x, reach, self.left, columns - width - self.left, zeros)
        # Down the columns as one matrix product per output row: its 5 input rows (a view) by the phases' weights
        # give its s output rows, already in the upscaled image's order.
        rows = x.permute(0, 2, 3, 1).reshape(n, height + 2 * reach, -1)
        row = rows.stride(1)
        windows = rows.as_strided((n, height, 2 * reach + 1, rows.shape[2]), (rows.stride(0), row, row, 1))
        x = torch.matmul(self.phases, windows).view(n, height * s, -1, g * channels)[:, :, : columns // g]
        x = self.horizontal(x.permute(0, 3, 1, 2))  # (n, g * s * out, H, groups)
        if y is not None and self.luma is not None:
            y = nn.functional.pad(y, (0, groups * g * s - width * s)) if width % g else y
            x = self.luma(y.reshape(n, height * s, groups, g * s).permute(0, 3, 1, 2), add=x)
        x = x.permute(0, 2, 3, 1).reshape(n, height * s, groups * g * s, -1)[:, :, : width * s].permute(0, 3, 1, 2)
        if y is not None and self.luma is None:  # off the CPU: an elementwise pass
            x = x.addcmul_(y, self.factors)
        return x


def _pad_symmetric(x: torch.Tensor, pad: int, left: int, right: int, zeros: int = 0) -> torch.Tensor:
    """MATLAB's symmetric padding of (n, C, h, w): `pad` rows above and below, `left` and `right` columns, then
    `zeros` columns of zeros; channels_last."""
    x = x.permute(0, 2, 3, 1)
    for dim, (before, after) in ((1, (pad, pad)), (2, (left, right))):
        length = x.shape[dim]
        if length >= max(before, after):  # slices are cheaper than a gather, along the rows as along the columns
            ends = x.narrow(dim, 0, before).flip(dim), x.narrow(dim, length - after, after).flip(dim)
            parts = [ends[0], x, ends[1]]
        else:
            parts = [x.index_select(dim, _symmetric(length, before, after, x.device))]
        if dim == 2 and zeros:
            parts.append(x.new_zeros(*x.shape[:2], zeros, x.shape[3]))
        x = torch.cat(parts, dim) if len(parts) > 1 else parts[0]
    return x.permute(0, 3, 1, 2)


def _conv(weight: np.ndarray, bias: np.ndarray | None, stable: bool) -> nn.Module:
    """A convolution without padding of weights (phase, out, in, kh, kw): output channel phase * out + o."""
    phases, out_channels, in_channels, kh, kw = weight.shape
    conv = nn.Conv2d(in_channels, phases * out_channels, (kh, kw), bias=bias is not None)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(weight.reshape(conv.weight.shape)))
        if bias is not None:
            conv.bias.copy_(torch.from_numpy(bias))
    # Whole output channels: a padded last pass would leave the image a strided view that costs a copy.
    return _StableConv2d(conv, pad_channels=False) if stable else conv


class _StableConv2d(nn.Module):
    """A Conv2d whose output bits do not depend on the input size, so that tiles equal the whole image.

    PyTorch hands small convolutions to its own kernels and large ones to oneDNN, and the two round
    differently. oneDNN's direct convolution of channels_last tensors gives the same bits at every size (measured
    for every layer shape of srkit's models, with 1 to 3 threads), except with one input channel, where it takes
    another path: there the kh rows that the kernel reads become kh channels of a (1, kw) kernel, over an input
    padded here (its fused activations, and one-row inputs, came out differently at some widths with the padding
    left to oneDNN). A following ReLU is fused. tanh (see _fuse) is computed as tanh(z)/2 = sigmoid(2z) - 1/2:
    oneDNN's fused tanh is neither size-stable nor fast, torch's tanh and sigmoid are not size-stable (their last
    few elements take a scalar path). The logistic is fused into the kernel-rows form (size-stable there, and one
    pass against four: 1->64 channels at 480x270 took 10 ms against 20); in the other convolutions it made the
    convolution itself slower, and it is taken from exp apart, as 1/(1 + exp(-2z)) - 1/2.
    """

    def __init__(self, conv: nn.Conv2d, pad_channels: bool = True) -> None:
        super().__init__()
        weight, bias = conv.weight.detach(), None if conv.bias is None else conv.bias.detach()
        self.rows = conv.in_channels == 1 and conv.kernel_size[0] > 1
        if self.rows:
            weight = weight.transpose(1, 2)  # (out, kh, 1, kw)
        # oneDNN's AVX2 kernels compute 8 output channels at a time; 9 (a x3 sub-pixel layer) take longer than 16.
        self.out_channels = conv.out_channels
        padded = -(-self.out_channels // 8) * 8 if self.out_channels > 8 and pad_channels else self.out_channels
        weight = nn.functional.pad(weight, (0, 0, 0, 0, 0, 0, 0, padded - self.out_channels))
        bias = None if bias is None else nn.functional.pad(bias, (0, padded - self.out_channels))
        self.weight = nn.Parameter(weight.contiguous(memory_format=torch.channels_last), requires_grad=False)
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)
        # oneDNN pads with zeros, except where the input is padded here: in the kernel-rows form, and for replicate
        # padding (which oneDNN lacks).
        replicate = conv.padding_mode == "replicate"
        self.pad_mode = "replicate" if replicate else "constant" if self.rows else None
        self.pad = conv.padding
        self.padding = (0, 0) if self.pad_mode else conv.padding
        self.activation = "none"  # "relu", or "tanh": see _fuse

    def forward(self, x: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
        """The convolution of x; with `add` (the output's shape, channels_last), `add` + it, written into `add`."""
        if self.pad_mode:
            py, px = self.pad
            x = nn.functional.pad(x, (px, px, py, py), mode=self.pad_mode)
        if self.rows:
            kh = self.weight.shape[1]
            x = x.contiguous()
            n, _, height, width = x.shape
            x = x.as_strided((n, kh, height - kh + 1, width), (x.stride(0), width, width, 1))
        x = x.contiguous(memory_format=torch.channels_last)
        if add is not None:  # the sum is a post-op of oneDNN's convolution, written into `add`
            assert self.activation == "none" and self.out_channels == self.weight.shape[0]
            return torch.ops.mkldnn._convolution_pointwise_.binary(
                add, x, self.weight, self.bias, self.padding, (1, 1), (1, 1), 1, "add", None, None, [], None
            )
        attr = {"relu": "relu", "tanh": "sigmoid" if self.rows else "none"}.get(self.activation, "none")
        y = torch.ops.mkldnn._convolution_pointwise(
            x, self.weight, self.bias, self.padding, (1, 1), (1, 1), 1, attr, [], None
        )
        if self.activation == "tanh":  # tanh(z)/2 = sigmoid(2z) - 1/2, the factor 2 (or -2) being in the weights
            y = y.sub_(0.5) if self.rows else y.exp_().add_(1).reciprocal_().sub_(0.5)
        return y[:, : self.out_channels]


def _fuse(layers: nn.Sequential) -> None:
    """Fold activations that follow a stable convolution into it: ReLU as is; tanh, when another convolution
    follows, as tanh/2 (a logistic, see _StableConv2d; zero where tanh is, so padding is unchanged), whose
    factor 2 goes into the next convolution's weights."""
    for i in range(len(layers) - 1):
        conv, activation = layers[i], layers[i + 1]
        if not isinstance(conv, _StableConv2d) or conv.activation != "none":
            continue
        if isinstance(activation, nn.ReLU):
            conv.activation, layers[i + 1] = "relu", nn.Identity()
        elif isinstance(activation, nn.Tanh) and i + 2 < len(layers) and isinstance(layers[i + 2], _StableConv2d):
            conv.activation, layers[i + 1] = "tanh", nn.Identity()
            factor = 2 if conv.rows else -2  # sigmoid(2z) or 1/(1 + exp(-2z))
            conv.weight.mul_(factor)
            if conv.bias is not None:
                conv.bias.mul_(factor)
            layers[i + 2].weight.mul_(2)


def _subpixel(deconv: nn.ConvTranspose2d) -> nn.Module | None:
    """The same layer as a convolution and a pixel shuffle (Shi et al. 2016, the ESPCN paper, show they are
    equal), or None where the output is not exactly `stride` times the input.

    Output pixel s*q + r of a transposed convolution reads input q - t through tap s*t + r + padding: a
    convolution with one output channel per colour and phase r, then PixelShuffle(s). oneDNN's transposed
    convolution rounds differently for different input sizes (with several threads); its plain convolution
    does not.
    """
    k, s, p = deconv.kernel_size[0], deconv.stride[0], deconv.padding[0]
    square = len({*deconv.kernel_size, k}) == len({*deconv.stride, s}) == len({*deconv.padding, p}) == 1
    output_padding = deconv.output_padding[0]
    if not square or deconv.groups != 1 or deconv.dilation != (1, 1) or k + output_padding - 2 * p != s:
        return None
    # The input offsets (-t) that each phase reads, and where its deconvolution taps are.
    offsets = {r: [(-t, s * t + r + p) for t in range(-k, k + 1) if 0 <= s * t + r + p < k] for r in range(s)}
    return _SubPixel(deconv, offsets, min(range(1 - s, 1), key=lambda first: (_reach(offsets, s, first), -first)))


def _reach(offsets: dict[int, list[tuple[int, int]]], s: int, first: int) -> int:
    """How far either side the convolution must read when pixel s*q + j, for j in first..first+s-1, is
    computed at input q (a phase j < 0 is phase j + s of input q - 1)."""
    return max(abs(d - (j < 0)) for j in range(first, first + s) for d, _ in offsets[j % s])


class _SubPixel(nn.Module):
    """A transposed convolution as a same-size convolution and PixelShuffle(s), off by `first` output pixels.

    With the deconvolution's own phases, the kernel must span every offset any phase reads, centred: x3 of
    FSRCNN's 9x9 deconvolution reads offsets -1..2, a 5x5 kernel. Taking phase 2 one input later (as phase -1)
    centres them all in 3x3, 2.8 times less work; the input then gets one more row and column (zeros, as the
    deconvolution sees beyond the image), and the output is cropped. Only same-size padding keeps oneDNN's
    results independent of the input size (a 3x3 kernel padded by 2 is not).
    """

    def __init__(self, deconv: nn.ConvTranspose2d, offsets: dict[int, list[tuple[int, int]]], first: int) -> None:
        super().__init__()
        s, reach = deconv.stride[0], _reach(offsets, deconv.stride[0], first)
        size = 2 * reach + 1
        weight = deconv.weight.new_zeros(deconv.out_channels, s, s, deconv.in_channels, size, size)
        for jy in range(first, first + s):
            for jx in range(first, first + s):
                for dy, ky in offsets[jy % s]:
                    for dx, kx in offsets[jx % s]:
                        tap = deconv.weight[:, :, ky, kx].T
                        weight[:, jy - first, jx - first, :, reach + dy - (jy < 0), reach + dx - (jx < 0)] = tap
        bias = deconv.bias is not None
        conv = nn.Conv2d(deconv.in_channels, deconv.out_channels * s * s, size, padding=reach, bias=bias)
        conv = conv.to(deconv.weight.device, deconv.weight.dtype)
        with torch.no_grad():
            conv.weight.copy_(weight.reshape(conv.weight.shape))
            if bias:
                conv.bias.copy_(deconv.bias.repeat_interleave(s * s))
        self.conv, self.shuffle, self.first = _StableConv2d(conv), _PixelShuffle(s), first
        # The padded input, kept from call to call (tiles of one size, frames of a video): a new one of this size
        # would be page-faulted in anew each time, which took longer than the copy into it.
        self.padded: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if self.first:
            shape = (*x.shape[:2], height + 1, width + 1)
            if self.padded is None or self.padded.shape != shape or self.padded.dtype != x.dtype:
                self.padded = x.new_zeros(shape).contiguous(memory_format=torch.channels_last)
            self.padded[:, :, :height, :width] = x  # the last row and column stay zero
            x = self.padded
        y = self.shuffle(self.conv(x))
        s, crop = self.shuffle.upscale_factor, -self.first
        return y[:, :, crop : crop + s * height, crop : crop + s * width]


# Element types as wide as 2 or 4 float32s (or 2 or 4 halves), to move a row of pixels' values as one element.
_WIDE = {4: torch.int32, 8: torch.int64, 16: torch.complex128}


class _PixelShuffle(nn.PixelShuffle):
    """nn.PixelShuffle, with one output channel (the Y of every Y model) as a single strided copy: 2-3x faster than
    PixelShuffle's own kernel on channels_last input at x3 and x4 (slower with more channels). On channels_last
    input, each LR pixel's values for one output row are `scale` floats side by side in memory, and so are they in
    the output: at x2 and x4 they are copied as one 8- or 16-byte element (2.6 -> 1.5 ms at x4, 1080p, in
    `benchmarks/upscale_profile.py fsrcnn-s --scale 4`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, channels, height, width = x.shape
        s = self.upscale_factor
        if channels != s * s:
            return super().forward(x)
        out = x.new_empty(n, height, s, width, s)
        wide = _WIDE.get(s * x.element_size())
        if wide is not None and x.is_contiguous(memory_format=torch.channels_last):
            rows = x.permute(0, 2, 3, 1).view(wide)  # (n, height, width, s): output row phase, of s values each
            out.view(wide).copy_(rows.transpose(2, 3).unsqueeze(-1))
        else:
            out.copy_(x.view(n, s, s, height, width).permute(0, 3, 1, 4, 2))
        return out.view(n, 1, height * s, width * s)


def _plain(conv: nn.Conv2d) -> bool:
    """Zero or replicate padding given in pixels, no stride, dilation or groups: what every srkit model uses."""
    numeric = not isinstance(conv.padding, str) and conv.padding_mode in ("zeros", "replicate")
    return numeric and conv.stride == conv.dilation == (1, 1) and conv.groups == 1


def prepare(model: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """An inference copy of `model` on `device`; on the CPU in float32, its convolutions are made
    size-stable (see _StableConv2d and _subpixel), so that tiles equal the whole image bit for bit."""
    model = copy.deepcopy(model).to(device, dtype).eval()
    if device.type != "cpu" or dtype != torch.float32 or not torch.backends.mkldnn.is_available():
        return model
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if type(child) is nn.Conv2d and _plain(child):
                setattr(parent, name, _StableConv2d(child))
            elif type(child) is nn.ConvTranspose2d and (replacement := _subpixel(child)) is not None:
                setattr(parent, name, replacement)
            elif type(child) is nn.PixelShuffle:
                setattr(parent, name, _PixelShuffle(child.upscale_factor))
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            _fuse(module)
    return model


@torch.no_grad()
def network_bytes_per_pixel(model: nn.Module, scale: int, dtype: torch.dtype) -> float:
    """Peak bytes per input pixel of the network, measured on a 16x16 input: three times the widest activation
    (a layer's input, its output and a skip connection)."""
    widest = [0]

    def record(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        widest[0] = max(widest[0], output.numel())

    hooks = [m.register_forward_hook(record) for m in model.modules()]
    try:
        parameter = next(model.parameters())
        model(torch.zeros(1, model.info.in_channels, 16, 16, device=parameter.device, dtype=dtype))
    finally:
        for hook in hooks:
            hook.remove()
    per_pixel = widest[0] / 256 * (scale**2 if model.info.upsampled_input else 1)
    element = torch.finfo(dtype).bits // 8
    return 3 * per_pixel * element


@lru_cache(maxsize=1)
def keep_freed_memory() -> None:
    """Have glibc serve buffers up to 256 MiB from its heap, and keep up to 512 MiB of it when freed.

    By default it maps every buffer over 32 MiB afresh, and returns freed heap over 64 MiB to the system: each
    frame then page-faults its activations in anew. FSRCNN-small x2 on 480x540 tiles of a 1080p frame took 1.6x as
    long that way (an A/B with MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_); with this, tiles as large as the
    memory budget allows are the fastest. It holds for the whole process; elsewhere than on glibc, nothing changes.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-1, 512 << 20)  # M_TRIM_THRESHOLD
    libc.mallopt(-3, 256 << 20)  # M_MMAP_THRESHOLD
