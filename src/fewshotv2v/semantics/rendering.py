"""Semantic-map renderers (SPEC §1): the OpenPose-style whole-body skeleton (pose mode), the landmark edge
map (face mode) and one-hot street labels.

Skeleton: black canvas, the 24 BODY_25 limbs in OpenPose's colours (a limb takes the colour of its second
point, as OpenPose renders it), joint discs, the 5 finger chains of each hand in 5 colours, face contours in
white. Stroke half-width ``max(1, person_height / 150)`` for the body and ``max(1, person_height / 450)``
for hands and face, where the person height (head top to ankles) is measured in the pixels of the image
being drawn. Points below 0.01 (body, hands) or 0.1 (face) confidence are not drawn, as in FSV.
"""

from __future__ import annotations

import numpy as np

from fewshotv2v.semantics import keypoints as kp
from fewshotv2v.semantics.draw import Stroke, curve_stroke, draw_strokes, polyline_stroke

# OpenPose BODY_25 colours per keypoint (RGB).
BODY_POINT_COLOURS = np.array(
    [
        (255, 0, 85), (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
        (0, 255, 0), (255, 0, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
        (0, 0, 255), (255, 0, 170), (170, 0, 255), (255, 0, 255), (85, 0, 255), (0, 0, 255), (0, 0, 255),
        (0, 0, 255), (0, 255, 255), (0, 255, 255), (0, 255, 255),
    ],
    np.float32,
)  # fmt: skip
# One colour per limb: the colour of the limb's second point (OpenPose's renderer does the same).
LIMB_COLOURS = np.stack([BODY_POINT_COLOURS[b] for _, b in kp.BODY_LIMBS])  # (24, 3)
# Thumb, index, middle, ring, pinky (the brightest shade of each finger in OpenPose's hand palette).
FINGER_COLOURS = np.array(
    [(255, 0, 0), (255, 255, 0), (0, 255, 125), (0, 125, 255), (255, 0, 255)], np.float32
)
FACE_COLOUR = (255.0, 255.0, 255.0)

BODY_THRESHOLD = 0.01
HAND_THRESHOLD = 0.01
FACE_THRESHOLD = 0.1


def stroke_widths(person_h: float) -> tuple[float, float]:
    """Half-widths (body, hands/face) in pixels for a person ``person_h`` pixels tall (SPEC §1)."""
    return max(1.0, person_h / 150.0), max(1.0, person_h / 450.0)


def render_skeleton(
    kps: np.ndarray,
    hw: tuple[int, int],
    *,
    person_height: float | None = None,
    draw_hands: bool = True,
    draw_face: bool = True,
    limb_drop: float = 0.0,
    rng: np.random.Generator | None = None,
    body_threshold: float = BODY_THRESHOLD,
    hand_threshold: float = HAND_THRESHOLD,
    face_threshold: float = FACE_THRESHOLD,
) -> np.ndarray:
    """Render canonical keypoints ``(137, 3)`` (pixel coords of the target image) -> uint8 ``(H, W, 3)``.

    ``person_height`` sets the stroke widths; by default it is measured from the keypoints
    (:func:`keypoints.person_height`). ``limb_drop`` is the probability of leaving out each limb / finger
    segment (training augmentation, SPEC §4); it needs ``rng``.
    """
    kps = kp.check_shape(kps)
    h, w = int(hw[0]), int(hw[1])
    canvas = np.zeros((h, w, 3), np.float32)
    if person_height is None:
        person_height = kp.person_height(kps, body_threshold)
    body_hw, fine_hw = stroke_widths(person_height)
    if limb_drop > 0 and rng is None:
        rng = np.random.default_rng()

    def keep() -> bool:
        return limb_drop <= 0 or rng.random() >= limb_drop

    strokes: list[Stroke] = []  # drawn in this order, each over the ones before (one batch)
    body = kps[kp.BODY]
    ok = kp.valid_mask(body, body_threshold)
    for (a, b), colour in zip(kp.BODY_LIMBS, LIMB_COLOURS, strict=True):
        if ok[a] and ok[b] and keep():
            strokes.append(Stroke(body[[a, b], :2], body_hw, colour))
    # Joints on top of the limbs, slightly larger (OpenPose draws circles of the point colour).
    for i in np.flatnonzero(ok):
        strokes.append(Stroke(body[i : i + 1, :2], body_hw * 1.2, BODY_POINT_COLOURS[i]))

    if draw_hands:
        for part in (kp.LEFT_HAND, kp.RIGHT_HAND):
            hand = kps[part]
            hok = kp.valid_mask(hand, hand_threshold)
            for finger, colour in zip(kp.HAND_FINGERS, FINGER_COLOURS, strict=True):
                for a, b in zip(finger[:-1], finger[1:], strict=True):
                    if hok[a] and hok[b] and keep():
                        strokes.append(Stroke(hand[[a, b], :2], fine_hw, colour))
            for i in np.flatnonzero(hok):
                strokes.append(Stroke(hand[i : i + 1, :2], fine_hw, FINGER_COLOURS[max(0, i - 1) // 4]))

    if draw_face:
        strokes += _face_contour_strokes(kp.face_points(kps), fine_hw, face_threshold)
    draw_strokes(canvas, strokes)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def _face_contour_strokes(face: np.ndarray, half_width: float, threshold: float) -> list[Stroke]:
    """White jaw, brows, nose, eyes and lips as polylines; a chain is split where a point is missing.
    Pupils as discs."""
    ok = kp.valid_mask(face, threshold)
    strokes = []
    for chain, closed in kp.FACE_CONTOURS:
        idx = np.asarray(chain)
        if ok[idx].all():
            strokes.append(polyline_stroke(face[idx, :2], half_width, FACE_COLOUR, closed=closed))
            continue
        run: list[int] = []  # draw the valid runs of a partly missing chain
        for i in [*chain, -1]:
            if i >= 0 and ok[i]:
                run.append(i)
                continue
            if len(run) >= 2:
                strokes.append(polyline_stroke(face[run, :2], half_width, FACE_COLOUR))
            run = []
    for p in (kp.R_PUPIL, kp.L_PUPIL):
        if ok[p]:
            strokes.append(Stroke(face[p : p + 1, :2], half_width, FACE_COLOUR))
    return strokes


def upper_face_arc(face: np.ndarray, *, scale: float = 2.0 / 3.0) -> np.ndarray:
    """The synthetic forehead contour of face edge maps ``(17, 2)``, from jaw point 0 to jaw point 16.

    Jaw points 1..15 are mirrored about the line through points 0 and 16 (the face's horizontal axis, so
    head roll is followed); the mirrored distance is shrunk to ``scale`` (2/3, as FSV shrinks it) because
    the forehead is lower than the chin is deep.
    """
    jaw = np.asarray(face, np.float32)[:17, :2]
    a, b = jaw[0], jaw[16]
    axis = b - a
    norm = float(np.hypot(*axis))
    if norm < 1e-6:
        return jaw.copy()
    u = axis / norm
    rel = jaw - a
    along = rel @ u  # (17,)
    perp = rel - along[:, None] * u  # (17, 2) component orthogonal to the 0-16 line
    arc = a + along[:, None] * u - scale * perp
    arc[0], arc[16] = a, b
    return arc


def render_face_edges(
    kps: np.ndarray,
    hw: tuple[int, int],
    *,
    half_width: float | None = None,
    threshold: float = FACE_THRESHOLD,
    upper_arc: bool = True,
) -> np.ndarray:
    """Face edge map for face mode: uint8 ``(H, W)``, contours in 255 on 0 (SPEC §1).

    Input: canonical ``(137, 3)`` or face-only ``(68|70, 2|3)`` points in the pixels of the output image.
    Brows, jaw and lips are drawn as quadratic curves, the rest as polylines, plus the upper-face arc when
    the whole jaw is valid. Default half-width ``max(1, min(H, W) / 256)``.
    """
    face = kp.face_points(kps)
    h, w = int(hw[0]), int(hw[1])
    if half_width is None:
        half_width = max(1.0, min(h, w) / 256.0)
    canvas = np.zeros((h, w, 1), np.float32)
    ok = kp.valid_mask(face, threshold)
    white = (255.0,)
    strokes = []
    for chain, closed in kp.FACE_CONTOURS:
        idx = np.asarray(chain)
        pts = face[idx, :2]
        if not ok[idx].all():
            continue
        stroke = curve_stroke if len(idx) >= 5 else polyline_stroke  # jaw, brows, nose, lips: smooth
        strokes.append(stroke(pts, half_width, white, closed=closed))
    if upper_arc and ok[:17].all():
        strokes.append(curve_stroke(upper_face_arc(face), half_width, white))
    draw_strokes(canvas, strokes)
    return np.clip(np.rint(canvas[..., 0]), 0, 255).astype(np.uint8)


def labels_to_onehot(label: np.ndarray, num_classes: int = 20) -> np.ndarray:
    """Street label map (train ids) ``(H, W)`` -> one-hot float32 ``(C, H, W)``.

    Ids ``0 .. num_classes - 2`` keep their class; 255 (ignore) and every other value go to the last class
    ("other"), so with 20 classes the Cityscapes train ids 0..18 map to 0..18 and everything else to 19.
    """
    label = np.asarray(label)
    if label.ndim == 3:
        label = label[..., 0]
    ids = label.astype(np.int64)
    other = num_classes - 1
    ids = np.where((ids >= 0) & (ids < other), ids, other)
    onehot = np.zeros((num_classes, *ids.shape), np.float32)
    np.put_along_axis(onehot, ids[None], 1.0, axis=0)
    return onehot
