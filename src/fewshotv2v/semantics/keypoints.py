"""Canonical whole-body keypoints (the semantic input of the pose mode, SPEC §1).

One person in one frame is a float32 array ``(137, 3)`` of ``(x, y, confidence)`` in pixel coordinates of
the source frame (OpenCV / OpenPose convention: the centre of pixel ``(row i, column j)`` is ``(x=j, y=i)``);
confidence 0 means "missing". The layout is OpenPose's, so existing OpenPose datasets stay usable:

=========  =====================================
0..24      BODY_25
25..94     face, 70 points (68 iBUG + 2 pupils)
95..115    left hand, 21 points
116..136   right hand, 21 points
=========  =====================================

"Left"/"right" are the person's own sides (OpenPose convention).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from fewshotv2v.errors import InputError

NUM_BODY = 25
NUM_FACE = 70
NUM_HAND = 21
NUM_KEYPOINTS = NUM_BODY + NUM_FACE + 2 * NUM_HAND  # 137

BODY = slice(0, 25)
FACE = slice(25, 95)
LEFT_HAND = slice(95, 116)
RIGHT_HAND = slice(116, 137)

# BODY_25 point names, in index order.
BODY_NAMES = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist", "mid_hip",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
    "l_big_toe", "l_small_toe", "l_heel", "r_big_toe", "r_small_toe", "r_heel",
)  # fmt: skip
NOSE, NECK, R_SHOULDER, R_ELBOW, R_WRIST, L_SHOULDER, L_ELBOW, L_WRIST, MID_HIP = range(9)
R_HIP, R_KNEE, R_ANKLE, L_HIP, L_KNEE, L_ANKLE, R_EYE, L_EYE, R_EAR, L_EAR = range(9, 19)
L_BIG_TOE, L_SMALL_TOE, L_HEEL, R_BIG_TOE, R_SMALL_TOE, R_HEEL = range(19, 25)

# The 24 BODY_25 limbs in OpenPose's render order (pairs of body indices).
BODY_LIMBS = (
    (1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11), (8, 12), (12, 13),
    (13, 14), (1, 0), (0, 15), (15, 17), (0, 16), (16, 18), (14, 19), (19, 20), (14, 21), (11, 22),
    (22, 23), (11, 24),
)  # fmt: skip

# Hand: 0 = wrist, then 4 points per finger from the palm outwards.
HAND_FINGERS = tuple((0, 1 + 4 * f, 2 + 4 * f, 3 + 4 * f, 4 + 4 * f) for f in range(5))  # thumb..pinky
HAND_LIMBS = tuple((c[i], c[i + 1]) for c in HAND_FINGERS for i in range(4))

# Face (iBUG 68 indices, relative to the FACE slice): (chain, closed?) per contour.
FACE_CONTOURS = (
    (tuple(range(0, 17)), False),  # jaw, from the person's right ear to the left one
    (tuple(range(17, 22)), False),  # right brow
    (tuple(range(22, 27)), False),  # left brow
    (tuple(range(27, 31)), False),  # nose bridge
    (tuple(range(31, 36)), False),  # nose bottom
    (tuple(range(36, 42)), True),  # right eye
    (tuple(range(42, 48)), True),  # left eye
    (tuple(range(48, 60)), True),  # outer lips
    (tuple(range(60, 68)), True),  # inner lips
)
R_PUPIL, L_PUPIL = 68, 69  # relative to the FACE slice
# The mouth's moving points (iBUG 68, relative to the FACE slice; lists, for numpy indexing): the lower
# lip (outer 55-59, inner 65-67), which drops with the jaw; the corners (outer 48, 54, inner 60, 64); the
# inner lips facing each other, upper over lower (61-67, 62-66, 63-65).
LOWER_LIP = [55, 56, 57, 58, 59, 65, 66, 67]
MOUTH_CORNERS = [48, 54, 60, 64]
INNER_UPPER_LIP, INNER_LOWER_LIP = [61, 62, 63], [67, 66, 65]

HEAD_POINTS = (NOSE, R_EYE, L_EYE, R_EAR, L_EAR)
FEET_POINTS = (R_ANKLE, L_ANKLE, L_BIG_TOE, L_SMALL_TOE, L_HEEL, R_BIG_TOE, R_SMALL_TOE, R_HEEL)


# The person's left <-> right: BODY_25 pairs (shoulders, elbows, wrists, hips, knees, ankles, eyes, ears,
# toes, heels) and the face's mirror pairs (iBUG 68 + pupils, face-local indices).
BODY_SIDE_PAIRS = ((2, 5), (3, 6), (4, 7), (9, 12), (10, 13), (11, 14), (15, 16), (17, 18), (19, 22),
                   (20, 23), (21, 24))  # fmt: skip
FACE_SIDE_PAIRS = (
    [(i, 16 - i) for i in range(8)]  # jaw
    + [(17 + i, 26 - i) for i in range(5)]  # brows
    + [(31, 35), (32, 34)]  # nose bottom
    + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lips
    + [(60, 64), (61, 63), (65, 67), (68, 69)]  # inner lips, pupils
)


def side_swap(*, face: bool = True) -> np.ndarray:
    """(137,) index map that exchanges the person's left and right points: body pairs and the two hands,
    and with `face` the face's mirror pairs (a horizontal flip of the image needs them; a person who
    turned their back does not: the face points, if any, stay in image order)."""
    perm = np.arange(NUM_KEYPOINTS)
    pairs = list(BODY_SIDE_PAIRS) + ([(25 + a, 25 + b) for a, b in FACE_SIDE_PAIRS] if face else [])
    for a, b in pairs:
        perm[a], perm[b] = b, a
    perm[LEFT_HAND], perm[RIGHT_HAND] = np.arange(116, 137), np.arange(95, 116)
    return perm


def empty(num_people: int | None = None) -> np.ndarray:
    """All-missing keypoints: ``(137, 3)`` or ``(P, 137, 3)`` zeros."""
    shape = (NUM_KEYPOINTS, 3) if num_people is None else (num_people, NUM_KEYPOINTS, 3)
    return np.zeros(shape, np.float32)


def valid_mask(kps: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Boolean mask of points whose confidence is above ``threshold`` (and whose coordinates are finite)."""
    kps = np.asarray(kps)
    return (kps[..., 2] > threshold) & np.isfinite(kps[..., 0]) & np.isfinite(kps[..., 1])


