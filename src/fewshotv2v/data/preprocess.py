"""Turn videos (or folders of frames) into a training dataset (`data.layout`): `fsv2v preprocess`.

Few-shot vid2vid learns from many videos of different people together with their semantic inputs (SPEC §1):
per frame we detect the persons, follow one of them (`semantics.tracking.PersonTracker`), smooth its
keypoints over time (One-Euro, `semantics.smoothing`) and store the frame, the canonical keypoints
`(137, 3)`, the crop box (`semantics.crops`) and, in pose mode, the person mask. Street scenes need no
detector: a folder of frames comes with a folder of label PNGs (`--labels`).

Everything streams: frames are decoded, detected and written one at a time. The only frames held in
memory are those of a short gap without a person (at most `min_gap` seconds), kept until we know whether
the person comes back (the gap stays in the clip) or not (the clip is split: `name_part01`, ...).
Processing is resumable: a source whose clips are complete is skipped. A source that fails (not a video,
no person, a detector error) is listed in the summary's `failed` and the others still run.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fewshotv2v.data.layout import DatasetWriter, safe_clip_name
from fewshotv2v.errors import DependencyError, FewShotV2VError, InputError, NoPersonError
from fewshotv2v.modes import MODES

ProgressFn = Callable[[str, int | None, int], None]  # (label, total frames or None, frames done)


def get_backend(name: str, **kw: Any):
    """The keypoint detector (`semantics.backends.get_backend`); a module-level name so it can be swapped."""
    from fewshotv2v.semantics.backends import get_backend as _get

    return _get(name, **kw)


@dataclass(frozen=True)
class Source:
    """One input: a video file, or a folder of frames (`kind` = "video" | "frames")."""

    path: Path
    name: str
    kind: str


@dataclass(frozen=True)
class SourceFailure:
    """A source that could not be processed (nothing of it was written)."""

    name: str
    path: Path
    message: str
    exit_code: int  # the `FewShotV2VError` exit code of the failure (1 for other errors)


@dataclass
class PreprocessSummary:
    """What a run did (printed by the CLI)."""

    clips: list[str] = field(default_factory=list)  # clips written by this run
    skipped_sources: list[str] = field(default_factory=list)  # already complete (resume)
    frames: int = 0  # frames stored
    frames_without_person: int = 0  # decoded frames where the tracked person was not found
    jumps_ignored: int = 0  # ... of which the detection was ignored: the person's size jumped (a glitch)
    cuts: int = 0  # cuts to another shot of the person, each starting a new clip
    undecodable_frames: int = 0  # frames skipped because they could not be decoded
    failed: list[SourceFailure] = field(default_factory=list)  # sources that failed; the others ran


def _failure(source: Source, exc: Exception) -> SourceFailure:
    message = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, FewShotV2VError):  # e.g. a detector's own RuntimeError
        message = f"{type(exc).__name__}: {message}"
    return SourceFailure(source.name, source.path, message, getattr(exc, "exit_code", 1))


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------


def collect_sources(inputs: Sequence[str | Path]) -> list[Source]:
    """Video files, folders of videos (sorted, not recursive) and folders of frames -> unique `Source`s."""
    from fewshotv2v.video import VIDEO_SUFFIXES, is_image_file, list_frame_files

    found: list[tuple[Path, str]] = []
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise InputError(f"input not found: {path}")
        if path.is_file():
            found.append((path, "frames" if is_image_file(path) else "video"))
            continue
        videos = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        if videos:
            found += [(p, "video") for p in videos if not p.name.startswith(".")]
        elif list_frame_files(path):
            found.append((path, "frames"))
        else:
            raise InputError(f"no videos or image frames in folder {path}")
    sources, used = [], set()
    for path, kind in found:
        base = safe_clip_name(path.stem if path.is_file() else path.name)
        name, k = base, 2
        while name in used:  # two inputs called "a.mp4" in different folders: a_2
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        sources.append(Source(path.resolve(), name, kind))
    return sources


def check_output(out: Path, inputs: Sequence[str | Path]) -> None:
    """Refuse an output folder inside (or equal to) an input folder or file: never write into the inputs."""
    out = Path(out).resolve()
    for raw in inputs:
        path = Path(raw).resolve()
        if out == path:
            raise InputError(f"output {out} is one of the inputs; choose another output folder")
        if path.is_dir() and out.is_relative_to(path):
            raise InputError(f"output {out} is inside the input {path}; choose another output folder")


# --------------------------------------------------------------------------------------------------
# One source
# --------------------------------------------------------------------------------------------------


class _ClipSplitter:
    """Writes the frames of one source into clip parts; a gap of `min_gap` seconds without the person
    closes the current part (and resets tracking and smoothing), and so does a cut to another shot
    (`cut`): a clip's consecutive frames are one shot, so the flow between them is motion."""

    def __init__(self, writer: DatasetWriter, source: Source, fps: float, min_gap: float):
        self.writer, self.source, self.fps, self.min_gap = writer, source, fps, min_gap
        self.parts: list = []  # open ClipWriters, closed together at the end
        self.part_missing: list[int] = []  # frames without person stored in each part
        self.current = None
        self.pending: list[tuple[float, np.ndarray, np.ndarray | None, np.ndarray | None]] = []
        self.last_box: np.ndarray | None = None
        self.frames = 0

    def _new_part(self):
        name = f"{self.source.name}.part{len(self.parts) + 1:02d}.tmp"  # renamed in finish()
        clip = self.writer.clip(name, fps=self.fps, source=str(self.source.path))
        self.parts.append(clip)
        self.part_missing.append(0)
        return clip

    def add(self, t, image, kps, box, mask=None, label=None) -> None:
        """A frame with the person (or, in street mode, any frame)."""
        if self.current is None:
            self.current = self._new_part()
        for pt, pimage, pmask, plabel in self.pending:  # a short gap: keep it, no keypoints
            self.current.add_frame(pimage, None, self.last_box, mask=pmask, label=plabel, time=pt)
            self.part_missing[-1] += 1
            self.frames += 1
        self.pending.clear()
        self.current.add_frame(image, kps, box, mask=mask, label=label, time=t)
        self.last_box = box
        self.frames += 1

    def add_missing(self, t, image, last_person_time: float | None) -> bool:
        """A frame without the person; returns True when the gap got long enough to split the clip."""
        if self.current is None:
            return False  # before the first detection: not part of any clip
        self.pending.append((t, image, None, None))
        if last_person_time is not None and t - last_person_time >= self.min_gap:
            self.pending.clear()
            self.current = None
            return True
        return False

    def cut(self) -> None:
        """A cut in the video: the next frame with the person starts a new part (frames without the person
        just before the cut stay out of both)."""
        self.pending.clear()
        self.current = None

    def finish(self, extra_meta: dict) -> list[str]:
        """Close every part: `name` if there is one, else `name_part01`, `name_part02`, ..."""
        self.pending.clear()  # a trailing gap is dropped
        names = []
        for i, (clip, missing) in enumerate(zip(self.parts, self.part_missing, strict=True)):
            name = self.source.name if len(self.parts) == 1 else f"{self.source.name}_part{i + 1:02d}"
            meta = {"frames_without_person": missing, **extra_meta}
            if len(self.parts) > 1:
                meta.update(part=i + 1, parts=len(self.parts))
            names.append(_close_as(self.writer, clip, name, meta))
        return names

    def abort(self) -> None:
        for clip in self.parts:
            if not clip.closed:
                clip.abort()


