"""The dataset folder format shared by `fsv2v preprocess`, `fsv2v synthetic`, training and `fsv2v eval`.

Few-shot vid2vid trains on videos of many people (or faces, or street scenes) together with their semantic
inputs. A dataset stores, per clip, the frames, the canonical keypoints `(N, 137, 3)`, the crop boxes and the
optional person masks / street label maps; model inputs (label maps) are rendered from these at training time.

```
DATASET/
  index.json          {"format": "fewshotv2v-dataset", "version": 1, "mode", "clips": [{name, num_frames, fps,
                       width, height, source}]}
  <clip>/meta.json    {"name", "mode", "fps", "width", "height", "num_frames", "source", "timestamps",
                       "frames_without_person"}   -- written last, atomically: the clip is complete
  <clip>/frames/000000.jpg, keypoints.npy (N, 137, 3) float32, crops.npy (N, 4) float32 (not street),
  <clip>/masks/000000.png (optional, uint8, 255 = person), <clip>/labels/000000.png (street, train ids)
```
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from fewshotv2v.errors import InputError, OutputExistsError, check_output_folder
from fewshotv2v.modes import MODES

FORMAT = "fewshotv2v-dataset"
VERSION = 1
NUM_KEYPOINTS = 137  # canonical layout, see semantics.keypoints
INDEX_FILE = "index.json"
META_FILE = "meta.json"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def frame_filename(i: int, suffix: str = ".jpg") -> str:
    return f"{i:06d}{suffix}"


def safe_clip_name(text: str) -> str:
    """A clip name usable as a folder name (letters, digits, `._-`; other characters become `_`)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")
    return name or "clip"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temp file in the same folder, then `os.replace` (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _save_npy_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


class DatasetWriter:
    """Creates or extends a dataset folder. Clips are added with `.clip(name)`; `.is_complete(name)` tells
    whether a clip was already finished (resumable preprocessing skips it).

    An existing non-empty folder must already be a dataset of the same mode.
    """

    def __init__(self, root: str | Path, mode: str, *, overwrite: bool = False):
        if mode not in MODES:
            raise InputError(f"unknown dataset mode {mode!r} (use {', '.join(MODES)})")
        self.root = Path(root)
        self.mode = mode
        self.overwrite = overwrite
        if self.root.exists() and not self.root.is_dir():
            raise InputError(f"output is a file, not a folder: {self.root}")
        check_output_folder(self.root, "dataset")
        index_path = self.root / INDEX_FILE
        if index_path.is_file():
            index = _read_index(self.root)
            if index["mode"] != mode:
                raise InputError(
                    f"dataset {self.root} has mode {index['mode']!r}, cannot add {mode!r} clips to it"
                )
            self._clips: list[dict] = list(index["clips"])
        elif self.root.is_dir() and any(p for p in self.root.iterdir() if not p.name.startswith(".")):
            raise InputError(f"not a fewshotv2v dataset: {self.root} (not empty and no {INDEX_FILE})")
        else:
            self.root.mkdir(exist_ok=True)
            self._clips = []
            self._write_index()

    @property
    def clip_names(self) -> list[str]:
        return [c["name"] for c in self._clips]

    def is_complete(self, name: str) -> bool:
        return (self.root / name / META_FILE).is_file()

    def clip(self, name: str, *, fps: float | None = None, source: str = "") -> ClipWriter:
        """Start a clip. An incomplete folder of the same name (an interrupted run) is removed first; a
        complete one raises `OutputExistsError` unless the writer was made with `overwrite=True`."""
        if not _NAME_RE.match(name):
            raise InputError(f"invalid clip name {name!r} (use letters, digits, '.', '_' or '-')")
        folder = self.root / name
        if self.is_complete(name) and not self.overwrite:
            raise OutputExistsError(f"clip already exists: {folder} (use --overwrite)")
        if folder.exists():
            shutil.rmtree(folder)
        self._clips = [c for c in self._clips if c["name"] != name]
        return ClipWriter(self, folder, name, fps=fps, source=source)

    def remove(self, name: str) -> None:
        """Delete a clip (complete or not): its folder and its `index.json` entry."""
        folder = self.root / name
        if folder.is_dir():
            shutil.rmtree(folder)
        if name in self.clip_names:
            self._clips = [c for c in self._clips if c["name"] != name]
            self._write_index()

    def _register(self, meta: dict) -> None:
        entry = {k: meta[k] for k in ("name", "num_frames", "fps", "width", "height", "source")}
        self._clips = [c for c in self._clips if c["name"] != meta["name"]] + [entry]
        self._write_index()

    def _write_index(self) -> None:
        index = {"format": FORMAT, "version": VERSION, "mode": self.mode, "clips": self._clips}
        write_json_atomic(self.root / INDEX_FILE, index)


class ClipWriter:
    """Writes one clip frame by frame: JPEG frames (and PNG masks / labels) go to disk at once; keypoints
    and crop boxes (a few KB per frame) are kept and saved by `close`, which writes `meta.json` last.

    As a context manager, an exception removes the partial clip folder.
    """

    def __init__(self, dataset: DatasetWriter, folder: Path, name: str, *, fps: float | None, source: str):
        self.dataset = dataset
        self.folder = folder
        self.name = name
        self.fps = fps
        self.source = source
        self.num_frames = 0
        self.size: tuple[int, int] | None = None  # (H, W)
        self._keypoints: list[np.ndarray] = []  # each (137, 3)
        self._crops: list[np.ndarray] = []  # each (4,)
        self._times: list[float] = []
        self._has_masks = False
        self.closed = False
        (folder / "frames").mkdir(parents=True)

    def add_frame(
        self,
        image: np.ndarray,
        keypoints: np.ndarray | None = None,
        crop_box: np.ndarray | None = None,
        mask: np.ndarray | None = None,
        label: np.ndarray | None = None,
        time: float | None = None,
        *,
        quality: int = 95,
    ) -> int:
        """Add frame `uint8 (H, W, 3)` with keypoints `(137, 3)` (frame pixels; None = all missing), crop
        box `(4,)` x0, y0, x1, y1, optional mask `(H, W)` (float in [0, 1] or uint8) and, for street,
        label `uint8 (H, W)` train ids. Returns the frame index."""
        from fewshotv2v.video import write_image

        if self.closed:
            raise RuntimeError("clip already closed")
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"frame must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        hw = image.shape[:2]
        if self.size is None:
            self.size = hw
        elif hw != self.size:
            raise ValueError(f"frame size {hw} differs from the clip's {self.size}")
        i = self.num_frames
        write_image(self.folder / "frames" / frame_filename(i), image, quality=quality)
        kps = np.zeros((NUM_KEYPOINTS, 3), np.float32) if keypoints is None else np.asarray(keypoints)
        if kps.shape != (NUM_KEYPOINTS, 3):
            raise ValueError(f"keypoints must be ({NUM_KEYPOINTS}, 3), got {kps.shape}")
        self._keypoints.append(kps.astype(np.float32))
        box = np.full(4, np.nan, np.float32) if crop_box is None else np.asarray(crop_box, np.float32)
        self._crops.append(box.reshape(4))
        if mask is not None:
            self._write_plane("masks", i, _mask_to_uint8(mask, hw))
            self._has_masks = True
        if label is not None:
            label = np.asarray(label)
            if label.shape != hw or label.dtype != np.uint8:
                raise ValueError(f"label must be uint8 {hw}, got {label.dtype} {label.shape}")
            self._write_plane("labels", i, label)
        fps = self.fps or 25.0
        self._times.append(float(time) if time is not None else i / fps)
        self.num_frames += 1
        return i

    def _write_plane(self, sub: str, i: int, plane: np.ndarray) -> None:
        from fewshotv2v.video import write_image

        (self.folder / sub).mkdir(exist_ok=True)
        write_image(self.folder / sub / frame_filename(i, ".png"), plane)

    def close(self, meta: dict | None = None) -> dict:
        """Save arrays, then `meta.json` (atomically; the clip is now complete), then update `index.json`.
        `meta` adds or overrides fields (e.g. `frames_without_person`)."""
        if self.closed:
            raise RuntimeError("clip already closed")
        if self.num_frames == 0:
            self.abort()
            raise InputError(f"clip {self.name} has no frames")
        _save_npy_atomic(self.folder / "keypoints.npy", np.stack(self._keypoints))  # (N, 137, 3)
        if MODES[self.dataset.mode].keypoint_driven:
            _save_npy_atomic(self.folder / "crops.npy", np.stack(self._crops))  # (N, 4)
        h, w = self.size  # type: ignore[misc]
        fps = float(self.fps) if self.fps else _fps_from_times(self._times)
        full = {
            "name": self.name,
            "mode": self.dataset.mode,
            "fps": fps,
            "width": int(w),
            "height": int(h),
            "num_frames": self.num_frames,
            "source": self.source,
            "timestamps": [round(t, 6) for t in self._times],
            "frames_without_person": 0,
        }
        full.update(meta or {})
        full["name"], full["num_frames"] = self.name, self.num_frames
        write_json_atomic(self.folder / META_FILE, full)
        self.dataset._register(full)
        self.closed = True
        return full

    def abort(self) -> None:
        """Remove the partial clip folder."""
        self.closed = True
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> ClipWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and not self.closed:
            self.abort()


def _mask_to_uint8(mask: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != hw:
        raise ValueError(f"mask must be {hw}, got {mask.shape}")
    if mask.dtype == np.uint8:
        return mask
    return (np.clip(mask.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _fps_from_times(times: list[float]) -> float:
    if len(times) < 2 or times[-1] <= times[0]:
        return 25.0
    return (len(times) - 1) / (times[-1] - times[0])


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------


def _read_index(root: Path) -> dict:
    path = root / INDEX_FILE
    if not root.is_dir():
        raise InputError(f"not a fewshotv2v dataset: {root} (no such folder)")
    if not path.is_file():
        raise InputError(f"not a fewshotv2v dataset: {root} (no {INDEX_FILE})")
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"not a fewshotv2v dataset: {root} (unreadable {INDEX_FILE}: {exc})") from exc
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise InputError(f"not a fewshotv2v dataset: {root} ({INDEX_FILE} has no format {FORMAT!r})")
    if index.get("version", 0) > VERSION:
        raise InputError(
            f"dataset {root} has format version {index.get('version')}, this fewshotv2v reads up to {VERSION}"
        )
    if (
        not isinstance(index.get("mode"), str)
        or index["mode"] not in MODES
        or not isinstance(index.get("clips"), list)
    ):
        raise InputError(f"not a fewshotv2v dataset: {root} (bad mode or clips in {INDEX_FILE})")
    return index


@dataclass
class Clip:
    """One clip of a dataset; frames, masks and labels are read lazily from disk."""

    root: Path
    meta: dict = field(repr=False)

    @property
    def name(self) -> str:
        return self.meta["name"]

    @property
    def num_frames(self) -> int:
        return int(self.meta["num_frames"])

    @property
    def fps(self) -> float:
        return float(self.meta["fps"])

    @property
    def width(self) -> int:
        return int(self.meta["width"])

    @property
    def height(self) -> int:
        return int(self.meta["height"])

    @property
    def mode(self) -> str:
        return self.meta["mode"]

    @property
    def timestamps(self) -> list[float]:
        return list(self.meta.get("timestamps") or [i / self.fps for i in range(self.num_frames)])

    def __len__(self) -> int:
        return self.num_frames

    @cached_property
    def keypoints(self) -> np.ndarray:
        """float32 `(N, 137, 3)`: x, y, confidence in frame pixels (memory-mapped)."""
        return self._load_array("keypoints.npy", (self.num_frames, NUM_KEYPOINTS, 3))

    @cached_property
    def crops(self) -> np.ndarray:
        """float32 `(N, 4)` crop boxes x0, y0, x1, y1 (street: the full frame)."""
        if not (self.root / "crops.npy").is_file() and not MODES[self.mode].keypoint_driven:
            box = np.array([0, 0, self.width, self.height], np.float32)
            return np.tile(box, (self.num_frames, 1))
        return self._load_array("crops.npy", (self.num_frames, 4))

    def _load_array(self, filename: str, shape: tuple[int, ...]) -> np.ndarray:
        path = self.root / filename
        try:
            array = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise InputError(f"broken clip {self.root}: cannot read {filename} ({exc})") from exc
        if array.shape != shape:
            raise InputError(f"broken clip {self.root}: {filename} has shape {array.shape}, expected {shape}")
        return array

    def _check(self, i: int) -> int:
        if not -self.num_frames <= i < self.num_frames:
            raise IndexError(f"frame {i} out of range for clip {self.name} ({self.num_frames} frames)")
        return i % self.num_frames

    def frame(self, i: int) -> np.ndarray:
        """uint8 `(H, W, 3)` RGB."""
        from fewshotv2v.video import read_image

        return read_image(self.root / "frames" / frame_filename(self._check(i)))

    def mask(self, i: int) -> np.ndarray | None:
        """uint8 `(H, W)` person mask (255 = person), or None if the clip has no masks."""
        return self._plane("masks", i)

    def label(self, i: int) -> np.ndarray | None:
        """uint8 `(H, W)` street label map (train ids, 255 = ignore), or None."""
        return self._plane("labels", i)

    @property
    def has_masks(self) -> bool:
        return (self.root / "masks").is_dir()

    @property
    def has_labels(self) -> bool:
        return (self.root / "labels").is_dir()

    def _plane(self, sub: str, i: int) -> np.ndarray | None:
        from fewshotv2v.video import read_image

        path = self.root / sub / frame_filename(self._check(i), ".png")
        return read_image(path, gray=True) if path.is_file() else None


@dataclass
class Dataset:
    """A dataset folder opened for reading: `mode`, `clips` (only complete ones, in index order)."""

    root: Path
    mode: str
    clips: list[Clip]

    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self) -> Iterator[Clip]:
        return iter(self.clips)

    def __getitem__(self, key: int | str) -> Clip:
        if isinstance(key, str):
            for clip in self.clips:
                if clip.name == key:
                    return clip
            raise KeyError(key)
        return self.clips[key]

    @property
    def num_frames(self) -> int:
        return sum(c.num_frames for c in self.clips)


def open_dataset(root: str | Path) -> Dataset:
    """Open and validate a dataset folder; raises `InputError("not a fewshotv2v dataset: ...")`."""
    root = Path(root)
    index = _read_index(root)
    clips = []
    for entry in index["clips"]:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise InputError(f"not a fewshotv2v dataset: {root} (bad clip entry {entry!r})")
        meta_path = root / name / META_FILE
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"broken dataset {root}: clip {name} has no readable {META_FILE}") from exc
        clips.append(Clip(root / name, meta))
    return Dataset(root, index["mode"], clips)
