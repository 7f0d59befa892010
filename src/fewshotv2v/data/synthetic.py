"""Synthetic people: articulated 2D figures painted in numpy, with exact keypoints and masks.

A stand-in for the dancing-video datasets of few-shot vid2vid (SPEC §6) that needs no download and no
detector: every identity has its own appearance (skin, hair, clothes and their patterns, body proportions,
background) and every clip its own procedural motion (walking, waving, dancing). The skeleton is built in
the canonical layout (BODY_25 + 70 face + 2 x 21 hand points, `semantics.keypoints`), so the rendered
skeletons, crops and face boxes used in training are exactly those of real data.

Public API: `make_identity`, `motion`, `render_person`, `render_clip`, `demo_pair`, `generate_dataset`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from fewshotv2v.data.synthetic_paint import Canvas, make_background, pattern_painter
from fewshotv2v.errors import ConfigError, OutputExistsError
from fewshotv2v.semantics.keypoints import LOWER_LIP, MOUTH_CORNERS

MOTIONS = ("idle", "walk", "wave", "dance")
HAIR_STYLES = ("short", "long", "bun", "bald")
PATTERNS = ("solid", "stripes", "checks")
BACKGROUNDS = ("gradient", "waves", "tiles", "floor")

# Skin tones (RGB 0..1), from light to dark; identities interpolate between neighbours.
_SKIN = np.array(
    [[0.98, 0.85, 0.74], [0.92, 0.75, 0.62], [0.80, 0.60, 0.45], [0.62, 0.43, 0.30], [0.42, 0.28, 0.19]],
    np.float32,
)
# fmt: off
_HAIR = np.array(
    [[0.08, 0.06, 0.05], [0.30, 0.18, 0.10], [0.55, 0.35, 0.18], [0.85, 0.70, 0.40], [0.60, 0.60, 0.60],
     [0.55, 0.15, 0.08]],
    np.float32,
)
# fmt: on


# --------------------------------------------------------------------------------------------------
# Identity (appearance + proportions) and pose parameters
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """Appearance and body proportions of one synthetic person. Colours are RGB in [0, 1]; lengths
    are relative factors around 1 (multiplying the canonical proportions in `_BODY`)."""

    index: int
    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    hair_style: str
    shirt: tuple[tuple[float, float, float], tuple[float, float, float]]
    shirt_pattern: str
    long_sleeves: bool
    trousers: tuple[tuple[float, float, float], tuple[float, float, float]]
    trouser_pattern: str
    shoes: tuple[float, float, float]
    pattern_period: float  # stripe / check period, in person heights
    height: float  # person height as a fraction of the frame height (body framing)
    head: float
    width: float  # shoulder and hip width
    arms: float
    legs: float
    girth: float  # limb thickness
    background: str
    bg_colours: tuple[tuple[float, float, float], tuple[float, float, float]]
    bg_seed: int


def _colour(rng: np.random.Generator, lo: float = 0.1, hi: float = 0.95) -> tuple[float, float, float]:
    return tuple(float(v) for v in rng.uniform(lo, hi, 3))  # type: ignore[return-value]


def make_identity(index: int, seed: int = 0) -> Identity:
    """Identity number `index` of the population drawn with `seed` (deterministic)."""
    rng = np.random.default_rng([int(seed), int(index), 7919])
    k = rng.uniform(0, len(_SKIN) - 1)
    skin = _SKIN[int(k)] * (1 - k % 1) + _SKIN[min(int(k) + 1, len(_SKIN) - 1)] * (k % 1)
    hair = _HAIR[rng.integers(len(_HAIR))] * rng.uniform(0.85, 1.1)
    shirt0 = _colour(rng)
    shirt1 = tuple(float(v) for v in (1.0 - np.array(shirt0)) * rng.uniform(0.6, 1.0))
    trousers0 = _colour(rng, 0.05, 0.7)
    trousers1 = _colour(rng, 0.3, 0.95)
    return Identity(
        index=int(index),
        skin=tuple(float(v) for v in skin),  # type: ignore[arg-type]
        hair=tuple(float(v) for v in np.clip(hair, 0, 1)),  # type: ignore[arg-type]
        hair_style=HAIR_STYLES[rng.integers(len(HAIR_STYLES))],
        shirt=(shirt0, shirt1),  # type: ignore[arg-type]
        shirt_pattern=PATTERNS[rng.integers(len(PATTERNS))],
        long_sleeves=bool(rng.random() < 0.5),
        trousers=(trousers0, trousers1),
        trouser_pattern=PATTERNS[rng.choice(3, p=[0.6, 0.2, 0.2])],
        shoes=_colour(rng, 0.02, 0.6),
        pattern_period=float(rng.uniform(0.025, 0.06)),
        height=float(rng.uniform(0.52, 0.64)),
        head=float(rng.uniform(0.9, 1.12)),
        width=float(rng.uniform(0.85, 1.2)),
        arms=float(rng.uniform(0.9, 1.1)),
        legs=float(rng.uniform(0.9, 1.1)),
        girth=float(rng.uniform(0.8, 1.3)),
        background=BACKGROUNDS[rng.integers(len(BACKGROUNDS))],
        bg_colours=(_colour(rng, 0.2, 1.0), _colour(rng, 0.0, 0.8)),
        bg_seed=int(rng.integers(2**31)),
    )


@dataclass(frozen=True)
class Pose:
    """Joint angles (radians) and placement of one frame. Arm angles: 0 = hanging, pi/2 = horizontal
    outwards, pi = straight up; elbow bend folds the forearm inwards/upwards. `lift` shortens the thigh
    (a leg raised towards the camera); `dx`, `dy` move the hips in person heights; `scale` zooms."""

    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0
    lean: float = 0.0
    head_tilt: float = 0.0
    r_arm: float = 0.15
    l_arm: float = 0.15
    r_elbow: float = 0.2
    l_elbow: float = 0.2
    r_leg: float = 0.05
    l_leg: float = 0.05
    r_knee: float = 0.0
    l_knee: float = 0.0
    r_lift: float = 0.0
    l_lift: float = 0.0
    mouth: float = 0.1  # 0 closed .. 1 wide open
    eyes: float = 1.0  # eye opening: 0 shut (a blink) .. 1 at rest .. 1.5 wide open
    r_curl: float = 0.2  # finger curl 0 .. 1
    l_curl: float = 0.2


def _eye_opening(t: np.ndarray, seed: int) -> np.ndarray:
    """`Pose.eyes` over the times `t` (s): a slow wave about rest, now and then wide open, and blinks
    (every 2-5 s, about 0.2 s long). Drawn from a generator of its own, so that the other joints of a
    seed's motion are those they were before the eyes moved."""
    rng = np.random.default_rng([int(seed), 104729, 1])
    opening = 1.0 + 0.12 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t + rng.uniform(0, 2 * np.pi))
    wide = np.clip(np.sin(2 * np.pi * rng.uniform(0.05, 0.15) * t + rng.uniform(0, 2 * np.pi)), 0, 1)
    opening = opening + rng.uniform(0.2, 0.5) * wide**2
    end = float(t[-1]) if len(t) else 0.0
    blink = rng.uniform(0.0, 3.0)
    while blink <= end + 0.2:
        opening = opening * (1 - np.exp(-(((t - blink) / 0.06) ** 2)))
        blink += rng.uniform(2.0, 5.0)
    return opening


