"""Shared video types and constants: `Frame`, `VideoInfo`, file suffixes."""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np

IMAGE_SUFFIXES = (
    *(".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"),
    *(".avif", ".heic", ".heif", ".hif"),  # HEIF containers (`video.heif`)
)
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".gif", ".flv", ".ts")
DEFAULT_FOLDER_FPS = 25.0

# PyAV raises these for unreadable input; `av.error.FFmpegError` covers InvalidData, EOF, etc.
_AV_ERRORS = (av.error.FFmpegError, UnicodeDecodeError)


@dataclass(frozen=True)
class Frame:
    """One decoded frame: `index` counts the frames yielded (0, 1, ...), `time` is in seconds."""

    index: int
    time: float
    image: np.ndarray  # uint8 (H, W, 3) RGB (inside the reader: None for a frame `only=` leaves out)


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` finds. `width`/`height` are after rotation; `num_frames` may be an estimate or None."""

    fps: float
    width: int
    height: int
    num_frames: int | None
    duration: float | None
    rotation: int
    has_audio: bool
    is_image: bool
