"""Shared fixtures: where the optional reference data lives (../shared beside the repository), a tiny data root of
generated images that trainings run on, a small network's weights file, and the zoo with a small VDSR record."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srkit import models, zoo
from srkit.zoo import save_weights

SHARED = Path(os.environ.get("SRKIT_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))


@pytest.fixture
def matlab_reference() -> Path:
    folder = SHARED / "reference" / "matlab_bicubic"
    if not folder.is_dir():
        pytest.skip(f"MATLAB reference images not found at {folder} (set SRKIT_SHARED to the shared folder)")
    return folder


@pytest.fixture
def datasets() -> Path:
    folder = Path(os.environ.get("SRKIT_DATA", SHARED / "datasets"))
    if not (folder / "Set5").is_dir():
        pytest.skip(f"benchmark datasets not found at {folder} (set SRKIT_DATA)")
    return folder


@pytest.fixture
def tiny_weights(tmp_path) -> Path:
    """A weights file of a small ESPCN x3 (8 and 8 features): the CLI's upscaling at test speed."""
    torch.manual_seed(0)
    path = tmp_path / "espcn.safetensors"
    save_weights(models.build("espcn", 3, features=(8, 8)), path, {"features": (8, 8)})
    return path


def _image(rng: np.random.Generator, h: int, w: int) -> Image.Image:
    """A smooth random colour image: noise upscaled, so that SR has something to learn."""
    small = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((w, h), Image.BICUBIC)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Training sets T91 and BSD200 and validation set Set5 of a few small generated images (one grey)."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for name, sizes in {"T91": [(200, 208), (96, 120)], "BSD200": [(200, 200)], "Set5": [(48, 48), (36, 60)]}.items():
        (root / name).mkdir()
        for i, (h, w) in enumerate(sizes):
            _image(rng, h, w).save(root / name / f"{i}.png")
    _image(rng, 64, 64).convert("L").save(root / "T91" / "gray.png")
    return root


@pytest.fixture
def vdsr_in_the_zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> zoo.Record:
    """The zoo with a small VDSR record beside the shipped weights: one weight for x2, x3 and x4, as issue 32's."""
    torch.manual_seed(0)
    options = {"depth": 3, "num_features": 4}
    model = models.build("vdsr", 3, **options)
    file = tmp_path / "vdsr.safetensors"
    save_weights(model, file, options, scales=(2, 3, 4))
    fake = zoo.Record(
        "vdsr", "vdsr", options, 3, (2, 3, 4), "T91+BSD200", file.name, zoo.sha256(file), zoo.count_params(model),
        "recipes/vdsr.yaml", "", (),
    )  # fmt: skip
    shipped = zoo.records()
    path = zoo.Record.path
    monkeypatch.setattr(zoo.Record, "path", property(lambda r: file if r is fake else path.fget(r)))
    monkeypatch.setattr(zoo, "records", lambda: {**shipped, fake.id: fake})
    return fake