def motion(kind: str, frames: int, seed: int = 0, *, fps: float = 25.0) -> list[Pose]:
    """A smooth procedural motion of `frames` poses: `idle`, `walk`, `wave`, `dance` or `random`
    (one of them drawn from `seed`). Sums of sinusoids with random frequency, phase and amplitude, plus a
    slow body translation and a slight zoom."""
    rng = np.random.default_rng([int(seed), 104729])
    if kind == "random":
        kind = MOTIONS[rng.integers(len(MOTIONS))]
    if kind not in MOTIONS:
        raise ConfigError(f"unknown motion {kind!r}; expected one of {', '.join((*MOTIONS, 'random'))}")
    t = np.arange(frames, dtype=np.float64) / fps  # seconds

    def wave(freq: float, amp: float) -> np.ndarray:
        return amp * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))

    drift = rng.uniform(-0.15, 0.15)
    base = {
        "dx": drift * np.sin(2 * np.pi * rng.uniform(0.03, 0.08) * t + rng.uniform(0, 6.3)) + wave(0.2, 0.03),
        "dy": wave(0.3, 0.01),
        "scale": 1.0 + wave(rng.uniform(0.05, 0.15), rng.uniform(0.0, 0.06)),
        "lean": wave(0.25, 0.04),
        "head_tilt": wave(0.4, 0.08),
        "mouth": 0.25 + wave(rng.uniform(0.5, 2.0), 0.25),
        "eyes": _eye_opening(t, seed),
        "r_curl": 0.4 + wave(0.3, 0.3),
        "l_curl": 0.4 + wave(0.3, 0.3),
    }
    f = rng.uniform(0.7, 1.3)  # step / beat frequency (Hz)
    ph = 2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)
    # fmt: off
    if kind == "idle":
        joints = {
            "r_arm": 0.15 + wave(0.2, 0.08), "l_arm": 0.15 + wave(0.2, 0.08),
            "r_elbow": 0.3 + wave(0.3, 0.2), "l_elbow": 0.3 + wave(0.3, 0.2),
            "r_leg": 0.05 + wave(0.1, 0.02), "l_leg": 0.05 + wave(0.1, 0.02),
        }
    elif kind == "walk":  # seen from the front: arms swing, legs lift towards the camera in turn
        swing = rng.uniform(0.15, 0.3)
        joints = {
            "dx": base["dx"] + np.linspace(-1, 1, frames) * rng.uniform(-0.25, 0.25),
            "dy": base["dy"] + 0.015 * np.abs(np.sin(ph)),
            "r_arm": 0.2 + swing * np.sin(ph), "l_arm": 0.2 - swing * np.sin(ph),
            "r_elbow": 0.35 + 0.25 * np.sin(ph), "l_elbow": 0.35 - 0.25 * np.sin(ph),
            "r_leg": 0.06 + 0.03 * np.sin(ph), "l_leg": 0.06 - 0.03 * np.sin(ph),
            "r_lift": 0.35 * np.maximum(0, np.sin(ph)), "l_lift": 0.35 * np.maximum(0, -np.sin(ph)),
            "r_knee": -0.15 * np.maximum(0, np.sin(ph)), "l_knee": -0.15 * np.maximum(0, -np.sin(ph)),
        }
    elif kind == "wave":  # right arm raised, forearm swinging from the elbow
        joints = {
            "r_arm": 2.3 + wave(0.3, 0.15), "r_elbow": 0.7 + 0.55 * np.sin(2.2 * ph),
            "l_arm": 0.15 + wave(0.2, 0.1), "l_elbow": 0.3 + wave(0.3, 0.2),
            "r_leg": 0.05 + wave(0.1, 0.02), "l_leg": 0.05 + wave(0.1, 0.02),
            "r_curl": np.zeros_like(t), "mouth": 0.5 + wave(1.0, 0.3),
        }
    else:  # dance: every joint on its own sinusoids around a beat
        amp = rng.uniform(0.6, 1.0)
        joints = {
            "dy": base["dy"] + 0.03 * amp * np.abs(np.sin(ph)),
            "lean": 0.12 * amp * np.sin(ph / 2),
            "r_arm": 1.2 + amp * (0.8 * np.sin(ph) + wave(0.37, 0.3)),
            "l_arm": 1.2 + amp * (0.8 * np.sin(ph + rng.uniform(1, 3)) + wave(0.41, 0.3)),
            "r_elbow": 0.8 + wave(f * 1.5, 0.6 * amp), "l_elbow": 0.8 + wave(f * 1.3, 0.6 * amp),
            "r_leg": 0.15 + wave(f / 2, 0.12 * amp), "l_leg": 0.15 + wave(f / 2, 0.12 * amp),
            "r_lift": 0.3 * amp * np.maximum(0, np.sin(ph)), "l_lift": 0.3 * amp * np.maximum(0, -np.sin(ph)),
            "r_knee": wave(f, 0.2 * amp), "l_knee": wave(f, 0.2 * amp),
        }
    # fmt: on
    params = {**base, **joints}
    params["mouth"] = np.clip(params["mouth"], 0, 1)
    params["eyes"] = np.clip(params["eyes"], 0, EYES_MAX)
    for key in ("r_curl", "l_curl"):
        params[key] = np.clip(params[key], 0, 1)
    return [Pose(**{k: float(v[i]) for k, v in params.items()}) for i in range(frames)]