def _close_as(writer: DatasetWriter, clip, name: str, meta: dict) -> str:
    """Move a finished temporary part folder to its final name, then write its meta.json (last)."""
    final = writer.root / name
    if final.exists():
        shutil.rmtree(final)
    clip.folder.rename(final)
    clip.folder, clip.name = final, name
    clip.close(meta)
    return name


def _remove_source_clips(writer: DatasetWriter, source: Source, *, complete_too: bool) -> None:
    """Remove this source's clips: leftovers of an interrupted run (incomplete or temporary part folders),
    and with `complete_too` (overwrite) its finished clips as well."""
    for folder in sorted(writer.root.glob(f"{source.name}*")):
        rest = folder.name[len(source.name) :]
        if not folder.is_dir() or not (rest == "" or rest.startswith(("_part", ".part"))):
            continue
        if complete_too or rest.endswith(".tmp") or not writer.is_complete(folder.name):
            writer.remove(folder.name)


def source_done(writer: DatasetWriter, source: Source) -> bool:
    return writer.is_complete(source.name) or writer.is_complete(f"{source.name}_part01")


def _crop_box(mode: str, kps: np.ndarray, hw: tuple[int, int]) -> np.ndarray | None:
    try:
        return MODES[mode].crop_box(kps, hw)
    except NoPersonError:  # detected, but too few valid points to place a crop
        return None


