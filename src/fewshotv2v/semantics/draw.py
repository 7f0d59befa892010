"""Anti-aliased drawing primitives in numpy (no OpenCV): capsules (thick lines), discs, polylines and
quadratic curves, used to render the semantic maps of SPEC §1.

Every primitive works on a float32 canvas ``(H, W, C)`` in [0, 255] and touches only the pixels of its own
bounding box. Coverage is the analytic distance-to-shape ramp ``clip(r + 0.5 - d, 0, 1)`` (one pixel of
anti-aliasing), and a primitive is composited with "over": ``canvas = canvas * (1 - a) + colour * a``.
Coordinates follow the keypoint convention: pixel ``(i, j)`` has its centre at ``(x=j, y=i)``.
"""

from __future__ import annotations

import numpy as np


def _window(canvas: np.ndarray, x0: float, y0: float, x1: float, y1: float, pad: float):
    """Integer pixel window covering the box grown by ``pad``, clipped to the canvas; None when empty."""
    h, w = canvas.shape[:2]
    c0 = max(0, int(np.floor(x0 - pad)))
    c1 = min(w, int(np.ceil(x1 + pad)) + 1)
    r0 = max(0, int(np.floor(y0 - pad)))
    r1 = min(h, int(np.ceil(y1 + pad)) + 1)
    if c0 >= c1 or r0 >= r1:
        return None
    # Pixel-centre coordinates of the window: xs (1, w), ys (h, 1).
    xs = np.arange(c0, c1, dtype=np.float32)[None, :]
    ys = np.arange(r0, r1, dtype=np.float32)[:, None]
    return (r0, r1, c0, c1), xs, ys


def _composite(canvas: np.ndarray, win, alpha: np.ndarray, colour) -> None:
    """Blend ``colour`` into the window with coverage ``alpha (h, w)``."""
    r0, r1, c0, c1 = win
    colour = np.asarray(colour, np.float32).reshape(1, 1, -1)
    a = alpha[..., None]
    region = canvas[r0:r1, c0:c1]
    region *= 1.0 - a
    region += colour * a


def _segment_distance(xs, ys, ax, ay, bx, by) -> np.ndarray:
    """Distance from each pixel centre to the segment a-b (a point when a == b)."""
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    px, py = xs - ax, ys - ay
    if length2 < 1e-12:
        return np.sqrt(px * px + py * py)
    t = np.clip((px * dx + py * dy) / length2, 0.0, 1.0)
    ex, ey = px - t * dx, py - t * dy
    return np.sqrt(ex * ex + ey * ey)


def draw_capsule(canvas: np.ndarray, p0, p1, half_width: float, colour) -> None:
    """A thick anti-aliased line with round caps from ``p0`` to ``p1`` (pixel coords), half-width in px."""
    (ax, ay), (bx, by) = (float(p0[0]), float(p0[1])), (float(p1[0]), float(p1[1]))
    win = _window(canvas, min(ax, bx), min(ay, by), max(ax, bx), max(ay, by), half_width + 1)
    if win is None:
        return
    box, xs, ys = win
    d = _segment_distance(xs, ys, ax, ay, bx, by)
    _composite(canvas, box, np.clip(half_width + 0.5 - d, 0.0, 1.0), colour)


def draw_disc(canvas: np.ndarray, centre, radius: float, colour) -> None:
    """A filled anti-aliased disc."""
    draw_capsule(canvas, centre, centre, radius, colour)


def draw_polyline(canvas: np.ndarray, points, half_width: float, colour, *, closed: bool = False) -> None:
    """Connected segments through ``points (N, 2)`` in one colour.

    The distance to the whole chain (minimum over segments) is computed first and composited once, so the
    joints between segments are not blended twice (no dark or bright knots).
    """
    pts = np.asarray(points, np.float32).reshape(-1, 2)
    if len(pts) == 0:
        return
    if closed and len(pts) > 2:
        pts = np.concatenate([pts, pts[:1]])
    win = _window(canvas, pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max(), half_width + 1)
    if win is None:
        return
    box, xs, ys = win
    d = np.full((ys.shape[0], xs.shape[1]), np.inf, np.float32)
    if len(pts) == 1:
        d = _segment_distance(xs, ys, pts[0, 0], pts[0, 1], pts[0, 0], pts[0, 1])
    for a, b in zip(pts[:-1], pts[1:], strict=True):
        np.minimum(d, _segment_distance(xs, ys, a[0], a[1], b[0], b[1]), out=d)
    _composite(canvas, box, np.clip(half_width + 0.5 - d, 0.0, 1.0), colour)


def quadratic_curve_points(points, samples_per_segment: int = 8) -> np.ndarray:
    """A smooth curve through a chain of points, sampled as a polyline ``(M, 2)``.

    Piecewise quadratic Bezier: each inner point is the control point of a curve between the midpoints of
    its two neighbouring segments; the first and last half-segments stay straight, so the curve starts and
    ends on the first and last point (the way face edge maps smooth brows, jaw and lips).
    """
    pts = np.asarray(points, np.float32).reshape(-1, 2)
    if len(pts) < 3:
        return pts
    mids = (pts[:-1] + pts[1:]) / 2  # (N-1, 2)
    t = np.linspace(0.0, 1.0, samples_per_segment + 1, dtype=np.float32)[:, None]  # (S, 1)
    out = [pts[:1]]
    for i in range(1, len(pts) - 1):
        a, c, b = mids[i - 1], pts[i], mids[i]
        out.append((1 - t) ** 2 * a + 2 * (1 - t) * t * c + t**2 * b)
    out.append(pts[-1:])
    return np.concatenate(out)


def draw_curve(canvas: np.ndarray, points, half_width: float, colour, *, closed: bool = False) -> None:
    """A smooth curve (see :func:`quadratic_curve_points`) through ``points``; closed curves wrap around."""
    pts = np.asarray(points, np.float32).reshape(-1, 2)
    if closed and len(pts) > 2:
        # Wrap: run the chain once around with one extra point each side so the seam is smooth too.
        ext = np.concatenate([pts[-1:], pts, pts[:2]])
        curve = quadratic_curve_points(ext)
        m = len(curve)
        # Drop the straight half-segments at both ends (they belong to the wrap padding).
        curve = curve[1 : m - 1]
        draw_polyline(canvas, curve, half_width, colour, closed=False)
    else:
        draw_polyline(canvas, quadratic_curve_points(pts), half_width, colour)