# --------------------------------------------------------------------------------------------------
# Kinematics: pose + identity -> 137 canonical keypoints (pixels) and painting geometry
# --------------------------------------------------------------------------------------------------

# Canonical proportions in person heights (top of head to ankles ~ 0.94).
_BODY = {
    "torso": 0.30,
    "neck": 0.035,
    "head_ry": 0.068,
    "head_rx": 0.054,
    "shoulder": 0.105,
    "hip": 0.06,
    "upper_arm": 0.17,
    "forearm": 0.15,
    "hand": 0.075,
    "thigh": 0.235,
    "shin": 0.225,
    "r_upper_arm": 0.028,
    "r_forearm": 0.022,
    "r_thigh": 0.045,
    "r_shin": 0.034,
    "r_neck": 0.024,
}


def _dir(angle: float) -> np.ndarray:
    """Unit vector at `angle` from straight down (image coordinates, y down), towards +x for angle > 0."""
    return np.array([np.sin(angle), np.cos(angle)])


def _rot(points: np.ndarray, angle: float) -> np.ndarray:
    """Rotate `(..., 2)` offsets so that `_dir(a)` becomes `_dir(a + angle)`."""
    c, s = np.cos(angle), np.sin(angle)
    x, y = points[..., 0], points[..., 1]
    return np.stack([x * c + y * s, -x * s + y * c], axis=-1)


