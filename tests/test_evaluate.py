import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from srkit.cli import main
from srkit.data import benchmark, modcrop
from srkit.evaluate import bicubic, evaluate

# The field's standard bicubic numbers on Set5 (PSNR, SSIM), which a correct pipeline reproduces.
SET5_BICUBIC = {2: (33.66, 0.9299), 3: (30.39, 0.8682), 4: (28.42, 0.8104)}


@pytest.fixture
def tiny_root(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "Set5"
    folder.mkdir()
    Image.fromarray(rng.integers(0, 256, (50, 61, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (47, 40), dtype=np.uint8)).save(folder / "b.png")
    return tmp_path


def test_benchmark_modcrops_and_keeps_gray(tiny_root):
    pairs = benchmark("Set5", 3, tiny_root)
    assert [p.name for p in pairs] == ["a", "b"]
    assert pairs[0].hr.shape == (48, 60, 3) and pairs[0].lr.shape == (16, 20, 3)
    assert pairs[1].hr.shape == (45, 39) and pairs[1].lr.shape == (15, 13)
    assert modcrop(np.zeros((10, 11)), 4).shape == (8, 8)


def test_eval_cli_prints_table_and_writes_json(tiny_root, tmp_path, capsys):
    out = tmp_path / "records.json"
    args = ["eval", "--model", "bicubic", "--dataset", "Set5", "--scale", "2", "4", "--data-root", str(tiny_root)]
    assert main([*args, "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "Set5" in table and "x4" in table
    records = json.loads(out.read_text())
    assert [(r["model"], r["dataset"], r["scale"], r["images"]) for r in records] == [
        ("bicubic", "Set5", 2, 2),
        ("bicubic", "Set5", 4, 2),
    ]
    assert records[0]["psnr"] == pytest.approx(np.mean([i["psnr"] for i in records[0]["per_image"]]))


def test_bicubic_reproduces_the_published_set5_table(datasets):
    for scale, (want_psnr, want_ssim) in SET5_BICUBIC.items():
        record = evaluate("bicubic", bicubic, "Set5", scale, datasets, progress=False)
        assert record.psnr == pytest.approx(want_psnr, abs=0.02)
        assert record.ssim == pytest.approx(want_ssim, abs=0.002)


@pytest.mark.parametrize(
    "args, message",
    [
        (["eval", "--dataset", "Set6"], "unknown dataset 'Set6'"),
        (["eval", "--scale", "5"], "scale 5 is not supported"),
        (["eval", "--dataset", "BSD100"], "dataset BSD100 not found"),
        (["eval", "--model", "nope"], "unknown pretrained model 'nope'"),
        (["eval", "--weights", "missing.safetensors"], "no such weights file"),
    ],
)
def test_user_mistakes_are_one_line_errors(tiny_root, capsys, args, message):
    assert main([*args, "--data-root", str(tiny_root)]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_missing_data_root_says_how_to_set_it(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SRKIT_DATA", raising=False)
    assert main(["eval"]) == 1
    assert "--data-root" in capsys.readouterr().err
    assert main(["eval", "--data-root", str(tmp_path / "missing")]) == 1
    assert "is not a folder" in capsys.readouterr().err


def test_unreadable_image_names_the_file(tiny_root, capsys):
    (tiny_root / "Set5" / "c.png").write_bytes(b"not a png")
    assert main(["eval", "--dataset", "Set5", "--scale", "2", "--data-root", str(tiny_root)]) == 1
    err = capsys.readouterr().err
    assert "c.png" in err and err.count("\n") == 1


def test_console_script_and_debug_traceback(tiny_root):
    cmd = [sys.executable, "-m", "srkit", "eval", "--dataset", "Set6", "--data-root", str(tiny_root)]
    plain = subprocess.run(cmd, capture_output=True, text=True)
    assert plain.returncode == 1 and plain.stderr.startswith("srkit: error:") and "Traceback" not in plain.stderr
    debug = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "SRKIT_DEBUG": "1"})
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_argument_mistakes_are_one_line_too(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--scale", "x"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid int value: 'x'" in err and err.count("\n") == 1
