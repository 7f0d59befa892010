"""`fsv2v app`: the Gradio page built offline, the `/synthesize` API through `gradio_client` on a loopback
server with the packaged demo model, one-line errors, the missing extra, Ctrl-C, and one run in a real
headless browser. The driving clip is 6 frames of the demo's synthetic dance: every job takes ~1 s."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fewshotv2v.cli import app as cli

FRAMES = 6
needs_gradio = pytest.mark.skipif(
    importlib.util.find_spec("gradio") is None or importlib.util.find_spec("gradio_client") is None,
    reason="the [app] extra (gradio, gradio_client) is not installed",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo_inputs(tmp_path_factory):
    from fewshotv2v.app import write_demo_inputs

    return write_demo_inputs(tmp_path_factory.mktemp("demo-inputs"), frames=FRAMES)


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_inputs):
    """One loopback server for the module: (url, workdir); uploads and results under a temp folder."""
    pytest.importorskip("gradio")
    import torch

    from fewshotv2v.app import build_app, launch
    from fewshotv2v.settings import load_settings

    workdir = tmp_path_factory.mktemp("app")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the demo model is fastest on one thread, and the machine is shared
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(workdir / "gradio"))
        settings = load_settings(device="cpu", model="demo", cache_dir=workdir / "cache")
        blocks = build_app(settings, workdir=workdir, examples=demo_inputs)
        url = launch(blocks, workdir=workdir, port=_free_port(), max_upload_mb=1)
        yield url, workdir
        blocks.close(verbose=False)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def client(server, tmp_path_factory):
    from gradio_client import Client

    return Client(server[0], verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


def _cli_error(args: list[str]) -> str:
    """The message `fsv2v` prints for `args` (its one `error:` line, without the prefix)."""
    result = CliRunner().invoke(cli, args)
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert result.exit_code != 0 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0].removeprefix("error: ")


# ---- the page ---------------------------------------------------------------------------------------
@needs_gradio
def test_blocks_build_offline(tmp_path, demo_inputs, monkeypatch):
    """Building the page opens no connection; it has both endpoints in one queue slot, and the examples."""
    import gradio as gr

    from fewshotv2v.app import CONCURRENCY_ID, build_app
    from fewshotv2v.settings import load_settings

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access while building the app: {args}")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    blocks = build_app(load_settings(device="cpu"), workdir=tmp_path, examples=demo_inputs)
    assert isinstance(blocks, gr.Blocks)
    fns = {fn.api_name: fn for fn in blocks.fns.values() if fn.api_name in ("run", "synthesize")}
    assert set(fns) == {"run", "synthesize"}
    assert {(fn.concurrency_id, fn.concurrency_limit) for fn in fns.values()} == {(CONCURRENCY_ID, 1)}
    assert [c.label for c in fns["synthesize"].inputs] == ["reference", "driving_video", "mode"]
    ids = {getattr(b, "elem_id", None) for b in blocks.blocks.values()}
    assert {"refs", "drive", "mode", "model", "run", "result", "side-by-side", "summary"} <= ids
    examples = [b for b in blocks.blocks.values() if isinstance(b, gr.Dataset)]
    assert len(examples) == 1 and len(examples[0].samples) == 1


@needs_gradio
def test_synthesizer_progress_side_by_side_and_warnings(tmp_path, demo_inputs, one_thread):
    """The job runner behind both endpoints: progress per frame, both videos, the summary line, and the
    library's warning (the demo reference has no detected ankles) passed on."""
    from fewshotv2v.app import Synthesizer
    from fewshotv2v.settings import load_settings
    from fewshotv2v.video import probe

    ref, drive = demo_inputs
    calls = []
    with pytest.warns(UserWarning, match="no legs visible in reference.png"):  # gr.Warning, outside a page
        video, composite, summary = Synthesizer(load_settings(device="cpu"), tmp_path).run(
            [ref], drive, side_by_side=True, progress=lambda p, desc=None, unit=None: calls.append((p, unit))
        )
    assert calls[-1] == ((FRAMES, FRAMES), "frames")
    assert [p for p, unit in calls if unit == "frames"] == [(i, FRAMES) for i in range(1, FRAMES + 1)]
    info, side = probe(video), probe(composite)
    assert info.num_frames == side.num_frames == FRAMES
    assert side.height == info.height and side.width > 2 * info.width  # driving | skeleton | result
    assert summary.startswith(f"{FRAMES} frames in") and f"-> {video.name}" in summary
    assert "no legs visible in reference.png" in summary  # the upload's name, not the server's path


@needs_gradio
def test_synthesizer_keeps_the_last_model_and_checks_the_mode(tmp_path):
    from fewshotv2v.app import Synthesizer
    from fewshotv2v.errors import ConfigError
    from fewshotv2v.settings import load_settings

    synth = Synthesizer(load_settings(device="cpu"), tmp_path)
    pipe = synth._pipeline("demo", "pose", fresh=False)
    assert synth._pipeline("demo", "pose", fresh=False) is pipe  # loaded once
    assert synth._pipeline("demo", "pose", fresh=True) is not pipe  # finetuning gets its own weights
    with pytest.raises(ConfigError, match="needs a face model"):
        synth._pipeline("demo", "face", fresh=False)