def _face_points() -> np.ndarray:
    """The 70 face points (68 iBUG + 2 pupils) in head-ellipse units (x right, y down, radius 1).
    Point 0..16 jaw (image left to right), 17..26 brows, 27..35 nose, 36..47 eyes, 48..67 lips."""
    pts = np.zeros((70, 2))
    a = np.linspace(np.pi + 0.15, -0.15, 17)
    pts[0:17] = np.stack([0.9 * np.cos(a), 0.9 * np.sin(a) + 0.05], -1)
    for i, cx in ((17, -0.4), (22, 0.4)):
        u = np.linspace(-0.25, 0.25, 5)
        pts[i : i + 5] = np.stack([cx + u, -0.38 - 0.08 * np.cos(u * 5)], -1)
    pts[27:31] = np.stack([np.zeros(4), np.linspace(-0.22, 0.2, 4)], -1)
    pts[31:36] = np.stack([np.linspace(-0.17, 0.17, 5), 0.3 + 0.04 * np.cos(np.linspace(-1.2, 1.2, 5))], -1)
    for i, cx in ((36, -0.38), (42, 0.38)):
        ex, ey = 0.15, 0.07
        pts[i : i + 6] = [(cx - ex, -0.15), (cx - ex / 2, -0.15 - ey), (cx + ex / 2, -0.15 - ey),
                          (cx + ex, -0.15), (cx + ex / 2, -0.15 + ey), (cx - ex / 2, -0.15 + ey)]  # fmt: skip
    top = np.linspace(np.pi, 0, 7)
    bottom = np.linspace(0, np.pi, 7)[1:6]
    pts[48:55] = np.stack([0.3 * np.cos(top), 0.55 - 0.09 * np.sin(top)], -1)
    pts[55:60] = np.stack([0.3 * np.cos(bottom), 0.55 + 0.12 * np.sin(bottom)], -1)
    pts[60:68] = [(-0.24, 0.55), (-0.1, 0.53), (0.0, 0.53), (0.1, 0.53), (0.24, 0.55), (0.1, 0.57),
                  (0.0, 0.57), (-0.1, 0.57)]  # fmt: skip
    pts[68], pts[69] = (-0.38, -0.15), (0.38, -0.15)
    return pts


_FACE = _face_points()
# How far the lower lip drops at `Pose.mouth` = 1 (head-ellipse units; the lips' rest height is 0.21):
# the mouth opens and its dark inside shows, the motion a face prior cannot paint (it only stretches the
# lips) and a face model has to learn.
MOUTH_DROP = 0.16


EYES_MAX = 1.5  # `Pose.eyes` at its widest
_EYE_HALF_HEIGHT = 0.07  # the lids' rest distance from the eye's midline (head-ellipse units)
_UPPER_LIDS, _LOWER_LIDS = [37, 38, 43, 44], [40, 41, 46, 47]


def _face_shape(mouth: float, eyes: float = 1.0) -> np.ndarray:
    """`_FACE` with the mouth opened by `mouth` (0 closed .. 1 wide: the lower lip drops, the corners
    follow it a third of the way) and the eyes opened by `eyes` (0 shut .. 1 at rest .. `EYES_MAX`): the
    lids move towards the eye's midline or away from it, the upper lid three times as far as the lower one,
    as a real blink does; the pupils (the eyeballs) stay."""
    pts = _FACE.copy()
    drop = MOUTH_DROP * float(np.clip(mouth, 0.0, 1.0))
    pts[LOWER_LIP, 1] += drop
    pts[MOUTH_CORNERS, 1] += drop / 3
    shut = 1.0 - float(np.clip(eyes, 0.0, EYES_MAX))  # > 0 closing, < 0 widening
    pts[_UPPER_LIDS, 1] += 2 * _EYE_HALF_HEIGHT * shut * 0.75
    pts[_LOWER_LIDS, 1] -= 2 * _EYE_HALF_HEIGHT * shut * 0.25
    return pts


def _hand(wrist: np.ndarray, direction: np.ndarray, length: float, thumb_side: np.ndarray, curl: float):
    """21 hand points (wrist, then thumb, index, middle, ring, pinky; 4 each) for a flat 2D hand."""
    pts = np.zeros((21, 2))
    pts[0] = wrist
    shrink = 1.0 - 0.45 * curl  # curled fingers look shorter from the front
    side = thumb_side
    for f, (offset, spread) in enumerate(
        ((0.35, 0.45), (0.22, 0.12), (0.07, 0.0), (-0.08, -0.1), (-0.22, -0.22))
    ):
        if f == 0:  # thumb: starts at the wrist, points sideways
            base = wrist + side * 0.15 * length + direction * 0.12 * length
            d = direction * np.cos(0.8) + side * np.sin(0.8)
            seg = np.array([0.0, 0.22, 0.17, 0.14]) * length * shrink
        else:
            base = wrist + direction * 0.5 * length + side * offset * length
            d = direction * np.cos(spread) + side * np.sin(spread)
            seg = np.array([0.0, 0.22, 0.15, 0.12]) * length * shrink
        pts[1 + 4 * f : 5 + 4 * f] = base + np.cumsum(seg)[:, None] * d
    return pts


