"""Training augmentation (SPEC §4): colour jitter, horizontal flip with a left/right keypoint swap, crop
jitter settings and skeleton limb dropping.

Everything is drawn once per training sample from the sample's own `np.random.Generator` and then applied
identically to the target window and to its references, so the generator sees consistent colours and a
consistent mirror image across time (a per-frame jitter would read as flicker).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fewshotv2v.semantics import keypoints as kp


@dataclass(frozen=True)
class Augmentation:
    """Augmentation strengths. `crop_scale` is the range of the person-crop height factor (SPEC §1:
    1.4..1.6 around 1.5), `crop_offset` the centre shift as a fraction of the box; `limb_drop` the
    probability of leaving out each skeleton limb (FSV: ~0.05)."""

    flip_p: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    channel_gain: float = 0.05
    crop_scale: tuple[float, float] = (1.4, 1.6)
    crop_offset: float = 0.05
    limb_drop: float = 0.05

    @classmethod
    def off(cls) -> Augmentation:
        """No augmentation (evaluation)."""
        return cls(0.0, 0.0, 0.0, 0.0, 0.0, (1.5, 1.5), 0.0, 0.0)


@dataclass(frozen=True)
class ColorJitter:
    """One draw of colour-jitter parameters, applied to many images."""

    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @classmethod
    def sample(cls, rng: np.random.Generator, aug: Augmentation) -> ColorJitter:
        def around_one(amount: float) -> float:
            return float(rng.uniform(1.0 - amount, 1.0 + amount)) if amount > 0 else 1.0

        gains = tuple(around_one(aug.channel_gain) for _ in range(3))
        return cls(around_one(aug.brightness), around_one(aug.contrast), around_one(aug.saturation), gains)

    @property
    def is_identity(self) -> bool:
        return self == ColorJitter()

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """`image` uint8 or float in [0, 255] `(H, W, 3)` -> float32 `(H, W, 3)` in [0, 255]."""
        x = np.asarray(image, np.float32)
        if self.is_identity:
            return x
        x = x * (np.asarray(self.gains, np.float32) * self.brightness)
        x = (x - 127.5) * self.contrast + 127.5  # fixed pivot: the same mapping for every frame
        grey = x.mean(axis=-1, keepdims=True)
        x = grey + (x - grey) * self.saturation
        return np.clip(x, 0.0, 255.0)


FLIP_PERMUTATION = kp.side_swap()  # a horizontal mirror: every left point <-> its right one


def flip_keypoints(kps: np.ndarray, width: int) -> np.ndarray:
    """Mirror `(..., 137, 3)` keypoints in an image `width` pixels wide (pixel-centre coordinates:
    x -> width - 1 - x) and swap left/right points so that labels stay anatomically correct."""
    out = np.array(kps, np.float32, copy=True)[..., FLIP_PERMUTATION, :]
    valid = out[..., 2] > 0
    out[..., 0] = np.where(valid, width - 1 - out[..., 0], out[..., 0])
    return out


def flip_image(image: np.ndarray) -> np.ndarray:
    """Mirror an `(H, W[, C])` array left-right (contiguous copy)."""
    return np.ascontiguousarray(np.asarray(image)[:, ::-1])
