"""`fsv2v preprocess` / `data.preprocess` on synthetic videos with a fake detector (no mediapipe needed).

The "person" is a bright rectangle on a dark frame; the fake backend finds it and returns keypoints spread
over it, so tracking, smoothing, crops, masks, gap splitting and resuming run for real.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from fewshotv2v.cli import app
from fewshotv2v.data import preprocess as P
from fewshotv2v.data.layout import open_dataset
from fewshotv2v.errors import NoPersonError
from fewshotv2v.semantics.backends import Detection
from fewshotv2v.video import write_image, write_test_video

H, W = 48, 64


class FakeBackend:
    """Finds the bright rectangle; body points down its middle, face points on an ellipse in its top."""

    def __init__(self, interrupt_after: int | None = None):
        self.calls = 0
        self.interrupt_after = interrupt_after

    def detect(self, image):
        self.calls += 1
        if self.interrupt_after is not None and self.calls > self.interrupt_after:
            raise KeyboardInterrupt
        bright = image.mean(axis=2) > 128  # (H, W)
        if bright.sum() < 10:
            return []
        ys, xs = np.nonzero(bright)
        x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
        kps = np.zeros((137, 3), np.float32)
        kps[:25, 0] = np.linspace(x0, x1, 25)
        kps[:25, 1] = np.linspace(y0, y1, 25)
        a = np.linspace(0, 2 * np.pi, 70, endpoint=False)
        kps[25:95, 0] = (x0 + x1) / 2 + (x1 - x0) / 3 * np.cos(a)
        kps[25:95, 1] = y0 + (y1 - y0) / 4 * (1 + np.sin(a))
        kps[:95, 2] = 0.9
        return [Detection(kps, mask=bright.astype(np.float32))]


def _video(path, present, *, fps=10, tone=False):
    """A video whose frame i shows the person (moving right) iff present[i]."""

    def frames():
        for i, p in enumerate(present):
            img = np.full((H, W, 3), 10, np.uint8)
            if p:
                x = 10 + i % 20
                img[8:44, x : x + 16] = 230
            yield img

    return write_test_video(path, frames(), fps=fps, tone_hz=440 if tone else None)


@pytest.fixture()
def fake(monkeypatch):
    backend = FakeBackend()
    monkeypatch.setattr(P, "get_backend", lambda name, **kw: backend)
    return backend


def _cli(*args):
    return CliRunner().invoke(app, ["-q", "preprocess", *map(str, args)])


def test_cli_pose_dataset(tmp_path, fake):
    _video(tmp_path / "walk.mp4", [True] * 12)
    out = tmp_path / "ds"
    result = _cli(tmp_path / "walk.mp4", "-o", out)
    assert result.exit_code == 0, result.output
    assert "clips written: 1" in result.output and "frames: 12" in result.output
    ds = open_dataset(out)
    clip = ds["walk"]
    assert ds.mode == "pose" and clip.num_frames == 12 and clip.fps == 10.0
    assert clip.keypoints.shape == (12, 137, 3) and (clip.keypoints[:, :25, 2] > 0).all()
    assert np.isfinite(clip.crops).all() and (clip.crops[:, 2] > clip.crops[:, 0]).all()
    assert clip.mask(0).max() == 255 and clip.frame(0).shape == (H, W, 3)
    assert np.allclose(clip.timestamps, np.arange(12) / 10)
    assert clip.meta["source"].endswith("walk.mp4") and clip.meta["frames_without_person"] == 0


def test_face_mode_fps_and_max_size(tmp_path, fake):
    _video(tmp_path / "f.mp4", [True] * 10)
    summary = P.preprocess(
        [tmp_path / "f.mp4"], tmp_path / "ds", mode="face", fps=5, max_size=32, backend=fake
    )
    clip = open_dataset(tmp_path / "ds")["f"]
    assert summary.frames == clip.num_frames == 5 and clip.fps == 5.0
    assert (clip.width, clip.height) == (32, 24)
    x0, y0, x1, y1 = clip.crops[0]
    assert x1 - x0 == pytest.approx(y1 - y0)  # face boxes are square
    assert not clip.has_masks


def test_resume_skips_complete_and_redoes_interrupted(tmp_path):
    videos = tmp_path / "in"
    videos.mkdir()
    _video(videos / "a.mp4", [True] * 6)
    _video(videos / "b.mp4", [True] * 6)
    out = tmp_path / "ds"
    with pytest.raises(KeyboardInterrupt):  # interrupted in the middle of b
        P.preprocess([videos], out, mode="pose", backend=FakeBackend(interrupt_after=9))
    assert [c.name for c in open_dataset(out)] == ["a"]
    assert sorted(p.name for p in out.iterdir()) == ["a", "index.json"]  # no partial clip left
    stamp = (out / "a" / "meta.json").stat().st_mtime_ns
    backend = FakeBackend()
    summary = P.preprocess([videos], out, mode="pose", backend=backend)
    assert summary.skipped_sources == ["a"] and summary.clips == ["b"] and backend.calls == 6
    assert (out / "a" / "meta.json").stat().st_mtime_ns == stamp
    assert [c.name for c in open_dataset(out)] == ["a", "b"]
    again = P.preprocess([videos], out, mode="pose", backend=FakeBackend())
    assert again.clips == [] and again.skipped_sources == ["a", "b"]
    redo = P.preprocess([videos / "a.mp4"], out, mode="pose", backend=FakeBackend(), overwrite=True)
    assert redo.clips == ["a"] and [c.name for c in open_dataset(out)] == ["b", "a"]


def test_gap_splits_clip_short_gap_kept(tmp_path, fake):
    present = [True] * 8 + [False] * 3 + [True] * 8 + [False] * 15 + [True] * 6 + [False] * 2
    _video(tmp_path / "g.mp4", present)
    summary = P.preprocess([tmp_path / "g.mp4"], tmp_path / "ds", mode="pose", min_gap=1.0, backend=fake)
    ds = open_dataset(tmp_path / "ds")
    assert [c.name for c in ds] == ["g_part01", "g_part02"]
    first, second = ds.clips
    assert first.num_frames == 19 and first.meta["frames_without_person"] == 3  # short gap kept
    assert (first.keypoints[8:11, :, 2] == 0).all() and np.isfinite(first.crops[8:11]).all()
    assert second.num_frames == 6 and second.meta["part"] == 2 and second.meta["parts"] == 2
    assert second.timestamps[0] == pytest.approx(3.4)
    assert summary.frames_without_person == 20 and summary.frames == 25


def test_no_person_is_one_line_error(tmp_path, fake):
    _video(tmp_path / "empty.mp4", [False] * 5)
    result = _cli(tmp_path / "empty.mp4", "-o", tmp_path / "ds")
    assert result.exit_code == NoPersonError.exit_code
    assert "no person found" in result.output and "Traceback" not in result.output
    assert [c.name for c in open_dataset(tmp_path / "ds")] == []


@pytest.mark.parametrize(
    "content, message", [(b"junk" * 50, "not a video"), (b"", "not a video"), (None, "not found")]
)
def test_bad_inputs(tmp_path, fake, content, message):
    path = tmp_path / "in" / "x.mp4"
    path.parent.mkdir()
    if content is not None:
        path.write_bytes(content)
    result = _cli(path, "-o", tmp_path / "ds")
    assert result.exit_code == 3 and message in result.output


def test_refuses_output_inside_input(tmp_path, fake):
    _video(tmp_path / "v.mp4", [True] * 3)
    result = _cli(tmp_path, "-o", tmp_path / "ds")
    assert result.exit_code == 3 and "inside the input" in " ".join(result.output.split())
    assert not (tmp_path / "ds").exists()


def test_street_frames_with_labels(tmp_path):
    frames, labels = tmp_path / "city", tmp_path / "labels"
    frames.mkdir()
    labels.mkdir()
    for i in range(4):
        write_image(frames / f"f{i:03d}.jpg", np.full((20, 40, 3), 50 * i, np.uint8))
        label = np.zeros((20, 40), np.uint8)
        label[:, 20:] = 7
        write_image(labels / f"f{i:03d}.png", label)
    out = tmp_path / "ds"
    summary = P.preprocess([frames], out, mode="street", labels=labels, max_size=20)
    clip = open_dataset(out)["city"]
    assert summary.frames == clip.num_frames == 4 and (clip.width, clip.height) == (20, 10)
    assert set(np.unique(clip.label(0))) == {0, 7}  # nearest neighbour: no blended ids
    index = json.loads((out / "index.json").read_text())
    assert index["mode"] == "street"
    with pytest.raises(Exception, match="labels"):
        P.preprocess([frames], tmp_path / "ds2", mode="street")


@pytest.mark.slow
def test_real_mediapipe_backend_on_synthetic_person(tmp_path):
    pytest.importorskip("mediapipe")
    from fewshotv2v.data import synthetic

    identity = synthetic.make_identity(0)
    frames, _, _ = synthetic.render_clip(identity, synthetic.motion("walk", 6), (256, 256))  # (T, H, W, 3)
    write_test_video(tmp_path / "p.mp4", iter(frames), fps=8)
    summary = P.preprocess([tmp_path / "p.mp4"], tmp_path / "ds", mode="pose", backend="mediapipe")
    clip = open_dataset(tmp_path / "ds").clips[0]
    assert summary.frames == clip.num_frames > 0
    assert (clip.keypoints[:, :25, 2] > 0).sum() > 0 and clip.has_masks


def test_one_bad_source_does_not_stop_the_batch(tmp_path, fake):
    """A junk file and a video without a person fail; the good ones are written; each failure is one
    error line and the exit code is non-zero."""
    raw = tmp_path / "raw"
    raw.mkdir()
    _video(raw / "a.mp4", [True] * 4)
    (raw / "b.mp4").write_bytes(b"junk" * 50)
    _video(raw / "c.mp4", [False] * 4)
    _video(raw / "d.mp4", [True] * 5)
    result = _cli(raw, "-o", tmp_path / "ds")
    assert result.exit_code == 1, result.output
    assert [c.name for c in open_dataset(tmp_path / "ds")] == ["a", "d"]
    text = " ".join(result.output.split())
    assert "clips written: 2" in text and "failed: 2" in text and "Traceback" not in text
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 2
    assert "b.mp4" in errors[0] and "not a video" in errors[0]
    assert "c.mp4" in errors[1] and "no person found" in errors[1]


@pytest.mark.slow
def test_real_mediapipe_on_videos_of_different_sizes(tmp_path):
    """The README's `./raw_videos` case: mediapipe's video graph crashed on the second size."""
    pytest.importorskip("mediapipe")
    from fewshotv2v.data import synthetic

    raw = tmp_path / "raw"
    raw.mkdir()
    identity = synthetic.make_identity(0)
    for name, size in (("a", (256, 256)), ("b", (192, 320))):
        frames, _, _ = synthetic.render_clip(identity, synthetic.motion("walk", 3), size)
        write_test_video(raw / f"{name}.mp4", iter(frames), fps=8)
    result = _cli(raw, "-o", tmp_path / "ds")
    assert result.exit_code == 0, result.output
    assert [c.name for c in open_dataset(tmp_path / "ds")] == ["a", "b"]


def test_output_under_a_file_says_it_is_not_a_folder(tmp_path, fake):
    _video(tmp_path / "v.mp4", [True] * 3)
    afile = tmp_path / "notes.txt"
    afile.write_text("keep")
    result = _cli(tmp_path / "v.mp4", "-o", afile / "ds")
    assert result.exit_code == 3 and f"{afile} is not a folder" in " ".join(result.output.split())
    assert afile.read_text() == "keep"


@pytest.mark.slow
def test_mediapipe_start_up_lines_do_not_reach_stderr(tmp_path):
    """mediapipe's graph threads print TFLite / absl notices after Holistic() returns: stderr stays ours."""
    pytest.importorskip("mediapipe")
    import subprocess
    import sys

    from fewshotv2v.data import synthetic

    frames, _, _ = synthetic.render_clip(synthetic.make_identity(0), synthetic.motion("walk", 3), (256, 256))
    write_test_video(tmp_path / "p.mp4", iter(frames), fps=8)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "fewshotv2v",
            "-q",
            "preprocess",
            str(tmp_path / "p.mp4"),
            "-o",
            str(tmp_path / "ds"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr == "" and "clips written: 1" in run.stdout


def test_a_detection_whose_height_jumps_is_stored_as_a_frame_without_the_person(tmp_path, fake):
    """A detector glitch (the person found at 55 % of their height for one frame) is not stored as the
    person's keypoints: training would pair that frame with a folded body. Its frame stays in the clip
    as one without the person (`semantics.tracking.HeightJumpGuard`)."""

    def frames():
        for i in range(12):
            img = np.full((H, W, 3), 10, np.uint8)
            top = 24 if i == 6 else 8  # frame 6: 20 px tall instead of 36
            img[top:44, 20:36] = 230
            yield img

    write_test_video(tmp_path / "j.mp4", frames(), fps=10)
    summary = P.preprocess([tmp_path / "j.mp4"], tmp_path / "ds", mode="pose", backend=fake)
    (clip,) = open_dataset(tmp_path / "ds").clips
    assert clip.num_frames == 12 and clip.meta["frames_without_person"] == 1
    assert (clip.keypoints[6, :, 2] == 0).all() and (clip.keypoints[[5, 7], :25, 2] > 0).all()
    assert summary.frames_without_person == 1 and summary.jumps_ignored == 1
    result = _cli(tmp_path / "j.mp4", "-o", tmp_path / "ds2")
    assert result.exit_code == 0, result.output
    assert "frames without person: 1 (1 detection ignored as glitches)," in result.output


def test_a_cut_to_another_shot_starts_a_new_clip(tmp_path, fake):
    """Ten frames of one shot, then a cut to another background with the person elsewhere: two clips, the
    second from the cut's own frame (the person picked afresh there, not lost for 30 frames)."""

    def frames():
        for i in range(20):
            img = np.full((H, W, 3), 10, np.uint8)
            x = 8 + i % 3 if i < 10 else 40 + i % 3
            if i >= 10:
                img[:, ::4] = 90  # another place: grey stripes
            img[8:44, x : x + 16] = 230
            yield img

    write_test_video(tmp_path / "c.mp4", frames(), fps=10)
    summary = P.preprocess([tmp_path / "c.mp4"], tmp_path / "ds", mode="pose", backend=fake)
    ds = open_dataset(tmp_path / "ds")
    assert [c.name for c in ds] == ["c_part01", "c_part02"]
    assert [c.num_frames for c in ds] == [10, 10] and summary.frames_without_person == 0
    assert summary.cuts == 1
    result = _cli(tmp_path / "c.mp4", "-o", tmp_path / "cli")
    assert result.exit_code == 0 and "cuts to another shot (a new clip each): 1," in result.output
    assert ds.clips[1].crops[0][0] > ds.clips[0].crops[-1][2] - 16  # the new clip starts at the new place