def skeleton(identity: Identity, pose: Pose, scale: float, origin: np.ndarray) -> dict:
    """Joint positions in pixels. `scale` = pixels per person height, `origin` = mid-hip pixel position.

    Returns a dict with `kps (137, 2)` in the canonical order plus the geometry the painter needs."""
    b, s = _BODY, scale
    lam = pose.lean
    hip = np.asarray(origin, np.float64)

    def torso(x: float, y: float) -> np.ndarray:  # canonical offset (person heights) -> pixels
        return hip + _rot(np.array([x, y]) * s, lam)

    t_len = b["torso"] * (0.6 + 0.4 * identity.legs)
    neck = torso(0, -t_len)
    sw, hw = b["shoulder"] * identity.width, b["hip"] * identity.width
    r_sh, l_sh = torso(-sw, -t_len + 0.015), torso(sw, -t_len + 0.015)
    r_hip, l_hip = torso(-hw, 0), torso(hw, 0)
    ry, rx = b["head_ry"] * identity.head * s, b["head_rx"] * identity.head * s
    head_angle = lam + pose.head_tilt
    head = neck + _dir(np.pi + head_angle) * (b["neck"] * s + ry)
    ua, fa = b["upper_arm"] * identity.arms * s, b["forearm"] * identity.arms * s
    r_el = r_sh + _dir(lam - pose.r_arm) * ua
    r_wr = r_el + _dir(lam - pose.r_arm + pose.r_elbow) * fa
    l_el = l_sh + _dir(lam + pose.l_arm) * ua
    l_wr = l_el + _dir(lam + pose.l_arm - pose.l_elbow) * fa
    th, sh = b["thigh"] * identity.legs * s, b["shin"] * identity.legs * s
    r_kn = r_hip + _dir(-pose.r_leg) * th * (1 - pose.r_lift)
    r_an = r_kn + _dir(-pose.r_leg - pose.r_knee) * sh
    l_kn = l_hip + _dir(pose.l_leg) * th * (1 - pose.l_lift)
    l_an = l_kn + _dir(pose.l_leg + pose.l_knee) * sh
    face = head + _rot(_face_shape(pose.mouth, pose.eyes) * np.array([rx, ry]), head_angle)  # (70, 2)
    f = 0.025 * s  # feet: seen from the front, toes below and around the ankle
    r_toes = (r_an + [0.5 * f, 2.2 * f], r_an + [-1.3 * f, 2.0 * f], r_an + [0, 1.2 * f])
    l_toes = (l_an + [-0.5 * f, 2.2 * f], l_an + [1.3 * f, 2.0 * f], l_an + [0, 1.2 * f])
    hand_len = b["hand"] * s
    r_hand_dir, l_hand_dir = _unit(r_wr - r_el), _unit(l_wr - l_el)
    # Thumb towards the body's midline when the arm hangs (right hand: +x side of its direction).
    r_hand = _hand(r_wr, r_hand_dir, hand_len, np.array([r_hand_dir[1], -r_hand_dir[0]]), pose.r_curl)
    l_hand = _hand(l_wr, l_hand_dir, hand_len, np.array([-l_hand_dir[1], l_hand_dir[0]]), pose.l_curl)
    ear = 0.88
    r_ear = head + _rot(np.array([-ear * rx, 0.0]), head_angle)
    l_ear = head + _rot(np.array([ear * rx, 0.0]), head_angle)
    # (25, 2) in BODY_25 order
    body = np.array([face[30], neck, r_sh, r_el, r_wr, l_sh, l_el, l_wr, hip, r_hip, r_kn, r_an, l_hip, l_kn,
                     l_an, face[68], face[69], r_ear, l_ear, *l_toes, *r_toes])  # fmt: skip
    kps = np.concatenate([body, face, l_hand, r_hand]).astype(np.float32)  # (137, 2)
    return {
        "kps": kps,
        "head": head,
        "rx": rx,
        "ry": ry,
        "head_angle": head_angle,
        "scale": s,
        "hand_len": hand_len,
        "torso_angle": lam,
    }


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.hypot(*v))
    return v / n if n > 1e-9 else np.array([0.0, 1.0])


# --------------------------------------------------------------------------------------------------
# Painting
# --------------------------------------------------------------------------------------------------