def person_extent(kps: np.ndarray, threshold: float = 0.01) -> tuple[float, float, float, float] | None:
    """Vertical extent and horizontal span of one person ``(top, bottom, x_min, x_max)``, or None.

    ``top`` estimates the top of the head: the highest head point (nose, eyes, ears, face) raised by half
    the nose-neck distance (the skull above the eyes); ``bottom`` is the lowest foot / ankle point, or the
    lowest valid point when the feet are not visible. The horizontal span covers the valid body, hand and
    face points (SPEC §1 person crop).
    """
    kps = np.asarray(kps, np.float32)
    ok = valid_mask(kps, threshold)
    if not ok.any():
        return None
    xs, ys = kps[ok, 0], kps[ok, 1]
    head = [i for i in HEAD_POINTS if ok[i]] + [25 + i for i in range(68) if ok[25 + i]]
    top = float(kps[head, 1].min()) if head else float(ys.min())
    if head and ok[NOSE] and ok[NECK]:
        top -= 0.5 * abs(float(kps[NECK, 1] - kps[NOSE, 1]))
    top = min(top, float(ys.min()))
    feet = [i for i in FEET_POINTS if ok[i]]
    bottom = float(kps[feet, 1].max()) if feet else float(ys.max())
    bottom = max(bottom, float(ys.max()))
    return top, bottom, float(xs.min()), float(xs.max())


def person_height(kps: np.ndarray, threshold: float = 0.01) -> float:
    """Height in pixels from the head top to the ankles (0 when no point is valid)."""
    ext = person_extent(kps, threshold)
    return 0.0 if ext is None else max(0.0, ext[1] - ext[0])


def spread(points: np.ndarray) -> float:
    """Size of a point set `(N, 2)`: RMS distance to its centroid (a face's size from its landmarks)."""
    return float(np.sqrt(((points - points.mean(axis=0)) ** 2).sum(axis=1).mean()))


