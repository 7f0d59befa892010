"""`fsv2v synth` end to end on a tiny random-weight model, with a fake keypoint backend and a synthetic
driving video that has an audio track."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from fewshotv2v.cli import app
from fewshotv2v.semantics.backends import register_backend, unregister_backend
from test_pipeline import FakeBackend, make_model, scene_image

runner = CliRunner()
BACKEND = "fake-synth-test"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture
def media(tmp_path):
    """Three reference images and an 8-frame, 10 fps driving video with a 440 Hz tone."""
    from fewshotv2v.video import write_image, write_test_video

    refs = [write_image(tmp_path / f"ref{i}.png", scene_image(seed=i)) for i in range(3)]
    frames = [scene_image((80, 60), seed=10 + i) for i in range(8)]
    drive = write_test_video(tmp_path / "drive.mp4", frames, 10.0, tone_hz=440)
    return refs, drive


@pytest.fixture(autouse=True)
def fake_backend():
    backends = []

    def factory(**kw):
        backends.append(FakeBackend(**kw))
        return backends[-1]

    register_backend(BACKEND, factory)
    yield backends
    unregister_backend(BACKEND)


def _synth(model_dir, refs, drive, out, *extra):
    args = ["synth", "--drive", str(drive), "-o", str(out), "--model", str(model_dir), "--backend", BACKEND]
    args += ["--device", "cpu"]
    for r in refs:
        args += ["--ref", str(r)]
    return runner.invoke(app, [*args, *extra])


def _one_line_error(result) -> str:
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


def test_synth_end_to_end_with_audio(model_dir, media, tmp_path):
    from fewshotv2v.video import probe

    refs, drive = media
    out = tmp_path / "out.mp4"
    result = _synth(model_dir, refs[:1], drive, out)
    assert result.exit_code == 0, result.output
    info = probe(out)
    assert (info.num_frames, info.width, info.height, info.has_audio) == (8, 32, 64, True)
    assert info.fps == pytest.approx(10.0)
    summary = " ".join(result.stdout.split())
    assert "8 frames in" in summary and "frames/s" in summary and str(out) in summary


def test_the_producer_setting_reaches_the_pipeline_and_a_bad_one_is_one_line(
    model_dir, tmp_path, monkeypatch
):
    from fewshotv2v.inference.loading import load_pipeline
    from fewshotv2v.settings import load_settings

    monkeypatch.setenv("FSV2V_PRODUCER", "thread")
    assert (
        load_pipeline(load_settings(device="cpu"), model=str(model_dir), backend="none").producer == "thread"
    )
    monkeypatch.setenv("FSV2V_PRODUCER", "fork")
    result = _synth(model_dir, [tmp_path / "ref.png"], tmp_path / "drive.mp4", tmp_path / "out.mp4")
    assert result.exit_code == 2 and "invalid setting producer" in _one_line_error(result)


def test_three_references_start_and_side_by_side(model_dir, media, tmp_path):
    from fewshotv2v.video import probe

    refs, drive = media
    out = tmp_path / "sbs.mp4"
    result = _synth(model_dir, refs, drive, out, "--start", "0.3", "--max-frames", "4", "--side-by-side")
    assert result.exit_code == 0, result.output
    info = probe(out)
    # driving frame 80x60 -> 64x48, skeleton 32, result 32
    assert (info.num_frames, info.width, info.height, info.has_audio) == (4, 112, 64, True)
    assert info.duration == pytest.approx(0.4, abs=0.1)


def test_reference_video_with_ref_frames(model_dir, media, tmp_path):
    refs, drive = media
    out = tmp_path / "out.mp4"
    result = _synth(model_dir, [drive], drive, out, "--ref-frames", "2", "--max-frames", "2")
    assert result.exit_code == 0, result.output
    assert out.is_file()


def test_finetune_runs(model_dir, media, tmp_path):
    refs, drive = media
    out = tmp_path / "ft.mp4"
    result = _synth(model_dir, refs[:2], drive, out, "--finetune", "1", "--max-frames", "1")
    assert result.exit_code == 0, result.output
    assert out.is_file()


def test_finetune_without_discriminator_is_one_line(media, tmp_path):
    refs, drive = media
    folder = make_model(tmp_path / "g-only", with_discriminators=False)
    result = _synth(folder, refs[:1], drive, tmp_path / "o.mp4", "--finetune", "3")
    assert result.exit_code == 6
    assert "discriminator.safetensors" in _one_line_error(result)
    assert not (tmp_path / "o.mp4").exists()


def test_existing_output_is_refused(model_dir, media, tmp_path):
    refs, drive = media
    out = tmp_path / "out.mp4"
    out.write_bytes(b"keep me")
    result = _synth(model_dir, refs[:1], drive, out)
    assert result.exit_code == 5
    assert "--overwrite" in _one_line_error(result)
    assert out.read_bytes() == b"keep me"
    result = _synth(model_dir, refs[:1], drive, out, "--overwrite", "--max-frames", "2")
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 100


def test_overwrite_never_replaces_an_input(model_dir, media, tmp_path):
    """-o that is the driving video or a reference (same path, symlink, hard link) is refused, even with
    --overwrite, and the input is left as it was."""
    import os

    refs, drive = media
    link, hard = tmp_path / "link.mp4", tmp_path / "hard.png"
    link.symlink_to(drive)
    os.link(refs[1], hard)
    before = {p: p.read_bytes() for p in (drive, *refs)}
    for out in (drive, link, refs[0], hard):
        result = _synth(model_dir, refs[:2], drive, out, "--overwrite", "--max-frames", "2")
        assert result.exit_code == 3, (out, result.output)
        assert "is the input" in _one_line_error(result)
    result = _synth(
        model_dir, refs[:1], drive, tmp_path / "o.mp4", "--overwrite", "--side-by-side", "--max-frames", "2"
    )
    assert result.exit_code == 0, result.output
    assert {p: p.read_bytes() for p in (drive, *refs)} == before


def test_bad_inputs_are_one_line_errors(model_dir, media, tmp_path):
    refs, drive = media
    out = tmp_path / "out.mp4"
    cases = [
        ((model_dir, refs[:1], drive, tmp_path / "missing" / "out.mp4"), 3, "does not exist"),
        ((model_dir, refs[:1], drive, refs[0] / "out.mp4"), 3, f"{refs[0]} is not a folder"),
        ((model_dir, refs[:1], drive, refs[0] / "sub" / "out.mp4"), 3, f"{refs[0]} is not a folder"),
        ((model_dir, refs[:1], tmp_path / "nope.mp4", out), 3, "not found"),
        ((model_dir, [tmp_path / "nope.png"], drive, out), 3, "not found"),
        ((tmp_path / "no-model", refs[:1], drive, out), 7, "not found"),
    ]
    result = _synth(model_dir, refs[:1], drive, out, "--start", "100")
    assert result.exit_code == 3 and "no driving frames" in _one_line_error(result)
    result = _synth(model_dir, refs[:1], drive, out, "--dtype", "fp16")  # on --device cpu
    assert result.exit_code == 16 and "fp16" in _one_line_error(result)
    result = _synth(model_dir, refs[:1], drive, out, "--dtype", "fp8")
    assert result.exit_code == 2 and "dtype" in _one_line_error(result)
    result = _synth(model_dir, refs[:1], drive, out, "--plate", "mirror")
    assert result.exit_code == 2 and "plate must be one of patches, smooth" in _one_line_error(result)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    cases.append(((model_dir, refs[:1], broken, out), 3, str(broken)))
    broken_heic = tmp_path / "broken.heic"  # a phone photo cut off inside its boxes
    broken_heic.write_bytes(
        b"\x00\x00\x00\x14ftypheic\x00\x00\x00\x00mif1\x00\x00\x00\x40meta\x00\x00\x00\x00"
    )
    cases.append(
        ((model_dir, [broken_heic], drive, out), 3, f"cannot read image {broken_heic}: broken HEIF file")
    )
    for args, code, text in cases:
        result = _synth(*args)
        assert result.exit_code == code, (args, result.output)
        assert text in _one_line_error(result)
    assert not out.exists()


def test_no_person_in_reference_or_drive(model_dir, media, tmp_path, monkeypatch):
    refs, drive = media
    register_backend(BACKEND, lambda **kw: FakeBackend(empty=True))
    out = tmp_path / "out.mp4"
    result = _synth(model_dir, refs[:1], drive, out)
    assert result.exit_code == 4 and "no person detected in" in _one_line_error(result)

    # The reference is fine, the driving video has nobody: error, and no output file.
    calls = {"n": 0}

    def only_first(**kw):
        calls["n"] += 1
        return FakeBackend(empty=calls["n"] > 1)

    register_backend(BACKEND, only_first)
    result = _synth(model_dir, refs[:1], drive, out, "--max-frames", "3")
    assert result.exit_code == 4 and "driving video" in _one_line_error(result)
    assert not out.exists()


def test_mode_mismatch(model_dir, media, tmp_path):
    refs, drive = media
    result = _synth(model_dir, refs[:1], drive, tmp_path / "o.mp4", "--mode", "face")
    assert result.exit_code == 2 and "face model" in _one_line_error(result)


def test_interrupt_leaves_no_file(model_dir, media, tmp_path):
    refs, drive = media
    register_backend(BACKEND, lambda **kw: FakeBackend(fail_at=3, exc=KeyboardInterrupt()))
    out = tmp_path / "out.mp4"
    result = _synth(model_dir, refs[:1], drive, out)
    assert result.exit_code == 130
    assert not out.exists() and not list(tmp_path.glob(".out*"))


_SLOW_SYNTH = """
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_pipeline import FakeBackend
from fewshotv2v.semantics.backends import register_backend

