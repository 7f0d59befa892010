"""Dataset folder layout: writer / reader round trip, completeness, validation errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fewshotv2v.data.layout import DatasetWriter, open_dataset, safe_clip_name
from fewshotv2v.errors import InputError, OutputExistsError


def _write_clip(writer, name, n=3, *, mask=True, label=False):
    rng = np.random.default_rng(0)
    with writer.clip(name, fps=10, source=f"{name}.mp4") as clip:
        for i in range(n):
            kps = rng.random((137, 3)).astype(np.float32)
            clip.add_frame(
                np.full((16, 24, 3), 40 * i, np.uint8),
                kps,
                np.array([1, 2, 20, 30], np.float32),
                mask=np.full((16, 24), 0.5) if mask else None,
                label=np.full((16, 24), i, np.uint8) if label else None,
                time=i * 0.1,
            )
        return clip.close({"frames_without_person": 1})


def test_round_trip(tmp_path):
    root = tmp_path / "ds"
    writer = DatasetWriter(root, "pose")
    meta = _write_clip(writer, "a")
    assert meta["num_frames"] == 3 and meta["frames_without_person"] == 1
    assert writer.is_complete("a") and not writer.is_complete("b")
    index = json.loads((root / "index.json").read_text())
    assert index["format"] == "fewshotv2v-dataset" and index["version"] == 1 and index["mode"] == "pose"
    assert index["clips"] == [
        {"name": "a", "num_frames": 3, "fps": 10.0, "width": 24, "height": 16, "source": "a.mp4"}
    ]
    ds = open_dataset(root)
    clip = ds["a"]
    assert ds.mode == "pose" and len(ds) == 1 and ds.num_frames == 3
    assert (clip.num_frames, clip.fps, clip.width, clip.height) == (3, 10.0, 24, 16)
    assert clip.keypoints.shape == (3, 137, 3) and clip.keypoints.dtype == np.float32
    assert np.allclose(clip.crops[2], [1, 2, 20, 30])
    assert abs(int(clip.frame(2).mean()) - 80) <= 2 and clip.frame(2).shape == (16, 24, 3)
    assert clip.mask(0).dtype == np.uint8 and clip.mask(0)[0, 0] == 128
    assert clip.label(0) is None
    assert clip.timestamps == [0.0, 0.1, 0.2]
    with pytest.raises(IndexError):
        clip.frame(3)


def test_street_labels_and_no_crops(tmp_path):
    writer = DatasetWriter(tmp_path / "ds", "street")
    _write_clip(writer, "s", mask=False, label=True)
    clip = open_dataset(tmp_path / "ds")["s"]
    assert not (clip.root / "crops.npy").exists()
    assert np.array_equal(clip.label(2), np.full((16, 24), 2, np.uint8))
    assert clip.mask(0) is None and np.allclose(clip.crops[0], [0, 0, 24, 16])


def test_reopen_appends_and_replaces_incomplete_clip(tmp_path):
    root = tmp_path / "ds"
    _write_clip(DatasetWriter(root, "pose"), "a")
    (root / "b" / "frames").mkdir(parents=True)  # an interrupted clip: no meta.json
    writer = DatasetWriter(root, "pose")
    assert not writer.is_complete("b")
    _write_clip(writer, "b", n=2)
    assert [c.name for c in open_dataset(root)] == ["a", "b"]
    with pytest.raises(OutputExistsError):
        writer.clip("a")
    with pytest.raises(InputError, match="mode"):
        DatasetWriter(root, "face")


def test_exception_removes_partial_clip(tmp_path):
    writer = DatasetWriter(tmp_path / "ds", "pose")
    with pytest.raises(RuntimeError), writer.clip("x", fps=5) as clip:
        clip.add_frame(np.zeros((8, 8, 3), np.uint8))
        raise RuntimeError("boom")
    assert not (tmp_path / "ds" / "x").exists()
    assert len(open_dataset(tmp_path / "ds")) == 0


def test_validation_errors(tmp_path):
    with pytest.raises(InputError, match="not a fewshotv2v dataset: .*nope"):
        open_dataset(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(InputError, match="not a fewshotv2v dataset: .*index.json"):
        open_dataset(tmp_path / "plain")
    (tmp_path / "plain" / "index.json").write_text('{"format": "other"}')
    with pytest.raises(InputError, match="not a fewshotv2v dataset"):
        open_dataset(tmp_path / "plain")
    with pytest.raises(InputError, match="not a fewshotv2v dataset"):
        DatasetWriter(tmp_path / "plain", "pose")  # non-empty folder that is not a dataset
    with pytest.raises(InputError, match="mode"):
        DatasetWriter(tmp_path / "x", "cats")


def test_safe_clip_name():
    assert safe_clip_name("my video (1).mp4") == "my_video_1_.mp4"
    assert safe_clip_name("...") == "clip"
