"""srkit.models: the registry, every architecture's contract, the MAC/receptive-field table and VGG19."""

from __future__ import annotations

import argparse

import pytest
import torch
from safetensors.torch import load_file, save_file

from srkit.cli import models as models_cli
from srkit.errors import SrkitError
from srkit.models import REGISTRY, DiscriminatorInfo, ModelInfo, build, describe, names
from srkit.models.vgg import VGGFeatures

SR_NAMES = [n for n in names() if REGISTRY[n].scales]
SR_CASES = [(n, s) for n in SR_NAMES for s in REGISTRY[n].scales]
# Neither width nor res_scale moves the receptive field, so the float64 receptive-field tests run narrow
# versions of the big nets: 16 features for the bump, whose far contributions must survive 30+ layers
# (EDSR's res_scale 0.1 per block would push them below float64 resolution), 4 for the NaN, which spreads
# whatever the weights.
NARROW = {"edsr": {"res_scale": 1.0}, "edsr-baseline": {}, "srresnet": {}}
# Full EDSR is 43M parameters; a 64-wide one has the same modules and keys, for the save/export checks.
SMALL = {"edsr": {"num_features": 64}}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _input(model: torch.nn.Module, size: int = 12, batch: int = 1) -> torch.Tensor:
    lo, hi = model.info.input_range
    return lo + (hi - lo) * torch.rand(batch, model.info.in_channels, size, size)


def _conv_weights(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.dim() == 4)


def _build_meta(name: str, scale: int | None, **overrides: object) -> torch.nn.Module:
    with torch.device("meta"):
        return build(name, scale, **overrides)


@pytest.mark.parametrize(
    ("name", "scale", "expected"),
    [
        ("srcnn", 3, 57_184),
        ("srcnn-915", 3, 8_032),
        ("fsrcnn", 3, 12_464),  # 1400 + 672 + 4 * 1296 + 672 + deconv 56 * 81
        ("espcn", 3, 22_624),
        ("vdsr", 3, 664_704),
        ("edsr-baseline", 2, 1_367_424),  # the mean shift is a buffer, not 18 weights
        ("srresnet", 4, 1_542_528),
    ],
)
def test_conv_weights_match_the_papers(name: str, scale: int, expected: int) -> None:
    assert _conv_weights(_build_meta(name, scale)) == expected


def test_registry_names() -> None:
    assert names() == [
        "srcnn", "srcnn-915", "fsrcnn", "fsrcnn-s", "espcn", "espcn-relu", "espcn-rgb",
        "vdsr", "edsr-baseline", "edsr", "srresnet", "srgan-discriminator",
    ]  # fmt: skip


@pytest.mark.parametrize(("name", "scale"), SR_CASES)
def test_output_shape_and_finite(name: str, scale: int) -> None:
    model = build(name, scale).eval()
    info = model.info
    assert isinstance(info, ModelInfo) and info.name == name and info.scale == scale
    assert info.scales == ((2, 3, 4) if name == "vdsr" else (scale,))
    x = _input(model, size=8, batch=2)
    with torch.no_grad():
        y = model(x)
    size = 8 if info.upsampled_input else 8 * scale
    assert y.shape == (2, info.in_channels, size, size)
    assert torch.isfinite(y).all()
    lo, hi = info.output_range
    if name == "espcn-rgb":  # tanh output: labels were x / 127.5 - 1
        assert (lo, hi) == (-1.0, 1.0) and info.input_range == (0.0, 255.0) and y.abs().max() <= 1


def test_srcnn_init_paper_or_he() -> None:
    paper, he = build("srcnn", 3), build("srcnn", 3, init="he")
    assert [c.weight.std().item() for c in paper.body[::2]] == pytest.approx([1e-3] * 3, rel=0.1)
    fans = [1 * 9 * 9, 64 * 5 * 5]
    assert [c.weight.std().item() for c in he.body[:4:2]] == pytest.approx([(2 / f) ** 0.5 for f in fans], rel=0.1)
    assert he.body[4].weight.std().item() == pytest.approx(1e-3, rel=0.1)
    assert all(not c.bias.any() for c in he.body[::2]) and he.info.init != paper.info.init


def test_srcnn_replicate_padding_sees_a_flat_image_as_flat_to_its_edges() -> None:
    """SRCNN.m's borders: every layer reads its input's edge repeated, where zeros would read black."""
    torch.manual_seed(0)
    zeros, replicate = build("srcnn", 2, init="he"), build("srcnn", 2, init="he", padding="replicate")
    replicate.load_state_dict(zeros.state_dict())
    flat = torch.full((1, 1, 24, 24), 0.6)
    with torch.no_grad():
        inside, edges = replicate(flat), zeros(flat)
    assert torch.allclose(inside, inside[0, 0, 12, 12], atol=1e-6)
    assert torch.allclose(edges[..., 8:-8, 8:-8], inside[..., 8:-8, 8:-8], atol=1e-6)  # the same network inside
    assert not torch.allclose(edges, inside, atol=1e-4)


