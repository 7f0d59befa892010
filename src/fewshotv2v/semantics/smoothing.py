"""Temporal smoothing of detected keypoints (SPEC §5: driving keypoints are smoothed over time so the
rendered label maps do not jitter).

:class:`OneEuroFilter` (Casiez et al., CHI 2012) is an adaptive low-pass filter: strong smoothing when a
point moves slowly (jitter), little lag when it moves fast. :class:`MedianFilter` is the causal median of
the last frames (FSV smooths face landmarks with a median / momentum filter). Both work on canonical
``(137, 3)`` arrays and handle missing points (confidence 0): a missing point stays missing and its filter
restarts when it comes back, so a reappearing point never slides in from a stale position.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from fewshotv2v.errors import ConfigError
from fewshotv2v.modes import get_mode
from fewshotv2v.semantics.keypoints import valid_mask


def _alpha(dt: float, cutoff: np.ndarray | float) -> np.ndarray:
    """Smoothing factor of a first-order low-pass with cut-off ``cutoff`` Hz for a step of ``dt`` s."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, np.float32))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-Euro filter over canonical keypoints ``(N, 3)`` (usually ``(137, 3)``), coordinates in pixels.

    ``min_cutoff`` (Hz): cut-off at rest (lower = smoother, more lag); ``beta``: how fast the cut-off rises
    with speed; ``d_cutoff``: cut-off of the speed estimate. ``relative`` (default): the speed is measured
    in subject sizes per second (size = the diagonal of the frame's valid points' box), so the same motion
    is smoothed the same in a 176 x 144 video and a 4K one; ``relative=False``: in pixels per second (with
    0.1's pixel beta of 0.01 a small video lagged several frames behind the face). Timestamps in seconds
    may be passed to each call (variable frame rate); otherwise frames are ``1 / fps`` apart. Confidences
    pass through unchanged. `for_mode` gives a mode's measured settings.
    """

    def __init__(
        self,
        *,
        fps: float = 30.0,
        min_cutoff: float = 1.0,
        beta: float = 5.0,
        d_cutoff: float = 1.0,
        threshold: float = 0.0,
        relative: bool = True,
    ) -> None:
        if fps <= 0 or min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ConfigError("One-Euro filter needs fps, min_cutoff, d_cutoff > 0 and beta >= 0")
        self.fps, self.min_cutoff, self.beta, self.d_cutoff = fps, min_cutoff, beta, d_cutoff
        self.threshold, self.relative = threshold, relative
        self.reset()

    @classmethod
    def for_mode(cls, mode: str, *, fps: float = 30.0) -> OneEuroFilter:
        """The filter with `mode`'s settings (`modes.Mode.smoothing`)."""
        min_cutoff, beta = get_mode(mode).smoothing
        return cls(fps=fps, min_cutoff=min_cutoff, beta=beta)

    def reset(self) -> None:
        """Forget the history (e.g. at a shot cut or when the tracked person changes)."""
        self._x: np.ndarray | None = None  # (N, 2) last filtered positions
        self._dx: np.ndarray | None = None  # (N, 2) last filtered speeds, px / s
        self._alive: np.ndarray | None = None  # (N,) point was valid in the previous call
        self._t: float | None = None
        self._size = 1.0  # last subject size (px): a frame with fewer than two valid points keeps it

    def __call__(self, kps: np.ndarray, t: float | None = None) -> np.ndarray:
        """Filter one frame; returns a new ``(N, 3)`` float32 array."""
        kps = np.asarray(kps, np.float32)
        out = kps.copy()
        ok = valid_mask(kps, self.threshold)
        x = kps[:, :2]
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            self._alive = ok.copy()
            self._t = 0.0 if t is None else float(t)
            return out
        t = self._t + 1.0 / self.fps if t is None else float(t)
        dt = max(t - self._t, 1e-6)
        cont = ok & self._alive  # points that can be filtered; others restart
        if cont.any():
            dx = (x[cont] - self._x[cont]) / dt
            dx_hat = self._dx[cont] + _alpha(dt, self.d_cutoff) * (dx - self._dx[cont])
            speed = np.linalg.norm(dx_hat, axis=1, keepdims=True)  # (n, 1) px / s
            if self.relative:
                speed = speed / self._subject_size(x[ok])  # subject sizes / s
            a = _alpha(dt, self.min_cutoff + self.beta * speed)
            x_hat = self._x[cont] + a * (x[cont] - self._x[cont])
            out[cont, :2] = x_hat
            self._x[cont], self._dx[cont] = x_hat, dx_hat
        restart = ok & ~self._alive
        self._x[restart], self._dx[restart] = x[restart], 0.0
        self._alive = ok.copy()
        self._t = t
        return out

    def _subject_size(self, points: np.ndarray) -> float:
        """Diagonal (px) of the box of this frame's valid points `(n, 2)`; the last one when degenerate."""
        if len(points) >= 2:
            size = float(np.hypot(*(points.max(axis=0) - points.min(axis=0))))
            if size >= 1.0:
                self._size = size
        return self._size


class MedianFilter:
    """Causal per-point median of the last ``window`` frames (missing samples are ignored)."""

    def __init__(self, window: int = 5, *, threshold: float = 0.0) -> None:
        if window < 1:
            raise ConfigError("median window must be at least 1")
        self.window, self.threshold = window, threshold
        self.reset()

    def reset(self) -> None:
        self._buf: deque[np.ndarray] = deque(maxlen=self.window)

    def __call__(self, kps: np.ndarray, t: float | None = None) -> np.ndarray:
        kps = np.asarray(kps, np.float32)
        self._buf.append(kps.copy())
        stack = np.stack(self._buf)  # (w, N, 3)
        xy = np.where(valid_mask(stack, self.threshold)[..., None], stack[..., :2], np.nan)
        out = kps.copy()
        ok = valid_mask(kps, self.threshold)
        if ok.any():
            out[ok, :2] = np.nanmedian(xy[:, ok], axis=0)
        return out


def make_filter(method: str = "one_euro", **kw) -> OneEuroFilter | MedianFilter:
    """``"one_euro"`` or ``"median"`` (``window=``); keyword arguments go to the filter."""
    if method in ("one_euro", "one-euro", "oneeuro"):
        return OneEuroFilter(**kw)
    if method == "median":
        return MedianFilter(**kw)
    raise ConfigError(f"unknown smoothing method {method!r} (use 'one_euro' or 'median')")


def smooth_sequence(
    seq: np.ndarray, method: str = "one_euro", *, times: np.ndarray | None = None, **kw
) -> np.ndarray:
    """Smooth a whole sequence ``(T, N, 3)`` frame by frame (causal); ``times`` in seconds are optional."""
    seq = np.asarray(seq, np.float32)
    filt = make_filter(method, **kw)
    out = seq.copy()
    for i in range(len(seq)):
        out[i] = filt(seq[i], None if times is None else float(times[i]))
    return out