class Slow(FakeBackend):
    def detect(self, image):
        if self.calls == 3:  # the output's temp file is open by now: say so, then take our time
            Path({marker!r}).write_text("ready")
            time.sleep(60)
        return super().detect(image)

register_backend({backend!r}, lambda **kw: Slow(**kw))
from fewshotv2v.cli import main
sys.argv = ["fsv2v", *sys.argv[1:]]
main()
"""


def test_sigterm_is_handled_like_ctrl_c(model_dir, media, tmp_path):
    """SIGTERM while writing: one `error: terminated` line, exit 143, no output and no temp file."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    refs, drive = media
    out, marker = tmp_path / "out.mp4", tmp_path / "ready"
    script = _SLOW_SYNTH.format(tests=str(Path(__file__).parent), marker=str(marker), backend=BACKEND)
    args = ["synth", "--drive", str(drive), "-o", str(out), "--ref", str(refs[0]), "--model", str(model_dir)]
    args += ["--backend", BACKEND, "--device", "cpu"]
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), proc.communicate()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".out.mp4.fsv2v-tmp-")]  # being written
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert [line for line in stderr.splitlines() if line.strip()] == ["error: terminated"]
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_truncated_driving_video_is_one_warning_line(model_dir, media, tmp_path):
    """A driving video cut short (a partial download): the result is written, with one `warning:` line
    that gives the counts."""
    from fewshotv2v.video import VideoWriter

    refs, _ = media
    full, cut = tmp_path / "full.mp4", tmp_path / "cut.mp4"
    with VideoWriter(full, 10.0) as w:  # +faststart: the header (frame count) comes first
        for i in range(16):
            w.write(scene_image((80, 60), seed=10 + i))
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    result = _synth(model_dir, refs[:1], cut, tmp_path / "out.mp4")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.output
    assert "cut.mp4" in warnings[0] and "of the 16 frames" in warnings[0]
    written = int(warnings[0].split("decoded ")[1].split()[0])
    assert 0 < written < 16 and f"{written} frames" in result.output


def test_driving_video_without_anyone_fails_after_two_seconds(model_dir, media, tmp_path):
    """Nobody in the first 2 s (20 frames at 10 fps) of a 4 s video: fail then, not at the end."""
    from fewshotv2v.video import write_test_video

    refs, _ = media
    drive = write_test_video(tmp_path / "empty.mp4", [scene_image((80, 60), seed=i) for i in range(40)], 10.0)
    made = []

    def factory(**kw):
        made.append(FakeBackend(empty=len(made) > 0))  # the reference has a person, the drive nobody
        return made[-1]

    register_backend(BACKEND, factory)
    out = tmp_path / "out.mp4"
    result = _synth(model_dir, refs[:1], drive, out)
    assert result.exit_code == 4
    assert "first 20 frames (2 s) of the driving video" in " ".join(_one_line_error(result).split())
    assert made[-1].calls == 20 and not out.exists()