def test_info_input_kinds() -> None:
    infos = {n: _build_meta(n, 3).info for n in SR_NAMES}
    kinds = {n: (info.channels, info.upsampled_input) for n, info in infos.items()}
    assert kinds["srcnn"] == kinds["vdsr"] == ("y", True)
    assert kinds["fsrcnn"] == kinds["espcn"] == ("y", False)
    assert kinds["espcn-rgb"] == kinds["edsr"] == kinds["srresnet"] == ("rgb", False)
    assert infos["vdsr"].in_channels == 1 and infos["edsr"].in_channels == 3


@pytest.mark.parametrize("name", SR_NAMES)
def test_state_dict_round_trip(name: str, tmp_path) -> None:
    scale = REGISTRY[name].scales[-1]
    model = build(name, scale, **SMALL.get(name, {})).eval()
    path = tmp_path / "weights.safetensors"
    save_file(model.state_dict(), str(path))
    fresh = build(name, scale, **SMALL.get(name, {})).eval()
    fresh.load_state_dict(load_file(str(path)), strict=True)
    x = _input(model)
    with torch.no_grad():
        assert torch.equal(model(x), fresh(x))


def test_torch_save_round_trip_weights_only(tmp_path) -> None:
    model = build("srresnet", 4).eval()  # BN buffers included
    torch.save(model.state_dict(), tmp_path / "w.pth")
    fresh = build("srresnet", 4).eval()
    fresh.load_state_dict(torch.load(tmp_path / "w.pth", weights_only=True), strict=True)
    x = _input(model)
    with torch.no_grad():
        assert torch.equal(model(x), fresh(x))


# A NaN at every scale; a bump on the big nets only at x2, as float64 convolutions at x4 HR size are slow.
BUMP_CASES = [(n, s) for n, s in SR_CASES if n not in NARROW or s == 2]
RF_CASES = [(n, s, "nan") for n, s in SR_CASES] + [(n, s, "bump") for n, s in BUMP_CASES]


