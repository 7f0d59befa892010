"""Driving side of few-shot synthesis (SPEC §5): frames and their keypoints -> target label maps s_t.

- `drive_source`: one streaming source over a video / image / frame folder, a preprocessed clip folder
  (`meta.json` + `keypoints.npy`, so no detection is needed), or an iterable of frames (library use),
  optionally with keypoints given in lockstep. Nothing is held beyond the current frame.
- `DrivingKeypoints`: detection -> person tracking -> One-Euro smoothing, and the no-person policy:
  a frame without the person reuses the last good keypoints for up to `hold_frames` frames, after that an
  empty label map is rendered; both kinds are counted (`DriveStats`). A detection whose person height
  jumped since the last accepted one (a glitch: `modes.Mode.height_jump`,
  `semantics.tracking.HeightJumpGuard`) keeps the last keypoints too, for up to `JUMP_HOLD` frames; for
  faces a jump in place counts too, and one that lasts is a cut to a new shot. Cuts are also found in
  the frames themselves (`semantics.tracking.SceneCuts`): at a cut, a person no longer found where they
  were is picked afresh, and one who jumped in size or place is taken as they are; either way `new_shot`
  is set (the subject is taken afresh, like a new person).
  A video with nobody in its first `NO_PERSON_SECONDS` fails there (`NoPersonError`), not after the
  whole video.
- `LabelMaker`: retargeting onto the reference (`semantics.retarget`) and the label map in the reference
  crop (pose: skeleton + person mask; face: edge map).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fewshotv2v.errors import InputError, NoPersonError
from fewshotv2v.inference.references import quality, skeleton_mask
from fewshotv2v.modes import get_mode
from fewshotv2v.semantics.crops import crop_image
from fewshotv2v.semantics.label_maps import build_label_map
from fewshotv2v.semantics.retarget import PoseRetargeter, make_retargeter
from fewshotv2v.semantics.smoothing import OneEuroFilter
from fewshotv2v.semantics.tracking import HeightJumpGuard, PersonTracker, SceneCuts

DEFAULT_FPS = 25.0
# Driving videos are decoded with their long side at most this (when no keypoints come with them, which
# are in the video's own pixels): a phone's 4K video gains nothing for the detector, the cut check or the
# side-by-side panel, and cost 4x the decode, conversion and mask work (4K HDR: 605 ms a frame to read
# against 129 ms at 1920; `benchmarks/phone_media.py`).
DRIVE_MAX_SIZE = 1920
NO_PERSON_SECONDS = 2.0  # a driving video with nobody in its first 2 s fails then, not after the whole video


@dataclass
class DriveStats:
    """Counts of one synthesis run."""

    frames: int = 0
    frames_without_person: int = 0  # no person detected / given in the frame
    frames_held: int = 0  # ... rendered with the last good keypoints
    frames_empty: int = 0  # ... rendered as an empty label map
    person_changes: int = 0  # times the tracker lost its person and followed someone else
    jumps_ignored: int = 0  # detections ignored because the person's size jumped (last keypoints kept)
    new_shots: int = 0  # cuts in the driving video after which the subject was taken afresh


@dataclass
class DriveSource:
    """Iterating yields `(image uint8 (H, W, 3), keypoints (137, 3) | None | False, time s | None)`.

    keypoints: an array or None (no person) when they are given; `False` when they must be detected.
    """

    items: Iterable[tuple[np.ndarray, object, float | None]]
    fps: float = DEFAULT_FPS
    path: Path | None = None  # the media file (audio source), if any
    has_audio: bool = False
    num_frames: int | None = None
    keypoints_given: bool = False
    reopen: dict | None = None  # drive_source() arguments that open it again (a producer process), if any

    def __iter__(self):
        return iter(self.items)


def _clip_source(folder: Path, start, end, max_frames) -> DriveSource:
    """A preprocessed clip folder (docs/architecture.md dataset layout): frames + keypoints.npy."""
    from fewshotv2v.data.layout import Clip

    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read clip folder {folder}: {exc}") from None
    clip = Clip(folder, meta)
    times = clip.timestamps
    eps = 1e-4  # meta.json rounds timestamps to microseconds
    indices = [
        i
        for i, t in enumerate(times)
        if (start is None or t >= start - eps) and (end is None or t < end - eps)
    ]
    if max_frames is not None:
        indices = indices[:max_frames]
    kps = clip.keypoints  # memory-mapped (N, 137, 3)

    def items():
        for i in indices:
            k = np.array(kps[i], np.float32)
            yield clip.frame(i), (k if quality(k, clip.mode) > 0 else None), times[i]

    return DriveSource(items(), clip.fps, None, False, len(indices), keypoints_given=True)


def _iterable_source(frames: Iterable, keypoints, max_frames) -> DriveSource:
    def items():
        from fewshotv2v.video import Frame

        kps_iter = iter(keypoints) if keypoints is not None else itertools.repeat(False)
        for n, item in enumerate(frames):
            if max_frames is not None and n >= max_frames:
                return
            image, t = (item.image, item.time) if isinstance(item, Frame) else (item, None)
            image = np.asarray(image)
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise InputError(
                    f"driving frame {n} must be uint8 (H, W, 3), got {image.dtype} {image.shape}"
                )
            try:
                given = next(kps_iter)
            except StopIteration:
                raise InputError(f"driving keypoints ran out at frame {n}") from None
            yield image, given, t

    return DriveSource(items(), keypoints_given=keypoints is not None)


def drive_source(drive, *, keypoints=None, start=None, end=None, max_frames=None) -> DriveSource:
    """Open the driving input (see the module docstring). Paths are checked now, decoded lazily."""
    if isinstance(drive, DriveSource):
        return drive
    if not isinstance(drive, str | Path):
        if start is not None or end is not None:
            raise InputError("start / end apply to driving files; slice the frames yourself")
        return _iterable_source(drive, keypoints, max_frames)
    from fewshotv2v.video import probe, read_frames

    path = Path(drive)
    if not path.exists():
        raise InputError(f"driving video not found: {path}")
    # Keypoints in an array or a list can travel to another process; an iterator cannot be reopened.
    portable = keypoints is None or isinstance(keypoints, np.ndarray | list | tuple)
    reopen = {"drive": path, "keypoints": keypoints, "start": start, "end": end, "max_frames": max_frames}
    if path.is_dir() and (path / "meta.json").is_file():
        source = _clip_source(path, start, end, max_frames)
        source.reopen = reopen
        return source
    info = probe(path)  # InputError for unreadable files
    max_size = DRIVE_MAX_SIZE if keypoints is None else None
    frames = read_frames(path, start=start, end=end, max_frames=max_frames, max_size=max_size)
    if keypoints is not None:
        source = _iterable_source(frames, keypoints, None)
    else:
        source = DriveSource((f.image, False, f.time) for f in frames)
    source.fps, source.path, source.has_audio = info.fps, path, info.has_audio
    n = info.num_frames
    if n is not None:
        first = int(round((start or 0.0) * info.fps))
        last = n if end is None else min(n, int(round(end * info.fps)))
        n = max(0, last - first)
        n = min(n, max_frames) if max_frames is not None else n
    source.num_frames = n
    source.reopen = reopen if portable else None
    return source


class DrivingKeypoints:
    """Per-frame keypoints of the driven person: detection + tracking (or given), smoothing, hold policy.

    `__call__(image, given, t) -> (keypoints (137, 3) | None, mask (H, W) | None)`; None = no person
    (empty label map). `new_person` after a call: that frame's person is someone else than the one
    followed so far (`semantics.tracking.PersonTracker.switched`); `new_shot`: the driving video cut to
    another shot of them. Either way the caller takes the subject afresh. Both are reported on the first
    frame whose keypoints are used: a person picked up on a frame whose detection is unusable starts
    at their next usable one.
    """

    def __init__(
        self,
        detector,
        *,
        mode: str,
        hold_frames: int = 5,
        smoothing: bool = True,
        fps: float = DEFAULT_FPS,
        stats: DriveStats | None = None,
    ):
        self.detector, self.mode, self.hold_frames = detector, mode, hold_frames
        self.tracker = PersonTracker()
        self.filter = OneEuroFilter.for_mode(mode, fps=fps) if smoothing else None
        self.stats = stats if stats is not None else DriveStats()
        self.give_up = max(1, round(NO_PERSON_SECONDS * fps))  # frames with nobody yet before failing
        self._last: tuple[np.ndarray, np.ndarray | None] | None = None
        self._misses = 0
        self.jumps = HeightJumpGuard.for_mode(mode)
        self.new_shot_on_jump = get_mode(mode).new_shot_on_jump
        self.cuts = SceneCuts()
        self.new_person = self.new_shot = False
        self._pending = (False, False)  # (new_person, new_shot) seen on a frame with unusable keypoints

    def _find(self, image: np.ndarray, given, cut: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
        if given is not False:  # keypoints came with the frame (None = no person)
            kps = None if given is None else np.asarray(given, np.float32)
            return kps, None
        if self.detector is None:
            raise InputError('backend "none" needs driving keypoints')
        det = self.tracker.track(self.detector, image, cut=cut)
        self.new_person, self.new_shot = self.tracker.switched, self.tracker.new_shot
        return (None, None) if det is None else (det.keypoints, det.mask)

    def _start_afresh(self) -> None:
        """The next detection is taken at its own size and place (`jumps`), and not smoothed from the last
        keypoints (never slide from the last person's, or shot's, joints to these)."""
        self.jumps.reset()
        if self.filter is not None:
            self.filter.reset()

    @property
    def restart(self) -> bool:
        """The last frame's subject is to be taken afresh: someone else, or a new shot."""
        return self.new_person or self.new_shot

    def __call__(self, image: np.ndarray, given, t: float | None):
        self.new_person = self.new_shot = False
        cut = self.cuts(image)
        kps, mask = self._find(image, given, cut)
        if kps is not None and quality(kps, self.mode) > 0:
            self.new_person, self.new_shot = (
                self.new_person or self._pending[0],
                self.new_shot or self._pending[1],
            )
            self._pending = (False, False)
            # At a cut, a jump in size or place is the new shot's framing, not a glitch.
            self.new_shot = self.new_shot or (cut and not self.new_person and self.jumps.jumped(kps))
            if self.new_person or self.new_shot:
                self.stats.person_changes += int(self.new_person)
                self.stats.new_shots += int(self.new_shot)
                self._start_afresh()
            if self.jumps(kps):  # a glitch (never the first detection): keep the last keypoints
                self.stats.jumps_ignored += 1
                return self._last
            if self.jumps.lasted and self.new_shot_on_jump:  # a face that jumped and stayed: a cut
                self.new_shot = True
                self.stats.new_shots += 1
                if self.filter is not None:
                    self.filter.reset()
            if self.filter is not None:
                kps = self.filter(kps, t)
            self._last, self._misses = (kps, mask), 0
            return kps, mask
        self._pending = (self._pending[0] or self.new_person, self._pending[1] or self.new_shot)
        self.new_person = self.new_shot = False
        self.stats.frames_without_person += 1
        self._misses += 1
        if self._last is None and self._misses >= self.give_up:  # nobody in any frame so far
            what = get_mode(self.mode).subject
            raise NoPersonError(
                f"no {what} detected in the first {self.give_up} frames ({NO_PERSON_SECONDS:g} s) of the "
                "driving video"
            )
        if self._last is not None and self._misses <= self.hold_frames:
            self.stats.frames_held += 1
            return self._last
        self._start_afresh()  # the person comes back somewhere else (a short gap keeps the last one's)
        self.stats.frames_empty += 1
        return None, None


