"""Landmark-driven face motion: a talking, nodding, blinking head made from one photo's landmarks.

`animate_face(kps, frames)` returns a driving sequence of canonical keypoints `(F, 137, 3)` for face mode
without any video: the head tilts (roll) and nods, the inner face shifts sideways against the jaw line
(a small yaw), the mouth opens and closes in bursts like speech (lower lip and chin move down), and the
eyes blink every few seconds (upper lids meet the lower ones). `fsv2v demo` animates the packaged photo
with it; tests and the evaluation use it as a known motion on real photos.
"""

from __future__ import annotations

import numpy as np

from fewshotv2v.semantics.keypoints import FACE, LOWER_LIP

# Face-local iBUG indices (see semantics.keypoints.FACE_CONTOURS).
_CHIN = list(range(5, 12))  # lower jaw: follows the mouth opening
_UPPER_LIDS = {37: 41, 38: 40, 43: 47, 44: 46}  # upper lid point -> the lower lid point it closes onto
_INNER = list(range(17, 68))  # brows, nose, eyes, mouth: shift against the jaw for the yaw


def animate_face(
    kps: np.ndarray,
    frames: int,
    fps: float = 25.0,
    *,
    tilt_deg: float = 6.0,
    nod: float = 0.04,
    yaw: float = 0.04,
    talk: float = 0.10,
    blink_every: float = 2.5,
) -> np.ndarray:
    """A driving sequence `(frames, 137, 3)` from one face's keypoints `(137, 3)` (see the module
    docstring). Amplitudes are fractions of the face width (jaw span): `nod` vertical, `yaw` sideways
    shift of the inner face, `talk` mouth opening; `tilt_deg` the roll; `blink_every` seconds (0 = none).
    Only the face slice moves; points that are missing stay missing."""
    kps = np.asarray(kps, np.float32)
    face = kps[FACE].copy()
    ok = face[:, 2] > 0
    if ok.sum() < 3:
        raise ValueError("animate_face needs face landmarks")
    xy0 = face[:, :2].astype(np.float64)
    jaw = xy0[:17][ok[:17]] if ok[:17].sum() >= 2 else xy0[ok]
    width = float(np.ptp(jaw[:, 0])) or 1.0
    centre = xy0[ok].mean(axis=0)
    out = np.repeat(kps[None], frames, axis=0)
    for i in range(frames):
        t = i / fps
        xy = xy0.copy()
        # Speech: bursts of fast open/close under a slow envelope.
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * t / 1.7)
        opening = talk * width * envelope * max(0.0, np.sin(2 * np.pi * t / 0.36))
        xy[LOWER_LIP, 1] += opening  # the mouth's corners (48, 54, 60, 64) stay
        xy[_CHIN, 1] += 0.6 * opening
        if blink_every > 0 and (t % blink_every) < 0.12:
            for upper, lower in _UPPER_LIDS.items():
                xy[upper] = xy[lower] * 0.8 + xy[upper] * 0.2
        xy[_INNER, 0] += yaw * width * np.sin(2 * np.pi * t / 3.1)
        angle = np.deg2rad(tilt_deg) * np.sin(2 * np.pi * t / 2.9)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        xy = (xy - centre) @ rot.T + centre
        xy[:, 1] += nod * width * np.sin(2 * np.pi * t / 2.3)
        out[i, FACE, :2] = np.where(ok[:, None], xy, face[:, :2]).astype(np.float32)
    return out


__all__ = ["animate_face"]
