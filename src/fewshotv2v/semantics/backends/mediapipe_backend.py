"""mediapipe Holistic -> canonical keypoints (extra ``[pose]``; mediapipe 0.10.21, whose wheel ships the
legacy ``mp.solutions`` models, so nothing is downloaded at run time).

Holistic finds the most prominent person: 33 body points, a 478-point face mesh (with
``refine_face_landmarks``: 468 + 10 iris points), two 21-point hands and a soft segmentation mask. Mapping
to the canonical OpenPose layout (docs/semantics.md):

- BODY_25 from the 33 body points; neck = mid-shoulders, mid-hip = mid-hips, heels = heels,
  big toe = foot-index point. mediapipe has no small toe: it is placed 80 % of the way from the heel to
  the foot index and moved sideways (away from the body's mid-line) by a quarter of the heel-toe
  distance, which is where the fifth toe sits on a foot seen from the front or the side.
- Face: 68 iBUG points through the index table ``MESH_TO_IBUG68`` + the two iris centres (468, 473) as
  pupils.
- Hands: 1:1 (mediapipe and OpenPose share the 21-point topology); Holistic's left / right hand is the
  person's own, as in OpenPose.

Confidences: body = mediapipe visibility (points under 0.5 are dropped), face and hands = 1 when found.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

import numpy as np

from fewshotv2v.errors import require
from fewshotv2v.semantics import keypoints as kp
from fewshotv2v.semantics.backends.base import Backend, Detection, check_image


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence file descriptor 2 for a moment: mediapipe's C++ code logs through absl before logging is
    initialised (TFLite delegate notices, feedback-manager warnings) and no Python setting reaches it.
    Set FSV2V_MEDIAPIPE_LOGS=1 to see them."""
    if os.environ.get("FSV2V_MEDIAPIPE_LOGS"):
        yield
        return
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# BODY_25 index -> mediapipe pose index (neck, mid-hip and small toes are derived).
MP_TO_BODY25 = {
    kp.NOSE: 0, kp.R_SHOULDER: 12, kp.R_ELBOW: 14, kp.R_WRIST: 16, kp.L_SHOULDER: 11, kp.L_ELBOW: 13,
    kp.L_WRIST: 15, kp.R_HIP: 24, kp.R_KNEE: 26, kp.R_ANKLE: 28, kp.L_HIP: 23, kp.L_KNEE: 25, kp.L_ANKLE: 27,
    kp.R_EYE: 5, kp.L_EYE: 2, kp.R_EAR: 8, kp.L_EAR: 7, kp.L_BIG_TOE: 31, kp.L_HEEL: 29, kp.R_BIG_TOE: 32,
    kp.R_HEEL: 30,
}  # fmt: skip

# iBUG-68 point i -> face-mesh vertex (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, lips 48-67).
MESH_TO_IBUG68 = (
    127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356,
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181, 78, 82, 13, 312, 308, 317, 14, 87,
)  # fmt: skip
MESH_R_IRIS, MESH_L_IRIS = 468, 473  # iris centres (refined mesh): person's right, left


def _small_toe(heel: np.ndarray, toe: np.ndarray, mid_x: float) -> np.ndarray:
    """Estimate the small toe from heel and foot index ``(x, y)`` (see the module docstring)."""
    axis = toe - heel
    length = float(np.hypot(*axis))
    if length < 1e-6:
        return toe.copy()
    normal = np.array([-axis[1], axis[0]]) / length
    if normal[0] * (toe[0] - mid_x) < 0:  # point away from the body's mid-line
        normal = -normal
    return heel + 0.8 * axis + 0.25 * length * normal


