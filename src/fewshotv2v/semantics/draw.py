"""Anti-aliased drawing primitives in numpy (no OpenCV): capsules (thick lines), discs, polylines and
quadratic curves, used to render the semantic maps of SPEC §1.

Every primitive works on a float32 canvas ``(H, W, C)`` in [0, 255] and touches only the pixels of its own
bounding box; `draw_strokes` draws many at once (a whole skeleton: batched distances, the same pixels).
Coverage is the analytic distance-to-shape ramp ``clip(r + 0.5 - d, 0, 1)`` (one pixel of
anti-aliasing), and a primitive is composited with "over": ``canvas = canvas * (1 - a) + colour * a``.
Coordinates follow the keypoint convention: pixel ``(i, j)`` has its centre at ``(x=j, y=i)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


class Stroke(NamedTuple):
    """One primitive of a batch: a chain of `points (N, 2)` (pixel coords; N = 1: a disc, 2: a capsule,
    more: a polyline), its half-width in pixels and its colour (C,)."""

    points: np.ndarray
    half_width: float
    colour: tuple | np.ndarray


def draw_strokes(canvas: np.ndarray, strokes: Sequence[Stroke]) -> None:
    """Draw `strokes` in order (each composited "over" the ones before it) on `canvas (H, W, C)`.

    A stroke's coverage comes from its distance to the whole chain (minimum over its segments), so a
    polyline's joints are not blended twice, and only the pixels of its window (its points' box grown by
    half-width + 1, clipped to the canvas) are touched. The distances are computed in a few batches
    (strokes grouped by window size, each group padded to its largest window); only the compositing runs
    stroke by stroke. Pixel for pixel the same float32 arithmetic as drawing the strokes one by one.
    """
    h, w = canvas.shape[:2]
    chains = [np.asarray(st.points, np.float64).reshape(-1, 2) for st in strokes]
    keep = [i for i, c in enumerate(chains) if len(c)]
    if not keep:
        return
    counts = np.array([len(chains[i]) for i in keep])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pts = np.concatenate([chains[i] for i in keep])  # (P, 2) every stroke's points, stroke by stroke
    radius = np.array([float(strokes[i].half_width) for i in keep])
    pad = (radius + 1)[:, None]
    lo = np.minimum.reduceat(pts, starts, axis=0) - pad  # (S, 2) x, y
    hi = np.maximum.reduceat(pts, starts, axis=0) + pad
    c0, r0 = np.maximum(0, np.floor(lo).astype(np.int64)).T
    c1 = np.minimum(w, np.ceil(hi[:, 0]).astype(np.int64) + 1)
    r1 = np.minimum(h, np.ceil(hi[:, 1]).astype(np.int64) + 1)
    # Segments (first, second point index), stroke by stroke; a single point is a zero-length segment.
    owner = np.repeat(np.arange(len(keep)), counts)  # (P,)
    inner = np.ones(len(pts), bool)
    inner[starts + counts - 1] = False  # a stroke's last point starts no segment ...
    inner[starts[counts == 1]] = True  # ... unless it is its only point
    seg_a = np.flatnonzero(inner)
    seg_b = np.where(counts[owner[seg_a]] == 1, seg_a, seg_a + 1)
    seg_owner = owner[seg_a]
    alphas: dict[int, np.ndarray] = {}
    visible = (c0 < c1) & (r0 < r1)
    sizes = np.stack([r1 - r0, c1 - c0], 1).clip(1)
    group = np.ceil(np.log2(sizes)).astype(np.int64) @ np.array([64, 1])  # windows of similar size
    for g in np.unique(group[visible]):
        members = np.flatnonzero(visible & (group == g))
        take = np.isin(seg_owner, members)
        a, b, who = pts[seg_a[take]], pts[seg_b[take]], seg_owner[take]
        dist = _distances(a, b, who, c0, r0, sizes[members].max(0))  # (T, hmax, wmax) per segment
        first = np.searchsorted(who, members)  # segments are grouped by stroke, in stroke order
        dist = np.minimum.reduceat(dist, first, axis=0) if len(members) < len(who) else dist  # per stroke
        alpha = np.clip(radius[members].astype(np.float32)[:, None, None] + np.float32(0.5) - dist, 0, 1)
        alphas.update(zip(members.tolist(), alpha, strict=True))
    colours = [np.asarray(strokes[i].colour, np.float32).reshape(1, 1, -1) for i in keep]
    for s in sorted(alphas):
        a = alphas[s][: r1[s] - r0[s], : c1[s] - c0[s], None]
        region = canvas[r0[s] : r1[s], c0[s] : c1[s]]
        region *= 1.0 - a
        region += colours[s] * a


def _distances(a, b, who, c0, r0, size) -> np.ndarray:
    """Distance `(T, hmax, wmax)` float32 from the pixel centres of each segment's stroke window (padded to
    `size` = (hmax, wmax)) to the segment `a (T, 2)` - `b (T, 2)` (float64 coordinates)."""
    d64 = b - a
    length2 = (d64 * d64).sum(1)  # (T,) float64

    def col(v: np.ndarray) -> np.ndarray:  # (T,) -> (T, 1, 1) float32, as a scalar would be cast
        return v.astype(np.float32)[:, None, None]

    xs = (c0[who, None] + np.arange(size[1])).astype(np.float32)[:, None, :]  # (T, 1, wmax)
    ys = (r0[who, None] + np.arange(size[0])).astype(np.float32)[:, :, None]  # (T, hmax, 1)
    dx, dy = col(d64[:, 0]), col(d64[:, 1])
    px, py = xs - col(a[:, 0]), ys - col(a[:, 1])
    point = length2 < 1e-12
    t = np.clip((px * dx + py * dy) / col(np.where(point, 1.0, length2)), 0.0, 1.0)
    t[point] = 0.0  # a point: the distance to a
    ex, ey = px - t * dx, py - t * dy
    return np.sqrt(ex * ex + ey * ey)


def draw_capsule(canvas: np.ndarray, p0, p1, half_width: float, colour) -> None:
    """A thick anti-aliased line with round caps from ``p0`` to ``p1`` (pixel coords), half-width in px."""
    draw_strokes(canvas, [Stroke(np.array([p0, p1], np.float64), half_width, colour)])


def draw_disc(canvas: np.ndarray, centre, radius: float, colour) -> None:
    """A filled anti-aliased disc."""
    draw_strokes(canvas, [Stroke(np.array([centre], np.float64), radius, colour)])


def polyline_stroke(points, half_width: float, colour, *, closed: bool = False) -> Stroke:
    """The stroke of connected segments through ``points (N, 2)`` (closed: back to the first point)."""
    pts = np.asarray(points, np.float32).reshape(-1, 2)
    if closed and len(pts) > 2:
        pts = np.concatenate([pts, pts[:1]])
    return Stroke(pts, half_width, colour)


def draw_polyline(canvas: np.ndarray, points, half_width: float, colour, *, closed: bool = False) -> None:
    """Connected segments through ``points (N, 2)`` in one colour, composited once (see `draw_strokes`)."""
    draw_strokes(canvas, [polyline_stroke(points, half_width, colour, closed=closed)])


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


def curve_stroke(points, half_width: float, colour, *, closed: bool = False) -> Stroke:
    """The stroke of a smooth curve (see :func:`quadratic_curve_points`) through ``points``; closed curves
    wrap around."""
    pts = np.asarray(points, np.float32).reshape(-1, 2)
    if closed and len(pts) > 2:
        # Wrap: run the chain once around with one extra point each side so the seam is smooth too.
        ext = np.concatenate([pts[-1:], pts, pts[:2]])
        curve = quadratic_curve_points(ext)
        m = len(curve)
        # Drop the straight half-segments at both ends (they belong to the wrap padding).
        return polyline_stroke(curve[1 : m - 1], half_width, colour)
    return polyline_stroke(quadratic_curve_points(pts), half_width, colour)


def draw_curve(canvas: np.ndarray, points, half_width: float, colour, *, closed: bool = False) -> None:
    """A smooth curve (see :func:`quadratic_curve_points`) through ``points``; closed curves wrap around."""
    draw_strokes(canvas, [curve_stroke(points, half_width, colour, closed=closed)])