# ---- the API ----------------------------------------------------------------------------------------
@needs_gradio
def test_synthesize_endpoint_returns_a_playable_video(client, demo_inputs):
    from gradio_client import handle_file

    from fewshotv2v.video import probe, read_frames

    ref, drive = demo_inputs
    out = client.predict(handle_file(str(ref)), handle_file(str(drive)), "pose", api_name="/synthesize")
    assert isinstance(out, str) and out.endswith(".mp4")  # the path of the downloaded video
    out = Path(out)
    info = probe(out)
    assert (info.num_frames, info.width, info.height, info.has_audio) == (FRAMES, 32, 64, True)
    assert info.fps == pytest.approx(24.0)
    assert sum(1 for _ in read_frames(out)) == FRAMES  # it decodes, frame by frame


@needs_gradio
def test_bad_uploads_get_the_cli_one_line_message(client, demo_inputs, tmp_path, monkeypatch):
    """A text file as the reference, a reference without a person, a text file as the driving video: the
    page gets exactly the message `fsv2v synth` prints for the same files."""
    import numpy as np
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    from fewshotv2v.video import write_image

    ref, drive = demo_inputs
    monkeypatch.chdir(tmp_path)  # the CLI is given bare file names, like the page shows
    Path("notes.txt").write_text("not a picture\n")
    write_image(Path("empty.png"), np.full((128, 96, 3), 200, np.uint8))
    Path("drive.mp4").write_bytes(Path(drive).read_bytes())
    messages = []
    for bad_ref, bad_drive in [("notes.txt", "drive.mp4"), ("empty.png", "drive.mp4"), (ref, "notes.txt")]:
        args = ["synth", "--ref", str(bad_ref), "--drive", bad_drive, "-o", "out.mp4", "--device", "cpu"]
        expected = _cli_error(args)
        with pytest.raises(AppError) as caught:
            client.predict(handle_file(str(bad_ref)), handle_file(bad_drive), "pose", api_name="/synthesize")
        assert str(caught.value) == expected
        messages.append(expected)
    assert messages[0].startswith("cannot read image notes.txt")
    assert messages[1] == "no person detected in empty.png"
    assert messages[2].startswith("not a video (or a corrupt file): notes.txt")


@needs_gradio
def test_uploads_above_the_limit_are_refused(server, client, demo_inputs, tmp_path):
    """The server refuses a 2 MiB upload (its limit is 1 MiB here), and gradio_client knows the limit."""
    import httpx
    from gradio_client import handle_file

    big = tmp_path / "big.png"
    big.write_bytes(os.urandom(2 * 2**20))
    with big.open("rb") as f:
        response = httpx.post(f"{server[0]}gradio_api/upload", files={"files": f}, timeout=30)
    assert response.status_code == 413 and "maximum allowed size of 1048576 bytes" in response.text
    with pytest.raises(ValueError, match="exceeds the maximum file size of 1048576 bytes"):
        client.predict(handle_file(str(big)), handle_file(str(demo_inputs[1])), api_name="/synthesize")
    assert not list((server[1] / "gradio").rglob("big.png"))  # nothing of it was kept


# ---- the command ------------------------------------------------------------------------------------
def test_help_imports_neither_gradio_nor_torch():
    code = (
        "import sys\nfrom fewshotv2v.cli import main\nsys.argv = ['fsv2v', 'app', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('gradio' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--max-upload-mb" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "False False"


def test_app_without_the_extra_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` now raises ImportError
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))  # the command sets these: restored afterwards
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    result = CliRunner().invoke(cli, ["app"])
    assert result.exit_code == 14
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "pip install 'fewshotv2v[app]'" in lines[0], result.output
    assert list(tmp_path.glob("fsv2v-app-*")) == []  # its temp folder is gone
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # and the signal handlers are put back


@needs_gradio
@pytest.mark.slow
def test_ctrl_c_stops_the_server_and_removes_its_temp_folder(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    port = _free_port()
    cmd = [sys.executable, "-m", "fewshotv2v", "app", "--port", str(port), "--device", "cpu"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()  # printed once the server is up
        assert url == f"http://127.0.0.1:{port}/", proc.stderr.read()
        assert len(list(tmp_path.glob("fsv2v-app-*/examples/driving.mp4"))) == 1
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0  # a clean stop, not "interrupted" (130)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "stopped" in proc.stderr.read()
    assert list(tmp_path.glob("fsv2v-app-*")) == []


# ---- a real browser ---------------------------------------------------------------------------------
@needs_gradio
@pytest.mark.browser
def test_page_in_headless_chromium(server, demo_inputs, tmp_path):
    """A text file as the reference shows the CLI's one-line error; the demo inputs then give a result
    that the browser plays, with the side-by-side video and the summary."""
    import browser

    if (why := browser.missing()) is not None:
        pytest.skip(why)
    from selenium.webdriver.common.by import By

    ref, drive = demo_inputs
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture\n")
    driver = browser.open_browser()
    try:
        wait = browser.open_page(driver, server[0])
        browser.upload(driver, wait, [notes], drive)
        browser.run(driver)
        error = browser.error_toast(driver, wait)
        browser.upload(driver, wait, [ref])
        browser.run(driver)
        wait.until(lambda d: d.execute_script(browser.VIDEO_READY, "#result"))
        result = browser.video_info(driver, "#result")
        side = browser.video_info(driver, "#side-by-side")
        summary = driver.find_element(By.CSS_SELECTOR, "#summary textarea").get_attribute("value")
    finally:
        driver.quit()
    assert error.startswith("cannot read image notes.txt: ")  # the CLI's line (FFmpeg words the rest)
    assert "/gradio_api/file=" in result["src"] and result["src"].endswith(".mp4")
    assert (result["width"], result["height"]) == (32, 64)
    assert side["height"] == 64 and side["width"] > 64  # driving | skeleton | result
    assert result["duration"] == pytest.approx(FRAMES / 24.0, abs=0.05)
    assert summary.startswith(f"{FRAMES} frames in")
