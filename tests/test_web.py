"""The web page: its API (upload, limits, queue, temporary files, host rule) and the page in headless Chromium."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx2
import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

import srkit
from srkit import zoo
from srkit.cli import main
from srkit.data import modcrop
from srkit.errors import SrkitError
from srkit.imaging.io import read_image
from srkit.imaging.resize import imresize
from srkit.metrics import psnr, ssim
from srkit.web import Limits, background, check_host, create_app
from srkit.web import app as web_app

LIMITS = Limits(max_bytes=200_000, max_pixels=10_000, max_waiting=1)


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth RGB image with texture, in uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:height, :width]
    base = 128 + 60 * np.sin(x / 3.0)[..., None] * np.cos(y[..., None] / 4.0 + np.arange(3))
    return np.clip(base + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def decode(result: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(result["png"]))))


@pytest.fixture
def client():
    with TestClient(create_app(LIMITS)) as client:
        yield client


def post(client: TestClient, image: bytes, scale: int = 3, models=("espcn-x3",), hr: bytes | None = None, name="a.png"):
    """POST /api/upscale; the response and its lines of JSON (none for an error answered at once)."""
    files = [("image", (name, image, "image/png"))] + ([("hr", ("hr.png", hr, "image/png"))] if hr else [])
    data = {"scale": str(scale), "model": list(models)}
    response = client.post("/api/upscale", files=files, data=data)
    lines = [json.loads(line) for line in response.text.splitlines()] if response.status_code == 200 else []
    return response, lines


def test_config_offers_each_zoo_model_at_its_scales_and_bicubic_at_every_scale(client):
    config = client.get("/api/config").json()
    scales = {entry["scale"]: [m["id"] for m in entry["models"]] for entry in config["scales"]}
    assert {2, 3, 4} <= set(scales)
    for record in zoo.records().values():
        assert all((record.id in scales[s]) == (s in record.scales) for s in scales)
    assert config["limits"] == {"max_bytes": 200_000, "max_pixels": 10_000, "max_waiting": 1}


def test_results_are_bicubic_and_each_model_as_the_library_makes_them(client):
    image = photo(16, 20)
    response, lines = post(client, png(image))
    assert [line["state"] for line in lines] == ["running", "done"]
    bicubic, espcn = lines[1]["results"]
    assert (bicubic["name"], espcn["name"]) == ("bicubic", "espcn-x3")
    assert (espcn["width"], espcn["height"]) == (60, 48) and espcn["seconds"] > 0
    np.testing.assert_array_equal(decode(bicubic), imresize(image, scale=3))
    np.testing.assert_array_equal(decode(espcn), srkit.load("espcn-x3").upscale(image))
    assert "psnr" not in espcn


def test_a_multi_scale_model_is_offered_and_run_at_each_of_its_scales(vdsr_in_the_zoo):
    web_app.load_upscaler.cache_clear()  # a "vdsr" upscaler of another test's zoo must not answer
    image = photo(9, 11)
    with TestClient(create_app(LIMITS)) as client:
        config = client.get("/api/config").json()
        for entry in config["scales"]:
            assert ("vdsr" in [m["id"] for m in entry["models"]]) == (entry["scale"] in (2, 3, 4))
        for scale in (2, 4):
            _, lines = post(client, png(image), scale=scale, models=("vdsr",))
            vdsr = lines[-1]["results"][1]
            assert (vdsr["name"], vdsr["width"], vdsr["height"]) == ("vdsr", 11 * scale, 9 * scale)
            np.testing.assert_array_equal(decode(vdsr), srkit.load("vdsr", scale=scale).upscale(image))
    web_app.load_upscaler.cache_clear()


def test_ground_truth_gives_psnr_and_ssim_with_the_protocol(client):
    hr = photo(50, 61)  # mod-cropped to 48x60 at x3
    lr = imresize(modcrop(hr, 3), scale=1 / 3)
    _, lines = post(client, png(lr), hr=png(hr))
    for result in lines[-1]["results"]:
        sr = decode(result)
        assert result["psnr"] == pytest.approx(psnr(sr, modcrop(hr, 3), 3), abs=1e-4)
        assert result["ssim"] == pytest.approx(ssim(sr, modcrop(hr, 3), 3), abs=1e-4)


@pytest.mark.parametrize("size", [(47, 60), (51, 60), (16, 20)])
def test_ground_truth_of_another_size_is_refused(client, size):
    response, _ = post(client, png(photo(16, 20)), hr=png(photo(*size)))
    assert response.status_code == 400
    assert response.json()["error"] == (
        f"hr.png: the ground truth is {size[1]}x{size[0]}; at x3 it must be 60x48 (3 times the 20x16 image), "
        "or up to 2 pixels larger"
    )


def test_too_many_bytes_is_refused_before_reading(client):
    noise = np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8)
    big = png(noise) + bytes(200_000)  # the pixel count is fine: only the bytes are too many
    response, _ = post(client, big)
    assert response.status_code == 413
    size = int(response.request.headers["content-length"])
    assert size > len(big) > 200_000
    assert response.json()["error"] == f"the upload is {size / 1e6:.3g} MB; this server takes at most 0.2 MB"


def test_too_many_pixels_is_refused_before_decoding(client, monkeypatch):
    monkeypatch.setattr(web_app, "read_image", lambda path: pytest.fail("decoded a file over the pixel limit"))
    response, _ = post(client, png(photo(100, 101)), name="big.png")
    assert response.status_code == 400
    assert response.json()["error"] == "big.png: 101x100 is too many pixels: this server takes images of at most 10,000"


@pytest.mark.parametrize("content", [b"not an image", png(photo(40, 40))[:300]], ids=["text", "truncated"])
def test_a_corrupt_file_is_one_clear_line(client, content):
    response, _ = post(client, content, name="broken.png")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith("broken.png: not a readable image") and "\n" not in error
    assert "srkit-web" not in error and "upload-" not in error  # the temporary file's name stays inside


@pytest.mark.parametrize(
    ("scale", "models", "message"),
    [
        (5, (), "scale must be one of 2, 3, 4"),
        (3, ("nope",), "no pretrained model 'nope' at x3; available: espcn-x3"),
        (2, ("espcn-x3",), "no pretrained model 'espcn-x3' at x2"),
    ],
)
def test_bad_choices_are_one_line(client, scale, models, message):
    response, _ = post(client, png(photo(8, 8)), scale=scale, models=models)
    assert response.status_code == 400 and response.json()["error"].startswith(message)


def test_missing_image_and_unknown_paths_answer_json(client):
    response = client.post("/api/upscale", data={"scale": "3"})
    assert (response.status_code, response.json()) == (400, {"error": "choose an image to upscale"})
    assert client.get("/api/nothing").json() == {"error": "Not Found"}


def test_page_and_script_are_served(client):
    assert 'id="image-drop"' in client.get("/").text
    assert "async function run()" in client.get("/static/app.js").text


@pytest.fixture
def held(monkeypatch):
    """Bicubic, which every job runs first, blocks until released: a job stays running as long as a test needs."""
    entered, release = threading.Event(), threading.Event()

    def bicubic(image: np.ndarray, scale: int) -> np.ndarray:
        entered.set()
        assert release.wait(30)
        return imresize(image, scale=scale)

    monkeypatch.setattr(web_app, "bicubic", bicubic)
    yield entered, release
    release.set()


def wait_for(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_one_job_at_a_time_others_wait_in_line_and_see_it(client, held):
    entered, release = held
    answers = {}

    def submit(name: str) -> threading.Thread:
        thread = threading.Thread(target=lambda: answers.update({name: post(client, png(photo(8, 8)))[1]}))
        thread.start()
        return thread

    first = submit("first")
    assert entered.wait(60)
    assert client.get("/api/status").json() == {"running": 1, "waiting": 0}
    second = submit("second")
    wait_for(lambda: client.get("/api/status").json() == {"running": 1, "waiting": 1})
    _, third = post(client, png(photo(8, 8)))  # max_waiting is 1: turned away at once
    assert third == [{"state": "error", "error": "the server is busy (1 waiting in line); try again in a while"}]
    release.set()
    first.join(10)
    second.join(10)
    assert [line["state"] for line in answers["first"]] == ["running", "done"]
    assert answers["second"][0] == {"state": "queued", "ahead": 1}
    assert [line["state"] for line in answers["second"][1:]] == ["running", "done"]
    assert answers["second"][-1]["waited"] > 0
    assert client.get("/api/status").json() == {"running": 0, "waiting": 0}


def test_a_job_whose_page_goes_away_leaves_the_line(held):
    entered, release = held
    files = {"image": ("a.png", png(photo(8, 8)), "image/png")}
    with background(LIMITS) as url, httpx2.Client(base_url=url, timeout=10) as http, ThreadPoolExecutor(1) as pool:
        try:
            first = pool.submit(http.post, "/api/upscale", files=files, data={"scale": "3"})
            assert entered.wait(60)
            with http.stream("POST", "/api/upscale", files=files, data={"scale": "3"}) as response:
                assert json.loads(next(response.iter_lines())) == {"state": "queued", "ahead": 1}
            # the connection is closed: the server notices and takes the job out of the line
            wait_for(lambda: http.get("/api/status").json() == {"running": 1, "waiting": 0})
        finally:
            release.set()  # before the server stops: it waits for its running job
        assert first.result().text.splitlines()[-1].startswith('{"state": "done"')
        assert http.get("/api/status").json() == {"running": 0, "waiting": 0}


def test_files_go_only_to_a_temporary_folder_and_are_removed(tmp_path, monkeypatch):
    temp, cwd = tmp_path / "temp", tmp_path / "cwd"
    temp.mkdir(), cwd.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.chdir(cwd)
    written = []
    monkeypatch.setattr(web_app, "read_image", lambda path: written.append(path) or read_image(path))
    hr = photo(48, 60)
    with TestClient(create_app(LIMITS)) as client:
        folder = client.app.state.folder
        assert folder.parent == temp
        _, lines = post(client, png(imresize(hr, scale=1 / 3)), hr=png(hr))
        assert lines[-1]["state"] == "done"
        post(client, b"broken", name="broken.png")
        assert len(written) == 3 and all(path.parent == folder for path in written)
        assert list(folder.iterdir()) == []
    assert list(temp.iterdir()) == [] and list(cwd.iterdir()) == []


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_hosts_need_no_flag(host):
    check_host(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.org"])
def test_other_hosts_need_public(host):
    with pytest.raises(SrkitError, match="not a loopback address.*--public"):
        check_host(host)
    check_host(host, public=True)


def test_cli_refuses_a_public_host_without_the_flag_in_one_line(capsys):
    assert main(["serve", "--host", "0.0.0.0"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "add --public" in err


def test_cli_with_public_goes_on_to_listen_and_a_taken_port_is_one_line(capsys):
    with socket.create_server(("0.0.0.0", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["serve", "--host", "0.0.0.0", "--public", "--port", str(port)]) == 1
    assert capsys.readouterr().err == f"srkit: error: cannot listen on 0.0.0.0:{port} (Address already in use)\n"


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_serve_stopped_by_sigterm_or_ctrl_c_exits_0_quietly(stop):
    """Issue 37, 11: stopping the server is how it ends, not a failure: exit 0, no error line."""
    command = [sys.executable, "-m", "srkit", "serve", "--port", "0"]
    # Ctrl-C's signal may be ignored by a test runner started in the background; the server must see its default.
    server = subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
    )
    try:
        lines = []
        while not any("the page is at" in line for line in lines) and (line := server.stderr.readline()):
            lines.append(line)
        server.send_signal(stop)
        err = "".join(lines) + server.communicate(timeout=300)[1]  # minutes: the CPU may be shared
    finally:
        server.kill()
    assert server.returncode == 0, err
    assert "interrupted" not in err and "error" not in err.lower() and "Traceback" not in err


def test_cli_limits_must_be_positive(capsys):
    assert main(["serve", "--max-pixels", "0"]) == 1
    assert capsys.readouterr().err == "srkit: error: max_pixels must be positive, got 0\n"


# The page in a browser ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install '.[test]')")
    chromium = os.environ.get("SRKIT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("Chromium not found: apt-get install chromium (or set SRKIT_CHROMIUM to its path)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        yield browser
        browser.close()


def drop(page, selector: str, name: str, content: bytes) -> None:
    """Drop a file on an element, as a drag from the desktop does."""
    transfer = page.evaluate_handle(
        """([name, bytes]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], name, { type: "image/png" }));
            return transfer;
        }""",
        [name, list(content)],
    )
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def test_page_upscales_compares_downloads_and_reports_bad_files(browser, tmp_path):
    from playwright.sync_api import expect

    hr = photo(90, 120)
    lr = imresize(hr, scale=1 / 3)
    (tmp_path / "photo.png").write_bytes(png(lr))
    (tmp_path / "truth.png").write_bytes(png(hr))
    with background(LIMITS) as url:
        page = browser.new_page()
        page.goto(url)
        page.set_input_files("#image", tmp_path / "photo.png")
        drop(page, "#hr-drop", "truth.png", png(hr))
        expect(page.locator("#hr-name")).to_contain_text("truth.png")
        page.check('input[name="scale"][value="3"]')
        page.check('input[name="model"][value="espcn-x3"]')
        page.click("#run")

        row = page.locator('#rows tr[data-name="espcn-x3"]')
        expect(row).to_contain_text("120×90")
        expected = srkit.load("espcn-x3").upscale(lr)
        expect(row).to_contain_text(f"{psnr(expected, hr, 3):.2f}")
        assert page.eval_on_selector("#after", "img => [img.naturalWidth, img.naturalHeight]") == [120, 90]
        assert page.locator("#crops figure").count() == 3  # bicubic, espcn-x3 and the ground truth
        with page.expect_download() as download:
            page.click('a.download[data-name="espcn-x3"]')
        assert download.value.suggested_filename == "photo_espcn-x3_x3.png"
        download.value.save_as(tmp_path / "result.png")
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "result.png")), expected)

        drop(page, "#image-drop", "broken.png", b"not an image")
        page.click("#run")
        expect(page.locator("#error")).to_contain_text("broken.png: not a readable image")
        page.set_input_files("#image", {"name": "big.png", "mimeType": "image/png", "buffer": png(photo(100, 101))})
        page.click("#run")
        message = "big.png: 101x100 is too many pixels: this server takes images of at most 10,000"
        expect(page.locator("#error")).to_have_text(message)
        page.set_input_files("#image", {"name": "huge.png", "mimeType": "image/png", "buffer": bytes(300_000)})
        page.click("#run")
        size = -(-(300_000 + len(png(hr))) // 1000)  # the image and the ground truth, in KB rounded up
        expect(page.locator("#error")).to_have_text(f"the upload is {size} KB; this server takes at most 200 KB")


def test_page_keeps_a_file_chosen_and_a_click_made_before_it_is_ready(browser, tmp_path, monkeypatch):
    """The script sets the page up once /api/config answers: a file chosen before then is kept, and Run waits."""
    from playwright.sync_api import expect

    answer = web_app.config

    async def slow_config(request):
        await asyncio.sleep(1)
        return await answer(request)

    monkeypatch.setattr(web_app, "config", slow_config)
    (tmp_path / "photo.png").write_bytes(png(photo(10, 10)))
    with background(LIMITS) as url:
        page = browser.new_page()
        page.goto(url)
        page.set_input_files("#image", tmp_path / "photo.png")
        expect(page.locator("#run")).to_be_disabled()
        page.click("#run")  # Playwright's click waits for the button to be enabled
        expect(page.locator("#status")).to_contain_text("Done", timeout=20_000)


def test_page_shows_that_a_job_waits_in_line(browser, tmp_path, held):
    from playwright.sync_api import expect

    entered, release = held
    (tmp_path / "photo.png").write_bytes(png(photo(10, 10)))
    with background(LIMITS) as url:
        pages = [browser.new_page(), browser.new_page()]
        for page in pages:
            page.goto(url)
            page.set_input_files("#image", tmp_path / "photo.png")
        pages[0].click("#run")
        assert entered.wait(60)
        pages[1].click("#run")
        try:
            expect(pages[1].locator("#status")).to_have_text("Waiting in line: 1 job ahead of yours…")
        finally:
            release.set()  # before the server stops: it waits for its running job
        for page in pages:
            expect(page.locator("#status")).to_contain_text("Done", timeout=20_000)
