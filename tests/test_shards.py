"""`srkit upscale --shard I/N` and `--manifest`: N processes split one archive, every file done once, none missed; a
shard that died is run again and completes the set; the manifests account for every input."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srkit.cli import main
from srkit.errors import SrkitError
from srkit.files import remove_orphans
from srkit.upscale import Shard, plan

SHARDS = 3


def photos(folder: Path, count: int, size: int = 12) -> list[str]:
    """`count` random images in nested folders below `folder`; their paths below it."""
    rng = np.random.default_rng(count)
    names = [f"{'abc'[i % 3]}/{i // 9}/photo-{i:03d}.png" for i in range(count)]
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), np.uint8)).save(folder / name)
    return sorted(names)


def files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def manifest_lines(*paths: Path) -> list[dict]:
    return [json.loads(line) for path in paths if path.exists() for line in path.read_text().splitlines()]


def srkit(*args: str | Path) -> subprocess.Popen:
    """`srkit ARGS` in a process of its own, as on a cluster node."""
    command = [sys.executable, "-m", "srkit", *map(str, args)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_shards_split_the_inputs_the_same_way_wherever_the_archive_is(tmp_path):
    names = photos(tmp_path / "archive", 40, size=4)
    shutil.copytree(tmp_path / "archive", tmp_path / "elsewhere" / "mounted")
    shares = []
    for root in (tmp_path / "archive", tmp_path / "elsewhere" / "mounted"):
        jobs = [plan([root], tmp_path / "out", 3, Shard(i, SHARDS)) for i in range(SHARDS)]
        shares.append([sorted(job.relative.as_posix() for job in share) for share in jobs])
    assert shares[0] == shares[1], "the split depends on the paths below the input folder only"
    together = sorted(name for share in shares[0] for name in share)
    assert together == names, "every input in exactly one shard"
    assert all(len(share) >= 5 for share in shares[0]), [len(share) for share in shares[0]]


def test_three_concurrent_shards_write_every_output_once(tmp_path, tiny_weights):
    names = photos(tmp_path / "archive", 30)
    manifests = [tmp_path / f"manifest-{i}.jsonl" for i in range(SHARDS)]
    run = ("upscale", tmp_path / "archive", "-o", tmp_path / "out", "--weights", tiny_weights)
    processes = [srkit(*run, "--shard", f"{i}/{SHARDS}", "--manifest", manifests[i]) for i in range(SHARDS)]
    results = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0] * SHARDS, results
    assert files(tmp_path / "out") == names
    lines = manifest_lines(*manifests)
    assert sorted(Path(line["source"]).relative_to(tmp_path / "archive").as_posix() for line in lines) == names
    assert {line["status"] for line in lines} == {"upscaled"}
    assert sum(int(out.split("shard ")[1].split(": ")[1].split()[0]) for out, _ in results) == len(names)
    line = lines[0]
    assert line["input_size"] == [12, 12] and line["output_size"] == [36, 36] and line["error"] is None
    assert line["output_bytes"] == Path(line["output"]).stat().st_size and line["seconds"] >= 0
    assert line["shard"] in {f"{i}/{SHARDS}" for i in range(SHARDS)}


@pytest.mark.parametrize("kill", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_shard_run_again_completes_the_set_with_no_partial_file(tmp_path, tiny_weights, kill):
    names = photos(tmp_path / "archive", 30, size=160)
    manifest = tmp_path / "manifest.jsonl"
    run = ("upscale", tmp_path / "archive", "-o", tmp_path / "out", "--weights", tiny_weights, "--shard", "0/1")
    process = srkit(*run, "--manifest", manifest)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill it while it writes an output: a temporary file exists
        if len(manifest_lines(manifest)) >= 3 and any((tmp_path / "out").rglob(".*.tmp.png")):
            break
        time.sleep(0.002)
    process.send_signal(kill)
    process.communicate(timeout=60)
    done = len(manifest_lines(manifest))
    assert 3 <= done < len(names), "killed mid-run"
    assert len(files(tmp_path / "out")) < len(names)
    process = srkit(*run, "--manifest", manifest)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert files(tmp_path / "out") == names, "every output, and no partial or temporary file"
    lines = manifest_lines(manifest)
    upscaled = [line["source"] for line in lines if line["status"] == "upscaled"]
    assert len(upscaled) == len(set(upscaled)) == len(names), "each input upscaled once over the two runs"
    assert out.startswith(f"shard 0/1: {len(names) - done} upscaled, {done} skipped (exists), 0 failed")


def test_orphans_of_killed_processes_are_removed_others_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    names = {
        "orphan": f".a.png.{host}-{dead.pid}.k2j3h4g5.tmp.png",
        "ours": f".b.png.{host}-{os.getpid()}.a1b2c3d4.tmp.png",  # a process that runs: maybe writing it now
        "other machine": f".c.png.elsewhere-{dead.pid}.a1b2c3d4.tmp.png",
        "a user's file": f".d.png.{host}-{dead.pid}.png",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"partial")
    assert remove_orphans(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(v for k, v in names.items() if k != "orphan")
    assert remove_orphans(tmp_path / "missing") == 0


@pytest.mark.parametrize(
    "value, message",
    [
        ("3/3", "--shard 3/3: I must be from 0 to 2 (shards are counted from 0)"),
        ("1/0", "--shard 1/0: N must be at least 1"),
        ("-1/3", "--shard -1/3: give I/N, shard I of N counted from 0, such as 0/4"),
        ("2", "--shard 2: give I/N, shard I of N counted from 0, such as 0/4"),
        ("a/b", "--shard a/b: give I/N, shard I of N counted from 0, such as 0/4"),
    ],
)
def test_bad_shards_are_one_line_errors(tmp_path, tiny_weights, capsys, value, message):
    photos(tmp_path / "archive", 2, size=4)
    with pytest.raises(SrkitError, match=f"^{re.escape(message)}$"):
        Shard.parse(value)
    code = main(["upscale", str(tmp_path / "archive"), "--weights", str(tiny_weights), f"--shard={value}"])
    assert (code, capsys.readouterr().err) == (1, f"srkit: error: {message}\n")
    assert not (tmp_path / "archive_x3").exists()


def test_manifest_records_skipped_and_failed_inputs(tmp_path, tiny_weights, capsys):
    photos(tmp_path / "archive", 3, size=4)
    (tmp_path / "archive" / "z-broken.png").write_bytes(b"not a png")
    manifest = tmp_path / "logs" / "run.jsonl"
    args = ["upscale", str(tmp_path / "archive"), "--weights", str(tiny_weights), "--manifest", str(manifest)]
    assert main(args) == 1
    assert main(args) == 1
    capsys.readouterr()
    first, second = manifest_lines(manifest)[:4], manifest_lines(manifest)[4:]
    assert [line["status"] for line in first] == ["upscaled"] * 3 + ["failed"]
    assert [line["status"] for line in second] == ["skipped"] * 3 + ["failed"]
    failed = first[-1]
    assert "z-broken.png" in failed["error"] and failed["output_bytes"] is None and failed["input_bytes"] == 9
    assert second[0]["output_bytes"] > 0 and second[0]["output_size"] is None


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n", b"notes\n", b"[1, 2]\n"], ids=["png", "text", "json"])
def test_a_manifest_path_that_names_another_file_is_refused(tmp_path, tiny_weights, capsys, content):
    photos(tmp_path / "archive", 1, size=4)
    other = tmp_path / "archive" / "a" / "0" / "photo-000.png" if content.startswith(b"\x89") else tmp_path / "notes"
    if not other.exists():
        other.write_bytes(content)
    before = other.read_bytes()
    code = main(["upscale", str(tmp_path / "archive"), "--weights", str(tiny_weights), "--manifest", str(other)])
    message = f"srkit: error: {other}: is not a srkit manifest (JSON Lines); refusing to append to it\n"
    assert (code, capsys.readouterr().err, other.read_bytes()) == (1, message, before)
    assert not (tmp_path / "archive_x3").exists(), "refused before any work"