class LabelMaker:
    """Driving keypoints -> retargeted label map `float32 (C, H, W)` in the reference crop (model size)."""

    def __init__(self, config, ref_keypoints: np.ndarray):
        self.config = config
        self.mode = config.mode
        self.hw = (config.height, config.width)
        self.retarget = make_retargeter(self.mode, ref_keypoints)
        self.use_mask = get_mode(self.mode).has_person_mask and bool(
            getattr(config, "use_person_mask", False)
        )

    def reset(self) -> None:
        """Before a new driving video: its first frame fixes the driving statistics."""
        self.retarget.reset()

    def __call__(self, kps: np.ndarray | None, mask: np.ndarray | None) -> np.ndarray:
        if kps is None:
            return np.zeros((self.config.label_nc, *self.hw), np.float32)
        kc = self.retarget(kps)  # (137, 3) in reference-crop pixels
        crop_mask = None
        if self.use_mask:
            box = self.retarget.driving_box(self.hw) if isinstance(self.retarget, PoseRetargeter) else None
            if mask is not None and box is not None:
                # The driving silhouette under the uniform part of the retargeting (limb lengths may differ).
                crop_mask = crop_image(np.asarray(mask, np.float32), box, self.hw)
            else:
                crop_mask = skeleton_mask(kc, self.hw)
        return build_label_map(self.mode, kc, self.hw, config=self.config, mask=crop_mask)
