"""The shipped weights: checksums, parameter counts, golden outputs, scores that are still true, srkit.load."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import srkit
from srkit import models, zoo
from srkit.cli import main
from srkit.data import BENCHMARKS
from srkit.errors import SrkitError
from srkit.evaluate import evaluate, network

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "zoo"
RECORDS = list(zoo.records().values())
IDS = [r.id for r in RECORDS]


def test_the_zoo_ships_weights() -> None:
    assert zoo.default_id() in IDS, "the default model of `srkit upscale` must be in the zoo"
    files = sorted(p.name for p in (ROOT / "src" / "srkit" / "weights").glob("*.safetensors"))
    assert files == sorted(r.file for r in RECORDS), "every weight file has a record and every record a file"


@pytest.mark.parametrize("record", RECORDS, ids=IDS)
def test_record_matches_its_file(record: zoo.Record) -> None:
    assert zoo.sha256(record.path) == record.sha256
    model = zoo.load_pretrained(record.id)
    assert zoo.count_params(model) == record.params
    assert (model.info.name, model.info.scale, model.info.scales) == (record.model, record.scale, record.scales)
    metadata = zoo.read_metadata(record.path)
    assert metadata["srkit.model"] == record.model
    assert (ROOT / record.recipe).is_file()
    measured = {(s.dataset, s.scale) for s in record.scores}
    assert measured == {(d, s) for d in BENCHMARKS for s in record.scales}


@pytest.mark.parametrize("record", RECORDS, ids=IDS)
def test_golden_output(record: zoo.Record) -> None:
    rgb = np.asarray(Image.open(GOLDEN / "tiny.png").convert("RGB"), np.float32) / 255
    out = srkit.load(record.id).upscale(rgb)
    golden = np.load(GOLDEN / f"{record.id}.npy", allow_pickle=False)
    assert out.shape == golden.shape == (rgb.shape[0] * record.scale, rgb.shape[1] * record.scale, 3)
    np.testing.assert_allclose(out, golden, atol=1e-4, rtol=0)


@pytest.mark.parametrize("record", RECORDS, ids=IDS)
def test_set5_score_is_current(record: zoo.Record, datasets: Path) -> None:
    """The record's Set5 PSNR is what the weights give today (catches a stale zoo.json)."""
    model = zoo.load_pretrained(record.id)
    for scale in record.scales:
        measured = evaluate(record.id, network(model), "Set5", scale, datasets, progress=False)
        assert measured.psnr == pytest.approx(record.score("Set5", scale).psnr, abs=1e-3)


def test_a_changed_file_fails_its_checksum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = zoo.record(zoo.default_id())
    copy = tmp_path / record.file
    shutil.copyfile(record.path, copy)
    copy.write_bytes(copy.read_bytes()[:-4] + b"\0\0\0\0")
    fake = dataclasses.replace(record, file=copy.name)
    monkeypatch.setattr(zoo.Record, "path", property(lambda r: tmp_path / r.file))
    monkeypatch.setattr(zoo, "records", lambda: {fake.id: fake})
    with pytest.raises(SrkitError, match="sha256"):
        zoo.load_pretrained(fake.id)


def test_unknown_id_lists_the_zoo() -> None:
    with pytest.raises(SrkitError, match=zoo.default_id()):
        srkit.load("espcn-x9")


def test_load_round_trip(tmp_path: Path) -> None:
    """srkit.load takes a zoo id or a weights file and returns an upscaler that keeps the input's kind."""
    upscaler = srkit.load(zoo.default_id())
    assert isinstance(upscaler, srkit.Upscaler)
    image = Image.open(GOLDEN / "tiny.png")
    out = upscaler.upscale(image)
    assert isinstance(out, Image.Image) and out.size == (image.width * 3, image.height * 3) and out.mode == "RGB"
    assert isinstance(upscaler.upscale(torch.rand(3, 8, 8)), torch.Tensor)

    path = tmp_path / "mine.safetensors"
    record = zoo.records()[zoo.default_id()]
    zoo.save_weights(zoo.load_pretrained(record.id), path, record.options)
    again = srkit.load(path).upscale(np.asarray(image))
    np.testing.assert_array_equal(again, np.asarray(out))

    with pytest.raises(SrkitError, match="scale"):
        srkit.load(zoo.default_id(), scale=2)
    models.build("espcn", 3)  # the registry is untouched by loading


def test_cli_lists_and_upscales_with_the_zoo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    assert zoo.default_id() in capsys.readouterr().out
    out = tmp_path / "butterfly_x3.png"
    assert main(["upscale", str(ROOT / "samples" / "butterfly_lr.png"), "-o", str(out)]) == 0
    assert Image.open(out).size == (255, 255)