def holistic_to_canonical(
    pose: np.ndarray | None,
    face: np.ndarray | None,
    left_hand: np.ndarray | None,
    right_hand: np.ndarray | None,
    image_hw: tuple[int, int],
    *,
    min_visibility: float = 0.5,
) -> np.ndarray:
    """Map Holistic landmarks (normalised coordinates) to canonical ``(137, 3)`` pixels.

    ``pose (33, 4)``: x, y, z, visibility; ``face (468|478, 3)``; hands ``(21, 3)``; each may be None.
    Body points with visibility under ``min_visibility`` (0.5, mediapipe's own drawing threshold) are
    marked missing: mediapipe extrapolates hidden and off-image joints with low visibility, and those
    guesses would stretch the person crop and draw phantom limbs.
    """
    h, w = image_hw
    out = kp.empty()
    scale = np.array([w, h], np.float32)
    if pose is not None:
        pose = np.asarray(pose, np.float32)
        xy = pose[:, :2] * scale  # (33, 2) pixels
        vis = np.clip(pose[:, 3], 0.0, 1.0) if pose.shape[1] > 3 else np.ones(len(pose), np.float32)
        for b, m in MP_TO_BODY25.items():
            out[b] = (*xy[m], vis[m])
        for b, (i, j) in ((kp.NECK, (11, 12)), (kp.MID_HIP, (23, 24))):
            out[b] = (*(xy[i] + xy[j]) / 2, min(vis[i], vis[j]))
        mid_x = float(out[kp.MID_HIP, 0])
        for toe, heel, small in ((31, 29, kp.L_SMALL_TOE), (32, 30, kp.R_SMALL_TOE)):
            out[small] = (*_small_toe(xy[heel], xy[toe], mid_x), min(vis[heel], vis[toe]))
        out[kp.BODY][out[kp.BODY, 2] < min_visibility] = 0.0
    if face is not None:
        face = np.asarray(face, np.float32)
        pts = face[list(MESH_TO_IBUG68), :2] * scale
        out[25:93, :2], out[25:93, 2] = pts, 1.0
        if len(face) >= 478:
            out[25 + kp.R_PUPIL] = (*face[MESH_R_IRIS, :2] * scale, 1.0)
            out[25 + kp.L_PUPIL] = (*face[MESH_L_IRIS, :2] * scale, 1.0)
    for part, hand in ((kp.LEFT_HAND, left_hand), (kp.RIGHT_HAND, right_hand)):
        if hand is not None:
            hand = np.asarray(hand, np.float32)
            out[part, :2], out[part, 2] = hand[:, :2] * scale, 1.0
    return out


def _as_array(landmarks, with_visibility: bool = False) -> np.ndarray | None:
    """A mediapipe ``NormalizedLandmarkList`` -> ``(N, 3|4)`` float32 (None stays None)."""
    if landmarks is None:
        return None
    rows = [
        (lm.x, lm.y, lm.z, lm.visibility) if with_visibility else (lm.x, lm.y, lm.z)
        for lm in landmarks.landmark
    ]
    return np.asarray(rows, np.float32)