def _paint(canvas: Canvas, identity: Identity, geo: dict) -> None:
    """Paint the person back to front; every primitive also writes the person mask."""
    k, s = geo["kps"].astype(np.float64), geo["scale"]
    b, g = _BODY, identity.girth
    skin = np.array(identity.skin)
    hair = np.array(identity.hair)
    period = identity.pattern_period * s
    shirt = pattern_painter(identity.shirt_pattern, identity.shirt, period)
    trousers = pattern_painter(identity.trouser_pattern, identity.trousers, period * 1.3)
    head, rx, ry, ha = geo["head"], geo["rx"], geo["ry"], geo["head_angle"]
    up = _dir(np.pi + ha)
    if identity.hair_style == "long":  # behind the head and shoulders, hanging down
        canvas.ellipse(head - up * 0.7 * ry, 1.3 * rx, 1.6 * ry, ha, hair)
    # legs (trousers) and shoes
    r_thigh, r_shin = b["r_thigh"] * g * s, b["r_shin"] * g * s
    for hip_i, knee_i, ankle_i, toes in ((9, 10, 11, (22, 23, 24)), (12, 13, 14, (19, 20, 21))):
        canvas.capsule(k[hip_i], k[knee_i], r_thigh, r_shin * 1.1, trousers)
        canvas.capsule(k[knee_i], k[ankle_i], r_shin * 1.1, r_shin * 0.8, trousers)
        foot = k[list(toes)].mean(0) * 0.7 + k[ankle_i] * 0.3
        canvas.ellipse(foot, 0.05 * s, 0.035 * s, 0.0, np.array(identity.shoes))
    pelvis = np.stack([k[9], k[12], k[12] + (k[13] - k[12]) * 0.3, k[9] + (k[10] - k[9]) * 0.3])
    canvas.polygon(pelvis, trousers, origin=k[8], angle=geo["torso_angle"])
    # torso (shirt), neck
    neck, mid = k[1], k[8]
    hem_r, hem_l = k[9] + (k[9] - k[8]) * 0.3, k[12] + (k[12] - k[8]) * 0.3
    sh_r, sh_l = k[2] + (k[2] - k[1]) * 0.15, k[5] + (k[5] - k[1]) * 0.15
    canvas.polygon(np.stack([sh_r, sh_l, hem_l, hem_r]), shirt, origin=neck, angle=geo["torso_angle"])
    r_neck = b["r_neck"] * s
    canvas.capsule(neck + (mid - neck) * 0.05, neck + up * b["neck"] * s, r_neck, r_neck, skin)
    # arms: sleeves (shirt) and skin
    for sh_i, el_i, wr_i, hand in ((2, 3, 4, slice(116, 137)), (5, 6, 7, slice(95, 116))):
        ru, rf = b["r_upper_arm"] * g * s, b["r_forearm"] * g * s
        canvas.capsule(k[sh_i], k[el_i], ru * 1.1, ru, shirt)
        canvas.capsule(k[el_i], k[wr_i], rf * 1.05, rf * 0.85, shirt if identity.long_sleeves else skin)
        _paint_hand(canvas, k[hand], geo["hand_len"], skin)
    for side in (-1.0, 1.0):  # ears stick out at the sides; the BODY_25 ear points lie just inside
        canvas.ellipse(
            head + _rot(np.array([side * rx, 0.05 * ry]), ha), 0.18 * rx, 0.28 * ry, ha, skin * 0.9
        )
    canvas.ellipse(head, rx, ry, ha, skin)
    if identity.hair_style != "bald":  # fringe above the brows; volume above the head
        canvas.ellipse(head + up * 0.7 * ry, 1.05 * rx, 0.55 * ry, ha, hair)
        if identity.hair_style == "bun":
            canvas.ellipse(head + up * 1.35 * ry, 0.45 * rx, 0.35 * ry, ha, hair)
    _paint_face(canvas, k[25:95], rx, ha, skin, hair)


def _paint_hand(canvas: Canvas, hand: np.ndarray, length: float, skin: np.ndarray) -> None:
    palm = hand[0] * 0.4 + hand[[5, 9, 13, 17]].mean(0) * 0.6
    canvas.ellipse(palm, 0.3 * length, 0.3 * length, 0.0, skin)
    r = max(0.06 * length, 0.6)
    for f in range(5):
        chain = hand[1 + 4 * f : 5 + 4 * f]
        for a, c in zip(chain[:-1], chain[1:], strict=True):
            canvas.capsule(a, c, r, r * 0.85, skin)


