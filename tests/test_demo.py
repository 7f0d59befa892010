"""`fsv2v demo` end to end with the model shipped in the package (no download, no detector)."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from fewshotv2v.cli import app

runner = CliRunner()


def _frames(path):
    from fewshotv2v.video import read_frames

    return np.stack([f.image for f in read_frames(path)])


def test_demo_model_is_packaged_and_resolves_offline(monkeypatch):
    from fewshotv2v.hub import resolve_model
    from fewshotv2v.models.io import load_pretrained

    monkeypatch.setenv("FSV2V_HUB__OFFLINE", "1")
    folder = resolve_model("demo")
    assert (folder / "model.safetensors").stat().st_size < 25 * 2**20
    assert (folder / "README.md").is_file()  # the model card
    generator, _ = load_pretrained(folder)
    assert generator.config.mode == "pose"


def test_demo_writes_video_side_by_side_and_reference(tmp_path):
    from fewshotv2v.video import probe

    out = tmp_path / "demo.mp4"
    result = runner.invoke(app, ["demo", "-o", str(out), "--frames", "12", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    side = tmp_path / "demo_side_by_side.mp4"
    assert str(out) in result.stdout and str(side) in result.stdout
    info = probe(out)
    assert info.num_frames == 12 and info.fps == pytest.approx(24.0) and info.has_audio
    side_info = probe(side)
    assert side_info.num_frames == 12 and side_info.has_audio
    assert side_info.width > info.width  # driving | skeleton | result
    assert (tmp_path / "demo_reference.png").is_file()
    frames = _frames(out).astype(np.float32)
    assert frames.std() > 5.0  # not a constant image
    assert np.abs(np.diff(frames, axis=0)).mean() > 0.5  # and it moves
    # the real photo: the packaged astronaut portrait at its own resolution, its face moving
    face, face_side = tmp_path / "demo_face.mp4", tmp_path / "demo_face_side_by_side.mp4"
    assert str(face) in result.stdout and str(face_side) in result.stdout
    face_info = probe(face)
    assert (face_info.num_frames, face_info.height, face_info.width) == (12, 512, 512) and face_info.has_audio
    assert probe(face_side).width > face_info.width
    face_frames = _frames(face).astype(np.float32)
    from fewshotv2v.demo import PHOTO
    from fewshotv2v.video import read_image

    photo = read_image(PHOTO).astype(np.float32)
    assert np.abs(face_frames[0] - photo).mean() < 6.0  # it is the photo
    moved = np.abs(face_frames - face_frames[:1]).mean(axis=(1, 2, 3))
    assert moved.max() > 0.3  # and the face moves
    # Far from the face the photo stays as it was, up to H.264's noise (a lone pixel at a sharp black and
    # white edge may be off by ~35 levels, so the bulk is checked, not the worst pixel).
    corner = np.abs(face_frames[:, -100:, -100:] - photo[-100:, -100:])
    assert corner.mean() < 2.5 and np.percentile(corner, 99) < 10


def test_demo_refuses_to_overwrite(tmp_path):
    out = tmp_path / "demo.mp4"
    out.write_bytes(b"precious")
    result = runner.invoke(app, ["demo", "-o", str(out), "--frames", "4"])
    assert result.exit_code == 5
    assert "--overwrite" in " ".join(result.output.split())
    assert out.read_bytes() == b"precious"


def test_demo_bad_output_folder(tmp_path):
    result = runner.invoke(app, ["demo", "-o", str(tmp_path / "missing" / "demo.mp4"), "--frames", "4"])
    assert result.exit_code == 3
    assert "does not exist" in result.output