class MediaPipeBackend(Backend):
    """Single-person whole-body keypoints + person mask with mediapipe Holistic (``model_complexity=1``,
    the model shipped in the wheel). ``static_image_mode=True`` for unrelated images; the default video
    mode tracks between frames (call :meth:`close` or use a new backend per video). Holistic's video-mode
    graph cannot change frame size (its segmentation smoothing fails a RET_CHECK): a frame of another size
    restarts the graph."""

    name = "mediapipe"

    def __init__(
        self,
        *,
        static_image_mode: bool = False,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        segmentation: bool = True,
        refine_face_landmarks: bool = True,
        min_visibility: float = 0.5,
        small_people: bool = True,
    ) -> None:
        self._mp = require("mediapipe", "pose")
        # Holistic misses people much smaller than the frame (a street scene: 70 px walkers in 768 x 576).
        # When the whole frame gives nobody, `SmallPersonSearch` looks in zoomed crops, with a still-image
        # Holistic of the same settings.
        self._small = None
        if small_people:
            same = dict(
                min_detection_confidence=min_detection_confidence,
                min_tracking_confidence=min_tracking_confidence,
                segmentation=segmentation,
                refine_face_landmarks=refine_face_landmarks,
                min_visibility=min_visibility,
            )
            self._small = SmallPersonSearch(
                lambda: MediaPipeBackend(static_image_mode=True, small_people=False, **same),
                still=static_image_mode,
            )
        self._segmentation = segmentation
        self._min_visibility = min_visibility
        self._options = dict(
            static_image_mode=static_image_mode,
            model_complexity=1,
            smooth_landmarks=True,
            enable_segmentation=segmentation,
            refine_face_landmarks=refine_face_landmarks,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )
        self._holistic = None
        self._hw: tuple[int, int] | None = None  # frame size the graph has seen
        self._start()

    def _start(self) -> None:
        # Graph start-up notices from TFLite / absl ("INFO: Created TensorFlow Lite XNNPACK delegate") are
        # printed by the graph's own threads after the constructor returns: stderr stays quiet until the
        # first frame is done (by then the graph is up).
        self._quiet = contextlib.ExitStack()
        self._quiet.enter_context(_quiet_native_stderr())
        try:
            self._holistic = self._mp.solutions.holistic.Holistic(**self._options)
        except BaseException:
            self._quiet.close()
            raise

    def detect(self, image: np.ndarray) -> list[Detection]:
        """``image`` uint8 RGB ``(H, W, 3)`` -> zero or one :class:`Detection` (the whole frame first, then,
        with ``small_people``, zoomed crops: see `SmallPersonSearch`)."""
        img = check_image(image)
        if self._small is not None and self._small.tracking:  # a small person: look where they were
            found = self._small.follow(img)
            if found:
                return found
        found = self._detect_whole(img)
        if self._small is None:
            return found
        return self._small.found_whole(found) if found else self._small.search(img)

    def detect_near(self, image: np.ndarray, box: np.ndarray) -> list[Detection]:
        """The person in a zoomed square around ``box`` (see `Backend.detect_near`), followed from then on
        (`SmallPersonSearch.look_near`); [] without ``small_people``. Holistic keeps to the person it
        found: in a street it slid to a walker passing the one followed and stayed on them."""
        if self._small is None:
            return []
        return self._small.look_near(check_image(image), np.asarray(box, np.float32))

    def _detect_whole(self, img: np.ndarray) -> list[Detection]:
        if self._holistic is None:
            raise RuntimeError("this MediaPipeBackend was closed")
        hw = img.shape[:2]
        if self._hw is not None and hw != self._hw and not self._options["static_image_mode"]:
            self.close()  # tracking cannot carry over a size change anyway
            self._start()
        self._hw = hw
        try:
            res = self._holistic.process(img)
        finally:
            self._quiet.close()  # after the first frame (a no-op later)
        pose = _as_array(res.pose_landmarks, with_visibility=True)
        face = _as_array(res.face_landmarks)
        lh, rh = _as_array(res.left_hand_landmarks), _as_array(res.right_hand_landmarks)
        if pose is None and face is None and lh is None and rh is None:
            return []
        kps = holistic_to_canonical(pose, face, lh, rh, img.shape[:2], min_visibility=self._min_visibility)
        mask = None
        if self._segmentation and getattr(res, "segmentation_mask", None) is not None:
            mask = np.clip(np.asarray(res.segmentation_mask, np.float32), 0.0, 1.0)
        score = float(pose[:, 3].clip(0, 1).mean()) if pose is not None else 0.5
        return [Detection(kps, mask=mask, score=score)]

    def close(self) -> None:
        if getattr(self, "_small", None) is not None:
            self._small.close()
        if self._holistic is not None:
            holistic, self._holistic = self._holistic, None
            with contextlib.suppress(RuntimeError):  # a graph that already failed raises its error again
                holistic.close()
        self._quiet.close()

    def __del__(self) -> None:  # never leave stderr silenced (a backend dropped before its first frame)
        quiet = getattr(self, "_quiet", None)
        if quiet is not None:
            quiet.close()