def bbox(kps: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    """Tight box ``(x0, y0, x1, y1)`` of the valid points (zeros when none)."""
    kps = np.asarray(kps, np.float32)
    ok = valid_mask(kps, threshold)
    if not ok.any():
        return np.zeros(4, np.float32)
    p = kps[ok, :2]
    return np.array([p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()], np.float32)


# ----------------------------------------------------------------------------------------- OpenPose JSON
def _flat(values, count: int, where: str) -> np.ndarray:
    """OpenPose stores each part as a flat [x0, y0, c0, x1, ...] list; missing part -> zeros."""
    if values is None or len(values) == 0:
        return np.zeros((count, 3), np.float32)
    arr = np.asarray(values, np.float32)
    if arr.size != count * 3:
        raise InputError(f"{where}: expected {count * 3} numbers, found {arr.size}")
    return arr.reshape(count, 3)


def from_openpose_person(person: dict, where: str = "OpenPose JSON") -> np.ndarray:
    """One entry of an OpenPose ``people`` list -> canonical ``(137, 3)``.

    BODY_25 is expected; a COCO-18 body (54 numbers) is converted (mid-hip = mean of the hips, no feet).
    """
    body = person.get("pose_keypoints_2d") or []
    out = empty()
    if len(body) == 18 * 3:  # COCO-18 layout: same order as BODY_25 without mid-hip and feet
        coco = _flat(body, 18, where)
        order = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]  # coco i -> body_25
        out[order] = coco
        if coco[8, 2] > 0 and coco[11, 2] > 0:
            out[MID_HIP] = [*(coco[8, :2] + coco[11, :2]) / 2, min(coco[8, 2], coco[11, 2])]
    else:
        out[BODY] = _flat(body, NUM_BODY, where)
    face = person.get("face_keypoints_2d") or []
    if len(face) == 68 * 3:  # face without pupils
        out[25:93] = _flat(face, 68, where)
    else:
        out[FACE] = _flat(face, NUM_FACE, where)
    out[LEFT_HAND] = _flat(person.get("hand_left_keypoints_2d"), NUM_HAND, where)
    out[RIGHT_HAND] = _flat(person.get("hand_right_keypoints_2d"), NUM_HAND, where)
    return out


def read_openpose_json(path: str | os.PathLike) -> np.ndarray:
    """Read an OpenPose ``*_keypoints.json`` file -> ``(P, 137, 3)`` float32 (P may be 0)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InputError(f"keypoint file not found: {path}") from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read OpenPose JSON {path}: {exc}") from exc
    people = data.get("people") if isinstance(data, dict) else None
    if people is None:
        raise InputError(f"{path} is not an OpenPose keypoint file (no 'people' list)")
    if not people:
        return empty(0)
    return np.stack([from_openpose_person(p, str(path)) for p in people])


def to_openpose_person(kps: np.ndarray) -> dict:
    """Canonical ``(137, 3)`` -> one OpenPose ``people`` entry (BODY_25, face 70, hands)."""
    kps = np.asarray(kps, np.float32)
    return {
        "person_id": [-1],
        "pose_keypoints_2d": kps[BODY].ravel().tolist(),
        "face_keypoints_2d": kps[FACE].ravel().tolist(),
        "hand_left_keypoints_2d": kps[LEFT_HAND].ravel().tolist(),
        "hand_right_keypoints_2d": kps[RIGHT_HAND].ravel().tolist(),
    }


# ------------------------------------------------------------------------------------------ our JSON
def write_keypoints_json(path: str | os.PathLike, people: np.ndarray, *, version: float = 1.3) -> None:
    """Write ``(P, 137, 3)`` (or one ``(137, 3)``) in OpenPose's JSON format (readable by OpenPose tools)."""
    people = np.asarray(people, np.float32)
    if people.ndim == 2:
        people = people[None]
    check_shape(people[0] if len(people) else empty(), "keypoints to write")
    doc = {"version": version, "people": [to_openpose_person(p) for p in people]}
    Path(path).write_text(json.dumps(doc))


def read_keypoints_json(path: str | os.PathLike) -> np.ndarray:
    """Read a file written by :func:`write_keypoints_json` (any OpenPose JSON) -> ``(P, 137, 3)``."""
    return read_openpose_json(path)


def check_shape(kps: np.ndarray, what: str = "keypoints") -> np.ndarray:
    """Return ``kps`` as float32 after checking the canonical ``(..., 137, 3)`` shape."""
    kps = np.asarray(kps, np.float32)
    if kps.ndim < 2 or kps.shape[-2:] != (NUM_KEYPOINTS, 3):
        raise InputError(f"{what}: expected shape (..., {NUM_KEYPOINTS}, 3), got {tuple(kps.shape)}")
    return kps


def face_points(kps: np.ndarray) -> np.ndarray:
    """The 70 face rows of canonical keypoints; ``(68|70, 3)`` input is returned padded to 70 rows."""
    kps = np.asarray(kps, np.float32)
    if kps.shape[0] == NUM_KEYPOINTS:
        return kps[FACE]
    if kps.shape[0] in (68, 70) and kps.shape[1] in (2, 3):
        out = np.zeros((NUM_FACE, 3), np.float32)
        out[: kps.shape[0], : kps.shape[1]] = kps
        if kps.shape[1] == 2:
            out[: kps.shape[0], 2] = 1.0
        return out
    raise InputError(f"face keypoints: expected (137, 3), (68, 2|3) or (70, 2|3), got {tuple(kps.shape)}")