def test_cli_evaluates_a_zoo_model(capsys: pytest.CaptureFixture[str], datasets: Path) -> None:
    assert main(["eval", "--model", zoo.default_id(), "--dataset", "Set5", "--data-root", str(datasets)]) == 0
    assert "Set5" in capsys.readouterr().out
    assert main(["eval", "--model", zoo.default_id(), "--scale", "2", "--data-root", str(datasets)]) == 1
    assert "not by 2" in capsys.readouterr().err


def test_a_multi_scale_weight_takes_only_the_scales_it_was_trained_for(tmp_path: Path, capsys) -> None:
    model = models.build("vdsr", 3, depth=3, num_features=4)
    zoo.save_weights(model, tmp_path / "vdsr.safetensors", {"depth": 3, "num_features": 4}, scales=(2, 3))
    upscaler = srkit.load(tmp_path / "vdsr.safetensors", scale=2)
    assert upscaler.upscale(np.zeros((5, 6), np.float32)).shape == (10, 12)
    with pytest.raises(SrkitError, match="vdsr upscales by 2 or 3, not by 4"):
        srkit.load(tmp_path / "vdsr.safetensors", scale=4)
    assert main(["eval", "--weights", str(tmp_path / "vdsr.safetensors"), "--scale", "4", "--dataset", "Set5"]) == 1
    assert "upscales by 2 or 3, not by 4" in capsys.readouterr().err


def test_model_messages_say_what_was_typed_and_what_would_work(tmp_path: Path, capsys) -> None:
    """Issue 37, 10: --scale 5 names espcn's scales, not an id nobody typed; a model name names its zoo ids and
    takes --scale."""
    photo = tmp_path / "a.png"
    Image.fromarray(np.full((6, 7, 3), 100, np.uint8)).save(photo)
    espcn = [r.id for r in sorted(RECORDS, key=lambda r: r.scale) if r.model == "espcn"]
    fsrcnn = [r.id for r in sorted(RECORDS, key=lambda r: r.scale) if r.model == "fsrcnn"]

    assert main(["upscale", str(photo), "--scale", "5"]) == 1
    err = capsys.readouterr().err
    assert "espcn-x5" not in err and err.count("\n") == 1
    assert err.endswith(f"espcn has pretrained weights for scales 2, 3, 4 ({', '.join(espcn)}), not 5\n")

    assert main(["upscale", str(photo), "--model", "fsrcnn"]) == 1
    err = capsys.readouterr().err
    assert ", ".join(fsrcnn) in err and err.count("\n") == 1

    assert main(["upscale", str(photo), "--model", "fsrcnn", "--scale", "2"]) == 0
    assert Image.open(tmp_path / "a_x2.png").size == (14, 12)
    assert srkit.load("fsrcnn", scale=4).info.name == "fsrcnn"


def test_a_multi_scale_zoo_record_is_taken_at_each_of_its_scales(vdsr_in_the_zoo, tmp_path, capsys) -> None:
    photo = tmp_path / "a.png"
    Image.fromarray(np.full((6, 7, 3), 100, np.uint8)).save(photo)
    for scale in (2, 3, 4):
        out = tmp_path / f"a_vdsr_x{scale}.png"
        assert main(["upscale", str(photo), "--model", "vdsr", "--scale", str(scale), "-o", str(out)]) == 0
        assert Image.open(out).size == (7 * scale, 6 * scale)
        assert srkit.load("vdsr", scale=scale).upscale(np.zeros((5, 6), np.float32)).shape == (5 * scale, 6 * scale)
    assert main(["upscale", str(photo), "--model", "vdsr"]) == 0  # the record's own scale
    assert Image.open(tmp_path / "a_x3.png").size == (21, 18)
    capsys.readouterr()

    assert main(["upscale", str(photo), "--model", "vdsr", "--scale", "5"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "vdsr upscales by 2 or 3 or 4, not by 5" in err
    with pytest.raises(SrkitError, match="not by 5"):
        srkit.load("vdsr", scale=5)

    assert main(["export", "vdsr", "--scale", "4", "--pipeline", "-o", str(tmp_path / "vdsr.pt2")]) == 0
    assert main(["export", "vdsr", "--scale", "5", "-o", str(tmp_path / "vdsr5.pt2")]) == 1
    assert "not by 5" in capsys.readouterr().err
    assert main(["models"]) == 0
    assert "vdsr" in capsys.readouterr().out


def test_a_multi_scale_zoo_record_is_evaluated_at_each_of_its_scales(vdsr_in_the_zoo, datasets, capsys) -> None:
    args = ["eval", "--model", "vdsr", "--dataset", "Set5", "--data-root", str(datasets)]
    assert main([*args, "--scale", "2", "3", "4"]) == 0
    rows = [line.split()[:3] for line in capsys.readouterr().out.splitlines()[1:]]
    assert rows == [["vdsr", "Set5", f"x{scale}"] for scale in (2, 3, 4)]
    assert main([*args, "--scale", "5"]) == 1
    assert capsys.readouterr().err.count("\n") == 1
