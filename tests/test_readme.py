"""The README's examples run as written on a fresh clone, and the README names only what a user has.

Every ```bash, ```sh, ```console and ```python block of README.md runs as it is written, in a copy of the
repository's files as a fresh clone has them (no runs, no outputs), with a temporary HOME and this interpreter's
`srkit` on the PATH. A block is not run, and the test says why, when it
- installs (`pip install`, `python -m venv`): the two set-up lines, which the suite is already run by;
- needs the benchmark sets and $SRKIT_DATA is not a folder holding them (`srkit eval`, `srkit train`, ...);
- is marked `# illustrative` in the README (a command too long to run here, shown for its form).
A block that starts a server (`srkit serve`) runs until the page answers, then gets SIGTERM and must exit 0.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LANGUAGES = {"bash": "shell", "sh": "shell", "console": "shell", "python": "python"}
DATASETS = ("Set5", "Set14", "BSD100", "Urban100", "T91", "BSD200")
NEEDS_DATA = re.compile(r"\bsrkit (eval|train)\b|--data-root|SRKIT_DATA|benchmarks/")
INSTALLS = re.compile(r"\bpip install\b|-m venv\b")
ILLUSTRATIVE = re.compile(r"#\s*illustrative\b")
SERVE = re.compile(r"^srkit serve\b")
BLOCK_SECONDS = 900  # a block takes seconds to a minute on an idle machine; this only stops one that hangs
SERVER_START_SECONDS = 120
# The README's own words; the zoo table that benchmarks/zoo_results.py writes into it grows with the zoo
MAX_README_CHARS = 11_000


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    language: str  # "shell" or "python"
    text: str

    @property
    def commands(self) -> str:
        """The block as a shell runs it: a console block's `$ ` lines without the prompt, its output left out."""
        if not self.text.lstrip().startswith("$ "):
            return self.text
        return "".join(line[2:] + "\n" for line in self.text.splitlines() if line.startswith("$ "))


def readme_blocks(text: str) -> list[Block]:
    blocks = []
    for match in re.finditer(r"^```(\w*)[^\n]*\n(.*?)^```", text, re.M | re.S):
        language = LANGUAGES.get(match.group(1).lower())
        if language:
            blocks.append(Block(text.count("\n", 0, match.start()) + 1, language, match.group(2)))
    return blocks


BLOCKS = readme_blocks(README.read_text())


def data_root() -> Path | None:
    """$SRKIT_DATA when it is a folder holding every set the README's commands read, else None."""
    folder = os.environ.get("SRKIT_DATA")
    if folder and all((Path(folder) / name).is_dir() for name in DATASETS):
        return Path(folder)
    return None


def not_run(block: Block) -> str | None:
    """Why a block is not run here, or None."""
    if INSTALLS.search(block.text):
        what = "runs this test suite" if "pytest" in block.text else "upscales the sample"
        return f"a set-up line: it installs srkit into a new virtual environment and {what}; the suite runs in one"
    if ILLUSTRATIVE.search(block.text):
        return "marked illustrative in the README"
    if NEEDS_DATA.search(block.text) and data_root() is None:
        return f"needs the benchmark sets: set SRKIT_DATA to a folder holding {', '.join(DATASETS)}"
    return None


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's files as a fresh clone has them: tracked and not ignored, nothing built or run."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed: cannot tell a fresh clone's files")
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
    )
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout, so a fresh clone's files are unknown: {listed.stderr.strip()}")
    target = tmp_path_factory.mktemp("clone")
    for name in filter(None, listed.stdout.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is not in the clone either
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name, follow_symlinks=False)
    return target


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("SRKIT_DATA", "SRKIT_DEBUG")}
    env["HOME"] = str(tmp_path_factory.mktemp("home"))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MPLBACKEND"] = "Agg"
    root = data_root()
    if root is not None:
        env["SRKIT_DATA"] = str(root)
    return env