@pytest.mark.parametrize(("name", "scale", "perturbation"), RF_CASES)
def test_receptive_radius_is_exact(name: str, scale: int, perturbation: str) -> None:
    """Perturb the middle input pixel: the outputs that change lie within the radius and reach it.

    A +1 bump shows real numerical dependence; a NaN spreads through every multiply-add whatever the
    weights and activations, so it shows the structural dependence that tiling must cover. float64 and
    eval mode: no noise from BN statistics or from convolution algorithms that mix a whole tile.
    """
    width = {"num_features": 16 if perturbation == "bump" else 4}
    model = build(name, scale, **(NARROW[name] | width if name in NARROW else {})).eval().double()
    radius = model.info.receptive_radius
    assert radius == _build_meta(name, scale).info.receptive_radius  # narrowing moved nothing
    size, c = 2 * radius + 9, radius + 4
    x = torch.rand(1, model.info.in_channels, size, size, dtype=torch.float64)
    bumped = x.clone()
    bumped[:, :, c, c] = float("nan") if perturbation == "nan" else x[:, :, c, c] + 1.0
    with torch.no_grad():
        y = model(bumped)
        changed = y.isnan() if perturbation == "nan" else y != model(x)
    step = 1 if model.info.upsampled_input else scale
    where = changed.any(dim=1)[0].nonzero()
    distance = (where // step - c).abs().amax(dim=1)  # Chebyshev distance of each mapped input pixel
    assert int(distance.max()) == radius  # an upper bound, and tight
    assert (distance == 0).sum() == step * step  # every output of the perturbed pixel itself changed


@pytest.mark.parametrize("name", names())
def test_export_matches_eager(name: str) -> None:
    scale = REGISTRY[name].scales[0] if REGISTRY[name].scales else None
    model = build(name, scale, **SMALL.get(name, {})).eval()
    x = torch.rand(1, 3, 96, 96) if scale is None else _input(model, size=8)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        assert torch.allclose(exported.module()(x), model(x), rtol=1e-5, atol=1e-6)


def test_discriminator() -> None:
    model = build("srgan-discriminator").eval()
    assert isinstance(model.info, DiscriminatorInfo) and model.info.patch_size == 96
    dense = model.classifier[1]
    assert dense.in_features == 512 * 6 * 6  # the paper's 96x96 crop reaches the dense layer as 6x6x512
    with torch.no_grad():
        for size in (96, 64):  # any size, thanks to the adaptive pooling
            y = model(torch.rand(2, 3, size, size))
            assert y.shape == (2, 1) and torch.isfinite(y).all()
    strides = [m.stride[0] for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert strides == [1, 2] * 4
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.features) == 7


def test_overrides_replace_the_config() -> None:
    custom = _build_meta("fsrcnn", 3, d=32, s=5, m=1)
    assert _conv_weights(custom) == _conv_weights(_build_meta("fsrcnn-s", 3))
    assert build("edsr-baseline", 2, res_scale=1).info.name == "edsr-baseline"


@pytest.mark.parametrize(
    ("name", "scale", "overrides", "match"),
    [
        ("srcnn-9-5-5", 3, {}, "valid names: srcnn, srcnn-915"),
        ("srcnn", 5, {}, "one of 2, 3, 4"),
        ("srcnn", None, {}, "scale must be one of 2, 3, 4; got None"),
        ("fsrcnn", 3, {"n": 5}, "unknown option"),
        ("fsrcnn", 3, {"d": "56"}, "d='56'"),
        ("espcn", 3, {"activation": "gelu"}, "activation"),
        ("espcn", 3, {"kernels": (5, 3)}, "one more than"),
        ("srgan-discriminator", 4, {}, "takes no scale"),
    ],
)
def test_bad_requests_raise_srkit_error(name: str, scale: int | None, overrides: dict, match: str) -> None:
    with pytest.raises(SrkitError, match=match):
        build(name, scale, **overrides)


def test_describe_counts_macs_exactly() -> None:
    # Every layer of these runs at one resolution, so MACs per output pixel = conv weights / factor^2.
    for name, scale, factor in [("srcnn", 3, 1), ("vdsr", 2, 1), ("fsrcnn", 3, 3), ("espcn", 4, 4)]:
        row = describe(name, scale)
        assert row.macs_per_pixel * factor**2 == _conv_weights(_build_meta(name, scale))
    # EDSR-baseline x2: head, body and upsampler conv on LR pixels, the tail conv on HR pixels.
    row = describe("edsr-baseline", 2)
    assert row.macs_per_pixel == (1728 + 32 * 36864 + 36864 + 147456) / 4 + 1728
    assert row.gmacs_per_frame == pytest.approx(row.macs_per_pixel * 1920 * 1080 / 1e9)
    assert row.receptive_radius == 36 and row.receptive_size == 73
    assert describe("srgan-discriminator", 3).macs_per_pixel is None


def test_cli_table(capsys) -> None:
    parser = argparse.ArgumentParser()
    models_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["models", "--scale", "4"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in names())
    assert "1,550,659" in out and "Y, bicubic-upscaled" in out  # SRResNet x4 parameters
    with pytest.raises(SrkitError):
        models_cli.run(argparse.Namespace(scale=7))


# torchvision's vgg19().features indices of the convolutions.
TORCHVISION_CONVS = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]


def test_vgg_layout_matches_torchvision() -> None:
    vgg = VGGFeatures("vgg54", random_init=True)
    convs = [i for i, m in enumerate(vgg.features) if isinstance(m, torch.nn.Conv2d)]
    assert convs == TORCHVISION_CONVS and len(vgg.features) == 36  # ends with relu5_4
    assert len(VGGFeatures("vgg22", random_init=True).features) == 9  # ends with relu2_2
    assert not any(p.requires_grad for p in vgg.parameters())
    assert not vgg.train().training


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_vgg_loads_torchvision_state_dict(suffix: str, tmp_path) -> None:
    source = VGGFeatures("vgg54", random_init=True)
    state = {k: v.clone() for k, v in source.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)  # present in torchvision files, ignored
    path = tmp_path / f"vgg19{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(VGGFeatures("vgg54", weights=path)(x), source(x))
        relu2_2 = source.features[:9]((x - source.mean) / source.std)
        assert torch.equal(VGGFeatures("vgg22", weights=path)(x), relu2_2)
    del state["features.34.weight"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(SrkitError, match="not a torchvision VGG19"):
        VGGFeatures("vgg54", weights=tmp_path / "partial.pth")


def test_vgg_missing_weights(tmp_path) -> None:
    with pytest.raises(SrkitError, match="cannot download"):
        VGGFeatures(weights=tmp_path / "vgg19.pth")
    with pytest.raises(SrkitError, match="random_init"):
        VGGFeatures()
