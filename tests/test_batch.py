"""Files and folders: no two inputs share an output, path mistakes are one line naming the path, before any work."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srkit.cli import main


def save_photo(path: Path, height: int = 6, width: int = 7, channels: int = 3) -> Path:
    """A small random image file (the folders above it are made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(len(str(path))).integers(0, 256, (height, width, channels), np.uint8)
    Image.fromarray(pixels.squeeze()).save(path)
    return path


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def upscale(tiny_weights, capsys):
    """`srkit upscale ARGS --weights W`: (exit code, stdout, stderr)."""

    def run(*args: str | Path) -> tuple[int, str, str]:
        code = main(["upscale", *map(str, args), "--weights", str(tiny_weights)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_two_inputs_never_share_an_output(tmp_path, upscale):
    """Issue 37, 1: g/x/a.png and g/y/a.png, by a pattern or named one by one, keep their folders below the root
    they share; inputs that would still share an output stop the run before anything is written."""
    for name in ("x/a.png", "y/a.png", "y/deeper/b.png"):
        save_photo(tmp_path / "g" / name)
    code, out, _ = upscale(tmp_path / "g" / "**" / "*.png", "-o", tmp_path / "glob")
    assert (code, out.strip()) == (0, "3 upscaled, 0 skipped (exists), 0 failed")
    assert files(tmp_path / "glob") == ["x/a.png", "y/a.png", "y/deeper/b.png"]
    code, out, _ = upscale(tmp_path / "g" / "**" / "*.png", "-o", tmp_path / "glob")
    assert out.strip() == "0 upscaled, 3 skipped (exists), 0 failed"  # skipped: an earlier run's outputs only

    code, out, _ = upscale(tmp_path / "g/x/a.png", tmp_path / "g/y/a.png", "-o", tmp_path / "named")
    assert (code, files(tmp_path / "named")) == (0, ["x/a.png", "y/a.png"])

    code, _, err = upscale(tmp_path / "g/x", tmp_path / "g/y", "-o", tmp_path / "folders")
    assert code == 1 and err.count("\n") == 1 and "would both be written to" in err
    assert str(tmp_path / "g/x/a.png") in err and str(tmp_path / "g/y/a.png") in err
    assert not (tmp_path / "folders").exists()

    save_photo(tmp_path / "a_x3.png")  # the output of a.png, given as an input too
    save_photo(tmp_path / "a.png")
    before = (tmp_path / "a_x3.png").read_bytes()
    code, _, err = upscale(tmp_path / "a.png", tmp_path / "a_x3.png")
    assert code == 1 and "refusing to overwrite an input" in err and (tmp_path / "a_x3.png").read_bytes() == before


def test_path_mistakes_are_one_line_naming_the_path(tmp_path, upscale, monkeypatch):
    """Issue 37, 3: an output that is a file where a folder is needed, a folder that cannot be written, an unknown
    output suffix, an input that does not exist: one line naming the user's path, nothing written."""
    photos = tmp_path / "photos"
    photo = save_photo(photos / "a.png")
    (tmp_path / "clip.mp4").write_bytes(b"not read: the run stops first")
    afile = tmp_path / "afile.txt"
    afile.write_text("a user's file")
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode))
    mistakes = [
        ((photos, "-o", afile), f"{afile}: is a file, not a folder"),
        ((photo, "-o", afile / "out.png"), f"{afile / 'out.png'}: {afile} is a file, not a folder"),
        ((photo, tmp_path / "clip.mp4", "-o", afile), f"{afile}: is a file, not a folder"),
        ((photos, "-o", locked / "out"), f"{locked / 'out'}: cannot write in {locked} (permission denied)"),
        ((photo, "-o", tmp_path / "out.xyz"), f"{tmp_path / 'out.xyz'}: cannot write an image as .xyz; use .png"),
        ((tmp_path / "missing.png",), f"{tmp_path / 'missing.png'}: no such file or folder"),
        ((tmp_path / "missing" / "*.png",), f"{tmp_path / 'missing' / '*.png'}: no file matches"),
    ]
    for args, message in mistakes:
        code, out, err = upscale(*args)
        assert (code, out) == (1, ""), args
        assert err.startswith(f"srkit: error: {message}") and err.count("\n") == 1, err
    assert afile.read_text() == "a user's file"
    untouched = ["afile.txt", "clip.mp4", "espcn.safetensors", "locked", "photos"]
    assert sorted(p.name for p in tmp_path.iterdir()) == untouched
    assert list(locked.iterdir()) == []

    code, _, _ = upscale(photo, "-o", tmp_path / "new" / "deeper" / "out.png")  # missing folders are made
    assert code == 0 and (tmp_path / "new" / "deeper" / "out.png").is_file()


def test_an_error_never_names_a_temporary_file(tmp_path, upscale, caplog):
    """Issue 37, 4: the output's name, not that of the temporary file written before it is renamed into place."""
    photo = save_photo(tmp_path / "photo.png")
    code, _, err = upscale(photo, "-o", tmp_path / "out.xyz")
    assert code == 1 and f"{tmp_path / 'out.xyz'}:" in err and ".tmp" not in err

    logo = save_photo(tmp_path / "logo.png", channels=4)  # JPEG cannot hold the alpha: the write itself fails
    code, out, _ = upscale(logo, "-o", tmp_path / "logo.jpg")
    failure = next(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert code == 1 and "1 failed" in out
    assert failure.startswith(f"{tmp_path / 'logo.jpg'}: cannot write") and ".tmp" not in failure, failure
    assert sorted(p.name for p in tmp_path.iterdir()) == ["espcn.safetensors", "logo.png", "photo.png"]


def test_without_o_every_output_is_beside_its_input_as_the_help_says(tmp_path, upscale, capsys):
    """Issue 37, 5: a file as NAME_x3.EXT beside it, a folder's files in FOLDER_x3/ beside it."""
    save_photo(tmp_path / "photos" / "a.png")
    save_photo(tmp_path / "photos" / "sub" / "b.jpg")
    save_photo(tmp_path / "c.png")
    code, out, _ = upscale(tmp_path / "photos", tmp_path / "c.png")
    assert (code, out.strip()) == (0, "3 upscaled, 0 skipped (exists), 0 failed")
    assert files(tmp_path / "photos_x3") == ["a.png", "sub/b.jpg"] and (tmp_path / "c_x3.png").is_file()
    assert files(tmp_path / "photos") == ["a.png", "sub/b.jpg"]  # nothing new among the inputs of the next run
    assert Image.open(tmp_path / "photos_x3" / "a.png").size == (21, 18)

    with pytest.raises(SystemExit):
        main(["upscale", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "a file as NAME_x{scale}.EXT, a folder's files in FOLDER_x{scale}/ beside the folder" in help_text
