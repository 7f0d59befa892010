"""Skeleton / face-edge renderers and drawing primitives, checked by explicit pixel assertions and against
tiny golden arrays (tests/golden/*.npy, produced once by this code; the pixel assertions below check what
the goldens must contain so they are not self-fulfilling)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fewshotv2v.semantics import keypoints as kp
from fewshotv2v.semantics import rendering as R
from fewshotv2v.semantics.draw import draw_capsule, draw_disc, draw_polyline, quadratic_curve_points

GOLDEN = Path(__file__).parent / "golden"

BODY = {
    kp.NOSE: (32, 14), kp.NECK: (32, 26), kp.R_SHOULDER: (24, 26), kp.R_ELBOW: (20, 40), kp.R_WRIST: (18, 52),
    kp.L_SHOULDER: (40, 26), kp.L_ELBOW: (44, 40), kp.L_WRIST: (46, 52), kp.MID_HIP: (32, 54),
    kp.R_HIP: (27, 54), kp.R_KNEE: (26, 70), kp.R_ANKLE: (26, 86), kp.L_HIP: (37, 54), kp.L_KNEE: (38, 70),
    kp.L_ANKLE: (38, 86), kp.R_EYE: (30, 12), kp.L_EYE: (34, 12), kp.R_EAR: (28, 13), kp.L_EAR: (36, 13),
}  # fmt: skip


def person() -> np.ndarray:
    """A 64 x 96 px stick person (body only) in canonical layout."""
    k = kp.empty()
    for i, p in BODY.items():
        k[i] = (*p, 0.9)
    return k


def face68(cx=32.0, cy=36.0, s=1.0) -> np.ndarray:
    """A plausible 68-point face (iBUG order) centred at (cx, cy), ~40 px wide for s = 1."""
    jaw_t = np.linspace(np.pi, 0, 17)
    jaw = np.stack([cx + 20 * s * np.cos(jaw_t), cy + 20 * s * np.sin(jaw_t) * 1.1], 1)
    brow_r = np.stack([np.linspace(cx - 16, cx - 4, 5), np.full(5, cy - 10.0)], 1)
    brow_l = np.stack([np.linspace(cx + 4, cx + 16, 5), np.full(5, cy - 10.0)], 1)
    bridge = np.stack([np.full(4, cx), np.linspace(cy - 6, cy + 4, 4)], 1)
    nose = np.stack([np.linspace(cx - 4, cx + 4, 5), np.full(5, cy + 6.0)], 1)

    def ring(x, y, rx, ry, n):
        t = np.linspace(np.pi, -np.pi, n, endpoint=False)
        return np.stack([x + rx * np.cos(t), y + ry * np.sin(t)], 1)

    eyes = np.concatenate([ring(cx - 9, cy - 4, 4, 2, 6), ring(cx + 9, cy - 4, 4, 2, 6)])
    lips = np.concatenate([ring(cx, cy + 13, 8, 3, 12), ring(cx, cy + 13, 5, 1.5, 8)])
    pts = np.concatenate([jaw, brow_r, brow_l, bridge, nose, eyes, lips]) * 1.0
    assert pts.shape == (68, 2)
    return np.concatenate([pts, np.ones((68, 1))], 1).astype(np.float32)


def _golden(name: str, arr: np.ndarray) -> np.ndarray:
    path = GOLDEN / name
    assert path.exists(), f"golden {path} missing (generate with tests/test_rendering.py::_write_goldens)"
    return np.load(path)


def test_draw_primitives_antialiased():
    c = np.zeros((21, 21, 1), np.float32)
    draw_disc(c, (10, 10), 5.0, (255,))
    assert c[10, 10, 0] == 255 and c[0, 0, 0] == 0
    # Area of the anti-aliased disc ~ pi r^2 (within a pixel's worth of perimeter).
    assert abs(c.sum() / 255 - np.pi * 25) < 3
    assert 0 < c[10, 15, 0] < 255 or 0 < c[10, 16, 0] < 255  # soft edge
    c = np.zeros((10, 30, 3), np.float32)
    draw_capsule(c, (3, 5), (26, 5), 1.0, (0, 255, 0))
    assert (c[5, 3:27, 1] == 255).all() and (c[5, :, 0] == 0).all()
    assert c[8, 15].sum() == 0  # 3 px away from a half-width-1 line: untouched
    # Drawing outside the canvas is a no-op, not an error.
    draw_capsule(c, (-50, -50), (-40, -40), 2.0, (255, 0, 0))
    # A polyline blends its joints once: the corner is not brighter or darker than the strokes.
    c = np.zeros((20, 20, 1), np.float32)
    draw_polyline(c, [(2, 2), (10, 10), (18, 2)], 1.5, (200,))
    assert c.max() == pytest.approx(200)
    curve = quadratic_curve_points([(0, 0), (10, 10), (20, 0)])
    np.testing.assert_allclose(curve[0], (0, 0))
    np.testing.assert_allclose(curve[-1], (20, 0))
    # Bezier from midpoint (5, 5) to (15, 5) with control (10, 10) peaks at 5/4 + 10/2 + 5/4 = 7.5.
    assert curve[:, 1].max() == pytest.approx(7.5)


def test_skeleton_colours_and_widths():
    k = person()
    img = R.render_skeleton(k, (96, 64))
    assert img.shape == (96, 64, 3) and img.dtype == np.uint8
    # Limb colour at the midpoint of the neck -> right shoulder segment: OpenPose orange (255, 85, 0).
    np.testing.assert_array_equal(img[26, 28], (255, 85, 0))
    # Neck -> left shoulder (170, 255, 0); mid-hip -> left hip (0, 170, 255); left knee -> ankle blue.
    np.testing.assert_array_equal(img[26, 36], (170, 255, 0))
    np.testing.assert_array_equal(img[54, 34], (0, 170, 255))
    np.testing.assert_array_equal(img[78, 38], (0, 0, 255))
    # Joint discs take the point colour: right wrist yellow.
    np.testing.assert_array_equal(img[52, 18], (255, 255, 0))
    # Person height 86 - (12 - 6) = 80 px -> body half-width max(1, 80/150) = 1: a thin stroke.
    assert img[40, 26].sum() == 0 and img[4, 4].sum() == 0
    assert R.stroke_widths(300.0) == (2.0, 1.0) and R.stroke_widths(900.0) == (6.0, 2.0)
    # A taller person (rendered at 3x scale) gets strokes 3x as wide (half-width 1.6 px instead of 1).
    big = k.copy()
    big[:, :2] *= 3
    wide = R.render_skeleton(big, (288, 192))
    row = wide[26 * 3 : 26 * 3 + 8, 32 * 3 - 8 : 32 * 3 + 8]  # neck joint area
    assert (row.sum(-1) > 0).sum() > 20


def test_skeleton_thresholds_hands_face_and_limb_drop():
    k = person()
    k[kp.R_KNEE, 2] = 0.005  # below the 0.01 body threshold: knee limbs disappear
    img = R.render_skeleton(k, (96, 64))
    assert img[62, 26].sum() == 0 and img[78, 26].sum() == 0
    # Hands: index finger drawn in yellow, thumb in red.
    k = person()
    hand = np.zeros((21, 3), np.float32)
    hand[:, 2] = 1
    hand[0, :2] = (46, 52)
    for f in range(5):
        for j in range(4):
            hand[1 + 4 * f + j, :2] = (46 + 3 * (j + 1), 52 + (f - 2) * 3 * (j + 1) / 4)
    k[kp.LEFT_HAND] = hand
    img = R.render_skeleton(k, (96, 64))
    np.testing.assert_array_equal(img[int(round(hand[2, 1])), int(round(hand[2, 0]))], (255, 0, 0))
    np.testing.assert_array_equal(img[int(round(hand[19, 1])), int(round(hand[19, 0]))], (255, 0, 255))
    # Face contours are white; with confidence 0.05 (< 0.1) they are not drawn.
    k = person()
    k[25:93] = face68(32, 60, 0.3)
    k[25:93, 2] = 0.5
    img = R.render_skeleton(k, (96, 64))
    chin = k[25 + 8]
    np.testing.assert_array_equal(img[int(round(chin[1])), int(round(chin[0]))], (255, 255, 255))
    k[25:93, 2] = 0.05
    assert R.render_skeleton(k, (96, 64))[int(round(chin[1])), int(round(chin[0]))].sum() == 0
    # limb_drop = 1 removes every limb but keeps the joints.
    rng = np.random.default_rng(0)
    dropped = R.render_skeleton(person(), (96, 64), limb_drop=1.0, rng=rng)
    assert dropped[26, 28].sum() == 0 and dropped[52, 18].sum() > 0


def test_skeleton_golden():
    img = R.render_skeleton(person(), (96, 64))
    np.testing.assert_array_equal(img, _golden("skeleton_96x64.npy", img))


def test_face_edges_and_upper_arc():
    f = face68()
    arc = R.upper_face_arc(f)
    # Mirrored about the line through jaw points 0 and 16 (y = 36), shrunk to 2/3: the chin (y = 58)
    # becomes the forehead top at 36 - 22 * 2/3.
    np.testing.assert_allclose(arc[8], (32, 36 - 22 * 2 / 3), atol=1e-4)
    np.testing.assert_allclose(arc[[0, 16]], f[[0, 16], :2])
    # Rolled head: the arc stays on the far side of the 0-16 line.
    theta = np.deg2rad(30)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    fr = f.copy()
    fr[:, :2] = (f[:, :2] - 32) @ rot.T + 32
    arc_r = R.upper_face_arc(fr)
    d = fr[16, :2] - fr[0, :2]
    side = lambda p: np.sign(d[0] * (p[1] - fr[0, 1]) - d[1] * (p[0] - fr[0, 0]))  # noqa: E731
    assert side(fr[8, :2]) == -side(arc_r[8])
    edges = R.render_face_edges(f, (72, 64))
    assert edges.shape == (72, 64) and edges.dtype == np.uint8
    assert edges[58, 32] == 255  # chin on the jaw curve
    assert edges[int(round(36 - 22 * 2 / 3)), 32] == 255  # forehead arc
    assert edges[26, 20] == 255  # right brow
    assert edges[0, 0] == 0 and edges[32, 29] == 0  # background, between eye and nose bridge
    no_arc = R.render_face_edges(f, (72, 64), upper_arc=False)
    assert no_arc[int(round(36 - 22 * 2 / 3)), 32] == 0
    np.testing.assert_array_equal(edges, _golden("face_edges_72x64.npy", edges))


def test_labels_to_onehot():
    lab = np.array([[0, 1, 18], [19, 255, 7]], np.uint8)
    oh = R.labels_to_onehot(lab, 20)
    assert oh.shape == (20, 2, 3) and oh.dtype == np.float32
    np.testing.assert_array_equal(oh.sum(0), 1)
    assert oh[0, 0, 0] == 1 and oh[18, 0, 2] == 1 and oh[19, 1, 0] == 1 and oh[19, 1, 1] == 1
    assert oh[7, 1, 2] == 1


def _write_goldens() -> None:  # pragma: no cover - run by hand when the renderer changes on purpose
    GOLDEN.mkdir(exist_ok=True)
    np.save(GOLDEN / "skeleton_96x64.npy", R.render_skeleton(person(), (96, 64)))
    np.save(GOLDEN / "face_edges_72x64.npy", R.render_face_edges(face68(), (72, 64)))


if __name__ == "__main__":  # pragma: no cover
    _write_goldens()


def test_a_batch_of_strokes_draws_the_same_pixels_as_one_stroke_at_a_time():
    """`draw_strokes` pads windows of different sizes into batches: the result must not depend on it."""
    from fewshotv2v.semantics.draw import Stroke, draw_strokes, polyline_stroke

    rng = np.random.default_rng(0)
    strokes = [
        Stroke(np.array([[5.2, 6.1], [50.7, 40.3]]), 2.5, (255, 0, 0)),  # long capsule
        Stroke(np.array([[20.4, 20.6]]), 3.0, (0, 255, 0)),  # disc over it
        polyline_stroke(rng.uniform(0, 60, (7, 2)), 1.0, (0, 0, 255), closed=True),
        Stroke(np.array([[-10.0, -8.0], [3.0, 2.0]]), 1.5, (255, 255, 0)),  # partly outside the canvas
        Stroke(np.array([[200.0, 200.0], [210.0, 220.0]]), 1.0, (255, 0, 255)),  # entirely outside
        Stroke(np.zeros((0, 2)), 1.0, (9, 9, 9)),  # nothing
        Stroke(np.array([[30.0, 30.0], [30.0, 30.0]]), 4.0, (10, 200, 30)),  # zero-length segment
    ]
    batch = np.zeros((48, 64, 3), np.float32)
    draw_strokes(batch, strokes)
    one_by_one = np.zeros_like(batch)
    for stroke in strokes:
        draw_strokes(one_by_one, [stroke])
    np.testing.assert_array_equal(batch, one_by_one)
    assert batch[6, 5, 0] > 200  # the capsule's start
    np.testing.assert_allclose(batch[30, 30], (10, 200, 30), atol=1e-3)  # the last stroke is on top
    assert batch[0, 0].max() > 0 and batch[47, 0].max() == 0  # partly outside: drawn where it is inside