@pytest.mark.parametrize("block", BLOCKS, ids=[f"line{b.line}-{b.language}" for b in BLOCKS])
def test_readme_block_runs_as_written(block: Block, clone: Path, environment: dict[str, str]) -> None:
    reason = not_run(block)
    if reason:
        pytest.skip(reason)
    commands = block.commands
    if block.language == "shell" and SERVE.match(commands.strip()):
        return run_server(commands.strip(), clone, environment)
    command = [sys.executable, "-c", commands] if block.language == "python" else ["bash", "-e", "-o", "pipefail"]
    result = subprocess.run(
        command,
        input=None if block.language == "python" else commands,
        cwd=clone,
        env=environment,
        capture_output=True,
        text=True,
        timeout=BLOCK_SECONDS,
    )
    assert result.returncode == 0, (
        f"README line {block.line}:\n{commands}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )


def run_server(command: str, clone: Path, environment: dict[str, str]) -> None:
    """Start the server as written, wait for its page, stop it as a service manager would: exit 0, no error."""
    assert "\n" not in command, "a block that starts a server holds that one command"
    url = (re.findall(r"https?://[\w.:-]+/?", command) or ["http://127.0.0.1:8000/"])[0]
    host, port = re.match(r"https?://([^:/]+):?(\d*)", url).groups()
    with socket.socket() as probe:
        if probe.connect_ex((host, int(port or 80))) == 0:
            pytest.skip(f"{host}:{port} is already in use on this machine, so the README's server cannot listen there")
    server = subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        cwd=clone,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            assert server.poll() is None, f"{command} exited with {server.returncode}: {server.communicate()[1]}"
            try:
                with urllib.request.urlopen(url, timeout=5) as page:
                    assert page.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, f"{url} did not answer within {SERVER_START_SECONDS} s"
                time.sleep(0.5)
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, f"{command} stopped by SIGTERM exited with {server.returncode}: {stderr}"
    assert not re.search(r"interrupted|error|traceback", stderr, re.I), f"{command} stopped by SIGTERM: {stderr}"


def test_ci_runs_the_readme_test_command() -> None:
    tests = [b for b in BLOCKS if "pytest" in b.text]
    assert len(tests) == 1, "the README gives one command that installs and runs the tests"
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert tests[0].commands.strip() in ci_lines


def test_readme_names_only_what_a_user_has() -> None:
    text = README.read_text()
    for pattern in (r"SPEC\.md", r"\.\./shared", r"/work/", r"the issue", r"\bissue #?\d", r"\bsessions?\b"):
        found = re.search(pattern, text, re.I)
        assert found is None, f"README line {text.count(chr(10), 0, found.start()) + 1} names {found.group()!r}"


def _zoo_results():
    """benchmarks/zoo_results.py, the script that writes the README's zoo table between its markers."""
    spec = importlib.util.spec_from_file_location("zoo_results", ROOT / "benchmarks" / "zoo_results.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_readme_is_for_users() -> None:
    script, text = _zoo_results(), README.read_text()
    table = text[text.index(script.README_START) : text.index(script.README_END) + len(script.README_END)]
    assert len(text) - len(table) <= MAX_README_CHARS, "measurements and lab notes belong in docs/"


@pytest.mark.parametrize("page", [README, *sorted((ROOT / "docs").glob("*.md"))], ids=lambda p: p.name)
def test_links_lead_to_files(page: Path) -> None:
    text = page.read_text()
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if not re.match(r"[a-z]+:", target):
            assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"


def test_zoo_table_is_what_the_script_writes() -> None:
    script, text = _zoo_results(), README.read_text()
    start = text.index(script.README_START) + len(script.README_START)
    table = text[start : text.index(script.README_END)].strip()

    def number(value: str) -> float | None:
        return None if value == "" else float(value)

    rows = [
        {
            **row,
            "scale": int(row["scale"]),
            **{key: number(row[key]) for key in ("paper_psnr", "target_psnr")},
            **{key: float(row[key]) for key in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim")},
            "meets_target": None if row["meets_target"] == "" else row["meets_target"] == "True",
        }
        for row in csv.DictReader((ROOT / "benchmarks" / "results" / "zoo.csv").open())
    ]
    assert table == script.markdown(rows), "rerun benchmarks/zoo_results.py rather than editing the table"
