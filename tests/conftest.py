"""Shared fixtures: where the optional reference data lives (../shared beside the repository)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
