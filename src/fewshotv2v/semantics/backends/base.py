"""What a keypoint detector returns (the contract of ``backends.get_backend(name).detect``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fewshotv2v.semantics import keypoints as kp


@dataclass
class Detection:
    """One person found in one image.

    ``keypoints``: canonical float32 ``(137, 3)`` in pixels of the image; ``mask``: float32 ``(H, W)`` soft
    person mask in [0, 1] or None; ``score``: detection confidence; ``bbox``: float32 ``(4,)``
    ``(x0, y0, x1, y1)`` (from the keypoints when the detector gives none).
    """

    keypoints: np.ndarray
    mask: np.ndarray | None = None
    score: float = 1.0
    bbox: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        self.keypoints = kp.check_shape(self.keypoints, "Detection.keypoints")
        if self.mask is not None:
            self.mask = np.asarray(self.mask, np.float32)
        self.bbox = kp.bbox(self.keypoints) if self.bbox is None else np.asarray(self.bbox, np.float32)
        self.score = float(self.score)

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.bbox
        return float(max(0.0, x1 - x0) * max(0.0, y1 - y0))


class Backend:
    """Base class of detectors: ``detect(image uint8 (H, W, 3) RGB) -> list[Detection]``; usable as a
    context manager (``close`` releases models / sessions)."""

    name = "base"

    def detect(self, image: np.ndarray) -> list[Detection]:  # pragma: no cover - interface
        raise NotImplementedError

    def detect_near(self, image: np.ndarray, box: np.ndarray) -> list[Detection]:
        """People around ``box (4,)`` (frame pixels), for a detector that reports one person per frame and
        may have found someone else: the person followed is looked for where they were last seen. [] by
        default (a detector that reports everyone has nothing to add)."""
        return []

    def close(self) -> None:
        """Release resources (no-op by default)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_image(image: np.ndarray) -> np.ndarray:
    """A contiguous uint8 RGB ``(H, W, 3)`` image or an :class:`InputError`."""
    from fewshotv2v.errors import InputError

    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise InputError(f"detectors take uint8 RGB images (H, W, 3), got {img.dtype} {tuple(img.shape)}")
    return np.ascontiguousarray(img)