def _paint_face(
    canvas: Canvas, face: np.ndarray, rx: float, angle: float, skin: np.ndarray, hair: np.ndarray
) -> None:
    """Eyes, brows, nose and mouth at the face keypoints (so face edge maps match the image)."""
    w = max(0.06 * rx, 0.5)
    dark = hair * 0.7
    for brow in (face[17:22], face[22:27]):
        for a, c in zip(brow[:-1], brow[1:], strict=True):
            canvas.capsule(a, c, w, w, dark, mask=False)
    for eye, pupil in ((face[36:42], face[68]), (face[42:48], face[69])):
        # The white between the lids, the iris cut to the opening (a blink hides it), the upper lashes.
        centre = 0.5 * (eye[1:3].mean(0) + eye[4:6].mean(0))
        ex = 0.5 * float(np.hypot(*(eye[3] - eye[0])))
        ey = 0.5 * float(np.hypot(*(eye[1] - eye[5])))
        if ey > 0.25:
            canvas.ellipse(centre, ex, ey + 0.3, angle, np.array([0.97, 0.97, 0.95]), mask=False)
            iris_x, iris_y = 0.32 * ex + 0.3, min(0.48 * ex + 0.2, ey + 0.2)
            along = _rot(np.array([0.0, 1.0]), angle)  # the head's "down" in the image
            offset = float(np.dot(pupil - centre, along))
            room = max(ey + 0.2 - iris_y, 0.0)
            iris = pupil + along * (float(np.clip(offset, -room, room)) - offset)
            canvas.ellipse(iris, iris_x, iris_y, angle, np.array([0.1, 0.07, 0.05]), mask=False)
        for a, c in zip(eye[0:3], eye[1:4], strict=True):
            canvas.capsule(a, c, 0.6 * w, 0.6 * w, dark, mask=False)
    canvas.capsule(face[27], face[30], w * 0.7, w, skin * 0.85, mask=False)
    # Lips (outer contour), the mouth's dark inside (inner contour) and, once it opens, the upper teeth.
    canvas.polygon(face[48:60], np.array([0.7, 0.25, 0.25]), origin=face[48], angle=angle, mask=False)
    inner = face[60:68]
    canvas.polygon(inner, np.array([0.2, 0.06, 0.07]), origin=face[60], angle=angle, mask=False)
    gap = float(np.hypot(*(inner[6] - inner[2])))  # inner lips apart, pixels
    if gap > 2.0:
        upper = inner[1:4]
        down = (inner[6] - inner[2]) * 0.3
        teeth = np.concatenate([upper, upper[::-1] + down])
        canvas.polygon(teeth, np.array([0.9, 0.88, 0.82]), origin=upper[0], angle=angle, mask=False)


# --------------------------------------------------------------------------------------------------
# Public rendering functions
# --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=8)  # one entry per identity and size; generation goes identity by identity
def _background(identity: Identity, hw: tuple[int, int]) -> np.ndarray:
    bg = make_background(identity.background, identity.bg_colours, hw, identity.bg_seed)
    bg.flags.writeable = False
    return bg


def place(identity: Identity, pose: Pose, size: tuple[int, int], framing: str = "body") -> dict:
    """Skeleton geometry of `identity` in `pose` for a frame of `size` (H, W). `framing="body"` shows the
    whole person; `"face"` zooms so that the head fills about half the frame (face mode)."""
    h, w = size
    if framing == "body":
        s = identity.height * h * pose.scale
        return skeleton(identity, pose, s, np.array([w / 2 + pose.dx * s, h / 2 + pose.dy * s]))
    if framing != "face":
        raise ConfigError(f"unknown framing {framing!r} (use body or face)")
    s = 0.2 * min(h, w) * pose.scale / (_BODY["head_rx"] * identity.head)
    geo = skeleton(identity, replace(pose, dx=0.0, dy=0.0), s, np.zeros(2))
    shift = np.array([w / 2 + pose.dx * 0.5 * w, h / 2 + pose.dy * 2 * h]) - geo["head"]
    geo["kps"] = geo["kps"] + shift.astype(np.float32)
    geo["head"] = geo["head"] + shift
    return geo