def process_source(
    source: Source,
    writer: DatasetWriter,
    backend,
    *,
    mode: str,
    fps: float | None = None,
    max_size: int | None = None,
    person: int | None = None,
    min_gap: float = 1.0,
    summary: PreprocessSummary,
    progress: ProgressFn | None = None,
) -> list[str]:
    """Detect, track, smooth and store one pose / face source; returns the clip names written."""
    from fewshotv2v.semantics.smoothing import OneEuroFilter
    from fewshotv2v.semantics.tracking import HeightJumpGuard, PersonTracker, SceneCuts
    from fewshotv2v.video import VideoReader, probe

    info = probe(source.path)
    out_fps = float(fps or info.fps)
    total = info.num_frames if fps is None or not info.duration else round(info.duration * fps)
    reader = VideoReader(source.path, max_size=max_size, fps=fps)
    tracker = PersonTracker(person)
    smoother = OneEuroFilter.for_mode(mode, fps=out_fps)
    jumps = HeightJumpGuard.for_mode(mode)  # a detector glitch is stored as a frame without them
    cuts = SceneCuts()  # a cut to another shot of the person (elsewhere, or resized) starts a new clip
    splitter = _ClipSplitter(writer, source, out_fps, min_gap)
    last_person_t: float | None = None
    missing = jumps_ignored = new_shots = 0
    try:
        for frame in reader:
            cut = cuts(frame.image)
            det = tracker.track(backend, frame.image, cut=cut)
            if tracker.switched:
                jumps.reset()
            if tracker.new_shot or (cut and det is not None and jumps.jumped(det.keypoints)):
                jumps.reset()  # a new shot: the person taken as they are in it, in a clip of its own
                smoother.reset()
                splitter.cut()
                new_shots += 1
            if det is not None and jumps(det.keypoints):
                det, jumps_ignored = None, jumps_ignored + 1
            hw = frame.image.shape[:2]
            kps = box = None
            if det is not None:
                kps = smoother(det.keypoints, frame.time)  # (137, 3), frame pixels
                box = _crop_box(mode, kps, hw)
            if box is None:
                missing += 1
                if splitter.add_missing(frame.time, frame.image, last_person_t):
                    smoother.reset()
                    jumps.reset()  # a new clip: the person is taken at their height
            else:
                mask = det.mask if MODES[mode].has_person_mask else None
                splitter.add(frame.time, frame.image, kps, box, mask=mask)
                last_person_t = frame.time
            if progress is not None:
                progress(source.name, total, frame.index + 1)
        if not splitter.parts:
            raise NoPersonError(f"no {MODES[mode].subject} found in any frame of {source.path}")
        names = splitter.finish({"undecodable_frames": reader.skipped_frames})
    except BaseException:
        splitter.abort()
        raise
    summary.frames += splitter.frames
    summary.frames_without_person += missing
    summary.jumps_ignored += jumps_ignored
    summary.cuts += new_shots
    summary.undecodable_frames += reader.skipped_frames
    return names


def process_street_source(
    source: Source,
    writer: DatasetWriter,
    labels: Path,
    *,
    fps: float | None = None,
    max_size: int | None = None,
    summary: PreprocessSummary,
    progress: ProgressFn | None = None,
) -> list[str]:
    """Store a folder of street frames with their label PNGs (matched by file stem, in `labels` or in
    `labels/<source name>`); label maps are resized with nearest neighbour."""
    from fewshotv2v.video import fit_size, list_frame_files, read_image, resize_image

    if source.kind != "frames":
        raise InputError(f"street mode takes folders of frames (with --labels), not videos: {source.path}")
    files = list_frame_files(source.path) if source.path.is_dir() else [source.path]
    label_dir = labels / source.path.name if (labels / source.path.name).is_dir() else labels
    out_fps = float(fps or 25.0)
    splitter = _ClipSplitter(writer, source, out_fps, min_gap=float("inf"))
    try:
        for i, file in enumerate(files):
            label_path = label_dir / f"{file.stem}.png"
            if not label_path.is_file():
                raise InputError(f"no label map for frame {file.name}: expected {label_path}")
            image = read_image(file)
            label = read_image(label_path, gray=True)
            if label.shape != image.shape[:2]:
                raise InputError(f"label {label_path} is {label.shape}, frame {file} is {image.shape[:2]}")
            w, h = fit_size(image.shape[1], image.shape[0], max_size)
            image, label = resize_image(image, w, h), resize_image(label, w, h, nearest=True)
            splitter.add(i / out_fps, image, None, None, label=label)
            if progress is not None:
                progress(source.name, len(files), i + 1)
        names = splitter.finish({})
    except BaseException:
        splitter.abort()
        raise
    summary.frames += splitter.frames
    return names


