"""Painting primitives for the synthetic people: anti-aliased shapes blended into a float image,
each limited to its bounding box, plus clothing patterns and backgrounds. numpy only (no OpenCV)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# --------------------------------------------------------------------------------------------------
# Painting primitives: anti-aliased shapes blended into a float image, each limited to its bounding box
# --------------------------------------------------------------------------------------------------

Paint = np.ndarray | Callable[[np.ndarray, np.ndarray], np.ndarray]


class Canvas:
    """A float RGB image in [0, 1] `(H, W, 3)` plus the soft person mask `(H, W)`. `paint` is a colour
    `(3,)` or a function of the shape's local coordinates `(u along its axis, v across)` in pixels that
    returns colours `(h, w, 3)`, so clothing patterns move with the limb."""

    def __init__(self, background: np.ndarray):
        self.image = np.array(background, np.float32)  # (H, W, 3), copied
        self.h, self.w = self.image.shape[:2]
        self.mask = np.zeros((self.h, self.w), np.float32)

    def _window(self, lo: np.ndarray, hi: np.ndarray):
        x0, y0 = max(int(np.floor(lo[0])), 0), max(int(np.floor(lo[1])), 0)
        x1, y1 = min(int(np.ceil(hi[0])) + 1, self.w), min(int(np.ceil(hi[1])) + 1, self.h)
        if x0 >= x1 or y0 >= y1:
            return None
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)  # pixel centres, (h, w) each
        return (slice(y0, y1), slice(x0, x1)), xs, ys

    def _blend(self, win, alpha: np.ndarray, paint: Paint, u, v, mask: bool) -> None:
        colour = paint(u, v) if callable(paint) else np.asarray(paint, np.float32)
        a = alpha[..., None]
        region = self.image[win]  # a view: blended in place
        region *= 1.0 - a
        region += a * colour
        if mask:
            np.maximum(self.mask[win], alpha, out=self.mask[win])

    def capsule(self, a, b, r0: float, r1: float, paint: Paint, *, mask: bool = True) -> None:
        """A segment a -> b with radius tapering from r0 to r1 (limbs, fingers, brows)."""
        a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
        r = max(r0, r1)
        found = self._window(np.minimum(a, b) - r - 1, np.maximum(a, b) + r + 1)
        if found is None:
            return
        win, xs, ys = found
        d = b - a
        length = float(np.hypot(*d)) or 1e-6
        ux, uy = d / length
        px, py = xs - a[0], ys - a[1]
        u = px * ux + py * uy  # along the axis
        v = px * uy - py * ux  # across
        t = np.clip(u / length, 0.0, 1.0)
        dist = np.hypot(px - t * d[0], py - t * d[1])
        alpha = np.clip(r0 + (r1 - r0) * t - dist + 0.5, 0.0, 1.0)
        self._blend(win, alpha, paint, u, v, mask)

    def ellipse(self, c, rx: float, ry: float, angle: float, paint: Paint, *, mask: bool = True) -> None:
        """An ellipse with radii (rx across, ry along) rotated like `_dir` by `angle` (head, hands, feet)."""
        c = np.asarray(c, np.float32)
        r = max(rx, ry)
        found = self._window(c - r - 1, c + r + 1)
        if found is None:
            return
        win, xs, ys = found
        cs, sn = np.cos(angle), np.sin(angle)
        px, py = xs - c[0], ys - c[1]
        v, u = px * cs - py * sn, px * sn + py * cs  # local across / along
        q = np.sqrt((v / max(rx, 1e-3)) ** 2 + (u / max(ry, 1e-3)) ** 2)
        alpha = np.clip((1.0 - q) * min(rx, ry) + 0.5, 0.0, 1.0)
        self._blend(win, alpha, paint, u, v, mask)

    def polygon(self, pts, paint: Paint, *, origin, angle: float, mask: bool = True) -> None:
        """A convex polygon `(n, 2)` (torso, pelvis); pattern coordinates from `origin` along `angle`."""
        pts = np.asarray(pts, np.float32)
        found = self._window(pts.min(0) - 1, pts.max(0) + 1)
        if found is None:
            return
        win, xs, ys = found
        area = np.sum(pts[:, 0] * np.roll(pts[:, 1], -1) - np.roll(pts[:, 0], -1) * pts[:, 1])
        sd = np.full(xs.shape, -np.inf, np.float32)  # signed distance, positive outside
        for p, q in zip(pts, np.roll(pts, -1, axis=0), strict=True):
            e = q - p
            n = np.array([e[1], -e[0]]) * (1 if area > 0 else -1) / (float(np.hypot(*e)) or 1e-6)
            np.maximum(sd, (xs - p[0]) * n[0] + (ys - p[1]) * n[1], out=sd)
        cs, sn = np.cos(angle), np.sin(angle)
        px, py = xs - origin[0], ys - origin[1]
        v, u = px * cs - py * sn, px * sn + py * cs
        self._blend(win, np.clip(0.5 - sd, 0.0, 1.0), paint, u, v, mask)

    def image_uint8(self) -> np.ndarray:
        return (np.clip(self.image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def pattern_painter(kind: str, colours, period: float) -> Paint:
    """Clothing pattern: `solid`, `stripes` (across the limb axis) or `checks`, in local pixel coordinates."""
    c0, c1 = (np.asarray(c, np.float32) for c in colours)
    period = max(float(period), 1.5)
    if kind == "solid":
        return c0
    if kind == "stripes":
        return lambda u, v: np.where((np.floor(u / period) % 2)[..., None] > 0, c1, c0)
    return lambda u, v: np.where(((np.floor(u / period) + np.floor(v / period)) % 2)[..., None] > 0, c1, c0)


def make_background(kind: str, colours, hw: tuple[int, int], seed: int) -> np.ndarray:
    """A static background `float32 (H, W, 3)`: `gradient`, `waves` (smooth texture), `tiles` or `floor`."""
    rng = np.random.default_rng(seed)
    h, w = hw
    c0, c1 = (np.asarray(c, np.float32) for c in colours)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    y, x = y / max(h - 1, 1), x / max(w - 1, 1)
    a = rng.uniform(0, 2 * np.pi)
    t = np.cos(a) * x + np.sin(a) * y
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    img = c0 * (1 - t[..., None]) + c1 * t[..., None]
    if kind == "waves":
        tex = sum(
            np.sin(
                2 * np.pi * (rng.uniform(1, 5) * x * np.cos(b) + rng.uniform(1, 5) * y * np.sin(b))
                + rng.uniform(0, 6.3)
            )
            for b in rng.uniform(0, np.pi, 3)
        )
        img = img + 0.06 * tex[..., None]
    elif kind == "tiles":
        p = rng.uniform(0.08, 0.2)
        check = (np.floor(x / p) + np.floor(y / p)) % 2
        img = img * (1 - 0.15 * check[..., None])
    elif kind == "floor":
        horizon = rng.uniform(0.6, 0.75)
        floor = y > horizon
        depth = np.where(floor, (y - horizon) / (1 - horizon + 1e-6), 0)
        planks = (np.floor((x - 0.5) / (0.05 + 0.2 * depth + 1e-3)) % 2) * floor
        img = np.where(floor[..., None], c1 * (0.75 + 0.25 * depth[..., None]), c0 * (1 - 0.3 * y[..., None]))
        img = img * (1 - 0.1 * planks[..., None])
    img = img + rng.normal(0, 0.01, img.shape)
    return np.clip(img, 0, 1).astype(np.float32)