def render_person(
    identity: Identity, pose_params: Pose, size: tuple[int, int], *, framing: str = "body"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paint one frame. Returns `image uint8 (H, W, 3)`, `keypoints float32 (137, 3)` (confidence 1,
    0 off-frame) and `mask float32 (H, W)` in [0, 1] (soft person mask)."""
    h, w = int(size[0]), int(size[1])
    geo = place(identity, pose_params, (h, w), framing)
    canvas = Canvas(_background(identity, (h, w)))
    _paint(canvas, identity, geo)
    xy = geo["kps"]
    inside = (xy[:, 0] >= 0) & (xy[:, 0] <= w - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= h - 1)
    kps = np.concatenate([xy, inside[:, None].astype(np.float32)], axis=1)
    return canvas.image_uint8(), kps, canvas.mask


def render_clip(
    identity: Identity, poses: list[Pose], size: tuple[int, int], *, framing: str = "body"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render a sequence: `images uint8 (F, H, W, 3)`, `keypoints (F, 137, 3)`, `masks (F, H, W)`."""
    out = [render_person(identity, p, size, framing=framing) for p in poses]
    return tuple(np.stack(parts) for parts in zip(*out, strict=True))  # type: ignore[return-value]


@dataclass
class DemoPair:
    """A reference photo of one identity and a driving sequence performed by another."""

    ref_image: np.ndarray  # uint8 (H, W, 3)
    ref_keypoints: np.ndarray  # (137, 3)
    drive_images: np.ndarray  # uint8 (F, H, W, 3)
    drive_keypoints: np.ndarray  # (F, 137, 3)
    drive_masks: np.ndarray  # (F, H, W)


def demo_pair(
    ref_identity: int = 0,
    drive_identity: int = 1,
    kind: str = "dance",
    frames: int = 48,
    size: tuple[int, int] = (256, 256),
    seed: int = 0,
    *,
    framing: str = "body",
) -> DemoPair:
    """Reference image (identity `ref_identity`, standing) + driving sequence (`drive_identity` moving
    with motion `kind`): the input of a pose-transfer demo that needs no real video."""
    ref = make_identity(ref_identity, seed)
    image, kps, _ = render_person(ref, Pose(), size, framing=framing)
    drive = make_identity(drive_identity, seed)
    images, dkps, masks = render_clip(drive, motion(kind, frames, seed), size, framing=framing)
    return DemoPair(image, kps, images, dkps, masks)


MAX_SIDE = 4096  # frame side limit: a frame is rendered with float32 planes (4096^2 is ~200 MB each)


def generate_dataset(
    out: str | Path,
    identities: int = 8,
    frames: int = 48,
    mode: str = "pose",
    size: tuple[int, int] = (256, 256),
    seed: int = 0,
    fps: float = 25.0,
    *,
    clips_per_identity: int = 1,
    motions: tuple[str, ...] = ("random",),
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
):
    """Write a synthetic dataset in the standard layout (`data.layout`) and return it opened.

    One clip per identity (`id0003`), or `clips_per_identity` clips named `id0003_clip01`; each clip gets its
    own motion (`motions` cycled; "random" draws one). `mode` is `pose` (whole body, person crop boxes) or
    `face` (head framing, face crop boxes). `progress(n)` is called after each frame."""
    from fewshotv2v.data.layout import DatasetWriter, open_dataset
    from fewshotv2v.modes import MODES

    framed = [m.name for m in MODES.values() if m.framing is not None]
    if mode not in framed:
        raise ConfigError(f"synthetic data supports modes {' and '.join(framed)}, not {mode!r}")
    if identities < 1 or frames < 1 or clips_per_identity < 1:
        raise ConfigError("identities, frames and clips per identity must be at least 1")
    if not fps > 0:
        raise ConfigError(f"fps must be positive, got {fps}")
    h, w = int(size[0]), int(size[1])
    if h < 16 or w < 16:
        raise ConfigError(f"frame size {h}x{w} is too small (at least 16x16)")
    if h > MAX_SIDE or w > MAX_SIDE:
        raise ConfigError(f"frame size {h}x{w} is too large (at most {MAX_SIDE}x{MAX_SIDE})")
    root = Path(out)
    if root.exists() and any(root.iterdir()) and not overwrite:
        raise OutputExistsError(f"output folder is not empty: {root} (use --overwrite)")
    writer = DatasetWriter(root, mode, overwrite=overwrite)
    framing = MODES[mode].framing
    for i in range(identities):
        identity = make_identity(i, seed)
        for c in range(clips_per_identity):
            name = f"id{i:04d}" if clips_per_identity == 1 else f"id{i:04d}_clip{c + 1:02d}"
            kind = motions[(i * clips_per_identity + c) % len(motions)]
            poses = motion(kind, frames, seed=seed * 100003 + i * 101 + c, fps=fps)
            with writer.clip(name, fps=fps, source=f"synthetic:{mode}:seed={seed}:identity={i}") as clip:
                for t, pose in enumerate(poses):
                    image, kps, mask = render_person(identity, pose, (h, w), framing=framing)
                    box = MODES[mode].crop_box(kps, (h, w))
                    clip.add_frame(image, kps, box, mask=mask, time=t / fps)
                    if progress is not None:
                        progress(1)
                clip.close(
                    {
                        "synthetic": True,
                        "identity": f"id{i:04d}",
                        "identity_index": i,
                        "motion": kind,
                        "seed": seed,
                    }
                )
    return open_dataset(root)