# --------------------------------------------------------------------------------------------------
# Whole run
# --------------------------------------------------------------------------------------------------


def preprocess(
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    mode: str,
    backend: str | Any = "mediapipe",
    fps: float | None = None,
    max_size: int | None = None,
    person: int | None = None,
    min_gap: float = 1.0,
    labels: str | Path | None = None,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    on_source: Callable[[Source, str], None] | None = None,
) -> PreprocessSummary:
    """Preprocess `inputs` into the dataset folder `out` (created if needed, extended if it exists).

    `backend`: a backend name for `get_backend` (a fresh detector per source: video-mode detectors track
    between frames, and mediapipe's cannot change frame size) or an object with
    `.detect(image) -> list[Detection]`. Sources already complete in `out` are skipped unless `overwrite`.
    A source that fails is recorded in `summary.failed` (nothing of it is kept) and the others go on.
    `on_source(source, status)` is told "start", "skip", "done" or "failed" for each source.
    """
    if mode not in MODES:
        *others, last = MODES
        raise InputError(f"unknown mode {mode!r} (use {', '.join(others)} or {last})")
    if fps is not None and fps <= 0:
        raise InputError(f"--fps must be positive, got {fps}")
    if max_size is not None and max_size < 16:
        raise InputError(f"--max-size must be at least 16, got {max_size}")
    if min_gap <= 0:
        raise InputError(f"--min-gap must be positive, got {min_gap}")
    if not MODES[mode].keypoint_driven and labels is None:
        raise InputError("street mode needs --labels DIR (label PNGs named like the frames)")
    if labels is not None and not Path(labels).is_dir():
        raise InputError(f"labels folder not found: {labels}")
    out = Path(out)
    check_output(out, inputs)
    sources = collect_sources(inputs)
    from fewshotv2v.video import probe

    summary = PreprocessSummary()
    for source in sources:  # bad videos fail now, before the detector starts or anything is written
        if source.kind == "video":
            try:
                probe(source.path)
            except InputError as exc:
                summary.failed.append(_failure(source, exc))
    bad = {f.name for f in summary.failed}
    writer = DatasetWriter(out, mode, overwrite=True)
    for source in sources:
        if source.name in bad:
            if on_source is not None:
                on_source(source, "failed")
            continue
        detector = None
        try:
            if source_done(writer, source) and not overwrite:
                summary.skipped_sources.append(source.name)
                if on_source is not None:
                    on_source(source, "skip")
                continue
            _remove_source_clips(writer, source, complete_too=overwrite)
            if on_source is not None:
                on_source(source, "start")
            if not MODES[mode].keypoint_driven:
                names = process_street_source(
                    source,
                    writer,
                    Path(labels),
                    fps=fps,
                    max_size=max_size,
                    summary=summary,
                    progress=progress,
                )
            else:
                detector = get_backend(backend) if isinstance(backend, str) else backend
                names = process_source(
                    source,
                    writer,
                    detector,
                    mode=mode,
                    fps=fps,
                    max_size=max_size,
                    person=person,
                    min_gap=min_gap,
                    summary=summary,
                    progress=progress,
                )
            summary.clips += names
            if on_source is not None:
                on_source(source, "done")
        except DependencyError:  # the same for every source: stop at once
            raise
        except (FewShotV2VError, RuntimeError) as exc:  # this source only (its clips were aborted)
            summary.failed.append(_failure(source, exc))
            if on_source is not None:
                on_source(source, "failed")
        finally:
            if detector is not None and isinstance(backend, str) and hasattr(detector, "close"):
                detector.close()
    return summary