class SmallPersonSearch:
    """Zoomed detection of a person too small for Holistic in the whole frame.

    While it follows one, each frame first looks in a square around the last detection (twice its size,
    `ROI_GROW`), resized to `CROP` pixels, before the whole frame (so the backend keeps to one person, as
    `PersonTracker` expects, and a frame costs one detection). When that fails and the whole frame finds
    nobody either, overlapping tiles are searched (side half the frame's shorter side, half-overlapping):
    at once, then every `SEARCH_EVERY`-th frame while nobody is found. Of the people in the tiles it keeps
    the one nearest to where the followed one was lost, else the tallest (people stand; a flat object
    mistaken for one is wide). The crops run on a second, still-image Holistic (crops of varying boxes
    are unrelated images to it); keypoints and mask come back in frame pixels. A person the whole frame
    finds (when no small one is followed) ends the search. With `static_image_mode` (unrelated photos)
    nobody is followed from one image into the next and every image that needs it is searched.
    """

    CROP = 384  # side of the square the crops are resized to
    ROI_GROW = 2.0  # the tracked square: this many times the detection's longer side
    MIN_ROI = 96  # frame pixels
    SEARCH_EVERY = 10  # frames between tile searches while nobody is found

    def __init__(self, make_detector: Callable[[], Backend], *, still: bool = False):
        """`make_detector`: the still-image detector the crops run on (made on first use); `still`: the
        images are unrelated photos (nobody followed, every image searched)."""
        self._make_detector, self._still = make_detector, still
        self._crops: Backend | None = None
        self._roi: np.ndarray | None = None  # (4,) square box in frame pixels
        self._lost: np.ndarray | None = None  # the square of a person just lost
        self._since_search: int | None = None  # frames since the last tile search (None: never)

    def found_whole(self, found: list[Detection]) -> list[Detection]:
        self._roi = self._lost = self._since_search = None
        return found

    @property
    def tracking(self) -> bool:
        return self._roi is not None

    def follow(self, img: np.ndarray) -> list[Detection]:
        """The followed person in the square around their last place, or [] (and no longer followed)."""
        det = self._detect_in(img, self._roi)
        if det is None:  # lost (hidden, or moved fast): search the tiles at once, not in SEARCH_EVERY frames
            self._lost, self._roi, self._since_search = self._roi, None, None
            return []
        return [self._track(det)]

    def look_near(self, img: np.ndarray, box: np.ndarray) -> list[Detection]:
        """The person in the square that following `box` would look in, or []; found, they are followed."""
        det = self._detect_in(img, self._square(box))
        return [] if det is None else [self._track(det)]

    def search(self, img: np.ndarray) -> list[Detection]:
        """A person in the tiles (see `_pick`; every `SEARCH_EVERY`-th call while nobody is found), or []."""
        if not self._still and self._since_search is not None and self._since_search < self.SEARCH_EVERY - 1:
            self._since_search += 1
            return []
        self._since_search = 0
        found = [d for d in (self._detect_in(img, box) for box in tiles(img.shape[:2])) if d is not None]
        if not found:
            return []
        return [self._track(self._pick(found))]

    def _pick(self, found: list[Detection]) -> Detection:
        """The person nearest to where the followed one was lost (within the square it was followed in),
        else the tallest."""
        lost, self._lost = self._lost, None
        if lost is not None:
            centre, side = (lost[:2] + lost[2:]) / 2, float(lost[2] - lost[0])
            near = [(float(np.abs((d.bbox[:2] + d.bbox[2:]) / 2 - centre).max()), d) for d in found]
            near = [(dist, d) for dist, d in near if dist <= side]
            if near:
                return min(near, key=lambda pair: pair[0])[1]
        return max(found, key=lambda d: float(d.bbox[3] - d.bbox[1]))

    def _track(self, det: Detection) -> Detection:
        if self._still:  # unrelated images: nobody to follow into the next
            return det
        self._roi = self._square(det.bbox)
        return det

    def _square(self, box) -> np.ndarray:
        """The square (4,) looked in to follow a person seen in `box`: `ROI_GROW` times its longer side."""
        x0, y0, x1, y1 = (float(v) for v in box)
        side = max(self.MIN_ROI, self.ROI_GROW * max(x1 - x0, y1 - y0))
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], np.float32)

    def _detect_in(self, img: np.ndarray, box: np.ndarray) -> Detection | None:
        """Holistic on `box` of `img` resized to CROP x CROP; the detection in frame pixels, or None."""
        from fewshotv2v.semantics.crops import crop_image, untransform_keypoints

        if self._crops is None:
            self._crops = self._make_detector()
        size = (self.CROP, self.CROP)
        found = self._crops.detect(crop_image(img, box, size))
        if not found:
            return None
        det = found[0]
        kps = untransform_keypoints(det.keypoints, box, size)
        kps[det.keypoints[:, 2] <= 0] = 0  # missing points stay missing (at 0, 0)
        mask = None
        if det.mask is not None:  # the crop's mask laid back on the frame (zero outside the crop)
            x0, y0, x1, y1 = (float(v) for v in box)
            s = self.CROP / (x1 - x0)
            h, w = img.shape[:2]
            frame_in_crop = np.array([-x0 * s, -y0 * s, (w - x0) * s, (h - y0) * s], np.float32)
            mask = crop_image(det.mask, frame_in_crop, (h, w))
        return Detection(kps, mask=mask, score=det.score)

    def close(self) -> None:
        if self._crops is not None:
            crops, self._crops = self._crops, None
            crops.close()


def tiles(hw: tuple[int, int]) -> list[np.ndarray]:
    """Square, half-overlapping boxes `(4,)` covering a frame of size `hw`, side half its shorter side."""
    h, w = hw
    side = max(1, min(h, w) // 2)
    step = max(1, side // 2)

    def starts(n: int) -> list[int]:
        last = max(0, n - side)
        return sorted({*range(0, last + 1, step), last})

    return [np.array([x, y, x + side, y + side], np.float32) for y in starts(h) for x in starts(w)]
